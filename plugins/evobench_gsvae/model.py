"""The amortized binary-latent VAE trained with the binary-concrete (Gumbel-softmax) relaxation.

Generative model = TVAE's family, so the comparison is like for like: s in {0,1}^H with one
Bernoulli prior pi_h per latent, an MLP decoder (ReLU / LeakyReLU hidden layers, linear output)
and a Gaussian likelihood with one learned variance sigma^2 shared by all pixels. Only the
inference differs: an MLP encoder (the decoder's layers mirrored) outputs Bernoulli logits of
q(s|y), trained through relaxed samples at temperature tau, with the Bernoulli KL in closed form.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

# the hidden-layer activations of TVAE's decoder, so the two models compare like for like
ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.01)}


def _mlp(sizes: list[int], activation: str, generator: torch.Generator) -> nn.Sequential:
    """Linear layers with ``activation`` between them and a linear output; Xavier-normal weights,
    zero biases (TVAE's initialisation), drawn from ``generator`` so the seed decides them."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        lin = nn.Linear(n_in, n_out)
        nn.init.xavier_normal_(lin.weight, generator=generator)
        nn.init.zeros_(lin.bias)
        layers.append(lin)
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class GSVAE(nn.Module):
    """Encoder q(s|y) (independent Bernoulli), decoder mu(s), prior logits, log sigma^2.

    With ``masked=True`` the encoder sees the zero-filled patch and the observation mask (2D
    inputs), so it can tell a missing entry from an observed zero.
    """

    def __init__(self, D: int, H: int, hidden: tuple[int, ...], *, activation: str = "relu",
                 masked: bool = False, sigma2_init: float = 1.0, pi_init: float = 0.5,
                 generator: torch.Generator):
        """(Nine parameters: the sizes and the initial values of the generative model, which
        TVAE's decoder shares, and the generator that draws the weights.)"""
        super().__init__()
        self.D, self.H, self.masked = D, H, masked
        self.decoder = _mlp([H, *hidden, D], activation, generator)
        self.encoder = _mlp([2 * D if masked else D, *reversed(hidden), H], activation, generator)
        self.prior_logit = nn.Parameter(torch.full((H,), math.log(pi_init / (1 - pi_init))))
        self.log_sigma2 = nn.Parameter(torch.tensor(math.log(sigma2_init)))

    def encode(self, y: torch.Tensor, obs: torch.Tensor | None) -> torch.Tensor:
        """Bernoulli logits of q(s|y); ``y`` must already be zero at missing entries."""
        return self.encoder(torch.cat([y, obs], dim=1) if self.masked else y)

    def decode(self, s: torch.Tensor) -> torch.Tensor:
        return self.decoder(s)

    @property
    def pi(self) -> torch.Tensor:
        return torch.sigmoid(self.prior_logit)

    def kl(self, logits: torch.Tensor) -> torch.Tensor:
        """KL(q || p) of independent Bernoullis, per patch, from logits (stable log-sigmoids)."""
        q = torch.sigmoid(logits)
        log_q1, log_q0 = F.logsigmoid(logits), F.logsigmoid(-logits)
        log_p1, log_p0 = F.logsigmoid(self.prior_logit), F.logsigmoid(-self.prior_logit)
        return (q * (log_q1 - log_p1) + (1 - q) * (log_q0 - log_p0)).sum(dim=1)

    def neg_log_lik(self, y: torch.Tensor, mu: torch.Tensor, obs: torch.Tensor | None):
        """-log N(y; mu, sigma^2 I) over the observed entries only, per patch."""
        sq = (y - mu) ** 2
        if obs is not None:
            sq, d_obs = sq * obs, obs.sum(dim=1)
        else:
            d_obs = torch.full(sq.shape[:1], float(sq.shape[1]), device=sq.device, dtype=sq.dtype)
        return 0.5 * sq.sum(dim=1) / self.log_sigma2.exp() + 0.5 * d_obs * (
            math.log(2 * math.pi) + self.log_sigma2
        )

    def neg_elbo(self, y: torch.Tensor, obs: torch.Tensor | None, tau: float,
                 generator: torch.Generator) -> torch.Tensor:
        """Relaxed negative ELBO per patch: one binary-concrete sample at temperature ``tau``."""
        logits = self.encode(y, obs)
        u = torch.rand(logits.shape, generator=generator, device=logits.device,
                       dtype=logits.dtype).clamp_(1e-6, 1 - 1e-6)
        z = torch.sigmoid((logits + torch.log(u) - torch.log1p(-u)) / tau)
        return self.neg_log_lik(y, self.decode(z), obs) + self.kl(logits)


def poisson_binomial_hist(q: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    """Sum over rows of the exact distribution of |s| for s_h ~ Bernoulli(q[n, h]) independent.

    Entry k of the result = expected number of rows (patches) with exactly k active units. A DP
    over latents, vectorised over rows (O(N H^2 / 2) multiply-adds, in float64, chunked by rows).
    """
    n, H = q.shape
    total = torch.zeros(H + 1, dtype=torch.float64, device=q.device)
    for start in range(0, n, chunk):
        qc = q[start:start + chunk].to(torch.float64)
        dist = torch.zeros(qc.shape[0], H + 1, dtype=torch.float64, device=q.device)
        dist[:, 0] = 1.0
        for h in range(H):
            qh = qc[:, h:h + 1]
            head = dist[:, :h + 1].clone()
            dist[:, :h + 1] *= 1 - qh
            dist[:, 1:h + 2] += head * qh
        total += dist.sum(dim=0)
    return total
