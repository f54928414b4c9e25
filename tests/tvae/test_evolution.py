"""EA operators and the E-step: exact operator semantics, uniqueness, monotone free energy."""

import itertools

import numpy as np
import pytest
import torch
from tiny_models import tiny_model

from evobench.tvae import evolution
from evobench.tvae.evolution import (
    crossover,
    estep,
    randflip,
    randflip_keys,
    select_parents,
    sparseflip,
)
from evobench.tvae.model import Decoder, TVAEModel, chunked_log_joint
from evobench.tvae.states import initial_states, pack, unpack


def _setup(H=12, D=9, N=40, S=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    dec = Decoder(H, (10,), D, "relu", "xavier", g, torch.float64)
    pi = torch.full((H,), 0.2, dtype=torch.float64)
    model = TVAEModel(dec, pi, torch.tensor(0.5, dtype=torch.float64))
    Y = torch.randn(N, D, generator=g, dtype=torch.float64)
    keys = pack(initial_states(S, H, g)).unsqueeze(0).expand(N, -1, -1).contiguous()
    return model, Y, keys, g


def _F(model, Y, keys, obs=None, dobs=None):
    st = unpack(keys, model.H, torch.float64)
    lpj, _, _ = chunked_log_joint(model, Y, st, obs, dobs, 10_000)
    return torch.logsumexp(lpj, 1)


@pytest.mark.parametrize("selection,mutation,cross,G", [
    ("fitness", "randflip", False, 1),
    ("uniform", "sparseflip", False, 2),
    ("best", "randflip", False, 3),
    ("fitness", "randflip", True, 2),
    ("uniform", "sparseflip", True, 1),
])
def test_estep_never_lowers_F_and_keeps_sets_unique(selection, mutation, cross, G):
    model, Y, keys, g = _setup()
    rng = np.random.default_rng(0)
    obs = torch.as_tensor(rng.random(Y.shape) > 0.3, dtype=torch.float64)
    obs[:, 0] = 1
    Yo, dobs = Y * obs, obs.sum(1)
    S = keys.shape[1]
    F_prev = _F(model, Yo, keys, obs, dobs)
    improved = torch.zeros(Y.shape[0], dtype=torch.bool)
    with torch.no_grad():
        for _ in range(6):
            old = keys
            keys, lpj, new, kept = estep(model, Yo, obs, dobs, keys, P=4, C=3, G=G,
                                         selection=selection, mutation=mutation,
                                         cross=cross, p_bf=0.1, gen=g, max_rows=77)
            # the count of new states: kept keys that were not in the patch's K_n before
            was = [set(map(tuple, row.tolist())) for row in old]
            assert new.tolist() == [sum(tuple(k) not in w for k in row.tolist())
                                    for row, w in zip(keys, was)]
            F_now = _F(model, Yo, keys, obs, dobs)
            assert (F_now >= F_prev - 1e-9).all()  # monotone for every patch
            torch.testing.assert_close(torch.logsumexp(lpj, 1), F_now)
            improved |= F_now > F_prev + 1e-9
            F_prev = F_now
            st = unpack(keys, model.H, torch.uint8)
            assert torch.equal(st, kept)  # the returned states are the kept keys' states
            for row in st:
                assert len({tuple(r) for r in row.tolist()}) == S  # no duplicates in any K_n
    assert improved.float().mean() > 0.5  # and the search actually finds better states


def test_randflip_flips_exactly_one_distinct_bit_per_child():
    g = torch.Generator().manual_seed(3)
    parents = (torch.rand(50, 3, 10, generator=g) < 0.3).to(torch.uint8)
    ch = randflip(parents, 4, g).reshape(50, 3, 4, 10)
    diff = ch ^ parents.unsqueeze(2)
    assert (diff.sum(-1) == 1).all()
    flipped = diff.argmax(-1)  # (50, 3, 4)
    assert all(len(set(r)) == 4 for r in flipped.reshape(-1, 4).tolist())
    # every position gets flipped with equal frequency (uniform choice of bits)
    counts = torch.bincount(flipped.flatten(), minlength=10).float()
    assert counts.min() > 0.5 * counts.mean()


def test_sparseflip_keeps_target_sparsity_and_flip_rate():
    H, pbf = 40, 0.1
    g = torch.Generator().manual_seed(4)
    pi = torch.full((H,), 0.2)  # target c = H mean(pi) = 8 ones
    parents = torch.zeros(4000, 1, H, dtype=torch.uint8)
    parents[:, 0, :10] = 1  # m = 10 ones: p0 = 2/60, p1 = 6/20 (no clamping)
    ch = sparseflip(parents, 5, pi, pbf, g)
    flips = (ch ^ parents).sum(-1).float().mean()
    ones = ch.sum(-1).float().mean()
    assert abs(float(flips) - H * pbf) < 0.1  # H p_bf = 4 flips on average
    assert abs(float(ones) - 8.0) < 0.1  # moves to the target number of ones


def test_crossover_children_are_head_tail_combinations():
    g = torch.Generator().manual_seed(5)
    P, H = 4, 9
    parents = (torch.rand(30, P, H, generator=g) < 0.5).to(torch.uint8)
    ch = crossover(parents, g)
    assert ch.shape == (30, P * (P - 1), H)
    pairs = list(itertools.combinations(range(P), 2))
    n = len(pairs)
    for b in range(30):
        for k, (i, j) in enumerate(pairs):
            c1, c2 = ch[b, k], ch[b, n + k]
            a, bb = parents[b, i], parents[b, j]
            # the two children are complementary: what c1 took from a, c2 took from b
            ok = [torch.equal(c1, torch.cat([a[:u], bb[u:]])) and
                  torch.equal(c2, torch.cat([bb[:u], a[u:]])) for u in range(1, H)]
            assert any(ok)


def test_selection_operators():
    g = torch.Generator().manual_seed(6)
    lpj = torch.tensor([[-50.0, -10.0, -30.0, -20.0, -40.0]]).repeat(20000, 1)
    best = select_parents(lpj, 3, "best", g)
    assert (best == 1).all()
    for method in ("fitness", "uniform"):
        idx = select_parents(lpj, 3, method, g)
        assert all(len(set(r)) == 3 for r in idx[:500].tolist())  # without replacement
    # fitness: first draw of Gumbel-top-k is proportional to f = lpj - 2 min(lpj) = lpj + 100
    first = select_parents(lpj, 1, "fitness", g)[:, 0]
    freq = torch.bincount(first, minlength=5).double() / len(first)
    f = lpj[0].double() + 100
    torch.testing.assert_close(freq, f / f.sum(), atol=0.012, rtol=0)
    uni = torch.bincount(select_parents(lpj, 1, "uniform", g)[:, 0], minlength=5).double()
    torch.testing.assert_close(uni / uni.sum(), torch.full((5,), 0.2, dtype=torch.float64),
                               atol=0.012, rtol=0)


@pytest.mark.parametrize("H", [8, 64, 130])
def test_randflip_on_keys_equals_randflip_on_states(H):
    """The E-step toggles bits of packed keys instead of flipping unpacked states: same children
    from the same draws, for one and several key words (bit 63 included)."""
    rng = np.random.default_rng(H)
    parents = torch.as_tensor((rng.random((5, 3, H)) < 0.2).astype(np.uint8))
    parents[0, 0, :] = 1  # every bit set, so the sign bit of each word is toggled too
    C = min(4, H)
    a = pack(randflip(parents, C, torch.Generator().manual_seed(1)))
    b = randflip_keys(pack(parents), H, C, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


@pytest.mark.parametrize("B", [1, 33])
def test_tvo_normalises_a_lone_last_row_over_itself(B):
    """Rows are grouped in blocks of 32; a block of one row (B = 1, or the 33rd row) normalises
    over that row alone, so its draws follow its own fitness: index j-1 for u in
    [c_{j-1}, c_j), the last index for u below c_0 (the row's total is 1)."""
    g = torch.Generator().manual_seed(8)
    row = torch.tensor([-9.0, -7.0, -5.0, -4.0, -2.0], dtype=torch.float64)
    lpj = torch.cat([-50 - torch.rand(B - 1, 5, generator=g, dtype=torch.float64), row[None]])
    idx = select_parents(lpj, 40_000, "tvo", g, block=32)[-1]
    f = row - 2 * row.min()
    p = f / f.sum()
    want = torch.cat([p[1:], p[:1]])  # index j-1 gets p_j; the last index gets p_0
    freq = torch.bincount(idx, minlength=5).double() / idx.numel()
    torch.testing.assert_close(freq, want, atol=0.01, rtol=0)  # >= 4.5 standard errors


@pytest.mark.parametrize("selection,mutation,cross", [
    ("tvo", "randflip", False), ("fitness", "sparseflip", False), ("uniform", "randflip", True),
    ("fitness", "sparseflip", True)])
def test_estep_draws_only_from_the_generator_passed_in(selection, mutation, cross):
    """Same generator state -> same E-step, whatever torch's global generator holds: no operator
    may fall back to the global random state."""
    model, Y, keys, _ = _setup(N=20)
    results = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        g = torch.Generator().manual_seed(5)
        with torch.no_grad():
            out = estep(model, Y, None, None, keys, P=3, C=2, G=2, selection=selection,
                        mutation=mutation, cross=cross, p_bf=0.3, gen=g, max_rows=100)
        results.append((out, g.get_state()))
    (a, ga), (b, gb) = results
    assert all(torch.equal(x, y) for x, y in zip(a, b)) and torch.equal(ga, gb)


def test_crossover_with_randflip_flips_one_bit_of_each_crossed_child():
    """With crossover, randflip mutates each of the P(P-1) crossover children by exactly one
    bit (C is not used). Identical parents make every crossover child the parent itself, so
    each child is the parent with one bit flipped, every position alike."""
    g = torch.Generator().manual_seed(9)
    model, _ = tiny_model(H=10)
    parent = torch.tensor([1, 0, 0, 1, 0, 0, 0, 1, 0, 0], dtype=torch.uint8)
    pkeys = pack(parent.expand(300, 4, 10).contiguous())
    ch = unpack(evolution._children(model, pkeys, 3, "randflip", True, 0.1, g), 10,
                torch.uint8)
    assert ch.shape == (300, 4 * 3, 10)
    diff = ch ^ parent
    assert (diff.sum(-1) == 1).all()
    counts = torch.bincount(diff.argmax(-1).flatten(), minlength=10).double()
    assert counts.min() > 0.8 * counts.mean()  # 360 expected per position
