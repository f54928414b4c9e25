"""Run one cell in a fresh process with a hard wall-clock timeout.

Locally a cell runs in a child of a forkserver that has numpy, torch and the worker already
imported, so a fresh process per cell costs milliseconds, not the seconds of importing torch.
The fresh process gives each cell a clean peak-RSS reading (it includes the preloaded
libraries) and lets the parent kill it on timeout. Inside a daemonic process (a Dask worker)
multiprocessing may not have children, so there the cell runs in a ``python -m`` subprocess.
The child's stdout/stderr go to a temporary log whose tail explains a crash.

Both are one protocol on a pipe, watched by one loop (:func:`_watch`): the child sends
``start`` (the timeout counts from there, not from its start-up), ``note`` and ``progress``
messages, then its ``result``. Only the :class:`_Transport` (how the child is started, whether
a Dask client cancelled it) differs.
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
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from evobench.harness.worker import CellPayload, CellResult

_LIVE: set = set()  # transports of running cells, to signal on a stop or Ctrl-C
_LIVE_LOCK = threading.Lock()
# The signal a stop or Ctrl-C sent to every live cell (signal_all), until the run clears it: a
# cell whose process was being started at that moment (not yet in _LIVE) gets it as soon as it
# is, instead of running on unasked (a hanging method would keep the run waiting).
_SIGNALLED: int | None = None
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


# -- the cell's side -----------------------------------------------------------------------
def _cell_signals() -> None:
    """Set first in a cell process: Ctrl-C is the parent's to decide; SIGTERM ends the cell now
    until its method runs (the worker then points it at the method's context: checkpoint and
    stop, or end now)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from evobench.harness.checkpoints import end_now

    signal.signal(signal.SIGTERM, end_now)


def _cell_side(payload: CellPayload, conn: Connection) -> None:
    """The cell, either way it was started: ``start``, its notes and progress, its result."""
    from evobench.harness.worker import execute

    conn.send(("start", None))
    result = execute(payload, notify=lambda text: conn.send(("note", text)),
                     sink=lambda event: conn.send(("progress", event)))
    conn.send(("result", result))
    conn.close()


def _forked_child(payload: CellPayload, conn: Connection, log_path: str) -> None:
    from evobench.harness.lifeline import PARENT_ENV, die_with_parent, own_group

    # the method's own children die with the cell; its log goes with a killed runner
    own_group([log_path], int(os.environ.get(PARENT_ENV, 0)) or None)
    die_with_parent(int(os.environ.get(FORKSERVER_ENV, 0)) or None)  # no orphan cells
    # a method may start processes (multiprocessing.Pool refuses in a daemonic one): they are
    # in the cell's process group, so they die with it (daemon only told the runner to end it)
    mp.current_process().daemon = False
    _cell_signals()
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    _cell_side(payload, conn)


def _main(argv: list[str]) -> int:
    """``python -m evobench.harness.isolate IN FD PARENT_PID``: a cell of :func:`_spawn`."""
    from evobench.harness.lifeline import PARENT_ENV, die_with_parent, own_group

    # before any thread; the method's own children die with the cell, and its folder (in.pkl,
    # the log) with a killed Dask worker
    folder = os.path.dirname(os.path.abspath(argv[0]))
    own_group([folder] if os.path.basename(folder).startswith("evobench-cell-") else [],
              int(argv[2]))
    die_with_parent(int(argv[2]), watch=True)  # no orphan cells
    os.environ.pop(PARENT_ENV, None)  # not a forkserver: preload must not act as one
    _cell_signals()
    with open(argv[0], "rb") as fh:
        caller_path, blob = pickle.load(fh)
    sys.path.extend(p for p in caller_path  # the caller's plugins, never the bare current folder
                    if p not in sys.path and p not in ("", "."))
    import evobench.harness.preload  # noqa: F401 - same start-up as a forkserver child

    _cell_side(pickle.loads(blob), Connection(int(argv[1]), readable=False))
    return 0


# -- the parent's side ---------------------------------------------------------------------
@dataclass(eq=False)
class _Transport:
    """A started cell process: ``proc`` (``is_alive()``, ``join(timeout)``, ``exitcode``,
    ``pid``), the pipe it sends on, its log, and whether a Dask client cancelled it."""

    proc: Any
    recv: Connection
    log_path: str
    cancelled: Callable[[], bool] = lambda: False
    cleanup: Callable[[], None] = lambda: None


def _fork(payload: CellPayload) -> _Transport:
    """A child of the forkserver."""
    ctx = _context()
    fd, log_path = tempfile.mkstemp(prefix="evobench-cell-", suffix=".log")
    os.close(fd)
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_forked_child, args=(payload, send, log_path), daemon=True)
    try:
        proc.start()
    except BaseException:
        recv.close()
        os.unlink(log_path)
        raise
    finally:
        send.close()
    return _Transport(proc, recv, log_path, cleanup=lambda: os.unlink(log_path))


class _Popen(subprocess.Popen):
    """A subprocess that answers like a ``multiprocessing.Process``."""

    def is_alive(self) -> bool:
        return self.poll() is None

    def join(self, timeout: float | None = None) -> None:
        try:
            self.wait(timeout)
        except subprocess.TimeoutExpired:
            pass

    @property
    def exitcode(self) -> int | None:
        return self.returncode


def _spawn(payload: CellPayload) -> _Transport:
    """``python -m evobench.harness.isolate`` in its own session (a terminal's Ctrl-C does not
    reach it); ``-P``: the current folder does not go first on sys.path, so an ``evobench/``
    folder there (the clone you stand in) cannot shadow the installed package."""
    from evobench.harness.lifeline import task_cancelled

    tmp = tempfile.TemporaryDirectory(prefix="evobench-cell-")
    inp, log_path = os.path.join(tmp.name, "in.pkl"), os.path.join(tmp.name, "log.txt")
    recv, send = mp.Pipe(duplex=False)
    try:
        with open(inp, "wb") as fh:
            pickle.dump((list(sys.path), pickle.dumps(payload)), fh)
        with open(log_path, "wb") as log:
            proc = _Popen([sys.executable, "-P", "-m", "evobench.harness.isolate", inp,
                           str(send.fileno()), str(os.getpid())], stdout=log,
                          stderr=subprocess.STDOUT, pass_fds=[send.fileno()],
                          start_new_session=True)
    except BaseException:
        recv.close()
        tmp.cleanup()
        raise
    finally:
        send.close()
    return _Transport(proc, recv, log_path, cancelled=task_cancelled, cleanup=tmp.cleanup)


def run_isolated(payload: CellPayload, timeout: float | None, listener=None) -> CellResult:
    """Run ``payload`` in a fresh process; a timeout kills it and gives ``status=timeout``.
    ``listener(kind, fields)`` hears ``start`` when the cell begins and ``progress`` with what
    the method reports (``ctx.progress``, :mod:`evobench.context`)."""
    if mp.current_process().daemon:
        return run_in_subprocess(payload, timeout, listener)
    return _run(_fork, payload, timeout, listener)


def run_in_subprocess(payload: CellPayload, timeout: float | None,
                      listener=None) -> CellResult:
    """The same contract through ``python -m evobench.harness.isolate`` (for daemonic hosts,
    e.g. a Dask worker, whose client may cancel the cell)."""
    return _run(_spawn, payload, timeout, listener)


def _run(start, payload: CellPayload, timeout: float | None, listener) -> CellResult:
    oom_before = oom_kills()
    cell = start(payload)
    with _LIVE_LOCK:
        _LIVE.add(cell)
        late = _SIGNALLED  # sent while this cell was being started: it gets it now
    if late is not None:
        _kill(cell, late)
    try:
        return _watch(cell, payload, timeout, listener, oom_before)
    finally:
        with _LIVE_LOCK:
            _LIVE.discard(cell)
        cell.recv.close()
        cell.cleanup()


def _watch(cell: _Transport, payload: CellPayload, timeout: float | None, listener,
           oom_before: int | None) -> CellResult:
    """Relay the cell's notes and progress, start the timeout when the cell starts, end a cell
    that does not start, runs too long or is cancelled; its result, or why it has none."""
    started = time.time()
    start_by = time.monotonic() + STARTUP_LIMIT_S
    deadline = None  # set when the cell starts
    result = None
    while True:
        wait = 0.5 if deadline is None else min(0.5, max(0.0, deadline - time.monotonic()))
        if cell.recv.poll(wait):
            try:
                kind, body = cell.recv.recv()
            except (EOFError, OSError):
                break  # it ended without a result
            if kind == "start":
                started, start_by = time.time(), None
                deadline = None if timeout is None else time.monotonic() + timeout
                _notify(listener, "start", {})
            elif kind == "progress":
                _notify(listener, "progress", body)
            elif kind == "note":
                _note(payload, body)  # e.g. "resumed at epoch 173"
            else:
                result = body
                break
        elif not cell.proc.is_alive() and not cell.recv.poll(0):
            break  # it ended, while something it started holds the pipe open
        if cell.cancelled():  # the Dask client cancelled it or went away
            return _end(cell, "error", "cancelled by the Dask client", started)
        if start_by is not None and time.monotonic() >= start_by:
            return _end(cell, "error", f"the worker process did not start within "
                        f"{STARTUP_LIMIT_S:g} s", started)
        if deadline is not None and time.monotonic() >= deadline:
            return _end(cell, "timeout", f"killed after the {timeout:g} s cell timeout", started)
    cell.proc.join(timeout=30)  # it exits once it has sent its result
    _kill(cell, signal.SIGKILL)  # a no-op once it has exited (its guardian kills leftovers)
    cell.proc.join()
    if result is not None:
        return result
    tail = _tail(cell.log_path)
    return CellResult.failure("error", "worker process died "
                              f"({_describe_exit(cell.proc.exitcode, oom_before)})"
                              + (f": {tail}" if tail else ""), started)


def _end(cell: _Transport, status: str, message: str, started: float) -> CellResult:
    _kill(cell, signal.SIGKILL)
    cell.proc.join()
    return CellResult.failure(status, message, started)


def _kill(cell: _Transport, signum: int) -> None:
    """Send ``signum`` to a cell: the one way this module signals a cell (a timeout, a stop,
    Ctrl-C, the end of a cell). SIGKILL goes to the cell's whole process group (it leads its
    own, :func:`evobench.harness.lifeline.own_group`), so the method's own children die too,
    also after the cell itself has exited; other signals (SIGTERM: a stop) go to the cell
    process only, which decides how to end."""
    pid = getattr(cell.proc, "pid", None)
    if not pid:
        return
    if signum == signal.SIGKILL and hasattr(os, "killpg"):
        try:  # only while the leader is there (alive, or not yet reaped): its PID is its own
            if os.getpgid(pid) == pid:
                os.killpg(pid, signum)
        except OSError:
            pass  # it has not made its group yet, or has been reaped (its guardian cleans up)
    try:
        if cell.proc.is_alive():
            os.kill(pid, signum)
    except (OSError, ValueError, AttributeError):
        pass


def signal_all(signum: int) -> None:
    """Send ``signum`` to every live cell process (SIGTERM: a stop, see
    :mod:`evobench.harness.stopper`)."""
    global _SIGNALLED
    if not _LIVE_LOCK.acquire(timeout=2):
        return
    try:
        _SIGNALLED = signum
        cells = list(_LIVE)
    finally:
        _LIVE_LOCK.release()
    for cell in cells:
        _kill(cell, signum)


def clear_signal() -> None:
    """The run that called :func:`signal_all` ended: cells started later run normally."""
    global _SIGNALLED
    with _LIVE_LOCK:
        _SIGNALLED = None


def kill_all() -> None:
    """Kill every live cell process (Ctrl-C)."""
    signal_all(signal.SIGKILL)


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


def _note(payload: CellPayload, text) -> None:
    if payload.show_notes:
        from evobench.harness.grid import describe

        sys.stderr.write(f"{describe(payload.cell)}: {text}\n")
        sys.stderr.flush()


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


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
