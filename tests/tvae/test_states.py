"""Bit-packed keys, exact duplicate detection and initial states."""

import numpy as np
import pytest
import torch

from evobench.errors import EvobenchError
from evobench.tvae.states import (
    first_occurrence,
    hash_keys,
    initial_states,
    n_words,
    pack,
    unpack,
)


@pytest.mark.parametrize("H", [1, 5, 63, 64, 65, 130, 512])
def test_pack_unpack_roundtrip(H):
    g = torch.Generator().manual_seed(H)
    s = (torch.rand(7, 3, H, generator=g) < 0.5).to(torch.uint8)
    s[0, 0] = 1  # all ones, including every sign bit
    s[0, 1] = 0
    keys = pack(s)
    assert keys.shape == (7, 3, n_words(H)) and keys.dtype == torch.int64
    assert torch.equal(unpack(keys, H, torch.uint8), s)


@pytest.mark.parametrize("mixing", ["hash", "colliding hash"])
def test_first_occurrence_matches_python_reference(mixing, monkeypatch):
    """Multi-word keys are sorted by a hash; with the mixing steps removed the hash is the xor
    of the words, different rows collide, and the exact per-word sort must take over."""
    if mixing == "colliding hash":
        monkeypatch.setattr("evobench.tvae.states._SPLITMIX", ())
    rng = np.random.default_rng(0)
    for H in (3, 64, 130):
        # few distinct rows so that duplicates are common, differing only in high words too
        base = rng.integers(0, 2, size=(5, H))
        if H >= 128:  # row 1 = row 0 with its first two words swapped: equal xor of words
            base[1] = base[0]
            base[1, :64], base[1, 64:128] = base[0, 64:128], base[0, :64]
        rows = base[rng.integers(0, 5, size=(6, 40))]
        keys = pack(torch.as_tensor(rows))
        got = first_occurrence(keys).numpy()
        for b in range(6):
            seen = set()
            for j in range(40):
                t = tuple(rows[b, j])
                assert got[b, j] == (t not in seen)
                seen.add(t)


def test_key_hash_avalanches_every_input_bit_into_every_output_bit():
    """The key hash mixes like splitmix64's finaliser: flipping any one bit of any word of a
    key flips each bit of the hash in about half of the keys (400 random two-word keys: every
    rate within 0.3..0.7, +-8 standard errors), so sparse keys that differ in a few high bits
    do not pile onto a few hashes (collisions send callers to the slow exact path)."""
    keys = torch.randint(-(2**63), 2**63 - 1, (400, 2), generator=torch.Generator().manual_seed(0))
    h = hash_keys(keys)
    out_bits = torch.arange(64)
    for w in range(2):
        for i in range(64):
            flipped = keys.clone()
            flipped[:, w] ^= torch.tensor(1).bitwise_left_shift(i)  # bit 63: the sign bit
            d = h ^ hash_keys(flipped)
            rate = ((d.unsqueeze(1) >> out_bits) & 1).double().mean(0)
            assert 0.3 < float(rate.min()) and float(rate.max()) < 0.7, (w, i)


def test_keys_distinguish_states_differing_in_one_high_bit():
    s = torch.zeros(2, 2, 512, dtype=torch.uint8)
    s[0, 1, 511] = 1
    s[1, 1, 63] = 1  # the sign bit of word 0
    first = first_occurrence(pack(s))
    assert first.all()


def test_initial_states_distinct_sparse_and_seeded():
    g = torch.Generator().manual_seed(0)
    st = initial_states(64, 32, g)
    assert st.shape == (64, 32)
    assert len({tuple(r) for r in st.tolist()}) == 64
    assert st.sum(1).float().mean() < 3  # about one active unit, as in the reference
    again = initial_states(64, 32, torch.Generator().manual_seed(0))
    assert torch.equal(st, again)
    dense = initial_states(60, 6, torch.Generator().manual_seed(1))  # close to 2^6 = 64
    assert len({tuple(r) for r in dense.tolist()}) == 60
    with pytest.raises(EvobenchError, match="S <= 2\\^H"):
        initial_states(17, 4, g)


@pytest.mark.parametrize("H", [1, 4, 16])
def test_s_equal_2_to_the_H_enumerates_every_state_without_drawing(H):
    """S = 2^H: every state once, in binary counting order (bit h of code k is unit h), and the
    generator is not consumed (nothing is drawn)."""
    g = torch.Generator().manual_seed(0)
    before = g.get_state().clone()
    st = initial_states(2**H, H, g)
    assert torch.equal(g.get_state(), before)
    codes = (st.long() << torch.arange(H)).sum(1)
    assert torch.equal(codes, torch.arange(2**H))
    assert st.dtype == torch.uint8 and st.shape == (2**H, H)


def test_initial_states_says_when_it_cannot_find_enough_distinct_states(monkeypatch):
    """If the draws keep repeating (forced here: every candidate after the first counts as a
    duplicate), the error names S and H in one line instead of looping forever."""
    from evobench.tvae import states

    def only_first(keys):
        first = torch.zeros(keys.shape[:2], dtype=torch.bool)
        first[:, 0] = True
        return first

    monkeypatch.setattr(states, "first_occurrence", only_first)
    with pytest.raises(EvobenchError, match=r"could not draw S=5 distinct states with H=8; "
                                            r"lower S"):
        initial_states(5, 8, torch.Generator().manual_seed(0))
