"""The reported free energy is on the [0, 1] scale: checked against the formula.

The engine fits in internal units (data x ``scale``, 0..255 by default). A density on data
scaled by ``s`` is ``s^-D`` times the density on [0, 1], so the free energy per patch on [0, 1]
is the internal one plus ``D log s``. Here the formula (log-sum over each K_n of prior x
Gaussian, with the decoder outputs and sigma2 rescaled to [0, 1]) is evaluated independently of
the engine on the final parameters and sets of a tiny fit, on the [0, 1] data and on the
internal 0..255 data; the pipeline's conversion of each epoch's F (``_EpochLog``) must be that
same difference."""

import math

import numpy as np
import pytest
import torch

from evobench.patches import extract_patches
from evobench.tvae import denoise
from evobench.tvae.states import unpack
from evobench.tvae.training import Trainer

TINY = dict(H=4, hidden=(8,), S=8, P=2, C=2, patch_size=3, epochs=2, chunk_size=64,
            dtype="float64")


def _formula(X: np.ndarray, trainer: Trainer, scale: float) -> float:
    """(1/N) sum_n log sum_{s in K_n} p(s) N(x_n; mu(s) / scale, sigma2 / scale^2 I) for data
    ``X`` (N, D) on the scale ``scale`` relative to the internal units (1 = internal)."""
    model = trainer.model
    states = unpack(trainer.keys, trainer.cfg.H, torch.float64)  # (N, S, H)
    with torch.no_grad():
        mu = model.decoder(states.to(model.pi.dtype)).double().numpy() / scale
    pi = model.pi.double().numpy()
    s2 = float(model.sigma2) / scale**2
    st = states.numpy()
    log_prior = st @ np.log(pi) + (1 - st) @ np.log1p(-pi)
    D = X.shape[1]
    err = ((X[:, None, :] - mu) ** 2).sum(-1)
    lpj = log_prior - D / 2 * math.log(2 * math.pi * s2) - err / (2 * s2)
    m = lpj.max(1, keepdims=True)
    return float((m[:, 0] + np.log(np.exp(lpj - m).sum(1))).mean())


@pytest.mark.parametrize("scale", [255.0, 1.0, 10.0])
def test_reported_free_energy_is_the_formula_on_the_unit_scale(monkeypatch, scale):
    rng = np.random.default_rng(0)
    clean = np.tile(np.linspace(0.2, 0.8, 12), (12, 1))
    noisy = clean + 0.1 * rng.standard_normal(clean.shape)
    seen = []  # (trainer, the epoch's internal F)
    epoch = Trainer.epoch

    def spy(self):
        stats = epoch(self)
        seen.append((self, stats["F"]))
        return stats

    monkeypatch.setattr(Trainer, "epoch", spy)
    res = denoise(noisy, sigma=0.1, scale=scale, **TINY)
    assert len(seen) == len(res.trace) == 2
    trainer = seen[-1][0]
    X01 = extract_patches(noisy, 3, 1)  # the patches on [0, 1]
    D = X01.shape[1]
    f01 = _formula(X01, trainer, scale)
    f_internal = _formula(X01 * scale, trainer, 1.0)
    # the formula itself: 0..255 (internal) and [0, 1] differ by D log(scale), and the engine's
    # own F of the same parameters and sets is the internal one
    assert f01 - f_internal == pytest.approx(D * math.log(scale), abs=1e-6)
    assert trainer.free_energy() == pytest.approx(f_internal, rel=1e-9, abs=1e-9)
    # every reported row converts its epoch's internal F the same way, to the [0, 1] scale
    for row, (_, f) in zip(res.trace, seen):
        assert row["free_energy"] == pytest.approx(f + (f01 - f_internal), rel=1e-12, abs=1e-9)
    # and the last epoch's value is a free energy of the [0, 1] data (within the parameters'
    # change during that epoch), not of the 0..255 data
    assert abs(res.trace[-1]["free_energy"] - f01) < abs(res.trace[-1]["free_energy"]
                                                         - f_internal) or scale == 1.0
