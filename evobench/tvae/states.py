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


def first_occurrence(keys: torch.Tensor) -> torch.Tensor:
    """Bool (B, M): True where row b's key j does not equal any key before it in that row.

    Exact over all words: a stable lexicographic sort (least significant word first, as in a
    radix sort) makes equal keys adjacent with their original order kept, so the first of each
    run is the earliest occurrence.
    """
    B, M, nw = keys.shape
    order = torch.arange(M, device=keys.device).expand(B, M)
    for w in range(nw - 1, -1, -1):
        col = torch.gather(keys[:, :, w], 1, order)
        idx = torch.sort(col, dim=1, stable=True).indices
        order = torch.gather(order, 1, idx)
    sk = torch.gather(keys, 1, order.unsqueeze(-1).expand(B, M, nw))
    same_as_prev = (sk[:, 1:] == sk[:, :-1]).all(-1)
    first_sorted = torch.ones(B, M, dtype=torch.bool, device=keys.device)
    first_sorted[:, 1:] = ~same_as_prev
    first = torch.empty_like(first_sorted)
    first.scatter_(1, order, first_sorted)
    return first


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
