"""Deep Image Prior (Ulyanov, Vedaldi & Lempitsky, CVPR 2018; IJCV 2020), written from the paper.

A randomly initialised encoder-decoder f maps a fixed random tensor z to an image and is fitted
to the one corrupted image y: min_theta |m * (f(z) - y)|^2 with m the observed entries (all of
them when denoising). The architecture is the prior: the network reproduces structure long
before it reproduces noise, so the fit is stopped at a fixed iteration count (no clean image).

Network (the paper's "skip" hourglass): per level, a down path (3x3 conv with stride 2, 3x3
conv), a skip path (1x1 conv to ``skip`` channels) and an up path (BatchNorm of the
concatenated skip and up-sampled deeper features, 3x3 conv, 1x1 conv); every conv is followed
by BatchNorm and LeakyReLU(0.2); reflection padding; a 1x1 conv and a sigmoid give the image.
Each step feeds z plus fresh Gaussian noise of std ``reg_noise`` (the paper's input
perturbation) and takes one Adam step. The estimate is the exponential moving average
(``ema``) of the network outputs, as the paper does for denoising; observed entries are kept
exactly when inpainting. Weights, z and the perturbations come from torch Generators seeded by
the call's seed.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from evobench.api import (
    EvobenchError,
    MethodOutput,
    input_digest,
    load_torch_state,
    run_iterations,
    torch_state,
)
from evobench_zeroshot import DIP as SPEC


class _Conv(nn.Module):
    """k x k convolution with reflection padding, then BatchNorm and LeakyReLU(0.2)."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1):
        super().__init__()
        self.pad = k // 2
        self.conv = nn.Conv2d(cin, cout, k, stride=stride)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad:  # the smallest map is 2 x 2 (run() checks the image size)
            x = F.pad(x, (self.pad,) * 4, mode="reflect")
        return F.leaky_relu(self.bn(self.conv(x)), 0.2)


class _Level(nn.Module):
    """One level of the hourglass: skip path, down path, the deeper levels, up path."""

    def __init__(self, cin: int, width: int, skip: int, deeper: nn.Module | None,
                 upsample: str):
        super().__init__()
        self.skip = _Conv(cin, skip, 1) if skip else None
        self.down = nn.Sequential(_Conv(cin, width, 3, stride=2), _Conv(width, width, 3))
        self.deeper, self.upsample = deeper, upsample
        self.bn = nn.BatchNorm2d(skip + width)
        self.up = nn.Sequential(_Conv(skip + width, width, 3), _Conv(width, width, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.down(x)
        if self.deeper is not None:
            d = self.deeper(d)
        extra = {"align_corners": False} if self.upsample == "bilinear" else {}
        d = F.interpolate(d, size=x.shape[-2:], mode=self.upsample, **extra)
        if self.skip is not None:
            d = torch.cat([self.skip(x), d], dim=1)
        return self.up(self.bn(d))


def _network(s: SimpleNamespace, channels: int, gen: torch.Generator) -> nn.Module:
    """The hourglass with its weights drawn from ``gen`` (torch's default initialisation,
    seeded; the global RNG is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        level = None
        for i in reversed(range(s.levels)):
            level = _Level(s.input_depth if i == 0 else s.width, s.width, s.skip, level,
                           s.upsample)
        net = nn.Sequential(level, nn.Conv2d(s.width, channels, 1), nn.Sigmoid())
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=gen)
            bound = 1 / math.sqrt(m.weight[0].numel())
            nn.init.uniform_(m.bias, -bound, bound, generator=gen)
    return net


class _DIPFit:
    """One image's DIP fit, driven by ``evobench.api.run_iterations``."""

    def __init__(self, call, s: SimpleNamespace):
        self.s, self.dev = s, torch.device(call.device)
        img = call.image if call.image.ndim == 3 else call.image[..., None]
        self.image = call.image
        self.observed = None if call.mask is None else ~call.mask
        obs = np.ones(img.shape, bool) if call.mask is None else ~call.mask.reshape(img.shape)
        to_t = lambda a: torch.as_tensor(  # noqa: E731 - H x W x C -> 1 x C x H x W float32
            np.moveaxis(a, -1, 0)[None].copy(), dtype=torch.float32, device=self.dev)
        self.y = to_t(np.where(obs, img, 0.0))
        self.obs = to_t(obs.astype(np.float64))
        self.n_obs = float(obs.sum())
        g_cpu = torch.Generator().manual_seed(call.seed)
        self.net = _network(s, img.shape[2], g_cpu).to(self.dev)
        # z ~ U(0, 1) / 10 (the paper's input), drawn on the CPU: the same z on any device
        self.z = (torch.rand((1, s.input_depth, *img.shape[:2]), generator=g_cpu) / 10).to(
            self.dev)
        self.gens = {"cpu": g_cpu,
                     "dev": torch.Generator(device=self.dev).manual_seed(call.seed + 1)}
        self.opt = torch.optim.Adam(self.net.parameters(), lr=s.lr)
        self.ema = torch.zeros_like(self.y)
        self.last = torch.zeros_like(self.y)
        self.steps = 0

    def step(self) -> float:
        inp = self.z
        if self.s.reg_noise > 0:
            inp = inp + self.s.reg_noise * torch.randn(
                self.z.shape, generator=self.gens["dev"], device=self.dev)
        out = self.net(inp)
        loss = (((out - self.y) * self.obs) ** 2).sum() / self.n_obs
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        with torch.no_grad():
            self.last = out.detach()
            w = self.s.ema if self.steps else 0.0  # the average starts at the first output
            self.ema = w * self.ema + (1 - w) * self.last
        self.steps += 1
        return float(loss.detach())

    def estimate(self, final: bool = False) -> np.ndarray:
        out = self.ema if self.s.ema > 0 else self.last
        est = np.moveaxis(out[0].double().cpu().numpy(), 0, -1)
        est = est[..., 0] if self.image.ndim == 2 else est
        return est if self.observed is None else np.where(self.observed, self.image, est)

    def state(self) -> dict:
        return torch_state(self.net, self.opt, self.gens) | {
            "ema": self.ema.cpu().numpy().copy(), "last": self.last.cpu().numpy().copy(),
            "steps": self.steps}

    def load_state(self, state: dict) -> None:
        for key in ("ema", "last"):
            if np.shape(state.get(key)) != tuple(self.y.shape):
                raise ValueError(f"state entry {key!r} is missing or does not fit")
        steps = state.get("steps")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError("state entry 'steps' is not a step count")
        load_torch_state(self.net, self.opt, self.gens, state)
        self.ema = torch.from_numpy(np.array(state["ema"])).to(self.dev)
        self.last = torch.from_numpy(np.array(state["last"])).to(self.dev)
        self.steps = steps


def _settings(params: dict) -> SimpleNamespace:
    """The spec's parameters (defaults for those left out or None), with the checks a range
    cannot express."""
    given = {k: v for k, v in params.items() if v is not None}
    s = SimpleNamespace(**({p.name: p.default for p in SPEC.params} | given))
    if not 0 <= s.ema < 1:
        raise EvobenchError(f"dip: ema must be in [0, 1) (0 = no averaging), got {s.ema}")
    return s


def run(call, ctx, **params) -> MethodOutput:
    """The evobench method contract: fit the hourglass to ``call.image`` for ``iterations``
    Adam steps (or until ``ctx.budget_s``) and return the moving-average estimate."""
    s = _settings(params)
    need = 2 ** (s.levels + 1)
    if min(call.image.shape[:2]) < need:
        raise EvobenchError(
            f"dip with levels={s.levels} needs an image of at least {need} x {need} pixels "
            f"(the deepest map must be 2 x 2), got {call.image.shape[0]} x "
            f"{call.image.shape[1]}; use a larger image or fewer levels")
    fit = _DIPFit(call, s)
    ident = {"params": vars(s), "seed": int(call.seed), "device": str(fit.dev),
             "input": input_digest(call.image, call.mask)}
    res = run_iterations(fit, ctx, iterations=s.iterations, kind="dip", ident=ident,
                         device=call.device)
    extras = {"iterations": res.iterations, "stopped_by_budget": res.stopped_by_budget,
              "final_loss": res.trace[-1]["loss"] if res.trace else float("nan"),
              "n_weights": sum(p.numel() for p in fit.net.parameters())}
    return MethodOutput(res.image, extras=extras, time_fit_s=res.time_fit_s,
                        time_infer_s=res.time_infer_s, trace=res.trace, snapshots=res.snapshots)
