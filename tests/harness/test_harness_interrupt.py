"""Ctrl-C: finished cells stay stored, running workers are killed, a rerun resumes."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import psutil
import pytest
from waiting import wait_for

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


def _start(out, *methods, sigint=signal.SIG_DFL) -> subprocess.Popen:
    """``evobench run`` in a child whose inherited SIGINT disposition is ``sigint``, known
    whatever pytest inherited (a script's background job starts with SIGINT ignored, and
    Popen passes that on: with it the run never saw Ctrl-C before evobench reset it)."""
    return subprocess.Popen(_cli(out, *methods), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, sigint))


def _hanging_run(proc, out) -> list[psutil.Process]:
    """Wait until the non-hanging cells are stored and the hanging cells run: every process
    under the CLI (forkserver, the hanging cells), recorded before any signal."""
    cells = out / "r" / "cells"
    wait_for(lambda: cells.is_dir() and len(list(cells.glob("*.json"))) >= 2, 120,
              "the two quick cells to be stored")

    def workers():  # the forkserver and at least one hanging cell under it
        procs = psutil.Process(proc.pid).children(recursive=True)
        return procs if len(procs) >= 2 else None

    return wait_for(workers, 60, "the forkserver and a hanging cell")


def _kill_all(proc, workers) -> None:
    """What a test started never outlives it, whatever failed."""
    if proc.poll() is None:
        proc.kill()
        proc.communicate()
    for p in workers:  # psutil checks the start time: a reused pid is never killed
        try:
            p.kill()
        except psutil.Error:
            pass


# Ctrl-C; a batch system's stop (checkpoint what can be, exit 75: test_harness_checkpoint.py)
@pytest.mark.parametrize("signum, code, says", [
    (signal.SIGINT, 130, "run the same command again to resume"),
    (signal.SIGTERM, 75, "resume by rerunning the same command")])
def test_ctrl_c_keeps_finished_cells_and_resumes(tmp_path, signum, code, says, fakes, invoke):
    proc, workers = _start(tmp_path, "fake-hang", "noisy", "tv"), []
    try:
        workers = _hanging_run(proc, tmp_path)
        proc.send_signal(signum)
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            tree = [(p.pid, p.status(), p.cmdline()[-1][-80:]) for p in workers if p.is_running()]
            proc.kill()
            _, err = proc.communicate()
            pytest.fail(f"no exit 60 s after {signal.Signals(signum).name}; processes {tree}; "
                        f"stderr: {err[-3000:]}")
    finally:
        _kill_all(proc, workers)
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


def test_ctrl_c_stops_a_run_that_inherited_sigint_ignored(tmp_path, fakes):
    """Launched in the background from a script, a process starts with SIGINT ignored, and
    Python keeps that; ``evobench run`` installs its Ctrl-C handler anyway, so SIGINT still
    stops the run (exit 130) and every process under it."""
    proc, workers = _start(tmp_path, "fake-hang", "noisy", "tv", sigint=signal.SIG_IGN), []
    try:
        workers = _hanging_run(proc, tmp_path)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert "run the same command again to resume" in err
        _, alive = psutil.wait_procs(workers, timeout=15)
        alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert not alive, [(p.pid, p.cmdline()) for p in alive]
    finally:
        _kill_all(proc, workers)


def test_run_restores_the_sigint_disposition_it_found(tmp_path, fakes, invoke):
    """In-process (the CLI called from Python with SIGINT ignored): ignored again afterwards."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        result = invoke("run", "--profile", "smoke", "-d", "skimage[images=camera,crop=32]",
                        "--sigma", "25", "-m", "noisy", "--out", str(tmp_path), "--quiet",
                        "--dry-run")
        assert result.exit_code == 0, result.output
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_ctrl_c_is_restored_in_the_main_thread_only():
    """An inherited SIG_IGN (a script's background job) is replaced by Python's Ctrl-C handler,
    in the main thread; another thread cannot install handlers and leaves it alone."""
    import signal
    import threading

    from evobench.harness.cli import _ctrl_c_interrupts

    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        seen = []
        thread = threading.Thread(target=lambda: seen.append(_ctrl_c_interrupts()))
        thread.start()
        thread.join()
        assert seen == [None] and signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert _ctrl_c_interrupts() is signal.SIG_IGN
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        assert _ctrl_c_interrupts() is None  # nothing to change any more
    finally:
        signal.signal(signal.SIGINT, before)


def test_a_cell_started_while_a_stop_is_sent_gets_the_signal_too(tmp_path, fakes, invoke,
                                                                  monkeypatch):
    """A stop (SIGTERM to every live cell) that lands while a cell's process is being started
    reaches that cell as soon as it is live; before, the cell ran on unasked, and a hanging
    method kept the stopped run waiting (the SIGTERM interrupt test hung about 1 run in 5).
    Here the signal is sent right after each cell's process starts, before it is live; the
    run's end clears it."""
    import time

    from evobench.harness import isolate

    fork = isolate._fork

    def fork_then_stop(payload):
        cell = fork(payload)
        isolate.signal_all(signal.SIGTERM)  # the stop lands before the cell is in _LIVE
        return cell

    monkeypatch.setattr(isolate, "_fork", fork_then_stop)
    try:
        started = time.monotonic()
        result = invoke("run", "--profile", "smoke", "-d", "skimage[images=camera,crop=32]",
                        "--out", tmp_path, "--run-name", "r", "-m", "fake-hang",
                        "--timeout", "30s", "--quiet")
        assert time.monotonic() - started < 20, "the late cell was not signalled"
        assert result.exit_code == 3, result.output
        (error,) = pd.read_parquet(tmp_path / "r" / "results.parquet")["error"]
        assert error.startswith("worker process died (exit code 143") or "SIGTERM" in error, error
        assert isolate._SIGNALLED is None  # the run's end cleared it
    finally:
        isolate.clear_signal()
