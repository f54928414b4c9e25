"""The TVAE generative model: Bernoulli prior, MLP decoder, Gaussian likelihood, log-joints.

log p(s, y) = s . log(pi/(1-pi)) + sum_h log(1-pi_h) - D_obs/2 log(2 pi sigma2)
              - 1/(2 sigma2) sum_{d observed} (y_d - mu_d(s))^2
Missing entries (inpainting) are left out per patch: ``obs`` masks them and ``dobs`` counts the
observed ones, so a patch's likelihood only depends on what was seen.

Binary codes are very sparse (1-2 active units of 64 or 512), so two things are exploited, both
exact in math (only the summation order changes):
- the first layer of a state s is b1 + sum of W1's columns of s's active units: a gather-sum
  over active indices (``Codes``, ``embedding_bag``), and W1's gradient a scatter-add over them;
  the dense product is kept where the measured density makes it cheaper (``Codes.sparse``);
- many patches of a chunk share states (the all-zero and single-unit states are everywhere), so
  ``chunked_log_joint`` runs each distinct state of a chunk through the decoder once and
  gathers its output for every patch that holds it.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn
from torch.nn import functional as F

from evobench.tvae.states import bit_shifts, hash_keys, pack, popcount, unpack

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

ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.01)}


class Decoder(nn.Module):
    """MLP H -> hidden... -> D with a linear output layer.

    Nine parameters: the published MLP's shape and initialisation (H, hidden, D, activation,
    init), the generator its weights are drawn from, and the dtype and device they live on.
    """

    def __init__(self, H: int, hidden: tuple[int, ...], D: int, activation: str = "relu",
                 init: str = "xavier", generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"):
        super().__init__()
        sizes = (H, *hidden, D)
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            lin = nn.Linear(a, b, dtype=dtype, device=device)
            if init == "xavier":  # the reference MLP: Xavier-normal weights, zero biases
                nn.init.xavier_normal_(lin.weight, generator=generator)
                nn.init.zeros_(lin.bias)
            else:  # PyTorch's default (Kaiming-uniform), drawn from our generator
                bound = 1.0 / math.sqrt(a)
                nn.init.uniform_(lin.weight, -bound, bound, generator=generator)
                nn.init.uniform_(lin.bias, -bound, bound, generator=generator)
            layers.append(lin)
            if i < len(sizes) - 2:
                layers.append(ACTIVATIONS[activation]())
        self.net = nn.Sequential(*layers)
        self.linears = [m for m in layers if isinstance(m, nn.Linear)]
        self.slope = 0.0 if activation == "relu" else 0.01
        self.H, self.D = H, D

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return self.net(s)

    def stored_transposed(self) -> tuple[nn.Parameter, ...]:
        """Parameters the trainer lays out transposed in its flat buffer: W1, so that the
        sparse first layer and its gradient use W1^T's rows with no copy per step."""
        return (self.linears[0].weight,)

    def _act(self, h: torch.Tensor) -> torch.Tensor:
        return h.relu_() if self.slope == 0.0 else nn.functional.leaky_relu_(h, self.slope)

    def first_layer(self, s: torch.Tensor | Codes) -> torch.Tensor:
        """Pre-activation of the first layer for states s (R, H) or their Codes (no autograd):
        a gather-sum of W1's columns over active units when the codes are sparse."""
        lin = self.linears[0]
        if isinstance(s, Codes):
            if s.sparse:
                out = s.weighted_sum(lin.weight.t().contiguous())
                return out.add_(lin.bias)
            s = s.dense(lin.weight.dtype)
        return torch.addmm(lin.bias, s, lin.weight.t())

    def hidden(self, s: torch.Tensor | Codes) -> list[torch.Tensor]:
        """Inputs of every linear layer for rows s (R, H) or Codes: [s, a1, ..., a_L]
        (no autograd). With one layer (linear decoder) the output is computed by the caller."""
        if isinstance(s, Codes) and not s.sparse:
            s = s.dense(self.linears[0].weight.dtype)
        acts: list = [s]
        if len(self.linears) == 1:
            return acts
        h = self._act(self.first_layer(s))
        acts.append(h)
        for lin in self.linears[1:-1]:
            h = self._act(torch.addmm(lin.bias, h, lin.weight.t()))
            acts.append(h)
        return acts

    def output(self, acts: list) -> torch.Tensor:
        """mu for the layer inputs ``acts`` of ``hidden``: (R, D)."""
        if len(self.linears) == 1:
            return self.first_layer(acts[0])
        last = self.linears[-1]
        return torch.addmm(last.bias, acts[-1], last.weight.t())

    def residual(self, states: torch.Tensor, Y: torch.Tensor, obs: torch.Tensor | None
                 ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(mu(s) - y) * obs as (B, S, D) for states (B, S, H), plus the layer inputs."""
        B, S, H = states.shape
        acts = self.hidden(states.reshape(B * S, H))
        o = self.output(acts).view(B, S, -1)
        o.sub_(Y.unsqueeze(1))
        if obs is not None:
            o.mul_(obs.unsqueeze(1))
        return o, acts

    def backward_from_output(self, g: torch.Tensor, acts: list[torch.Tensor]) -> None:
        """Write d loss / d parameters into ``.grad`` given g = d loss / d output (R, D).

        Hand-written backprop for the MLP: far fewer tensor ops per Adam step than autograd.
        With sparse Codes as the first layer's input, W1's gradient is a scatter-add of g over
        the active units instead of the dense product g^T s.
        """
        for k in range(len(self.linears) - 1, -1, -1):
            lin, a = self.linears[k], acts[k]
            if lin.weight.grad is None:
                lin.weight.grad = torch.empty_like(lin.weight)
                lin.bias.grad = torch.empty_like(lin.bias)
            grad_t = lin.weight.grad.t()
            if isinstance(a, Codes):  # W1^T's gradient: g's rows added at the active units
                grad_t.zero_().index_add_(0, a.cols, g.index_select(0, a.rows))
            elif grad_t.is_contiguous():  # stored transposed (stored_transposed)
                torch.mm(a.t(), g, out=grad_t)
            else:
                torch.mm(g.t(), a, out=lin.weight.grad)
            torch.sum(g, 0, out=lin.bias.grad)
            if k > 0:
                g = torch.mm(g, lin.weight)
                if self.slope == 0.0:  # relu: keep g where the unit was active (one op)
                    g = torch.ops.aten.threshold_backward(g, a, 0.0)
                else:  # leaky relu: g x slope where it was not (the slope in g's dtype)
                    g = torch.ops.aten.leaky_relu_backward(g, a, self.slope, True)


def forward_distinct(dec: Decoder, states: torch.Tensor | Codes, inv: torch.Tensor,
                     sparse: bool | None = None) -> tuple[torch.Tensor, list]:
    """Decoder outputs (R, D) for rows whose states are ``states[inv]``, with each of the u
    distinct ``states`` (u, H) (or their Codes) run through the decoder once; plus the u rows'
    layer inputs."""
    acts = dec.hidden(states if isinstance(states, Codes) else Codes(states, sparse))
    return dec.output(acts).index_select(0, inv), acts


# Backprop leaves out a batch's distinct states whose output gradient is below this in every
# entry. Adam rescales gradients (step ~ g / (sqrt(v) + 1e-8)), so "negligible" has to be judged
# against its eps, not against the batch's largest gradient: at 1e-6 * eps, the parameters'
# steps change by ~1e-5 of eps's scale at most. Most states of a sparse code's K_n carry such
# posterior weights (house-50: ~half of a batch's distinct states).
TINY_GRAD = 1e-14


def backward_distinct(dec: Decoder, g: torch.Tensor, inv: torch.Tensor, acts: list,
                      states: torch.Tensor | Codes | None = None) -> None:
    """``backward_from_output`` for the outputs of ``forward_distinct``: the gradients g (R, D)
    of rows sharing a state are summed first (exact), so backprop runs on u rows.

    Given the distinct ``states`` (u, H) or their Codes, those whose summed gradient is below
    TINY_GRAD in every entry are left out of the backprop.
    """
    u = acts[0].R if isinstance(acts[0], Codes) else acts[0].shape[0]
    gu = torch.zeros(u, g.shape[1], dtype=g.dtype, device=g.device)
    gu.index_add_(0, inv, g)
    if states is not None:
        keep = (gu.abs().amax(1) >= TINY_GRAD).nonzero().squeeze(1)
        if keep.numel() < u:
            first = acts[0]
            if isinstance(first, Codes):
                first = (states.select(keep) if isinstance(states, Codes)
                         else Codes(states.index_select(0, keep), first.sparse))
            else:
                first = first.index_select(0, keep)
            acts = [first] + [a.index_select(0, keep) for a in acts[1:]]
            gu = gu.index_select(0, keep)
    dec.backward_from_output(gu, acts)


class TVAEModel(nn.Module):
    """Decoder plus the closed-form parameters pi (H,) and sigma2 (scalar)."""

    def __init__(self, decoder: Decoder, pi: torch.Tensor, sigma2: torch.Tensor):
        super().__init__()
        self.decoder = decoder
        self.register_buffer("pi", pi)
        self.register_buffer("sigma2", sigma2)

    @property
    def H(self) -> int:
        return self.decoder.H

    def log_joint(self, Y: torch.Tensor, states: torch.Tensor, obs: torch.Tensor | None = None,
                  dobs: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-joints (B, S) and squared errors (B, S) of states (B, S, H) for data Y (B, D).

        ``Y`` holds 0 at missing entries; ``obs`` (B, D) is 1 where observed, ``dobs`` (B,)
        the observed count. Both None means fully observed.
        """
        mu = self.decoder(states)
        diff = Y.unsqueeze(1) - mu
        if obs is not None:
            diff = diff * obs.unsqueeze(1)
        err = (diff * diff).sum(-1)
        return self.lpj_from_err(states, err, Y.shape[1] if dobs is None else dobs), err

    def lpj_from_err(self, states: torch.Tensor, err: torch.Tensor,
                     dobs: torch.Tensor | int) -> torch.Tensor:
        logit = torch.log(self.pi) - torch.log1p(-self.pi)
        return self.lpj_from_prior(states @ logit, err, dobs)

    def lpj_from_prior(self, prior: torch.Tensor, err: torch.Tensor,
                       dobs: torch.Tensor | int) -> torch.Tensor:
        """Log-joints from prior = s . logit(pi) (B, S) and squared errors (B, S)."""
        pi = self.pi
        const = torch.log1p(-pi).sum()
        s2 = self.sigma2
        norm = torch.log(2 * math.pi * s2) * 0.5
        if isinstance(dobs, torch.Tensor):
            norm_term = (dobs * norm).unsqueeze(1)
        else:
            norm_term = dobs * norm
        return prior + (const - norm_term) - err / (2 * s2)

    def mean(self, states: torch.Tensor) -> torch.Tensor:
        return self.decoder(states)


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


# (patch, state) pairs per slice of the gather-subtract-square-sum pass: small enough that a
# slice's (rows, D) outputs stay in cache between those four passes (16,384 x 64 floats: 4 MB;
# ~5 % less E-step CPU than 65,536 on house-25); the numbers do not depend on it (row sums).
PAIR_ROWS = 16384


def chunked_log_joint(model: TVAEModel, Y: torch.Tensor, states: torch.Tensor,
                      obs: torch.Tensor | None, dobs: torch.Tensor | None,
                      max_rows: int, want_mean: bool = False, keys: torch.Tensor | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """log_joint of states (B, S, H) (0/1 of any dtype; None if ``keys`` are given) for data
    Y (B, D), memory-bounded.

    Each distinct state of the whole batch goes through the decoder once (in slices of at
    most ``max_rows``; first layer sparse where that pays), then its output is gathered for
    every patch holding it, ``max_rows`` (patch, state) pairs at a time. ``keys`` (B, S, nw):
    the states' packed keys, if known. Returns log-joints (B, S), squared errors (B, S) and,
    with ``want_mean``, the posterior means sum_s q(s) mu(s) (B, D) over the given states.
    """
    B, S = (states if keys is None else keys).shape[:2]
    H = model.H
    dec = model.decoder
    uk, inv = unique_keys(pack(states.reshape(B * S, H)) if keys is None
                          else keys.reshape(B * S, -1))
    inv = inv.view(B, S)
    mus, priors = [], []
    logit = torch.log(model.pi) - torch.log1p(-model.pi)
    for a in range(0, uk.shape[0], max_rows):
        c = Codes.from_keys(uk[a:a + max_rows], H)
        mus.append(dec.output(dec.hidden(c)))
        priors.append(c.matvec(logit))
    mu_u = mus[0] if len(mus) == 1 else torch.cat(mus)  # (one slice: no copy)
    prior = (priors[0] if len(priors) == 1 else torch.cat(priors))[inv]  # (B, S)
    step = max(1, min(max_rows, PAIR_ROWS) // max(S, 1))
    lpjs, errs, means = [], [], []
    for a in range(0, B, step):
        b = min(B, a + step)
        mu = mu_u.index_select(0, inv[a:b].reshape(-1)).view(b - a, S, -1)
        diff = mu - Y[a:b].unsqueeze(1) if want_mean else mu.sub_(Y[a:b].unsqueeze(1))
        if obs is not None:
            diff.mul_(obs[a:b].unsqueeze(1))
        err = diff.square_().sum(-1)
        lpj = model.lpj_from_prior(prior[a:b], err, Y.shape[1] if dobs is None else dobs[a:b])
        lpjs.append(lpj)
        errs.append(err)
        if want_mean:
            q = torch.softmax(lpj, dim=1)
            means.append(torch.bmm(q.unsqueeze(1), mu).squeeze(1))
    return torch.cat(lpjs), torch.cat(errs), (torch.cat(means) if want_mean else None)
