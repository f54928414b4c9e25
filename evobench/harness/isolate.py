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

from evobench.harness.worker import CellPayload, CellResult

_LIVE: set = set()  # processes to kill on Ctrl-C
_LIVE_LOCK = threading.Lock()
_CTX = None
PRELOAD = ["evobench.harness.preload"]
FORKSERVER_ENV = "EVOBENCH_FORKSERVER_PID"  # set in the forkserver by preload
STARTUP_LIMIT_S = 600.0  # a worker that cannot even start (broken forkserver) is an error


_START_LOCK = threading.Lock()


def _context():
    """The forkserver context, with its server running. The server is started here, not lazily
    by the first cell: with ``PYTHONSAFEPATH=1`` (its ``python -c`` would otherwise put the
    current folder first on sys.path, and an ``evobench/`` folder there, e.g. the clone you
    stand in, would be preloaded instead of the installed package) and knowing its parent
    (:mod:`evobench.harness.lifeline`: it dies with this process)."""
    global _CTX
    from multiprocessing import forkserver

    from evobench.harness.lifeline import PARENT_ENV

    with _START_LOCK:
        if _CTX is None:
            ctx = mp.get_context("forkserver")
            ctx.set_forkserver_preload(PRELOAD)
            _CTX = ctx
        saved = os.environ.get("PYTHONSAFEPATH")
        os.environ[PARENT_ENV] = str(os.getpid())  # not a value inherited from an ancestor
        os.environ["PYTHONSAFEPATH"] = "1"
        try:
            forkserver.ensure_running()  # a no-op while the server runs
        finally:
            if saved is None:
                os.environ.pop("PYTHONSAFEPATH", None)
            else:
                os.environ["PYTHONSAFEPATH"] = saved
    return _CTX


def _redirect(log_path: str) -> None:
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def _child(payload: CellPayload, conn, log_path: str) -> None:
    from evobench.harness.lifeline import die_with_parent

    die_with_parent(int(os.environ.get(FORKSERVER_ENV, 0)) or None)  # no orphan cells
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C means
    from evobench.harness.checkpoints import end_now

    signal.signal(signal.SIGTERM, end_now)  # until the method runs (then: checkpoint and stop)
    _redirect(log_path)
    from evobench.harness.worker import execute

    conn.send("started")  # the timeout counts from here, not from the forkserver's start-up
    result = execute(payload, notify=lambda text: conn.send(("note", text)),
                     sink=lambda event: conn.send(("progress", event)))
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


def oom_kills() -> int | None:
    """The kernel's count of out-of-memory kills in this process's cgroup (None: unknown)."""
    try:
        v2 = v1 = ""
        for line in open("/proc/self/cgroup").read().splitlines():
            _, controllers, rel = line.split(":", 2)
            if controllers == "":
                v2 = rel.strip().lstrip("/")
            elif "memory" in controllers.split(","):
                v1 = rel.strip().lstrip("/")
        candidates = [os.path.join("/sys/fs/cgroup", v2, "memory.events"),
                      "/sys/fs/cgroup/memory.events",
                      os.path.join("/sys/fs/cgroup/memory", v1, "memory.oom_control"),
                      "/sys/fs/cgroup/memory/memory.oom_control"]
        for path in candidates:
            if os.path.exists(path):
                for line in open(path).read().splitlines():
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
    except (OSError, ValueError):
        pass
    return None


def _describe_exit(code: int | None, oom_before: int | None = None) -> str:
    """``SIGKILL``, ``exit code 1`` ...; an OOM kill is named only when the kernel counted one."""
    if code is None:
        return "unknown exit"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        after = oom_kills() if -code == signal.SIGKILL and oom_before is not None else None
        hint = " (the kernel's out-of-memory killer)" if after is not None and \
            after > oom_before else ""
        return f"{name}{hint}"
    return f"exit code {code}"


def _note(payload: CellPayload, text) -> None:
    if payload.show_notes:
        from evobench.harness.grid import describe

        sys.stderr.write(f"{describe(payload.cell)}: {text}\n")
        sys.stderr.flush()


def signal_all(signum: int) -> None:
    """Send ``signum`` to every live cell process (a stop: see evobench.harness.checkpoints)."""
    if not _LIVE_LOCK.acquire(timeout=2):
        return
    try:
        procs = list(_LIVE)
    finally:
        _LIVE_LOCK.release()
    for proc in procs:
        try:
            if proc.pid is not None:
                os.kill(proc.pid, signum)
        except (OSError, ValueError, AttributeError):
            pass


def warm_up() -> None:
    """Start the forkserver (importing torch there) before the first cell is timed."""
    if not mp.current_process().daemon:
        _context()


def _notify(listener, kind: str, fields: dict) -> None:
    if listener is not None:
        try:
            listener(kind, fields)
        except Exception:  # noqa: BLE001 - the display must never cost a cell
            pass


def run_isolated(payload: CellPayload, timeout: float | None, listener=None) -> CellResult:
    """Run ``payload`` in a fresh process; a timeout kills it and gives ``status=timeout``.
    ``listener(kind, fields)`` hears ``start`` when the cell begins and ``progress`` with what
    the method reports (``ctx.progress``, :mod:`evobench.context`)."""
    if mp.current_process().daemon:
        return run_in_subprocess(payload, timeout, listener)
    ctx = _context()
    fd, log_path = tempfile.mkstemp(prefix="evobench-cell-", suffix=".log")
    os.close(fd)
    oom_before = oom_kills()
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(payload, send, log_path), daemon=True)
    try:
        proc.start()
        send.close()
        with _LIVE_LOCK:
            _LIVE.add(proc)
        watch = _Watch(proc, recv, payload, timeout, listener)
        result = watch.wait()
        if result is not None:
            return result
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()
            proc.join()
        if watch.result is None:
            tail = _tail(log_path)
            return CellResult.failure("error", "worker process died "
                                      f"({_describe_exit(proc.exitcode, oom_before)})"
                                      + (f": {tail}" if tail else ""), watch.started)
        return watch.result
    finally:
        with _LIVE_LOCK:
            _LIVE.discard(proc)
        recv.close()
        os.unlink(log_path)


class _Watch:
    """The parent's side of a forkserver child: relays its notes and progress, starts the
    timeout when the cell starts, and ends a child that does not start or runs too long."""

    def __init__(self, proc, recv, payload: CellPayload, timeout: float | None, listener):
        self.proc, self.recv, self.payload = proc, recv, payload
        self.timeout, self.listener = timeout, listener
        self.started = time.time()
        self.result: CellResult | None = None

    def wait(self) -> CellResult | None:
        """A failure (the child did not start, or timed out), or None once the child sent its
        result (``self.result``) or ended without one."""
        start_by = time.monotonic() + STARTUP_LIMIT_S
        deadline = None  # set when the cell starts
        while True:
            wait = 0.5 if deadline is None else min(0.5, max(0.0, deadline - time.monotonic()))
            if self.recv.poll(wait):
                try:
                    message = self.recv.recv()
                except (EOFError, OSError):
                    return None
                if self._relay(message):
                    if message == "started":
                        start_by = None
                        deadline = None if self.timeout is None else \
                            time.monotonic() + self.timeout
                    continue
                self.result = message
                return None
            if not self.proc.is_alive() and not self.recv.poll(0):
                return None
            if start_by is not None and time.monotonic() >= start_by:
                return self._kill("error", f"the worker process did not start within "
                                  f"{STARTUP_LIMIT_S:g} s")
            if deadline is not None and time.monotonic() >= deadline:
                return self._kill("timeout", f"killed after the {self.timeout:g} s cell timeout")

    def _relay(self, message) -> bool:
        """Pass a note, the start or a progress event on; False for the result."""
        if isinstance(message, tuple) and message[:1] == ("note",):
            _note(self.payload, message[1])  # e.g. "resumed at epoch 173"
            return True
        if isinstance(message, str) and message == "started":
            self.started = time.time()
            _notify(self.listener, "start", {})
            return True
        if isinstance(message, tuple) and message and message[0] == "progress":
            _notify(self.listener, "progress", message[1])
            return True
        return False

    def _kill(self, status: str, message: str) -> CellResult:
        self.proc.kill()
        self.proc.join()
        return CellResult.failure(status, message, self.started)


def run_in_subprocess(payload: CellPayload, timeout: float | None,
                      listener=None) -> CellResult:
    """The same contract through ``python -m evobench.harness.isolate`` (for daemonic hosts).
    Progress travels through a JSON-lines file next to the output, read while polling."""
    started = time.time()
    oom_before = oom_kills()
    with tempfile.TemporaryDirectory(prefix="evobench-cell-") as tmp:
        inp, out, log = (os.path.join(tmp, n) for n in ("in.pkl", "out.pkl", "log.txt"))
        with open(inp, "wb") as fh:
            pickle.dump((list(sys.path), pickle.dumps(payload)), fh)
        with open(log, "wb") as logfh:
            # -P: the current folder does not go first on sys.path, so an ``evobench/`` folder
            # there (the clone you stand in) cannot shadow the installed package
            proc = subprocess.Popen([sys.executable, "-P", "-m", "evobench.harness.isolate",
                                     inp, out, str(os.getpid())],
                                    stdout=logfh, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            with _LIVE_LOCK:
                _LIVE.add(proc)
            try:
                failure = _poll_subprocess(proc, out, timeout, listener, started)
            finally:
                with _LIVE_LOCK:
                    _LIVE.discard(proc)
        if failure is not None:
            return failure
        if proc.returncode != 0 or not os.path.exists(out):
            tail = _tail(log)
            return CellResult.failure("error", "worker process died "
                                      f"({_describe_exit(proc.returncode, oom_before)})"
                                      + (f": {tail}" if tail else ""), started)
        with open(out, "rb") as fh:
            return pickle.load(fh)


def _poll_subprocess(proc, out: str, timeout: float | None, listener,
                     started: float) -> CellResult | None:
    """Wait for the subprocess, relaying its start and progress; a failure when it is cancelled
    by the Dask client or times out (it is killed), else None when it has ended."""
    from evobench.harness.lifeline import task_cancelled

    deadline = None
    checked = time.monotonic()
    announced = False
    events = _EventTail(out + ".progress")
    while proc.poll() is None:
        if time.monotonic() - checked > 0.5:
            checked = time.monotonic()
            if task_cancelled():  # the Dask client cancelled it or went away
                proc.kill()
                proc.wait()
                return CellResult.failure("error", "cancelled by the Dask client", started)
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
            return CellResult.failure("timeout", f"killed after the {timeout:g} s cell timeout",
                                      started)
        time.sleep(0.05)
    return None


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
    from evobench.harness.lifeline import PARENT_ENV, die_with_parent

    die_with_parent(int(argv[2]) if len(argv) > 2 else None, watch=True)  # no orphan cells
    os.environ.pop(PARENT_ENV, None)  # not a forkserver: preload must not act as one
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from evobench.harness.checkpoints import end_now

    signal.signal(signal.SIGTERM, end_now)  # until the method runs (then: checkpoint and stop)
    with open(argv[0], "rb") as fh:
        caller_path, blob = pickle.load(fh)
    sys.path.extend(p for p in caller_path  # the caller's plugins, never the bare current folder
                    if p not in sys.path and p not in ("", "."))
    import evobench.harness.preload  # noqa: F401 - same start-up as a forkserver child
    from evobench.harness.worker import execute

    payload = pickle.loads(blob)
    open(argv[1] + ".started", "w").close()
    import json

    events = open(argv[1] + ".progress", "a", buffering=1)  # line-buffered JSON lines
    result = execute(payload, sink=lambda event: events.write(json.dumps(event) + "\n"))
    events.close()
    tmp = argv[1] + ".part"
    with open(tmp, "wb") as fh:
        pickle.dump(result, fh)
    os.replace(tmp, argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
