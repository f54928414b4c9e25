"""Log-joints against the formula, and the truncated posterior against full enumeration."""

import itertools
import math

import numpy as np
import pytest
import torch

from evobench.tvae.model import Decoder, TVAEModel, chunked_log_joint
from evobench.tvae.states import initial_states


@pytest.fixture(autouse=True)
def _no_grad():
    with torch.no_grad():
        yield


def _model(H=5, D=6, hidden=(7,), seed=0, activation="relu"):
    g = torch.Generator().manual_seed(seed)
    dec = Decoder(H, hidden, D, activation, "xavier", g, torch.float64)
    pi = torch.rand(H, generator=g, dtype=torch.float64) * 0.8 + 0.1
    return TVAEModel(dec, pi, torch.tensor(0.37, dtype=torch.float64)), g


def _direct(model, y, s, obs=None):
    """log p(s, y) written out with numpy from the published formula."""
    pi = model.pi.numpy()
    s2 = float(model.sigma2)
    mu = model.decoder(torch.as_tensor(s, dtype=torch.float64)[None]).detach().numpy()[0]
    obs = np.ones_like(y, dtype=bool) if obs is None else obs
    prior = np.sum(s * np.log(pi) + (1 - s) * np.log(1 - pi))
    d = obs.sum()
    lik = -0.5 * d * math.log(2 * math.pi * s2) - np.sum((y - mu)[obs] ** 2) / (2 * s2)
    return prior + lik


def test_log_joint_matches_formula_with_missing_entries():
    model, g = _model()
    rng = np.random.default_rng(1)
    B, S, H, D = 4, 3, 5, 6
    Y = rng.normal(size=(B, D))
    obs = rng.random((B, D)) > 0.3
    obs[0] = True
    states = rng.integers(0, 2, size=(B, S, H))
    Yt = torch.as_tensor(np.where(obs, Y, 0.0))
    lpj, err = model.log_joint(Yt, torch.as_tensor(states, dtype=torch.float64),
                               torch.as_tensor(obs, dtype=torch.float64),
                               torch.as_tensor(obs.sum(1), dtype=torch.float64))
    for b in range(B):
        for k in range(S):
            assert abs(float(lpj[b, k]) - _direct(model, Y[b], states[b, k], obs[b])) < 1e-9
    full, _ = model.log_joint(torch.as_tensor(Y), torch.as_tensor(states, dtype=torch.float64))
    assert abs(float(full[1, 2]) - _direct(model, Y[1], states[1, 2])) < 1e-9
    # the chunked pass (memory-bounded) gives the same numbers
    clpj, cerr, _ = chunked_log_joint(model, Yt, torch.as_tensor(states, dtype=torch.float64),
                                      torch.as_tensor(obs, dtype=torch.float64),
                                      torch.as_tensor(obs.sum(1), dtype=torch.float64),
                                      max_rows=4)
    torch.testing.assert_close(clpj, lpj)
    torch.testing.assert_close(cerr, err)


def test_full_enumeration_gives_exact_posterior():
    H, D = 4, 6
    model, g = _model(H=H, D=D, activation="leaky_relu")
    states = initial_states(2**H, H, g)
    assert len({tuple(r) for r in states.tolist()}) == 2**H
    rng = np.random.default_rng(2)
    y = rng.normal(size=D)
    lpj, _, mean = chunked_log_joint(model, torch.as_tensor(y)[None],
                                     states.double()[None], None, None, 1024, want_mean=True)
    q = torch.softmax(lpj[0], 0).numpy()
    # exact posterior by enumerating {0,1}^H independently of the engine's state generator
    allst = np.array(list(itertools.product([0, 1], repeat=H)))
    logp = np.array([_direct(model, y, s) for s in allst])
    exact = np.exp(logp - logp.max())
    exact /= exact.sum()
    order = {tuple(s): i for i, s in enumerate(allst)}
    mine = np.zeros(2**H)
    for s, qs in zip(states.tolist(), q):
        mine[order[tuple(s)]] = qs
    np.testing.assert_allclose(mine, exact, atol=1e-12)
    # the free energy over all states is the exact log-likelihood
    exact_ll = logp.max() + np.log(np.exp(logp - logp.max()).sum())
    assert abs(float(torch.logsumexp(lpj[0], 0)) - exact_ll) < 1e-9
    mus = model.decoder(torch.as_tensor(allst, dtype=torch.float64)).detach().numpy()
    np.testing.assert_allclose(mean[0].numpy(), exact @ mus, atol=1e-10)


@pytest.mark.parametrize("activation,hidden", [("relu", (7,)), ("leaky_relu", (6, 5))])
def test_hand_written_gradient_equals_autograd(activation, hidden):
    """The M-step's manual backprop gives the gradient of -F_batch/B that autograd gives."""
    model, g = _model(H=5, D=6, hidden=hidden, activation=activation)
    dec = model.decoder
    rng = np.random.default_rng(3)
    B, S = 4, 6
    Y = torch.as_tensor(rng.normal(size=(B, 6)))
    obs = torch.as_tensor(rng.random((B, 6)) > 0.3, dtype=torch.float64)
    states = torch.as_tensor(rng.integers(0, 2, size=(B, S, 5)), dtype=torch.float64)
    with torch.enable_grad():
        lpj, _ = model.log_joint(Y * obs, states, obs, obs.sum(1))
        loss = -torch.logsumexp(lpj, 1).sum() / B
        auto = torch.autograd.grad(loss, list(dec.parameters()))
    o, acts = dec.residual(states, Y * obs, obs)
    q = torch.softmax(lpj.detach(), 1)
    dec.backward_from_output((o * (q / (model.sigma2 * B)).unsqueeze(-1)).view(-1, 6), acts)
    for p, a in zip(dec.parameters(), auto):
        torch.testing.assert_close(p.grad, a)
