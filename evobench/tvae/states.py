"""Variational states K_n stored as bit-packed int64 keys.

Keys make the sets small (N x S x ceil(H/64) words instead of N x S x H bytes) and make
exact duplicate detection a sort over integers instead of a byte-wise comparison. A word holds
64 bits: bit 63 is the sign bit, which is harmless because keys are only compared for equality.
"""

from __future__ import annotations

import math

import torch

from evobench.errors import EvobenchError

WORD = 64


def n_words(H: int) -> int:
    return math.ceil(H / WORD)


def bit_shifts(device: torch.device) -> torch.Tensor:
    return torch.arange(8, dtype=torch.uint8, device=device)


def pack(states: torch.Tensor) -> torch.Tensor:
    """(..., H) 0/1 tensor -> (..., n_words) int64 keys (little-endian bytes of the bits)."""
    H = states.shape[-1]
    nw = n_words(H)
    s = states.to(torch.uint8)
    if nw * WORD != H:
        s = torch.nn.functional.pad(s, (0, nw * WORD - H))
    s = s.reshape(*states.shape[:-1], nw * 8, 8)
    weights = torch.tensor([1, 2, 4, 8, 16, 32, 64, 128], dtype=torch.uint8, device=s.device)
    byts = (s * weights).sum(-1, dtype=torch.uint8)
    return byts.view(torch.int64)


def unpack(keys: torch.Tensor, H: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(..., n_words) int64 keys -> (..., H) states of ``dtype``.

    Shifts and masks on the key bytes in uint8 (8 bits per byte, least significant first):
    one byte-wide pass instead of an int64-indexed table lookup.
    """
    byts = keys.contiguous().view(torch.uint8)
    bits = (byts.unsqueeze(-1) >> bit_shifts(keys.device)).bitwise_and_(1)
    bits = bits.reshape(*keys.shape[:-1], keys.shape[-1] * WORD)[..., :H]
    return bits if dtype == torch.uint8 else bits.to(dtype)


_POPCOUNT: dict[torch.device, torch.Tensor] = {}


def popcount(keys: torch.Tensor) -> torch.Tensor:
    """Active units per key (..., n_words) -> (...,) int64, from a byte table."""
    table = _POPCOUNT.get(keys.device)
    if table is None:
        table = torch.tensor([bin(i).count("1") for i in range(256)], dtype=torch.int64,
                             device=keys.device)
        _POPCOUNT[keys.device] = table
    byts = keys.contiguous().view(torch.uint8).reshape(*keys.shape[:-1], -1)
    return table[byts.long()].sum(-1)


# splitmix64's finaliser (xor-shift right, multiply; constants as int64): a bijection on 64
# bits in which every input bit affects every output bit
_SPLITMIX = ((30, -4658895280553007687), (27, -7723592293110705685), (31, 0))


def hash_keys(keys: torch.Tensor) -> torch.Tensor:
    """One int64 per key (..., n_words): h = mix(h ^ word) word by word (wrapping). Equal keys
    hash equal; different keys rarely do, so callers check and fall back to an exact path."""
    h = torch.zeros_like(keys[..., 0])
    for w in range(keys.shape[-1]):
        h.bitwise_xor_(keys[..., w])
        for shift, mult in _SPLITMIX:
            h.bitwise_xor_((h >> shift).bitwise_and_((1 << (64 - shift)) - 1))
            if mult:
                h.mul_(mult)
    return h


def first_occurrence(keys: torch.Tensor) -> torch.Tensor:
    """Bool (B, M): True where row b's key j does not equal any key before it in that row.

    A stable sort makes equal keys adjacent with their original order kept, so the first of each
    run is the earliest occurrence. Multi-word keys are sorted by their hash (one sort); if two
    different keys of a row share a hash, the exact lexicographic radix sort (least significant
    word first, one stable sort per word) runs instead.
    """
    B, M, nw = keys.shape
    if nw == 1:
        return _first_in_sorted(keys, torch.sort(keys[:, :, 0], dim=1, stable=True).indices)
    h = hash_keys(keys)
    order = torch.sort(h, dim=1, stable=True).indices
    sh = torch.gather(h, 1, order)
    sk = torch.gather(keys, 1, order.unsqueeze(-1).expand(B, M, nw))
    if bool(((sh[:, 1:] == sh[:, :-1]) <= (sk[:, 1:] == sk[:, :-1]).all(-1)).all()):
        return _first_in_sorted(keys, order, sk)
    order = torch.arange(M, device=keys.device).expand(B, M)
    for w in range(nw - 1, -1, -1):
        col = torch.gather(keys[:, :, w], 1, order)
        order = torch.gather(order, 1, torch.sort(col, dim=1, stable=True).indices)
    return _first_in_sorted(keys, order)


def _first_in_sorted(keys: torch.Tensor, order: torch.Tensor,
                     sk: torch.Tensor | None = None) -> torch.Tensor:
    """first_occurrence given ``order`` (B, M), a stable sort of each row's keys that makes
    equal keys adjacent (``sk``: the keys in that order, if already gathered)."""
    B, M, nw = keys.shape
    if sk is None and nw == 1:  # a 2-D gather: the expanded 3-D one is ~10x slower on CPU
        sk = torch.gather(keys[:, :, 0], 1, order).unsqueeze(-1)
    elif sk is None:
        sk = torch.gather(keys, 1, order.unsqueeze(-1).expand(B, M, nw))
    same_as_prev = (sk[:, 1:] == sk[:, :-1]).all(-1)
    first_sorted = torch.ones(B, M, dtype=torch.bool, device=keys.device)
    first_sorted[:, 1:] = ~same_as_prev
    first = torch.empty_like(first_sorted)
    first.scatter_(1, order, first_sorted)
    return first

def unique_keys(keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Distinct rows of keys (R, n_words) and each row's index among them, exactly.

    One word: torch.unique. Several: torch.unique(dim=0) sorts rows with a comparator (~20x
    slower), so the rows are hashed to one int64 (splitmix64-style, wrapping) and the hashes made
    unique with one sort; then every row is compared with its group's first row, and only if
    two different keys shared a hash does the exact word-by-word ranking run instead.
    """
    if keys.shape[1] == 1:
        uk, inv = torch.unique(keys[:, 0], return_inverse=True)
        return uk.unsqueeze(1), inv
    _, code = torch.unique(hash_keys(keys), return_inverse=True)
    uk, first = _first_rows(keys, code)
    if bool((keys.index_select(0, first.index_select(0, code)) == keys).all()):
        return uk, code
    return _unique_keys_ranked(keys)


def _first_rows(keys: torch.Tensor, code: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For group labels ``code`` (R,) in 0..u-1: each group's first row's key and index."""
    R = keys.shape[0]
    u = int(code.max()) + 1 if R else 0
    first = torch.full((u,), R, dtype=torch.int64, device=keys.device)
    first.scatter_reduce_(0, code, torch.arange(R, device=keys.device), "amin")
    return keys.index_select(0, first), first


def _unique_keys_ranked(keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """unique_keys without hashing: the rows' dense ranks built word by word from 1-D uniques
    (the rank of (rank so far, rank of the next word) as one integer < R^2 < 2^63)."""
    R = keys.shape[0]
    _, code = torch.unique(keys[:, 0], return_inverse=True)
    for w in range(1, keys.shape[1]):
        _, r = torch.unique(keys[:, w], return_inverse=True)
        _, code = torch.unique(code * R + r, return_inverse=True)
    return _first_rows(keys, code)[0], code


def initial_states(S: int, H: int, generator: torch.Generator) -> torch.Tensor:
    """S distinct states (S, H) uint8, shared by all patches at the start.

    Mostly sparse draws (Bernoulli(1/H), about one active unit, as in the reference); the
    density rises only if sparse draws cannot supply S distinct states (S close to 2^H). With
    S = 2^H every state is enumerated, which turns the truncated posterior into the exact one.
    """
    if H < 63 and S > 2**H:
        raise EvobenchError(f"S={S} exceeds the 2^H={2**H} possible states; use S <= 2^H")
    device = generator.device
    if H <= 16 and S == 2**H:
        codes = torch.arange(S, device=device)
        return ((codes[:, None] >> torch.arange(H, device=device)) & 1).to(torch.uint8)
    p = 1.0 / H
    chosen = torch.zeros(0, H, dtype=torch.uint8, device=device)
    for _ in range(200):
        draw = (torch.rand(max(S, 16), H, generator=generator, device=device) < p)
        cand = torch.cat([chosen, draw.to(torch.uint8)])
        keep = first_occurrence(pack(cand)[None])[0]
        chosen = cand[keep][:S]
        if chosen.shape[0] == S:
            return chosen
        p = min(0.5, p * 1.5)
    raise EvobenchError(f"could not draw S={S} distinct states with H={H}; lower S")
