"""Fidelity to the published code (issue 14): the ``tvo`` parent selection against its
description (docs/tvae-method.md section 3.2), the generation >= 2 rule, faithful presets,
their ``+`` variants, the evaluation schedule and the sigma2 start rules."""

import dataclasses

import numpy as np
import pytest
import torch
from tiny_models import tiny_model

from evobench.tvae import evolution
from evobench.tvae.config import TVAEConfig
from evobench.tvae.evolution import estep, select_parents, tvo_parents
from evobench.tvae.pipeline import initial_sigma2, is_eval_epoch
from evobench.tvae.presets import (
    EVOBENCH_SETTINGS,
    PAPER_PRESETS,
    PRESETS,
    PUBLISHED_SETTINGS,
    get_preset,
)
from evobench.tvae.states import initial_states, pack, unpack


def _described_probabilities(lpj: torch.Tensor) -> torch.Tensor:
    """Per-row probability of each index, written straight from the description: fitness
    f = lpj - 2 min(min lpj, 0) over the whole block, normalised over the whole block;
    index i < M-1 gets p_{i+1}, the last index gets 1 - (row total) + p_0."""
    lp = lpj.double()
    f = lp - 2 * min(lp.min().item(), 0.0)
    p = f / f.sum()
    out = torch.empty_like(p)
    out[:, :-1] = p[:, 1:]
    out[:, -1] = 1 - p.sum(1) + p[:, 0]
    return out


def test_tvo_picks_the_last_candidate_97_percent_for_a_batch_of_32():
    g = torch.Generator().manual_seed(0)
    B, K, P = 32, 200, 10
    lpj = (-300 + 20 * torch.randn(B, K, generator=g, dtype=torch.float64)).sort(1).values
    idx = torch.cat([tvo_parents(lpj, P, g, block=B) for _ in range(300)], 1)
    share = (idx == K - 1).double().mean().item()
    expected = _described_probabilities(lpj)[:, -1].mean().item()
    assert expected == pytest.approx(0.970, abs=0.002)  # docs/tvae-method.md section 3.2
    assert share == pytest.approx(expected, abs=0.003)
    # about a quarter of patches get at least one non-last parent among P = 10 draws
    assert ((idx[:, :P] != K - 1).any(1).double().mean().item()) == pytest.approx(
        1 - expected**P, abs=0.2)


def test_tvo_distribution_matches_the_description_index_by_index():
    g = torch.Generator().manual_seed(1)
    B, K = 4, 6  # a small block: the non-last indices get visible mass
    lpj = torch.tensor([[-9.0, -7, -5, -4, -2, -1], [-8, -8, -6, -3, -3, -1],
                        [-20, -10, -6, -5, -4, -1], [-3, -3, -3, -3, -3, -3]])
    idx = torch.cat([tvo_parents(lpj, 20_000, g, block=B) for _ in range(10)], 1)
    freq = torch.stack([torch.bincount(r, minlength=K) for r in idx]).double() / idx.shape[1]
    torch.testing.assert_close(freq, _described_probabilities(lpj), atol=0.006, rtol=0)


def test_tvo_normalises_per_block_of_rows_not_per_chunk():
    g = torch.Generator().manual_seed(2)
    lpj = -50 - torch.rand(96, 40, generator=g, dtype=torch.float64)
    idx = torch.cat([tvo_parents(lpj, 50, g, block=32) for _ in range(20)], 1)
    # three blocks of 32 rows: each row's total is ~1/32, so ~1/32 of draws are not the last
    non_last = (idx != 39).double().mean().item()
    assert non_last == pytest.approx(1 / 32, rel=0.15)
    idx64 = torch.cat([tvo_parents(lpj, 50, g, block=96) for _ in range(20)], 1)
    assert (idx64 != 39).double().mean().item() == pytest.approx(1 / 96, rel=0.25)


def test_tvo_on_sets_stored_best_first_picks_the_previous_best():
    g = torch.Generator().manual_seed(3)
    lpj = (-300 + 20 * torch.randn(32, 50, generator=g)).sort(1, descending=True).values
    idx = select_parents(lpj, 10, "tvo", g, block=32, stored_best_first=True)
    assert (idx == 0).double().mean().item() > 0.95
    # mapped back onto evobench's order exactly: same draws as on the reference's order
    g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    mine = select_parents(lpj, 10, "tvo", g1, block=32, stored_best_first=True)
    ref = tvo_parents(lpj.flip(1), 10, g2, block=32)
    assert torch.equal(mine, 49 - ref)


@pytest.mark.parametrize("selection", ["tvo", "best", "fitness"])
def test_later_generations_breed_from_the_previous_generations_children(monkeypatch, selection):
    model, g = tiny_model()
    N, S, P, C, G = 12, 8, 3, 2, 3
    Y = torch.randn(N, 9, generator=g, dtype=torch.float64)
    keys = pack(initial_states(S, 10, g)).unsqueeze(0).expand(N, -1, -1).contiguous()
    calls, children = [], []
    real_select, real_flip = evolution.select_parents, evolution.randflip_keys

    def spy_select(lpj, P_, method, gen, **kw):
        calls.append((lpj.clone(), kw["stored_best_first"]))
        return real_select(lpj, P_, method, gen, **kw)

    def spy_flip(pkeys, H, c, gen):  # randflip children, made on the packed keys
        out = real_flip(pkeys, H, c, gen)
        children.append(unpack(out, H, torch.float64))
        return out

    monkeypatch.setattr(evolution, "select_parents", spy_select)
    monkeypatch.setattr(evolution, "randflip_keys", spy_flip)
    estep(model, Y, None, None, keys, P=P, C=C, G=G, selection=selection, mutation="randflip",
          cross=False, p_bf=0.1, gen=g, max_rows=10_000)
    assert len(calls) == G and [flag for _, flag in calls] == [True, False, False]
    assert calls[0][0].shape == (N, S)
    for gen_i in range(1, G):
        # the pool of generation g+1 is generation g's children, scored independently here
        lpj, _ = model.log_joint(Y, children[gen_i - 1])
        torch.testing.assert_close(calls[gen_i][0], lpj)


def test_paper_presets_are_faithful_and_plus_variants_differ_only_in_the_named_fields():
    names = {f.name for f in dataclasses.fields(TVAEConfig)} - {"description"}
    for name in PAPER_PRESETS:
        cfg = PRESETS[name]
        assert cfg.selection == PUBLISHED_SETTINGS["selection"] == "tvo"
        assert cfg.output_init == PUBLISHED_SETTINGS["output_init"] == "published"
        assert cfg.sigma2_start in ("data", "data-twice-scaled")  # never the known sigma
        assert cfg.eval_every == 20 and cfg.epochs == 500
        plus = get_preset(name + "+")
        diff = {k for k in names if getattr(cfg, k) != getattr(plus, k)}
        assert diff <= set(EVOBENCH_SETTINGS) and diff >= {"output_init", "selection"}
        assert {k: getattr(plus, k) for k in EVOBENCH_SETTINGS} == EVOBENCH_SETTINGS
        assert "published settings" in cfg.description
        assert "evobench settings" in plus.description
    assert PRESETS["barbara-25"].sigma2_start == "data-twice-scaled"
    assert PRESETS["house-inpaint-50"].sigma2_init == 0.01
    assert get_preset("castle-50%+") == PRESETS["castle-inpaint-50+"]
    assert PRESETS["quick"].selection == "best" and "evobench" in PRESETS["quick"].description


def test_published_evaluation_schedule():
    epochs = [e for e in range(1, 501) if is_eval_epoch(e, 20)]
    assert epochs[:3] == [1, 21, 41] and epochs[-1] == 481 and len(epochs) == 25


def test_sigma2_start_rules():
    rng = np.random.default_rng(0)
    Y = rng.normal(100, 30, size=(500, 16))
    var = float(np.mean(np.var(Y, axis=0)))
    known = TVAEConfig(sigma2_start="known")
    assert initial_sigma2(known, Y, 25 / 255) == pytest.approx(25.0**2)
    assert initial_sigma2(known, Y, None) == pytest.approx(var + 0.001)
    data = TVAEConfig(sigma2_start="data")
    assert initial_sigma2(data, Y, 25 / 255) == pytest.approx(var + 0.001)  # sigma ignored
    twice = TVAEConfig(sigma2_start="data-twice-scaled", scale=1.0)
    assert initial_sigma2(twice, Y / 255, 25 / 255) == pytest.approx(
        (var / 255**2 + 0.001) / 255**2)
    assert initial_sigma2(TVAEConfig(sigma2_init=0.01), Y, 0.1) == 0.01


def test_tvo_counts_cumulative_sums_strictly_above_the_draw(monkeypatch):
    """Each draw u returns M-1 minus the number of cumulative sums *above* u, so u exactly at
    c_{j-1} gives j-1 (u in [c_{j-1}, c_j)). Equal fitness in a block of one row gives
    c = (1/4, 1/2, 3/4, 1), exact in float32 and float64, so the draws can sit on them."""
    lpj = torch.full((1, 4), -1.0, dtype=torch.float64)  # f = lpj - 2 min = 1 for each
    u = torch.tensor([[0.25, 0.5, 0.75, 0.0, 0.1, 0.6, 0.99]])
    monkeypatch.setattr(evolution, "_uniform", lambda shape, like, gen: u.clone())
    idx = tvo_parents(lpj, u.shape[1], torch.Generator(), block=1)
    # sums above u: 3, 2, 1, 4, 4, 2, 1 -> 3 - that, with -1 wrapping to the last index
    assert idx[0].tolist() == [0, 1, 2, 3, 3, 1, 2]


@pytest.mark.parametrize("block", [1, 8])
def test_estep_normalises_tvo_over_the_block_it_is_given(monkeypatch, block):
    """estep's ``block`` is the tvo selection's mini-batch: generation 1's parents of 32 rows
    follow the described probabilities for blocks of ``block`` rows (on K_n in the published,
    reversed order), not those of the default 32-row block."""
    model, g = tiny_model()
    N, S, P = 32, 8, 300
    Y = torch.randn(N, 9, generator=g, dtype=torch.float64)
    st = torch.stack([initial_states(S, 10, g) for _ in range(N)])
    chosen = []
    real_select = evolution.select_parents

    def spy_select(lpj, P_, method, gen, **kw):
        idx = real_select(lpj, P_, method, gen, **kw)
        chosen.append(idx)
        return idx

    monkeypatch.setattr(evolution, "select_parents", spy_select)
    estep(model, Y, None, None, pack(st), P=P, C=1, G=1, selection="tvo", mutation="randflip",
          cross=False, p_bf=0.1, gen=g, max_rows=100_000, block=block)
    with torch.no_grad():
        lpj, _ = model.log_joint(Y, st.double())  # scored here, from the states

    def described(b):
        return torch.cat([_described_probabilities(lpj[a:a + b].flip(1)).flip(1)
                          for a in range(0, N, b)]).mean(0)

    freq = torch.stack([torch.bincount(r, minlength=S) for r in chosen[0]]).double() / P
    # per index over the 32 rows: 9600 draws, standard errors <= 0.005
    torch.testing.assert_close(freq.mean(0), described(block), atol=0.02, rtol=0)
    assert described(32)[0] - described(block)[0] > 0.06  # a 32-row block: visibly different
