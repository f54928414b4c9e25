"""Run one cell in a fresh process with a hard wall-clock timeout.

Locally a cell runs in a child of a forkserver that has numpy, torch and the worker already
imported, so a fresh process per cell costs milliseconds, not the seconds of importing torch.
The fresh process gives each cell a clean peak-RSS reading (it includes the preloaded
libraries) and lets the parent kill it on timeout. Inside a daemonic process (a Dask worker)
multiprocessing may not have children, so there the cell runs in a ``python -m`` subprocess.
The child's stdout/stderr go to a temporary log whose tail explains a crash.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import threading
import time

_LIVE: set = set()  # processes to kill on Ctrl-C
_LIVE_LOCK = threading.Lock()
_CTX = None
PRELOAD = ["evobench.harness.preload"]
STARTUP_LIMIT_S = 600.0  # a worker that cannot even start (broken forkserver) is an error


def _context():
    global _CTX
    if _CTX is None:
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        _CTX = ctx
    return _CTX


def _redirect(log_path: str) -> None:
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def _child(payload: dict, conn, log_path: str) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C means
    _redirect(log_path)
    from evobench import live
    from evobench.harness.worker import execute

    conn.send("started")  # the timeout counts from here, not from the forkserver's start-up
    live.set_sink(lambda event: conn.send(("progress", event)))
    result = execute(payload)
    live.set_sink(None)
    conn.send(result)
    conn.close()


def _tail(log_path: str, limit: int = 400) -> str:
    try:
        with open(log_path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - limit))
            text = fh.read().decode(errors="replace")
    except OSError:
        return ""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _failure(kind: str, message: str, started: float) -> dict:
    from evobench.harness.worker import now

    return {"row": {"status": kind, "error": message, "time_total_s": time.time() - started,
                    "finished_at": now()}, "trace": [], "arrays": None}


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "unknown exit"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (killed: out of memory?)" if -code == signal.SIGKILL else ""
        return f"{name}{hint}"
    return f"exit code {code}"


def warm_up() -> None:
    """Start the forkserver (importing torch there) before the first cell is timed."""
    if not mp.current_process().daemon:
        from multiprocessing import forkserver

        _context()
        forkserver.ensure_running()


def _notify(listener, kind: str, fields: dict) -> None:
    if listener is not None:
        try:
            listener(kind, fields)
        except Exception:  # noqa: BLE001 - the display must never cost a cell
            pass


def run_isolated(payload: dict, timeout: float | None, listener=None) -> dict:
    """Run ``payload`` in a fresh process; a timeout kills it and gives ``status=timeout``.
    ``listener(kind, fields)`` hears ``start`` when the cell begins and ``progress`` with what
    the method reports (:func:`evobench.api.report_progress`)."""
    if mp.current_process().daemon:
        return run_in_subprocess(payload, timeout, listener)
    ctx = _context()
    fd, log_path = tempfile.mkstemp(prefix="evobench-cell-", suffix=".log")
    os.close(fd)
    started = time.time()
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(payload, send, log_path), daemon=True)
    try:
        proc.start()
        send.close()
        with _LIVE_LOCK:
            _LIVE.add(proc)
        start_by = time.monotonic() + STARTUP_LIMIT_S
        deadline = None  # set when the cell starts
        result = None
        while True:
            wait = 0.5 if deadline is None else min(0.5, max(0.0, deadline - time.monotonic()))
            if recv.poll(wait):
                try:
                    message = recv.recv()
                except (EOFError, OSError):
                    break
                if isinstance(message, str) and message == "started":
                    started = time.time()
                    start_by = None
                    if timeout is not None:
                        deadline = time.monotonic() + timeout
                    _notify(listener, "start", {})
                    continue
                if isinstance(message, tuple) and message and message[0] == "progress":
                    _notify(listener, "progress", message[1])
                    continue
                result = message
                break
            if not proc.is_alive() and not recv.poll(0):
                break
            if start_by is not None and time.monotonic() >= start_by:
                proc.kill()
                proc.join()
                return _failure("error", f"the worker process did not start within "
                                f"{STARTUP_LIMIT_S:g} s", started)
            if deadline is not None and time.monotonic() >= deadline:
                proc.kill()
                proc.join()
                return _failure("timeout", f"killed after the {timeout:g} s cell timeout", started)
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()
            proc.join()
        if result is None:
            tail = _tail(log_path)
            return _failure("error", f"worker process died ({_describe_exit(proc.exitcode)})"
                            + (f": {tail}" if tail else ""), started)
        return result
    finally:
        with _LIVE_LOCK:
            _LIVE.discard(proc)
        recv.close()
        os.unlink(log_path)


def run_in_subprocess(payload: dict, timeout: float | None, listener=None) -> dict:
    """The same contract through ``python -m evobench.harness.isolate`` (for daemonic hosts).
    Progress travels through a JSON-lines file next to the output, read while polling."""
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="evobench-cell-") as tmp:
        inp, out, log = (os.path.join(tmp, n) for n in ("in.pkl", "out.pkl", "log.txt"))
        with open(inp, "wb") as fh:
            pickle.dump((list(sys.path), pickle.dumps(payload)), fh)
        with open(log, "wb") as logfh:
            proc = subprocess.Popen([sys.executable, "-m", "evobench.harness.isolate", inp, out],
                                    stdout=logfh, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            with _LIVE_LOCK:
                _LIVE.add(proc)
            try:
                deadline = None
                announced = False
                events = _EventTail(out + ".progress")
                while proc.poll() is None:
                    if not announced and os.path.exists(out + ".started"):
                        announced = True
                        _notify(listener, "start", {})
                        if timeout is not None:
                            deadline = time.monotonic() + timeout  # from the cell's start
                    for event in events.read():
                        _notify(listener, "progress", event)
                    if deadline is not None and time.monotonic() >= deadline:
                        proc.kill()
                        proc.wait()
                        return _failure("timeout", f"killed after the {timeout:g} s cell timeout",
                                        started)
                    time.sleep(0.05)
            finally:
                with _LIVE_LOCK:
                    _LIVE.discard(proc)
        if proc.returncode != 0 or not os.path.exists(out):
            tail = _tail(log)
            return _failure("error", f"worker process died ({_describe_exit(proc.returncode)})"
                            + (f": {tail}" if tail else ""), started)
        with open(out, "rb") as fh:
            return pickle.load(fh)


class _EventTail:
    """New complete JSON lines of a progress file, read incrementally."""

    def __init__(self, path: str):
        self.path, self.offset = path, 0

    def read(self) -> list[dict]:
        import json

        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                chunk = fh.read()
        except OSError:
            return []
        end = chunk.rfind(b"\n") + 1
        self.offset += end
        out = []
        for line in chunk[:end].splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out


def kill_all() -> None:
    """Kill every live cell process (Ctrl-C)."""
    with _LIVE_LOCK:
        procs = list(_LIVE)
    for proc in procs:
        try:
            proc.kill()
        except (OSError, ValueError, AttributeError):
            pass


def _main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with open(argv[0], "rb") as fh:
        caller_path, blob = pickle.load(fh)
    sys.path.extend(p for p in caller_path if p not in sys.path)  # the caller's plugins
    import evobench.harness.preload  # noqa: F401 - same start-up as a forkserver child
    from evobench.harness.worker import execute

    payload = pickle.loads(blob)
    open(argv[1] + ".started", "w").close()
    import json

    from evobench import live

    events = open(argv[1] + ".progress", "a", buffering=1)  # line-buffered JSON lines
    live.set_sink(lambda event: events.write(json.dumps(event) + "\n"))
    result = execute(payload)
    live.set_sink(None)
    events.close()
    tmp = argv[1] + ".part"
    with open(tmp, "wb") as fh:
        pickle.dump(result, fh)
    os.replace(tmp, argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
