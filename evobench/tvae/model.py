"""The TVAE generative model: Bernoulli prior, MLP decoder, Gaussian likelihood, log-joints.

log p(s, y) = s . log(pi/(1-pi)) + sum_h log(1-pi_h) - D_obs/2 log(2 pi sigma2)
              - 1/(2 sigma2) sum_{d observed} (y_d - mu_d(s))^2
Missing entries (inpainting) are left out per patch: ``obs`` masks them and ``dobs`` counts the
observed ones, so a patch's likelihood only depends on what was seen.
"""

from __future__ import annotations

import math

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.01)}


class Decoder(nn.Module):
    """MLP H -> hidden... -> D with a linear output layer."""

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

    def _act(self, h: torch.Tensor) -> torch.Tensor:
        return h.relu_() if self.slope == 0.0 else nn.functional.leaky_relu_(h, self.slope)

    def hidden(self, s: torch.Tensor) -> list[torch.Tensor]:
        """Inputs of every linear layer for rows s (R, H): [s, a1, ..., a_L] (no autograd)."""
        acts = [s]
        h = s
        for lin in self.linears[:-1]:
            h = self._act(torch.addmm(lin.bias, h, lin.weight.t()))
            acts.append(h)
        return acts

    def residual(self, states: torch.Tensor, Y: torch.Tensor, obs: torch.Tensor | None
                 ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(mu(s) - y) * obs as (B, S, D) for states (B, S, H), plus the layer inputs."""
        B, S, H = states.shape
        acts = self.hidden(states.reshape(B * S, H))
        last = self.linears[-1]
        o = torch.addmm(last.bias, acts[-1], last.weight.t()).view(B, S, -1)
        o.sub_(Y.unsqueeze(1))
        if obs is not None:
            o.mul_(obs.unsqueeze(1))
        return o, acts

    def backward_from_output(self, g: torch.Tensor, acts: list[torch.Tensor]) -> None:
        """Write d loss / d parameters into ``.grad`` given g = d loss / d output (R, D).

        Hand-written backprop for the MLP: far fewer tensor ops per Adam step than autograd.
        """
        for k in range(len(self.linears) - 1, -1, -1):
            lin, a = self.linears[k], acts[k]
            if lin.weight.grad is None:
                lin.weight.grad = torch.empty_like(lin.weight)
                lin.bias.grad = torch.empty_like(lin.bias)
            torch.mm(g.t(), a, out=lin.weight.grad)
            torch.sum(g, 0, out=lin.bias.grad)
            if k > 0:
                g = torch.mm(g, lin.weight)
                if self.slope == 0.0:  # relu: keep g where the unit was active (one op)
                    g = torch.ops.aten.threshold_backward(g, a, 0.0)
                else:
                    g.mul_(torch.where(a > 0, 1.0, self.slope).to(g.dtype))


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
        pi = self.pi
        logit = torch.log(pi) - torch.log1p(-pi)
        const = torch.log1p(-pi).sum()
        s2 = self.sigma2
        norm = torch.log(2 * math.pi * s2) * 0.5
        if isinstance(dobs, torch.Tensor):
            norm_term = (dobs * norm).unsqueeze(1)
        else:
            norm_term = dobs * norm
        return states @ logit + (const - norm_term) - err / (2 * s2)

    def mean(self, states: torch.Tensor) -> torch.Tensor:
        return self.decoder(states)


def chunked_log_joint(model: TVAEModel, Y: torch.Tensor, states: torch.Tensor,
                      obs: torch.Tensor | None, dobs: torch.Tensor | None,
                      max_rows: int, want_mean: bool = False
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """log_joint over (B, S, H) in slices of at most ``max_rows`` decoder rows.

    Bounds memory for any N x S. With ``want_mean`` also returns the posterior means
    sum_s q(s) mu(s) (B, D) under the truncated posterior over the given states.
    """
    B, S, _ = states.shape
    step = max(1, max_rows // max(S, 1))
    lpjs, errs, means = [], [], []
    for a in range(0, B, step):
        b = min(B, a + step)
        st = states[a:b]
        o = None if obs is None else obs[a:b]
        do = None if dobs is None else dobs[a:b]
        if want_mean:
            mu = model.decoder(st)
            diff = Y[a:b].unsqueeze(1) - mu
            if o is not None:
                diff = diff * o.unsqueeze(1)
            err = (diff * diff).sum(-1)
        else:
            r, _ = model.decoder.residual(st, Y[a:b], o)
            err = r.square_().sum(-1)
        lpj = model.lpj_from_err(st, err, Y.shape[1] if do is None else do)
        lpjs.append(lpj)
        errs.append(err)
        if want_mean:
            q = torch.softmax(lpj, dim=1)
            means.append(torch.bmm(q.unsqueeze(1), mu).squeeze(1))
    return torch.cat(lpjs), torch.cat(errs), (torch.cat(means) if want_mean else None)
