"""The TVAE generative model: Bernoulli prior, MLP decoder, Gaussian likelihood, log-joints.

log p(s, y) = s . log(pi/(1-pi)) + sum_h log(1-pi_h) - D_obs/2 log(2 pi sigma2)
              - 1/(2 sigma2) sum_{d observed} (y_d - mu_d(s))^2
Missing entries (inpainting) are left out per patch: ``obs`` masks them and ``dobs`` counts the
observed ones, so a patch's likelihood only depends on what was seen.

Binary codes are very sparse (1-2 active units of 64 or 512), so two things are exploited, both
exact in math (only the summation order changes):
- the first layer of a state s is b1 + sum of W1's columns of s's active units: a gather-sum
  over active indices (``evobench.tvae.codes.Codes``), and W1's gradient a scatter-add over
  them; the dense product is kept where the measured density makes it cheaper;
- many patches of a chunk share states (the all-zero and single-unit states are everywhere), so
  ``chunked_log_joint`` runs each distinct state of a chunk through the decoder once and
  gathers its output for every patch that holds it.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import nn

from evobench.tvae.codes import Codes
from evobench.tvae.states import pack, unique_keys

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


class LogJoint:
    """log p(s, y) of the module doc, from its terms that depend on pi and sigma2 only (computed
    once here): ``logit`` = log(pi / (1 - pi)) (H,), ``const`` = sum_h log(1 - pi_h) and
    ``half_log`` = log(2 pi sigma2) / 2. Callers give the prior s . logit (from Codes.matvec
    or a product), the squared errors and the observed counts.

    Two evaluation orders, each kept bit for bit: the E-step and the estimates add the terms
    in one go (``__call__``); the M-step adds those fixed during an epoch once per chunk
    (``fixed``), then ``- inv2s2 * err`` per mini-batch in place. They round differently, so
    they are not merged into one.
    """

    def __init__(self, pi: torch.Tensor, sigma2: torch.Tensor):
        self.logit = torch.log(pi) - torch.log1p(-pi)
        self.const = torch.log1p(-pi).sum()
        self.half_log = torch.log(2 * math.pi * sigma2) * 0.5
        self.sigma2 = sigma2

    def _norm(self, dobs: torch.Tensor | int) -> torch.Tensor:
        """D_obs log(2 pi sigma2) / 2, per patch (B, 1) for observed counts (B,), else 0-d."""
        if isinstance(dobs, torch.Tensor):
            return (dobs * self.half_log).unsqueeze(1)
        return dobs * self.half_log

    def __call__(self, prior: torch.Tensor, err: torch.Tensor,
                 dobs: torch.Tensor | int) -> torch.Tensor:
        """Log-joints (B, S) from the prior terms s . logit (B, S) and squared errors (B, S)."""
        return prior + (self.const - self._norm(dobs)) - err / (2 * self.sigma2)

    def fixed(self, prior: torch.Tensor, dobs: torch.Tensor | int) -> torch.Tensor:
        """The terms without the squared errors, (B, S); the M-step adds -inv2s2 * err."""
        return prior + self.const - self._norm(dobs)

    @functools.cached_property
    def inv2s2(self) -> float:
        """1 / (2 sigma2) as a Python float: one host sync, at the first use, none per step."""
        return 0.5 / float(self.sigma2)


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
        lj = LogJoint(self.pi, self.sigma2)
        return lj(states @ lj.logit, err, Y.shape[1] if dobs is None else dobs), err

    def mean(self, states: torch.Tensor) -> torch.Tensor:
        return self.decoder(states)


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
    lj = LogJoint(model.pi, model.sigma2)
    for a in range(0, uk.shape[0], max_rows):
        c = Codes.from_keys(uk[a:a + max_rows], H)
        mus.append(dec.output(dec.hidden(c)))
        priors.append(c.matvec(lj.logit))
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
        lpj = lj(prior[a:b], err, Y.shape[1] if dobs is None else dobs[a:b])
        lpjs.append(lpj)
        errs.append(err)
        if want_mean:
            q = torch.softmax(lpj, dim=1)
            means.append(torch.bmm(q.unsqueeze(1), mu).squeeze(1))
    return torch.cat(lpjs), torch.cat(errs), (torch.cat(means) if want_mean else None)
