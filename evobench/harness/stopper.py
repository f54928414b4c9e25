"""Stopping a run so that it resumes (``--stop-after``, SIGTERM): the run's side.

A stop (:class:`Stopper`) runs no new cell and asks the running ones to stop: it creates a stop
file in the run's checkpoints folder (seen at the next epoch boundary by cells running anywhere
the folder is shared, e.g. on Dask workers) and sends SIGTERM to the local cell processes
(:func:`evobench.harness.isolate.signal_all`). A cell that checkpoints writes its checkpoint at
the end of its current epoch and ends; any other cell ends at once (it starts again on the next
run). The cell's side is :mod:`evobench.harness.checkpoints`.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import uuid
from pathlib import Path

from evobench.files import within
from evobench.harness import isolate
from evobench.harness.checkpoints import FOLDER


class Stopper:
    """A run's stop request, from ``--stop-after`` (a timer) or SIGTERM."""

    def __init__(self):
        self.reason: str | None = None
        self.stop_file: Path | None = None
        self._timer: threading.Timer | None = None

    @property
    def requested(self) -> bool:
        return self.reason is not None

    def attach(self, root: Path, stop_after: float | None) -> None:
        """Use ``root``'s checkpoints folder for the stop file; start the ``--stop-after``
        timer."""
        self.stop_file = within(root, FOLDER, f".stop-{uuid.uuid4().hex[:16]}")
        if self.requested:
            self._touch()
        else:  # a signal left from an earlier run in this process must not reach these cells
            isolate.clear_signal()
        if stop_after:
            self._timer = threading.Timer(stop_after, self.request, args=("--stop-after",))
            self._timer.daemon = True
            self._timer.start()

    def request(self, reason: str) -> None:
        if self.requested:
            return
        self.reason = reason
        self._touch()
        isolate.signal_all(signal.SIGTERM)

    def _touch(self) -> None:
        if self.stop_file is not None:
            with contextlib.suppress(OSError):
                self.stop_file.parent.mkdir(parents=True, exist_ok=True)
                self.stop_file.touch()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        isolate.clear_signal()
        if self.stop_file is not None:
            with contextlib.suppress(OSError):
                self.stop_file.unlink()
            with contextlib.suppress(OSError):
                self.stop_file.parent.rmdir()  # only if empty
