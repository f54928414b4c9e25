"""No orphan: after ``kill -9`` of ``evobench run`` (or of the process hosting a Dask task),
no process it started keeps running (issue 9, defect 2)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from waiting import wait_for

HERE = Path(__file__).resolve().parent
DEADLINE_S = 120  # start-up (importing torch in the forkserver) on a loaded machine


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _kill_and_check(proc: subprocess.Popen, watched: list[psutil.Process]) -> None:
    pids = [p.pid for p in watched]
    try:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        # the bar: nothing left 5 s later (doubled for a loaded 2-core machine)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.1)
        left = [p for p in pids if _alive(p)]
        assert not left, f"orphans still running: {left}"
    finally:
        for p in watched:  # never leave a process behind, whatever the outcome
            try:
                p.kill()
            except psutil.Error:
                pass


def test_kill_9_of_run_leaves_no_process(tmp_path, fakes):
    code = (f"import sys; sys.path.insert(0, {str(HERE)!r}); import harness_fakes; "
            "from evobench.registry import get_registry; "
            "get_registry().add_plugin(harness_fakes, 'harness-fakes'); "
            "from evobench.cli import main; "
            f"main(['run', '-d', 'skimage[images=camera,coins,crop=32]', '--sigma', '25', "
            f"'-m', 'fake-hang', '--out', {str(tmp_path)!r}, '-j', '2', '--no-save-images'])")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        # the forkserver plus its two hanging cells (grandchildren of the run)
        watched = wait_for(lambda: (lambda d: d if len(d) >= 3 else None)(
            _descendants(proc.pid)), DEADLINE_S, "the forkserver and two cells")
        time.sleep(0.5)
        watched = _descendants(proc.pid)
    except BaseException:
        proc.kill()
        for p in _descendants(proc.pid):
            p.kill()
        raise
    _kill_and_check(proc, watched)


def test_kill_9_of_a_dask_style_host_kills_its_cell(tmp_path, fakes):
    """A Dask worker runs a cell through ``run_in_subprocess`` (a new session): when the worker
    is killed, the cell process must go too."""
    import harness_fakes

    code = harness_fakes.DASK_STYLE_HOST
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        watched = wait_for(lambda: _descendants(proc.pid), DEADLINE_S, "the cell process")
    except BaseException:
        proc.kill()
        raise
    _kill_and_check(proc, watched)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux-only")
def test_die_with_parent_exits_when_the_parent_is_already_gone():
    code = ("import os; from evobench.harness.lifeline import die_with_parent; "
            "die_with_parent(os.getppid() + 100000); print('survived')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 1 and "survived" not in out.stdout


def _isolate_processes() -> dict[int, psutil.Process]:
    """Cell subprocesses started under this test process (never another session's)."""
    found = {}
    for p in _descendants(os.getpid()):
        try:
            if "evobench.harness.isolate" in p.cmdline():
                found[p.pid] = p
        except psutil.Error:
            continue
    return found


def test_sigint_of_a_dask_client_kills_its_running_cells(tmp_path, fakes):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        code = (f"import sys; sys.path.insert(0, {str(HERE)!r}); import harness_fakes; "
                "from evobench.registry import get_registry; "
                "get_registry().add_plugin(harness_fakes, 'harness-fakes'); "
                "from evobench.cli import main; "
                f"main(['run', '-d', 'skimage[images=camera,crop=32]', '--sigma', '25', "
                f"'-m', 'fake-hang', '--out', {str(tmp_path)!r}, '--executor', 'dask', "
                f"'--scheduler', {cluster.scheduler_address!r}])")
        before = set(_isolate_processes())
        # a known SIGINT disposition, whatever pytest inherited (test_harness_interrupt.py)
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            cells = wait_for(lambda: [p for pid, p in _isolate_processes().items()
                                       if pid not in before], DEADLINE_S, "the cell process")
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=60) == 130
            deadline = time.monotonic() + 20  # the task notices within about a second
            while time.monotonic() < deadline and any(_alive(p.pid) for p in cells):
                time.sleep(0.1)
            assert not [p.pid for p in cells if _alive(p.pid)], "the cancelled cell runs on"
        finally:
            proc.kill()
            for p in _isolate_processes().values():
                if p.pid not in before:
                    p.kill()


# -- issue 23 item 6: a method's own children die with its cell ------------------------------
def _spawner_run(tmp_path: Path, methods: list[str], extra: list[str]) -> subprocess.Popen:
    args = ["run", "-d", "skimage[images=camera,crop=32]", "--sigma", "25",
            *[a for m in methods for a in ("-m", m)], "--out", str(tmp_path), "-j", "2",
            "--no-save-images", "--quiet", *extra]
    code = (f"import sys; sys.path.insert(0, {str(HERE)!r}); import harness_fakes; "
            "from evobench.registry import get_registry; "
            "get_registry().add_plugin(harness_fakes, 'harness-fakes'); "
            f"from evobench.cli import main; main({args!r})")
    env = {**os.environ, "EVOBENCH_FAKE_CHILDREN": str(tmp_path / "children.txt")}
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def _children(tmp_path: Path) -> list[int]:
    try:
        return [int(x) for x in (tmp_path / "children.txt").read_text().split()]
    except (OSError, ValueError):
        return []


def _gone_within(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if _alive(p)]


def _kill_pids(pids: list[int]) -> None:
    for pid in pids:
        try:
            psutil.Process(pid).kill()
        except psutil.Error:
            pass


SPAWNERS = ["fake-spawner[how=subprocess]", "fake-spawner[how=fork]"]


def test_a_timed_out_cell_takes_its_own_children_with_it(tmp_path, fakes):
    """A method that starts a ``sleep 600`` child (subprocess, fork) and hangs: on the cell's
    timeout the child dies too (the cell runs in its own process group)."""
    proc = _spawner_run(tmp_path, SPAWNERS, ["--timeout", "5"])
    try:
        _, err = proc.communicate(timeout=DEADLINE_S + 60)
        pids = _children(tmp_path)
        assert len(pids) == 2, err
        assert not _gone_within(pids, 10), "a method's child outlived its timed-out cell"
    finally:
        proc.kill()
        _kill_pids(_children(tmp_path))


def test_kill_9_of_run_kills_a_methods_own_children(tmp_path, fakes):
    proc = _spawner_run(tmp_path, SPAWNERS, [])
    try:
        pids = wait_for(lambda: (lambda p: p if len(p) == 2 else None)(_children(tmp_path)),
                         DEADLINE_S, "the methods' children")
        assert all(_alive(p) for p in pids)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert not _gone_within(pids, 10), "a method's child outlived kill -9 of the run"
    finally:
        proc.kill()
        _kill_pids(_children(tmp_path))
