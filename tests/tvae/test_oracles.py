"""Independent oracles for the engine (issue 13): each result is checked against its definition,
computed here another way (full enumeration, closed-form probabilities, explicit draws), not
against another code path of the engine.

Statistical checks use fixed seeds, so they are deterministic; each tolerance is a few standard
errors of the estimate (or a goodness-of-fit p-value) so that a correct implementation passes
for all but a negligible share of seeds, while a change of the probabilities by a few percent
fails by tens of standard errors.
"""

import itertools

import numpy as np
import pytest
import torch
from scipy import stats
from tiny_models import tiny_model

from evobench.tvae import evolution
from evobench.tvae.config import make_config
from evobench.tvae.evolution import crossover, estep, select_parents, sparseflip, take_rows
from evobench.tvae.pipeline import build_trainer
from evobench.tvae.presets import get_preset
from evobench.tvae.states import initial_states, pack, unpack


# -- sparsity statistics and posterior means against full enumeration (S = 2^H) -----------------
def _exact_posterior(trainer):
    """q_n(s) over all 2^H states, written out from the model's formula with NumPy:
    log p(s, y) = sum_h [s_h log pi_h + (1 - s_h) log(1 - pi_h)]
                  - D_obs/2 log(2 pi sigma2) - sum_{d observed} (y_d - mu_d(s))^2 / (2 sigma2)."""
    model = trainer.model
    H = model.H
    allst = np.array(list(itertools.product([0, 1], repeat=H)), dtype=np.float64)
    with torch.no_grad():
        mu = model.decoder(torch.as_tensor(allst, dtype=trainer.Y.dtype)).double().numpy()
    pi = model.pi.double().numpy()
    s2 = float(model.sigma2)
    Y = trainer.Y.double().numpy()
    obs = np.ones_like(Y) if trainer.obs is None else trainer.obs.double().numpy()
    prior = allst @ np.log(pi) + (1 - allst) @ np.log1p(-pi)  # (2^H,)
    sq = (((Y[:, None, :] - mu[None]) * obs[:, None, :]) ** 2).sum(-1)  # (N, 2^H)
    logp = prior[None] - 0.5 * obs.sum(1, keepdims=True) * np.log(2 * np.pi * s2) - sq / (2 * s2)
    q = np.exp(logp - logp.max(1, keepdims=True))
    q /= q.sum(1, keepdims=True)
    return allst, q, mu


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("threads", [1, 2])
def test_sparsity_statistics_and_estimate_equal_full_enumeration(masked, threads):
    """With S = 2^H every K_n holds every state, so the truncated posterior is the exact one:
    active_mean = mean_n sum_s q_n(s)|s|, active_hist[k] = sum_n sum_{|s|=k} q_n(s) and the
    estimate sum_s q_n(s) mu(s) must equal their enumeration (several chunks, 1 or 2 threads,
    with and without missing entries)."""
    torch.set_num_threads(threads)  # the autouse fixture restores the count
    H, N, D = 4, 90, 9
    rng = np.random.default_rng(7)
    W = rng.normal(size=(H, D)) * 2
    Y = (rng.random((N, H)) < 0.3) @ W + 0.5 * rng.normal(size=(N, D))
    obs = None
    if masked:
        obs = rng.random((N, D)) > 0.3
        obs[:, 0] = True
        Y = np.where(obs, Y, np.nan)
    cfg = make_config(get_preset("quick"), dict(
        H=H, hidden=(6,), S=2**H, P=2, C=2, epochs=3, scale=1.0, chunk_size=32, batch_size=32,
        dtype="float64", selection="fitness"))
    tr = build_trainer(Y, obs, cfg, torch.Generator().manual_seed(0), 0.5)
    for _ in range(3):  # trained parameters, not the initial ones
        tr.epoch()
    assert tr.chunk == 32 and N > 2 * tr.chunk  # the statistics are summed over chunks
    # every K_n is still the whole state space
    assert all(len({tuple(r) for r in row.tolist()}) == 2**H
               for row in unpack(tr.keys, H, torch.uint8))
    est, st = tr.estimate(want_stats=True)
    allst, q, mu = _exact_posterior(tr)
    k = allst.sum(1)
    active_mean = float((q * k).sum(1).mean())
    hist = np.array([q[:, k == j].sum() for j in range(H + 1)])
    assert st["active_mean"] == pytest.approx(active_mean, rel=1e-10, abs=1e-12)
    np.testing.assert_allclose(st["active_hist"], hist, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(est.numpy(), q @ mu, rtol=1e-9, atol=1e-9)
    # the posterior is far from uniform here, so a uniform q could not pass the checks above
    assert abs(active_mean - H / 2) > 0.5


# -- an epoch's closed-form pi, sigma2 and F against the formula -----------------------------------
@pytest.mark.parametrize("mstep", ["marginalise", "impute"])
def test_epoch_updates_pi_and_sigma2_in_closed_form(mstep):
    """With the decoder held fixed (no Adam step), an epoch's results follow from the final
    K_n alone, written out here with NumPy: q_n = the posterior over K_n,
    F/N = mean_n log sum_s p(s, y_n), pi = mean_n sum_s q_n(s) s (clipped to [1e-5, 1 - 1e-5]),
    sigma2 = sum_n sum_s q_n(s) |y_n - mu(s)|^2_obs / sum_n D_obs. "marginalise" leaves the
    missing entries out; "impute" first fills them with the posterior-mean estimate and then
    treats the patch as fully observed (D_obs = D), as the published inpainting runs do."""
    H, N, D, S = 5, 80, 9, 8
    rng = np.random.default_rng(3)
    W = rng.normal(size=(H, D))
    Y = (rng.random((N, H)) < 0.3) @ W + 0.3 * rng.normal(size=(N, D))
    obs = rng.random((N, D)) > 0.3
    obs[:, 0] = True
    cfg = make_config(get_preset("quick"), dict(
        H=H, hidden=(6,), S=S, P=2, C=2, scale=1.0, chunk_size=32, batch_size=16,
        dtype="float64", inpaint_mstep=mstep))
    tr = build_trainer(np.where(obs, Y, np.nan), obs, cfg, torch.Generator().manual_seed(0),
                       0.4)
    tr.opt.step = lambda lr: None  # the decoder stays as initialised
    pi, s2 = tr.model.pi.numpy().copy(), 0.4
    keys_before = tr.keys.clone()
    stats_ = tr.epoch()
    assert tr.chunk == 32 and N > 2 * tr.chunk  # summed over several chunks
    st = unpack(tr.keys, H, torch.float64)  # (N, S, H), the final K_n
    with torch.no_grad():
        mu = tr.model.decoder(st).numpy()
    st = st.numpy()
    y = np.where(obs, Y, 0.0)[:, None, :]
    prior = st @ np.log(pi) + (1 - st) @ np.log1p(-pi)

    def lpj_err(y, o):
        err = (((y - mu) * o[:, None, :]) ** 2).sum(-1)
        return prior - 0.5 * o.sum(1, keepdims=True) * np.log(2 * np.pi * s2) - err / (2 * s2), err

    def softmax(a):
        e = np.exp(a - a.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    lpj, err = lpj_err(y, obs.astype(float))
    denom = obs.sum()
    if mstep == "impute":
        est = (softmax(lpj)[..., None] * mu).sum(1)
        y = np.where(obs, Y, est)[:, None, :]
        lpj, err = lpj_err(y, np.ones((N, D)))
        denom = N * D
    q = softmax(lpj)
    m = lpj.max(1)
    F = float(np.mean(m + np.log(np.exp(lpj - m[:, None]).sum(1))))
    assert stats_["F"] == pytest.approx(F, rel=1e-12)
    np.testing.assert_allclose(tr.model.pi.numpy(),
                               np.clip((q[..., None] * st).sum((0, 1)) / N, 1e-5, 1 - 1e-5),
                               rtol=1e-12)
    assert stats_["sigma2"] == pytest.approx(float((q * err).sum() / denom), rel=1e-12)
    was = [set(map(tuple, row.tolist())) for row in keys_before]
    new = sum(tuple(k) not in w for row, w in zip(tr.keys.tolist(), was) for k in row)
    assert stats_["new_states"] == new / N


# -- generation g+1 breeds from generation g's children ------------------------------------------
@pytest.mark.parametrize("mutation,cross", [("randflip", False), ("randflip", True),
                                            ("sparseflip", False)])
def test_each_generations_parents_are_the_previous_generations_children(monkeypatch, mutation,
                                                                       cross):
    """Records what estep hands to the selection and to the first operator: generation 1's
    parents are rows of K_n; generation g+1's are the rows of generation g's children at the
    selected indices, selected on those children's own log-joints."""
    model, g = tiny_model()
    H, N, S, P, C, G = 10, 12, 8, 3, 2, 3
    Y = torch.randn(N, 9, generator=g, dtype=torch.float64)
    keys = pack(initial_states(S, H, g)).unsqueeze(0).expand(N, -1, -1).contiguous()
    scored, selected, parents = [], [], []
    real_score, real_select = evolution.chunked_log_joint, evolution.select_parents
    first_op = ("randflip_keys" if mutation == "randflip" and not cross
                else "crossover" if cross else "sparseflip")
    real_op = getattr(evolution, first_op)

    def spy_score(model_, Y_, states, obs, dobs, max_rows, **kw):
        out = real_score(model_, Y_, states, obs, dobs, max_rows, **kw)
        scored.append((kw["keys"].clone(), out[0].clone()))
        return out

    def spy_select(lpj, P_, method, gen, **kw):
        idx = real_select(lpj, P_, method, gen, **kw)
        selected.append((lpj.clone(), idx.clone()))
        return idx

    def spy_op(x, *args, **kw):
        parents.append(x.clone() if x.dtype == torch.int64 else pack(x))
        return real_op(x, *args, **kw)

    monkeypatch.setattr(evolution, "chunked_log_joint", spy_score)
    monkeypatch.setattr(evolution, "select_parents", spy_select)
    monkeypatch.setattr(evolution, first_op, spy_op)
    estep(model, Y, None, None, keys, P=P, C=C, G=G, selection="fitness", mutation=mutation,
          cross=cross, p_bf=0.2, gen=g, max_rows=10_000)
    assert len(scored) == G + 1 and len(selected) == G and len(parents) == G
    assert torch.equal(scored[0][0], keys)  # first K_n, then each generation's children
    for gen_i in range(G):
        pool_keys, pool_lpj = scored[gen_i]
        lpj, idx = selected[gen_i]
        torch.testing.assert_close(lpj, pool_lpj, rtol=0, atol=0)
        assert torch.equal(parents[gen_i], take_rows(pool_keys, idx))
        if gen_i:
            # independently: the pool's states are the previous children, scored from scratch
            st = unpack(pool_keys, H, torch.float64)
            torch.testing.assert_close(lpj, model.log_joint(Y, st)[0])


# -- crossover and sparseflip against their definitions -------------------------------------------
def test_crossover_cut_is_uniform_on_1_to_H_minus_1_for_every_pair():
    """One-point crossover of parents a (all 0) and b (all 1): child 1 = a[:u] + b[u:] and
    child 2 = b[:u] + a[u:], for one cut u per pair, uniform on 1..H-1; pairs (i, j), i < j, in
    triu order, the a-first children first."""
    H, P, B = 7, 4, 6000
    g = torch.Generator().manual_seed(11)
    # parents: parent k is all-ones iff bit k of 0b0101 (so pairs mix 0/1 and equal parents)
    pat = torch.tensor([0, 1, 0, 1], dtype=torch.uint8)
    parents = pat.view(1, P, 1).expand(B, P, H).contiguous()
    ch = crossover(parents, g)
    pairs = list(itertools.combinations(range(P), 2))
    n = len(pairs)
    assert ch.shape == (B, 2 * n, H)
    cuts = []
    for k, (i, j) in enumerate(pairs):
        a, b = int(pat[i]), int(pat[j])
        c1, c2 = ch[:, k], ch[:, n + k]
        if a == b:  # identical parents: the children are copies
            assert (c1 == a).all() and (c2 == a).all()
            continue
        u = (c1 == a).sum(1)  # a's head has length u, then b's tail
        head = torch.arange(H) < u.unsqueeze(1)
        assert torch.equal(c1, torch.where(head, a, b).to(torch.uint8))
        assert torch.equal(c2, torch.where(head, b, a).to(torch.uint8))
        cuts.append(u)
    u = torch.cat(cuts)
    counts = torch.bincount(u, minlength=H + 1).numpy()
    assert counts[0] == 0 and counts[H] == 0  # never a copy of one parent
    assert stats.chisquare(counts[1:H]).pvalue > 1e-4


@pytest.mark.parametrize("m", [0, 3, 10, 30, 40])
def test_sparseflip_flips_each_bit_with_its_defined_probability(m):
    """p(0->1) = (c - m + H p_bf) / (2 (H - m)), p(1->0) = (H p_bf - (c - m)) / (2 m), each
    clipped to [0, 1], c = H mean(pi), independently per bit and child."""
    H, pbf, n, C = 40, 0.1, 3000, 4
    g = torch.Generator().manual_seed(20 + m)
    pi = torch.linspace(0.05, 0.35, H)  # c = H mean(pi) = 8
    c = H * float(pi.mean())
    parents = torch.zeros(n, 1, H, dtype=torch.uint8)
    parents[:, 0, H - m:] = 1  # the ones at the end
    ch = sparseflip(parents, C, pi, pbf, g)
    assert ch.shape == (n, C, H)
    flips = (ch ^ parents).double()  # (n, C, H)
    p0 = min(max((c - m + H * pbf) / (2 * max(H - m, 1)), 0.0), 1.0)
    p1 = min(max((H * pbf - (c - m)) / (2 * max(m, 1)), 0.0), 1.0)
    for bits, p in ((slice(0, H - m), p0), (slice(H - m, H), p1)):
        f = flips[:, :, bits]
        if f.numel() == 0:
            continue
        se = max(np.sqrt(p * (1 - p) / f.numel()), 1e-12)
        assert abs(float(f.mean()) - p) < 5 * se + 1e-12, (m, p, float(f.mean()))
        # the same rate for every bit position (no position-dependent probability)
        per_bit = f.mean((0, 1))
        assert float((per_bit - p).abs().max()) < 5 * np.sqrt(p * (1 - p) / (n * C)) + 1e-12
    # children of one parent are independent draws: two children agree on a 0-bit's flip
    # with probability p0^2 + (1 - p0)^2
    if H - m:
        same = (flips[:, 0, : H - m] == flips[:, 1, : H - m]).double().mean()
        want = p0**2 + (1 - p0) ** 2
        assert abs(float(same) - want) < 5 * np.sqrt(want * (1 - want) / (n * (H - m))) + 1e-12


# -- fitness selection against its distribution ----------------------------------------------------
def test_fitness_selection_draws_without_replacement_proportional_to_the_shifted_fitness():
    """f = lpj - 2 min(min_row lpj, 0) per row; P distinct draws, in draw order, each with
    probability proportional to f among the candidates not yet drawn:
    P(first = i, second = j) = p_i p_j / (1 - p_i), p = f / sum(f)."""
    g = torch.Generator().manual_seed(6)
    rows = torch.tensor([[-50.0, -10.0, -30.0, -20.0, -40.0],  # min -50: f = lpj + 100
                         [-5.0, -1.0, -3.0, -2.0, -4.0],  # min -5: f = lpj + 10
                         [4.0, 1.0, 2.0, 8.0, 5.0]])  # all positive: f = lpj
    n = 60_000
    lpj = rows.repeat_interleave(n, 0)
    idx = select_parents(lpj, 2, "fitness", g).view(3, n, 2)
    for r in range(3):
        lp = rows[r].double()
        f = lp - 2 * min(float(lp.min()), 0.0)
        p = (f / f.sum()).numpy()
        joint = p[:, None] * p[None, :] / (1 - p[:, None])
        np.fill_diagonal(joint, 0.0)
        first, second = idx[r, :, 0].numpy(), idx[r, :, 1].numpy()
        assert (first != second).all()  # without replacement
        counts = np.zeros((5, 5))
        np.add.at(counts, (first, second), 1)
        off = ~np.eye(5, dtype=bool)
        result = stats.chisquare(counts[off], joint[off] * n)
        assert result.pvalue > 1e-4, (r, result)
    # a row's own minimum sets its shift: the first row's draws under the second row's shift
    # (f = lpj + 10 would make -50 and -40 negative) are far from what was observed
    lp = rows[0].double()
    wrong = (lp + 100 - 90).clamp_min(1e-30)
    counts = np.bincount(idx[0, :, 0].numpy(), minlength=5)
    assert stats.chisquare(counts, (wrong / wrong.sum()).numpy() * n).pvalue < 1e-12
