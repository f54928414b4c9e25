"""Issue 23, item 14: ``kill -9`` of ``evobench run`` (or of a Dask worker) leaves none of its
cells' temporary files behind: the cell's guardian removes them when the owner is gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
from waiting import wait_for

HERE = Path(__file__).resolve().parent
DEADLINE_S = 120  # start-up (importing torch in the forkserver) on a loaded machine


def _started(proc: subprocess.Popen, n: int):
    """Whether ``proc`` has at least ``n`` descendants: its cells have made their groups."""
    try:
        return len(psutil.Process(proc.pid).children(recursive=True)) >= n
    except psutil.NoSuchProcess:
        return False


def _litter(tmp: Path) -> list[Path]:
    return sorted(tmp.glob("evobench-cell-*"))


def _start(code: str, tmp: Path) -> subprocess.Popen:
    tmp.mkdir()
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "TMPDIR": str(tmp)})


def _kill_and_wait_for_clean(proc: subprocess.Popen, tmp: Path, ready) -> None:
    try:
        wait_for(ready, DEADLINE_S, "the running cells' temporary files", procs=[proc])
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    wait_for(lambda: not _litter(tmp), 10, f"no temporary files left: {_litter(tmp)}")


def test_kill_9_of_run_leaves_no_cell_log(tmp_path, fakes):
    tmp = tmp_path / "tmp"
    code = (f"import sys; sys.path.insert(0, {str(HERE)!r}); import harness_fakes; "
            "from evobench.registry import get_registry; "
            "get_registry().add_plugin(harness_fakes, 'harness-fakes'); "
            "from evobench.cli import main; "
            f"main(['run', '-d', 'skimage[images=camera,coins,crop=32]', '--sigma', '25', "
            f"'-m', 'fake-hang', '--out', {str(tmp_path)!r}, '-j', '2', '--no-save-images'])")
    proc = _start(code, tmp)
    # resource tracker, forkserver, two cells and their guardians
    _kill_and_wait_for_clean(proc, tmp, lambda: len(list(tmp.glob("evobench-cell-*.log"))) == 2
                             and _started(proc, 6))


def test_kill_9_of_a_dask_style_host_leaves_no_cell_folder(tmp_path, fakes):
    tmp = tmp_path / "tmp"
    import harness_fakes

    code = harness_fakes.DASK_STYLE_HOST
    proc = _start(code, tmp)
    _kill_and_wait_for_clean(proc, tmp, lambda: list(tmp.glob("evobench-cell-*/in.pkl"))
                             and _started(proc, 2))  # the cell and its guardian
