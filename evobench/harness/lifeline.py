"""Cell processes die with their parent: no orphan keeps computing after ``kill -9``.

On Linux :func:`die_with_parent` asks the kernel (``prctl(PR_SET_PDEATHSIG, SIGKILL)``) to kill
the calling process when its parent goes away, then checks that the parent had not already gone
(the race between fork and prctl). The chain is: ``evobench run`` -> forkserver -> cell process;
under Dask: Dask worker -> ``python -m evobench.harness.isolate`` (which also watches its parent
from a thread, for systems without prctl). :func:`task_cancelled` tells a Dask task that its
client went away or cancelled it, so the cell's process is killed then too.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1
PARENT_ENV = "EVOBENCH_PARENT_PID"


def _prctl_pdeathsig() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def die_with_parent(parent_pid: int | None, *, watch: bool = False) -> None:
    """Be killed when ``parent_pid`` (our parent) dies; exit at once if it already has.
    ``watch`` adds a daemon thread polling the parent (never use it in a process that forks)."""
    armed = _prctl_pdeathsig()
    if parent_pid and os.getppid() != parent_pid:
        os._exit(1)  # the parent died before the kernel watched it
    if parent_pid and (watch or not armed):
        def poll():
            while True:
                time.sleep(0.5)
                if os.getppid() != parent_pid:
                    os._exit(1)

        threading.Thread(target=poll, name="evobench-lifeline", daemon=True).start()


def own_group(leftovers=(), owner: int | None = None) -> None:
    """Make the calling cell process the leader of its own session and process group, and fork
    a guardian into that group which kills the whole group (``killpg(SIGKILL)``) as soon as the
    cell ends, however it ends (a result, a timeout, ``kill -9`` of the cell or, through
    ``PR_SET_PDEATHSIG``, of the runner). So a method's own children (``subprocess``,
    ``os.fork``, ``multiprocessing``) die with their cell and never run on as orphans. Call it
    first, while the process has one thread; the harness kills a cell as a group too
    (:func:`evobench.harness.isolate._kill`).

    ``leftovers``: the cell's temporary files and folders (its log, a Dask cell's ``in.pkl``),
    which ``owner`` (the process that made them and removes them when it has read them) would
    leave behind if it was killed: the guardian removes them when the cell ends and ``owner``
    is gone."""
    if not hasattr(os, "setsid"):
        return
    try:
        os.setsid()
    except OSError:
        pass  # already a session leader (a subprocess started with start_new_session)
    leader = os.getpid()
    if os.getpgid(0) != leader:
        return
    try:
        pid = os.fork()
    except OSError:
        return  # no guardian: the harness still kills the group on a timeout or a stop
    if pid:
        return
    try:  # the guardian: no signal but SIGKILL ends it, it holds no file of the cell
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.closerange(3, _max_fd())
        while os.getppid() == leader:
            time.sleep(0.2)
        if owner and gone(owner):  # nobody left to read and remove the cell's files
            _remove(leftovers)
        os.killpg(leader, signal.SIGKILL)  # the cell's leftovers, and this guardian
    finally:
        os._exit(0)


def gone(pid: int) -> bool:
    """Whether process ``pid`` has ended (a zombie waiting to be reaped has)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rpartition(")")[2].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def _remove(paths) -> None:
    import shutil

    for path in paths:
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)
        except OSError:
            pass


def _max_fd() -> int:
    try:
        return os.sysconf("SC_OPEN_MAX")
    except (OSError, ValueError):
        return 4096


def task_cancelled() -> bool:
    """Inside a Dask task: whether its client cancelled it or went away (False elsewhere)."""
    try:
        from distributed import get_worker
        from distributed.worker import thread_state

        worker = get_worker()
        key = getattr(thread_state, "key", None)
    except (ImportError, ValueError, AttributeError):
        return False
    if key is None:
        return False
    state = getattr(worker, "state", None)
    tasks = getattr(state, "tasks", None)
    if tasks is None:
        return False
    task = tasks.get(key)
    return task is None or getattr(task, "state", "") in ("cancelled", "released", "forgotten")
