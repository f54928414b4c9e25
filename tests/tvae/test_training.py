"""Learning: the bars test recovers a known generative model; LR schedule matches torch."""

import math

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from evobench.tvae.config import make_config
from evobench.tvae.pipeline import build_trainer
from evobench.tvae.presets import get_preset
from evobench.tvae.training import run_epochs, triangular_lr


def _bars(rng, N=500, H=8, pi=0.25, sigma2=0.01):
    side = H // 2
    W = np.zeros((H, side, side))
    for k in range(side):
        W[k, k, :] = 1.0  # horizontal bars
        W[side + k, :, k] = 1.0  # vertical bars
    W = W.reshape(H, side * side)
    S = (rng.random((N, H)) < pi).astype(float)
    return S @ W + math.sqrt(sigma2) * rng.standard_normal((N, side * side)), W


def test_bars_are_learned_back():
    """Seeded, so deterministic; like any bars run, some seeds end in a local optimum with one
    bar unlearned (data/init seed 1 does here), which is why this is not a multi-seed test.
    Bars add up on a zero background, so this uses the reference init (zero output bias); the
    default data-mean bias starts from the mean image, from which bars are a harder local
    optimum to escape (seeds 0-2 leave 2-4 bars mixed)."""
    rng = np.random.default_rng(0)
    Y, W = _bars(rng)
    cfg = make_config(get_preset("quick"), dict(
        H=8, hidden=(16,), S=64, P=3, C=2, G=1, lr_min=1e-4, lr_max=5e-2, half_cycle=10,
        epochs=120, scale=1.0, chunk_size=512, selection="fitness", output_init="published"))
    gen = torch.Generator().manual_seed(0)
    tr = build_trainer(Y, None, cfg, gen, float(np.var(Y, 0).mean()))
    trace = []
    run_epochs(tr, cfg.epochs, None, lambda e, s, f, d: trace.append(s))
    with torch.no_grad():
        out = tr.model.decoder(torch.cat([torch.zeros(1, 8), torch.eye(8)])).numpy()
    fields = out[1:] - out[0]
    corr = np.corrcoef(fields, W)[:8, 8:]
    r, c = linear_sum_assignment(-corr)
    assert corr[r, c].min() > 0.95, corr[r, c]
    # the closed-form parameters find the generating ones
    assert abs(trace[-1]["sigma2"] - 0.01) < 0.003
    assert abs(trace[-1]["pi_sum"] - 2.0) < 0.4
    # F increases over training (the objective is being optimised)
    assert trace[-1]["F"] > trace[0]["F"] + 5


def test_triangular_lr_matches_torch_cyclic_lr():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1e-4)
    sched = torch.optim.lr_scheduler.CyclicLR(opt, 1e-4, 1e-2, step_size_up=7,
                                              cycle_momentum=False)
    for step in range(40):
        assert abs(opt.param_groups[0]["lr"] - triangular_lr(step, 1e-4, 1e-2, 7)) < 1e-12
        opt.step()
        sched.step()


def test_overlapped_epochs_are_deterministic_and_learn():
    """With >= 2 threads the next chunk's E-step runs beside the M-step; the result must not
    depend on thread timing (same seed -> identical parameters and sets) and must still learn."""
    torch.set_num_threads(2)  # the autouse fixture restores the previous count
    rng = np.random.default_rng(0)
    Y, _ = _bars(rng, N=700)
    cfg = make_config(get_preset("quick"), dict(
        H=8, hidden=(16,), S=16, P=3, C=2, epochs=4, scale=1.0, chunk_size=64))

    def fit():
        tr = build_trainer(Y, None, cfg, torch.Generator().manual_seed(0),
                           float(np.var(Y, 0).mean()))
        assert tr.overlap and tr.chunk == 64
        stats = [tr.epoch() for _ in range(cfg.epochs)]
        return tr, stats

    a, sa = fit()
    b, sb = fit()
    assert torch.equal(a.keys, b.keys)
    assert torch.equal(a.opt.flat, b.opt.flat) and sa == sb
    assert torch.get_num_threads() == 2  # restored after each epoch
    assert sa[-1]["F"] > sa[0]["F"]


def test_overlapped_estep_records_no_autograd_graph(monkeypatch):
    """Grad mode is per thread: the E-step in the worker thread must run without autograd
    (else every decoder pass records a graph and keeps its activations alive)."""
    import evobench.tvae.training as training

    torch.set_num_threads(2)  # the autouse fixture restores the previous count
    seen = []

    def spy(*args, **kwargs):
        out = estep(*args, **kwargs)
        seen.append((torch.is_grad_enabled(), out[1].requires_grad))
        return out

    estep = training.estep
    monkeypatch.setattr(training, "estep", spy)
    Y, _ = _bars(np.random.default_rng(0), N=200)
    cfg = make_config(get_preset("quick"), dict(H=8, hidden=(16,), S=8, P=2, C=2, scale=1.0,
                                                chunk_size=64))
    tr = build_trainer(Y, None, cfg, torch.Generator().manual_seed(0), 0.1)
    assert tr.overlap
    tr.epoch()
    assert len(seen) == 4 and not any(g or r for g, r in seen), seen


def test_training_leaves_flush_denormal_off():
    """The flush-to-zero mode used during epochs must not leak into the caller's code."""
    import numpy as np
    import torch

    from evobench.tvae import denoise

    tiny = np.float32(1e-40)  # a float32 subnormal: flushed to 0 only while the mode is on
    rng = np.random.default_rng(0)
    denoise(rng.random((12, 12)), patch_size=4, H=4, hidden=(4,), S=4, P=2, C=2, epochs=1)
    assert torch.tensor([tiny]).mul(1.0).item() != 0.0


def test_epochs_run_with_subnormals_flushed_and_the_mode_is_restored_after():
    """run_epochs flushes subnormal floats to zero while an epoch runs (subnormal arithmetic
    is ~100x slower on x86) and only then; checked from inside the epoch."""
    import pytest
    import torch

    supported = torch.set_flush_denormal(True)  # False where the CPU has no such mode
    torch.set_flush_denormal(False)
    if not supported:
        pytest.skip("this CPU cannot flush subnormals")
    tiny = torch.tensor([1e-40], dtype=torch.float32)  # a float32 subnormal
    seen = []

    class Probe:
        def epoch(self):
            seen.append(tiny.mul(1.0).item())
            return {}

    assert run_epochs(Probe(), 2, None, lambda *a: None) == 2
    assert seen == [0.0, 0.0]  # flushed during both epochs
    assert tiny.mul(1.0).item() != 0.0  # and not after


def test_a_bad_generator_state_is_refused_and_changes_nothing():
    """load_state_dict checks everything before changing anything: a generator state of the
    right type that torch rejects gives ValueError, and the generator keeps its state."""
    rng = np.random.default_rng(0)
    Y, _ = _bars(rng, N=64)
    cfg = make_config(get_preset("quick"), dict(H=8, hidden=(16,), S=8, P=2, C=2, scale=1.0))
    tr = build_trainer(Y, None, cfg, torch.Generator().manual_seed(0), 0.5)
    state = tr.state_dict()
    before = tr.gen.get_state().clone()
    bad = dict(state, generator=state["generator"][:100].copy())  # uint8, 1-D, too short
    import pytest

    with pytest.raises(ValueError, match="generator"):
        tr.load_state_dict(bad)
    assert torch.equal(tr.gen.get_state(), before)
    tr.load_state_dict(state)  # the good state still loads
