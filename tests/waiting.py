"""A test helper for tests that drive real processes: wait for a state one can observe, never
for a fixed time."""

from __future__ import annotations

import time


def wait_for(predicate, limit: float, what: str, procs=()):
    """``predicate()``'s first truthy value within ``limit`` seconds (checked every 0.1 s); an
    AssertionError naming ``what`` when it never comes, or at once when one of ``procs`` (Popen
    objects that should keep running) has ended, with its stderr."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        for p in procs:
            if p.poll() is not None:
                raise AssertionError(f"a runner ended early ({p.returncode}): {p.stderr.read()}")
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
