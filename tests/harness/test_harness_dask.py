"""The Dask executor against a real LocalCluster on loopback: same rows as the local executor."""

from __future__ import annotations

import pandas as pd
import pytest

distributed = pytest.importorskip("distributed")

GRID = ["--suite", "denoise", "--profile", "smoke", "-d", "skimage[images=camera,crop=32]",
        "--sigma", "30", "-m", "tv", "-m", "fake-ok", "-m", "fake-hang",
        "--timeout", "8s", "--quiet"]  # generous: other jobs load the machine


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as lc:
        yield lc


def test_dask_results_equal_local(fakes, invoke, tmp_path, cluster):
    local = invoke("run", *GRID, "--out", tmp_path, "--run-name", "local", "-j", "2")
    dask = invoke("run", *GRID, "--out", tmp_path, "--run-name", "dask", "--executor", "dask",
                  "--scheduler", cluster.scheduler_address)
    assert local.exit_code == dask.exit_code == 3, (local.output, dask.output)
    a = pd.read_parquet(tmp_path / "local" / "results.parquet").set_index("cell_key").sort_index()
    b = pd.read_parquet(tmp_path / "dask" / "results.parquet").set_index("cell_key").sort_index()
    assert list(a.index) == list(b.index) and len(a) == 3
    assert set(a.status) == {"ok", "timeout"}
    assert (a[a.method.isin(["tv", "fake-ok"])].status == "ok").all(), a[["method", "error"]]
    same = ["status", "error", "psnr", "ssim", "psnr_input", "ssim_input", "noise_seed",
            "method_seed", "x_active_mean"]
    pd.testing.assert_frame_equal(a[same], b[same])  # metrics identical, bit for bit
    assert set(b.executor) == {"dask"} and set(a.executor) == {"local"}
    assert (b[b.method == "fake-hang"].status == "timeout").all()


def test_dask_bad_scheduler(fakes, invoke, tmp_path):
    result = invoke("run", *GRID[:-1], "--out", tmp_path, "--executor", "dask", "--scheduler",
                    "tcp://127.0.0.1:9")
    assert result.exit_code == 2 and "cannot reach the Dask scheduler" in result.output
    result = invoke("run", *GRID[:-1], "--out", tmp_path, "--executor", "dask")
    assert result.exit_code == 2 and "needs --scheduler" in result.output


def test_the_executor_connects_to_the_given_scheduler(cluster):
    """``--scheduler ADDRESS`` is the cluster the cells go to (not a new local one), and its
    worker threads are the slots."""
    from evobench.harness.executors import DaskExecutor

    ex = DaskExecutor(cluster.scheduler_address)
    try:
        assert ex.client.scheduler.address == cluster.scheduler_address
        assert ex.slots == 2
    finally:
        ex.close()


def test_a_dask_task_knows_when_its_client_cancelled_it(monkeypatch):
    """``task_cancelled`` inside a Dask task: True once the worker dropped or cancelled the
    task, False while it runs, and False outside any task."""
    from types import SimpleNamespace

    from distributed.worker import thread_state

    from evobench.harness.lifeline import task_cancelled

    tasks = {}
    worker = SimpleNamespace(state=SimpleNamespace(tasks=tasks))
    monkeypatch.setattr(distributed, "get_worker", lambda: worker)
    monkeypatch.setattr(thread_state, "key", "cell-1", raising=False)
    tasks["cell-1"] = SimpleNamespace(state="executing")
    assert task_cancelled() is False
    tasks["cell-1"] = SimpleNamespace(state="cancelled")
    assert task_cancelled() is True
    del tasks["cell-1"]
    assert task_cancelled() is True
    monkeypatch.setattr(thread_state, "key", None)
    assert task_cancelled() is False
