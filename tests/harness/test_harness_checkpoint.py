"""Checkpointed cells in `evobench run`: kill -9 and rerun, tampered checkpoints, --stop-after and
SIGTERM (exit 75), all compared with an uninterrupted run of the same cell."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

# ~0.1 s per epoch on a 48 x 48 crop: long enough to interrupt, short enough for CI
TVAE = "tvae[H=16,hidden=16,S=16,P=3,C=2,patch_size=5,epochs=40]"


def _args(out, *extra):
    return ["run", "-m", TVAE, "-d", "skimage[images=camera,crop=48]", "--sigma", "25",
            "--out", str(out), "--run-name", "r", "--no-save-images", *extra]


def _cmd(out, *extra):
    return [sys.executable, "-m", "evobench", *_args(out, *extra)]


def _start(out, *extra):
    return subprocess.Popen(_cmd(out, *extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def _wait_for_checkpoint(out, proc, limit=120.0) -> Path:
    """The header of the first checkpoint the run writes (polled with a deadline)."""
    deadline = time.monotonic() + limit
    root = Path(out) / "r" / "checkpoints"
    while time.monotonic() < deadline:
        found = list(root.glob("*/checkpoint.json"))
        if found:
            return found[0]
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.kill()
    pytest.fail("no checkpoint appeared")


def _rows(out):
    return pd.read_parquet(Path(out) / "r" / "results.parquet")


def _trace(out):
    t = pd.read_parquet(Path(out) / "r" / "traces.parquet")
    return t.drop(columns=["seconds", "epoch_seconds"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The same cell run in one go, without checkpoints."""
    out = tmp_path_factory.mktemp("reference")
    done = subprocess.run(_cmd(out, "--checkpoint-every", "0"), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    assert not (out / "r" / "checkpoints").exists()
    return out


def _same_as_reference(out, reference):
    a, b = _rows(out), _rows(reference)
    assert a.status.tolist() == ["ok"] and a.cell_key.tolist() == b.cell_key.tolist()
    assert abs(a.psnr[0] - b.psnr[0]) <= 1e-6 and a.ssim[0] == b.ssim[0]
    pd.testing.assert_frame_equal(_trace(out), _trace(reference))
    assert a.threads[0] == b.threads[0]


@pytest.mark.parametrize("damage", [None, "tamper"])
def test_kill_9_then_rerun_continues_from_the_checkpoint(tmp_path, reference, damage):
    proc = _start(tmp_path, "--checkpoint-every", "0.2s")
    header = _wait_for_checkpoint(tmp_path, proc)
    os.killpg(proc.pid, signal.SIGKILL)  # the run, its forkserver and the cell: a lost node
    proc.communicate(timeout=60)
    assert not list((tmp_path / "r" / "cells").glob("*.json"))  # the cell had not finished
    epoch = json.loads(header.read_text())["epoch"]
    if damage == "tamper":
        state = header.parent / json.loads(header.read_text())["file"]
        blob = bytearray(state.read_bytes())
        blob[-100] ^= 0x01
        state.write_bytes(bytes(blob))
    again = subprocess.run(_cmd(tmp_path, "--checkpoint-every", "0.2s"), capture_output=True,
                           text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    _same_as_reference(tmp_path, reference)
    row = _rows(tmp_path).iloc[0]
    if damage is None:
        assert f"resumed at epoch {epoch}" in again.stderr
        assert row.resumes == 1 and row.resumed_at_epoch == epoch
        # the fit time of both segments is summed (the trace's clock continues)
        t = pd.read_parquet(tmp_path / "r" / "traces.parquet")
        assert t.seconds.is_monotonic_increasing and row.time_fit_s == t.seconds.iloc[-1]
    else:
        lines = [line for line in again.stderr.splitlines() if "ignoring the checkpoint" in line]
        assert len(lines) == 1 and "SHA-256 mismatch" in lines[0]
        assert "from scratch" in lines[0] and "Traceback" not in again.stderr
        assert row.resumes == 0
    assert not (tmp_path / "r" / "checkpoints").exists()  # removed once the cell finished


def test_sigterm_checkpoints_and_exits_75(tmp_path, reference):
    proc = _start(tmp_path, "--checkpoint-every", "0.2s")
    header = _wait_for_checkpoint(tmp_path, proc)  # the fit runs
    first = json.loads(header.read_text())["epoch"]
    proc.send_signal(signal.SIGTERM)  # to the run only: it passes the stop on to its cells
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 75, err
    assert "resume by rerunning" in err and "Traceback" not in err
    assert not list((tmp_path / "r" / "cells").glob("*.json"))
    assert not list((tmp_path / "r" / "checkpoints").glob(".stop-*"))
    epoch = json.loads(header.read_text())["epoch"]
    assert epoch >= first
    again = subprocess.run(_cmd(tmp_path, "--checkpoint-every", "0.2s"), capture_output=True,
                           text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert f"resumed at epoch {epoch}" in again.stderr
    _same_as_reference(tmp_path, reference)


def test_stop_after_checkpoints_running_cells_and_exits_75(tmp_path, reference, invoke):
    result = invoke(*_args(tmp_path, "--checkpoint-every", "0.2s", "--stop-after", "1s"))
    assert result.exit_code == 75, result.output
    assert "resume by rerunning" in result.output
    assert not list((tmp_path / "r" / "cells").glob("*.json"))
    headers = list((tmp_path / "r" / "checkpoints").glob("*/checkpoint.json"))
    again = invoke(*_args(tmp_path, "--checkpoint-every", "0.2s"))
    assert again.exit_code == 0, again.output
    _same_as_reference(tmp_path, reference)
    row = _rows(tmp_path).iloc[0]
    assert row.resumes == (1 if headers else 0)


def test_keep_checkpoints_and_bad_durations(tmp_path, invoke):
    bad = invoke(*_args(tmp_path, "--checkpoint-every", "soon"))
    assert bad.exit_code == 2 and "--checkpoint-every 'soon' is not a duration" in bad.output
    assert not (tmp_path / "r").exists()
    kept = invoke(*_args(tmp_path, "--checkpoint-every", "0.05s", "--keep-checkpoints"))
    assert kept.exit_code == 0, kept.output
    assert len(list((tmp_path / "r" / "checkpoints").glob("*/checkpoint.json"))) == 1
    cached = invoke(*_args(tmp_path))  # a rerun finds the cell done and clears its checkpoint
    assert cached.exit_code == 0 and "0 run, 1 cached" in cached.output
    assert not list((tmp_path / "r" / "checkpoints").glob("*/checkpoint.json"))


def test_dask_worker_continues_a_checkpoint_in_the_shared_run_folder(tmp_path, invoke):
    """A cell interrupted on one machine resumes on a Dask worker that sees the run folder (a
    worker that dies mid-cell is the same case: Dask reruns the task elsewhere)."""
    distributed = pytest.importorskip("distributed")
    ref = invoke(*_args(tmp_path / "ref", "-j", "2", "--checkpoint-every", "0"))  # 1 thread
    assert ref.exit_code == 0, ref.output
    proc = _start(tmp_path, "-j", "2", "--checkpoint-every", "0.2s")
    header = _wait_for_checkpoint(tmp_path, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    epoch = json.loads(header.read_text())["epoch"]
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        again = invoke(*_args(tmp_path, "--executor", "dask", "--scheduler",
                              cluster.scheduler_address, "--checkpoint-every", "0.2s"))
    assert again.exit_code == 0, again.output
    row = _rows(tmp_path).iloc[0]
    assert row.executor == "dask" and row.resumes == 1 and row.resumed_at_epoch == epoch
    assert f"resumed at epoch {epoch}" in again.output
    _same_as_reference(tmp_path, tmp_path / "ref")


def test_a_stop_signals_each_live_cell_with_the_signal_asked_for():
    """``signal_all(SIGTERM)`` (a stop) sends SIGTERM, not a kill, to every live cell."""
    import signal as _signal

    from evobench.harness import isolate

    proc = isolate._Popen(["sleep", "30"])
    cell = isolate._Transport(proc, None, "", cleanup=lambda: None)
    isolate._LIVE.add(cell)
    try:
        isolate.signal_all(_signal.SIGTERM)
        assert proc.wait(timeout=10) == -_signal.SIGTERM
    finally:
        isolate._LIVE.discard(cell)
        isolate.clear_signal()  # as the run's end does: later cells start unsignalled
        proc.kill()
        proc.wait()
