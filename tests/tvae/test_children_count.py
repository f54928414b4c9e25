"""P*C children per generation (P(P-1) with crossover, one mutation each), pinned through
``evaluate`` and ``estep``: a search that breeds C-1 children (or drops a parent) is caught here,
not only through a weaker end-to-end PSNR."""

import pytest
import torch

from evobench.tvae import evolution
from evobench.tvae.evolution import estep, evaluate
from evobench.tvae.model import Decoder, TVAEModel
from evobench.tvae.states import initial_states, pack, popcount

H, D, N, S = 12, 9, 30, 16


def _setup(seed=0):
    g = torch.Generator().manual_seed(seed)
    dec = Decoder(H, (10,), D, "relu", "xavier", g, torch.float64)
    model = TVAEModel(dec, torch.full((H,), 0.2, dtype=torch.float64),
                      torch.tensor(0.5, dtype=torch.float64))
    Y = torch.randn(N, D, generator=g, dtype=torch.float64)
    keys = pack(initial_states(S, H, g)).unsqueeze(0).expand(N, -1, -1).contiguous()
    return model, Y, keys, g


def _per_generation(P, C, cross):
    return P * (P - 1) if cross else P * C


CASES = [(m, cross, P, C, G) for m in ("randflip", "sparseflip") for cross in (False, True)
         for P, C, G in ((2, 1, 1), (3, 2, 2), (4, 3, 3), (5, 4, 1))]


@pytest.mark.parametrize("mutation,cross,P,C,G", CASES)
def test_evaluate_breeds_P_times_C_children_per_generation(mutation, cross, P, C, G):
    model, Y, keys, g = _setup()
    with torch.no_grad():
        cands = evaluate(model, Y, None, None, keys, P=P, C=C, G=G, selection="fitness",
                         mutation=mutation, cross=cross, p_bf=0.1, gen=g, max_rows=1000)
    assert cands.S == S and torch.equal(cands.keys[:, :S], keys)
    assert cands.keys.shape == (N, S + G * _per_generation(P, C, cross), keys.shape[2])
    assert cands.lpj.shape == cands.keys.shape[:2]


@pytest.mark.parametrize("P,C,G", [(2, 1, 1), (3, 2, 2), (4, 3, 3), (5, 4, 2)])
def test_randflip_children_come_in_blocks_of_C_from_one_parent(P, C, G):
    """Each generation: P blocks of C children; the C children of a block are one parent of
    the previous pool, each with a different single bit flipped."""
    model, Y, keys, g = _setup()
    with torch.no_grad():
        cands = evaluate(model, Y, None, None, keys, P=P, C=C, G=G, selection="fitness",
                         mutation="randflip", cross=False, p_bf=0.1, gen=g, max_rows=1000)
    pool = keys
    for gen_i in range(G):
        kids = cands.keys[:, S + gen_i * P * C: S + (gen_i + 1) * P * C]
        blocks = kids.view(N, P, C, -1)
        # distance 1 to some state of the pool (its parent)
        diff = popcount(blocks.unsqueeze(3) ^ pool[:, None, None, :, :])  # (N, P, C, |pool|)
        parent_of = (diff == 1)
        assert parent_of.any(-1).all(), gen_i
        # the C children of a block flip C different bits of one common parent
        flip = blocks ^ blocks[:, :, :1]
        between = popcount(flip)[:, :, 1:]
        assert (between == 2).all(), gen_i
        common = parent_of.all(2).any(-1)  # a pool state at distance 1 from all C children
        assert common.all(), gen_i
        pool = kids


def test_estep_searches_P_times_C_children_per_generation(monkeypatch):
    model, Y, keys, g = _setup()
    sizes = []
    real = evolution.evaluate

    def spy(*args, **kwargs):
        cands = real(*args, **kwargs)
        sizes.append(cands.keys.shape[1])
        return cands

    monkeypatch.setattr(evolution, "evaluate", spy)
    with torch.no_grad():
        for P, C, G in ((3, 2, 2), (4, 3, 1)):
            for mutation in ("randflip", "sparseflip"):
                new_keys, lpj, n_new, _ = estep(model, Y, None, None, keys, P=P, C=C, G=G,
                                                selection="fitness", mutation=mutation,
                                                cross=False, p_bf=0.1, gen=g, max_rows=1000)
                assert sizes[-1] == S + G * P * C
                assert new_keys.shape == keys.shape and (n_new <= G * P * C).all()
    assert len(sizes) == 4
