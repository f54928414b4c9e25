"""Active-unit lists of binary states (``Codes``), the sparse form the decoder's first layer uses.

Codes are very sparse (1-2 active units of 64 or 512), so the first layer of a state s is
b1 + the sum of W1's columns of s's active units: a gather-sum over active indices
(``embedding_bag``), and W1's gradient a scatter-add over them. The dense product is kept where
the measured density makes it cheaper (``sparse_pays``). Exact in math; only the summation
order differs from the dense product.
"""

from __future__ import annotations

import itertools

import torch
from torch.nn import functional as F

from evobench.tvae.states import bit_shifts, popcount, unpack

# A gather-sum costs about this many dense multiply-adds per active entry and output unit
# (measured on a 2-core x86 CPU: an M-step batch with H = 64 is faster dense at 1.6 active units,
# with H = 512 twice as fast sparse); the sparse first layer is used when
# (1 + mean active units) * SPARSE_COST < H. On CUDA dense products are relatively cheaper.
SPARSE_COST = {"cpu": 32.0, "cuda": 64.0}


def sparse_pays(mean_active: float, H: int, device: torch.device) -> bool:
    return (1.0 + mean_active) * SPARSE_COST.get(device.type, 64.0) < H


class Codes:
    """Active-unit lists of binary states (R, H): ``cols`` (nnz,) the active units row by row,
    ``rows`` (nnz,) their row, ``offsets`` (R + 1,) where each row's list starts. ``sparse``
    (None: decided from the states' density) says whether the first layer uses them; when it
    does not, only the dense states are kept."""

    def __init__(self, states: torch.Tensor, sparse: bool | None = None):
        R, H = states.shape
        self.R, self.H = R, H
        if sparse is None:
            nnz = int(states.sum(dtype=torch.int64)) if R else 0
            sparse = sparse_pays(nnz / max(R, 1), H, states.device)
        self.sparse = sparse
        self._dense = None if sparse else states
        if sparse:
            self._set_lists(*states.nonzero(as_tuple=True))

    @classmethod
    def from_keys(cls, keys: torch.Tensor, H: int, sparse: bool | None = None) -> Codes:
        """Codes of bit-packed states (R, n_words) (evobench.tvae.states.pack), built without
        unpacking them to (R, H) bytes when sparse: only their nonzero bytes are expanded."""
        R = keys.shape[0]
        byts = keys.contiguous().view(torch.uint8).view(R, -1)
        if sparse is None:
            nnz = int(popcount(keys).sum()) if R else 0
            sparse = sparse_pays(nnz / max(R, 1), H, keys.device)
        if not sparse:
            return cls(unpack(keys, H, torch.uint8), sparse=False)
        rb, cb = byts.nonzero(as_tuple=True)
        bits = (byts[rb, cb].unsqueeze(1) >> bit_shifts(keys.device)).bitwise_and_(1)
        i, b = bits.nonzero(as_tuple=True)  # row-major: rows ascending, columns within a row
        return cls._from_lists(rb.index_select(0, i), cb.index_select(0, i) * 8 + b, R, H)

    @classmethod
    def _from_lists(cls, rows: torch.Tensor, cols: torch.Tensor, R: int, H: int,
                    offsets: torch.Tensor | None = None) -> Codes:
        self = cls.__new__(cls)
        self.R, self.H, self.sparse, self._dense = R, H, True, None
        self._set_lists(rows, cols, offsets)
        return self

    def _set_lists(self, rows: torch.Tensor, cols: torch.Tensor,
                   offsets: torch.Tensor | None = None) -> None:
        """Keep the active-unit lists (row-major) and where each row's list starts."""
        self.rows, self.cols = rows, cols
        if offsets is None:
            offsets = torch.zeros(self.R + 1, dtype=torch.int64, device=rows.device)
            torch.cumsum(torch.bincount(rows, minlength=self.R), 0, out=offsets[1:])
        self.offsets = offsets

    def select(self, idx: torch.Tensor) -> Codes:
        """The Codes of rows ``idx``: for sparse codes a gather of their active-unit lists,
        O(active units) instead of O(rows x H)."""
        if not self.sparse:
            return Codes(self._dense.index_select(0, idx), sparse=False)
        counts = (self.offsets[1:] - self.offsets[:-1]).index_select(0, idx)
        rows = torch.repeat_interleave(torch.arange(len(idx), device=idx.device), counts)
        starts = torch.zeros(len(idx) + 1, dtype=torch.int64, device=idx.device)
        torch.cumsum(counts, 0, out=starts[1:])
        at = (self.offsets.index_select(0, idx).index_select(0, rows)
              + torch.arange(rows.numel(), device=idx.device) - starts.index_select(0, rows))
        return Codes._from_lists(rows, self.cols.index_select(0, at), len(idx), self.H, starts)

    def split(self, sizes: list[int]) -> list[Codes]:
        """Consecutive blocks of ``sizes`` rows as Codes: views of these lists (one host sync
        for where the blocks' lists start), instead of a ``select`` per block."""
        bounds = [0, *itertools.accumulate(sizes)]
        if not self.sparse:
            return [Codes(self._dense[a:b], sparse=False) for a, b in itertools.pairwise(bounds)]
        starts = self.offsets[bounds].tolist()
        blocks = []
        for (a, b), (oa, ob) in zip(itertools.pairwise(bounds), itertools.pairwise(starts)):
            blocks.append(Codes._from_lists(self.rows[oa:ob] - a, self.cols[oa:ob], b - a,
                                            self.H, self.offsets[a:b + 1] - oa))
        return blocks

    def rmatvec(self, w: torch.Tensor) -> torch.Tensor:
        """sum over rows of w_r s_r, (H,), for row weights w (R,)."""
        if self.sparse:
            out = torch.zeros(self.H, dtype=w.dtype, device=w.device)
            return out.index_add_(0, self.cols, w.index_select(0, self.rows))
        return w @ self.dense(w.dtype)

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """s . v for every row, (R,)."""
        if self.sparse:
            return self.weighted_sum(v.unsqueeze(1)).squeeze(1)
        return self.dense(v.dtype) @ v

    def dense(self, dtype: torch.dtype) -> torch.Tensor:
        if self._dense is None:
            d = torch.zeros(self.R, self.H, dtype=dtype, device=self.cols.device)
            d[self.rows, self.cols] = 1
            return d
        return self._dense.to(dtype)

    def weighted_sum(self, table: torch.Tensor) -> torch.Tensor:
        """sum over active units of ``table`` rows, (R, K), for a table (H, K)."""
        return F.embedding_bag(self.cols, table, self.offsets, mode="sum",
                               include_last_offset=True)
