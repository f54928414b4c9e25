"""Ctrl-C: finished cells stay stored, running workers are killed, a rerun resumes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

HERE = Path(__file__).resolve().parent


def _args(out, *methods):
    args = ["run", "--profile", "smoke", "-d", "skimage[images=camera,coins,crop=32]",
            "--out", str(out), "--run-name", "r", "-j", "2", "--no-save-images"]
    for m in methods:
        args += ["-m", m]
    return args


def _cli(out, *methods):
    code = (f"import sys; sys.path.insert(0, {str(HERE)!r}); import harness_fakes; "
            "from evobench.registry import get_registry; "
            "get_registry().add_plugin(harness_fakes, 'harness-fakes'); "
            f"from evobench.cli import main; main({_args(out, *methods)!r})")
    return [sys.executable, "-c", code]


# Ctrl-C; a batch system's stop (checkpoint what can be, exit 75: test_harness_checkpoint.py)
@pytest.mark.parametrize("signum, code, says", [
    (signal.SIGINT, 130, "run the same command again to resume"),
    (signal.SIGTERM, 75, "resume by rerunning the same command")])
def test_ctrl_c_keeps_finished_cells_and_resumes(tmp_path, signum, code, says, fakes, invoke):
    proc = subprocess.Popen(_cli(tmp_path, "fake-hang", "noisy", "tv"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    cells = tmp_path / "r" / "cells"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until the non-hanging cells are stored
        if cells.is_dir() and len(list(cells.glob("*.json"))) >= 2:
            break
        time.sleep(0.2)
    time.sleep(0.5)
    # every process under the CLI (forkserver, the hanging cells), recorded before the signal
    workers = psutil.Process(proc.pid).children(recursive=True)
    assert len(workers) >= 2, workers  # at least the forkserver and a hanging cell
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert says in err
    df = pd.read_parquet(tmp_path / "r" / "results.parquet")
    assert set(df.status) == {"ok"} and 2 <= len(df) <= 4
    assert set(df.method) <= {"noisy", "tv"}
    # no worker left behind: each process recorded above is gone (reaped or a zombie)
    _, alive = psutil.wait_procs(workers, timeout=15)
    alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, [(p.pid, p.cmdline()) for p in alive]
    # the rerun (without the hanging method) runs only what is missing
    done = set(df.cell_key)
    again = invoke(*_args(tmp_path, "noisy", "tv"))
    assert again.exit_code == 0, again.output
    assert f"{4 - len(done)} run, {len(done)} cached" in again.output
