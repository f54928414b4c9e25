"""Same seed and device -> the same numbers, whatever the thread count, -j or executor.

The E-step's parameter lag is part of the algorithm (a snapshot schedule, with or without the
worker thread) and each epoch's arithmetic runs at one intra-op thread, so these are checked
bit for bit, not to a tolerance.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from evobench.tvae import denoise
from evobench.tvae.config import make_config
from evobench.tvae.pipeline import build_trainer
from evobench.tvae.presets import get_preset


def _patches() -> np.ndarray:
    """500 patches of 16 values (6 chunks of 96 in ``_fit``), a third of them offset by 1."""
    rng = np.random.default_rng(0)
    return rng.random((500, 16)) + (rng.random((500, 1)) < 0.3)


def _fit(threads: int, Y: np.ndarray, epochs: int = 3):
    torch.set_num_threads(threads)  # the autouse fixture restores the previous count
    cfg = make_config(get_preset("quick"), dict(
        patch_size=4, H=8, hidden=(16,), S=12, P=3, C=2, G=2, scale=1.0, chunk_size=96,
        batch_size=16))
    tr = build_trainer(Y, None, cfg, torch.Generator().manual_seed(3), float(Y.var(0).mean()))
    stats = [tr.epoch() for _ in range(epochs)]
    est, extra = tr.estimate(want_stats=True)
    return tr, stats, est, extra


def test_trainer_is_bit_identical_at_one_and_two_threads():
    Y = _patches()
    a, sa, ea, xa = _fit(1, Y)
    b, sb, eb, xb = _fit(2, Y)
    assert not a.overlap and b.overlap  # the in-line schedule and the worker-thread one
    assert torch.equal(a.keys, b.keys)
    assert torch.equal(a.opt.flat, b.opt.flat)
    assert torch.equal(a.model.sigma2, b.model.sigma2) and torch.equal(a.model.pi, b.model.pi)
    assert sa == sb
    assert torch.equal(ea, eb)
    assert xa["active_mean"] == xb["active_mean"]
    assert np.array_equal(xa["active_hist"], xb["active_hist"])
    assert a.free_energy() == b.free_energy()
    assert torch.get_num_threads() == 2  # epochs and estimates restore the caller's count
    assert sa[-1]["F"] > sa[0]["F"]  # and it learns


@pytest.mark.parametrize("worker_first", [True, False])
def test_the_mstep_plan_gives_the_same_numbers_whichever_thread_builds_it(monkeypatch,
                                                                          worker_first):
    """The worker builds the next chunk's M-step plan when it finished its E-step first, else
    the main thread does: forced both ways, the numbers equal those of the in-line schedule."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import evobench.tvae.schedule as schedule
    import evobench.tvae.training as training

    class Pool(ThreadPoolExecutor):  # futures report the E-step as done (or not) on arrival
        def submit(self, fn, /, *args, **kwargs):
            future = super().submit(fn, *args, **kwargs)
            future.result()
            future.done = lambda: worker_first
            return future

    built_by_worker = []
    real_plan = training.Trainer._mstep_plan

    def spy(self, *args):
        built_by_worker.append(threading.current_thread() is not threading.main_thread())
        return real_plan(self, *args)

    Y = _patches()
    a, sa, ea, _ = _fit(1, Y, epochs=2)
    monkeypatch.setattr(schedule, "ThreadPoolExecutor", Pool)
    monkeypatch.setattr(training.Trainer, "_mstep_plan", spy)
    b, sb, eb, _ = _fit(2, Y, epochs=2)
    assert b.overlap
    per_epoch = [True] * 6 if worker_first else [True] + [False] * 5  # chunk 0: the worker
    assert built_by_worker == per_epoch * 2
    assert torch.equal(a.keys, b.keys) and torch.equal(a.opt.flat, b.opt.flat)
    assert sa == sb and torch.equal(ea, eb)


def test_the_estep_selection_gives_the_same_numbers_whoever_takes_its_pieces(monkeypatch):
    """The E-step's selection is cut into pieces of rows that either thread takes: with the
    worker leaving every piece to the main thread, the numbers equal the in-line schedule's."""
    import threading

    import evobench.tvae.schedule as schedule
    import evobench.tvae.training as training

    class MainTakesAll(schedule._SharedRows):
        def work(self):
            if threading.current_thread() is threading.main_thread():
                super().work()

    by_main = []
    real_select = training.select

    def spy(*args):
        by_main.append(threading.current_thread() is threading.main_thread())
        return real_select(*args)

    Y = _patches()
    monkeypatch.setattr(schedule, "SELECT_ROWS", 32)  # 3 pieces per chunk
    a, sa, ea, _ = _fit(1, Y, epochs=2)
    monkeypatch.setattr(schedule, "_SharedRows", MainTakesAll)
    monkeypatch.setattr(training, "select", spy)
    b, sb, eb, _ = _fit(2, Y, epochs=2)
    assert b.overlap and by_main == [True] * 32  # per epoch 5 chunks x 3 pieces + 1 (20 rows)
    assert torch.equal(a.keys, b.keys) and torch.equal(a.opt.flat, b.opt.flat)
    assert sa == sb and torch.equal(ea, eb)


def test_denoise_is_bit_identical_at_one_and_two_threads():
    rng = np.random.default_rng(1)
    clean = np.kron(rng.random((5, 5)), np.ones((6, 6)))  # 30 x 30, blocky
    noisy = clean + 0.1 * rng.standard_normal(clean.shape)
    kw = dict(sigma=0.1, seed=3, patch_size=4, H=8, hidden=(8,), S=8, P=2, C=2, epochs=3,
              chunk_size=128, eval_every=1)
    images, traces = [], []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        res = denoise(noisy, clean=clean, **kw)
        images.append(res.image)
        traces.append([(r["free_energy"], r["sigma2"], r["psnr"]) for r in res.trace])
    assert np.array_equal(images[0], images[1])
    assert traces[0] == traces[1]


def _engine_results(model, Y, keys):
    """Initial states (enumerated and drawn), duplicate detection (hashed and, after a
    collision, exact), sparse codes' dense form, E-steps with each operator and, for one-word
    and two-word keys, a training epoch of each inpainting M-step with estimates."""
    from evobench.tvae import states
    from evobench.tvae.codes import Codes
    from evobench.tvae.evolution import estep

    g = torch.Generator().manual_seed(1)
    out = [states.initial_states(16, 4, g), states.initial_states(20, 70, g)]
    st = states.unpack(keys, model.H, torch.uint8)
    out.append(Codes(st[0], sparse=True).dense(torch.float64))
    mix = states._SPLITMIX
    row = torch.tensor([[[5, 9], [9, 5], [5, 9], [3, 1]]], device="cpu")
    for mixing in (mix, ()):  # no mixing: the hash is the xor of the words, (5, 9) and
        states._SPLITMIX = mixing  # (9, 5) collide and the exact sort runs
        try:
            out.append(states.first_occurrence(row))
        finally:
            states._SPLITMIX = mix
    for sel, mut, cross in (("tvo", "randflip", False), ("fitness", "sparseflip", True),
                            ("uniform", "randflip", True)):
        out += estep(model, Y, None, None, keys, P=3, C=2, G=2, selection=sel, mutation=mut,
                     cross=cross, p_bf=0.1, gen=g, max_rows=7)[:3]
    rng = np.random.default_rng(0)
    Yi, obs = rng.random((64, 16)), rng.random((64, 16)) > 0.3
    for H, mstep in ((8, "impute"), (70, "marginalise")):
        cfg = make_config(get_preset("quick"), dict(
            H=H, hidden=(8,), S=8, P=2, C=2, scale=1.0, inpaint_mstep=mstep, chunk_size=32,
            batch_size=16))
        tr = build_trainer(np.where(obs, Yi, np.nan), obs, cfg,
                           torch.Generator().manual_seed(0), 0.1)
        tr.epoch()
        est, stats = tr.estimate(want_stats=True)
        out += [tr.opt.flat, tr.keys, est, torch.tensor(stats["active_hist"], device="cpu"),
                torch.tensor(tr.free_energy(), device="cpu")]
    return out


def test_results_do_not_depend_on_torchs_default_device():
    """Every tensor the engine makes goes on its inputs' device, never on torch's default
    device (which a caller may have set, e.g. to CUDA): with the default set to "meta"
    (tensors without data; mixing them with CPU tensors fails) the same CPU results come out.
    This is what catches a missing ``device=`` on a CPU-only machine."""
    from tiny_models import tiny_model

    from evobench.tvae import states
    from evobench.tvae.states import initial_states, pack

    model, g = tiny_model(H=70)
    Y = torch.randn(6, 9, generator=g, dtype=torch.float64)
    keys = pack(initial_states(8, 70, g)).unsqueeze(0).expand(6, -1, -1).contiguous()
    ref = _engine_results(model, Y, keys)
    states._POPCOUNT.clear()  # a per-device table, made again at the first use
    with torch.device("meta"):
        got = _engine_results(model, Y, keys)
    assert len(got) == len(ref)
    for a, b in zip(got, ref):
        assert a.device.type == "cpu" and torch.equal(a, b)


# ---- through the command line: -j 1 vs -j 2 vs the Dask executor (each cell its own process)

GRID = ["--suite", "denoise", "--profile", "smoke", "-d", "skimage[images=camera,crop=48]",
        "--sigma", "25", "-m", "tvae[patch_size=6,H=8,hidden=8,S=8,P=2,C=2,epochs=2]",
        "--timeout", "5m", "--quiet", "--no-save-images"]


def _psnr(path) -> pd.Series:
    df = pd.read_parquet(path / "results.parquet").set_index("cell_key").sort_index()
    assert (df.status == "ok").all(), df[["status", "error"]]
    return df.psnr


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as lc:
        yield lc


@pytest.mark.slow
def test_cli_psnr_is_identical_across_jobs_and_executors(invoke, tmp_path, cluster):
    """-j 1 gives the cell all cores (E-step/M-step overlap on 2+ cores), -j 2 one thread per
    cell, Dask one thread per task: the PSNRs must be equal bit for bit."""
    runs = {}
    for name, extra in (("j1", ["-j", "1"]), ("j2", ["-j", "2"]),
                        ("dask", ["--executor", "dask", "--scheduler",
                                  cluster.scheduler_address])):
        res = invoke("run", *GRID, "--out", tmp_path, "--run-name", name, *extra)
        assert res.exit_code == 0, res.output
        runs[name] = _psnr(tmp_path / name)
    assert len(runs["j1"]) >= 1
    pd.testing.assert_series_equal(runs["j1"], runs["j2"], check_exact=True)
    pd.testing.assert_series_equal(runs["j1"], runs["dask"], check_exact=True)
