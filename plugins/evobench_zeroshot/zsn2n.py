"""Method ``zsn2n``: Zero-Shot Noise2Noise (Mansour & Heckel, CVPR 2023), written from the paper.

The noisy image y is split by two fixed stride-2 convolutions into half-resolution images
D1(y) and D2(y) (each pixel the mean of one diagonal of a 2 x 2 block: kernels
[[0, .5], [.5, 0]] and [[.5, 0], [0, .5]], per channel). Their noise is (nearly) independent
while their content is (nearly) the same, so a small network trained to map one onto the other
learns to denoise (Noise2Noise on one image). The network f predicts the noise; the denoiser is
the residual g(x) = x - f(x). Loss per step (mean squared errors)::

    residual    = 1/2 (|D1(y) - g(D2(y))|^2 + |D2(y) - g(D1(y))|^2)
    consistency = 1/2 (|g(D1(y)) - D1(g(y))|^2 + |g(D2(y)) - D2(g(y))|^2)

(the consistency term asks denoising then down-sampling to agree with the reverse). Adam, the
learning rate halved every ``lr_step`` iterations. The estimate is g(y) on the full-resolution
image (the network is fully convolutional), not clipped.

The only random draw is the initial weights (torch's default uniform bounds, 1/sqrt(fan_in)),
from a CPU generator seeded by the call's seed, so a seed gives the same initial network on
every device; run_iterations runs the steps on one CPU thread.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.nn import functional as F

from evobench.api import (
    EvobenchError,
    MethodContext,
    MethodOutput,
    input_digest,
    load_torch_state,
    run_iterations,
    torch_state,
)

KIND = "zsn2n"
LEAKY_SLOPE = 0.2
LR_DECAY = 0.5
# A step keeps about 20 float32 maps of `width` channels per full-resolution pixel (forward and
# backward through the full image and its two halves; measured 2-4 kB a pixel at width 48):
# refuse images whose step would need more than about 16 GB.
MAX_PIXELS = 2048 * 2048


def downsample(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """D1(x), D2(x): the two diagonal means of each 2 x 2 block, per channel ((1, C, H, W) ->
    (1, C, H//2, W//2); an odd last row or column is dropped)."""
    c = x.shape[1]
    k1 = x.new_tensor([[0.0, 0.5], [0.5, 0.0]]).expand(c, 1, 2, 2)
    k2 = x.new_tensor([[0.5, 0.0], [0.0, 0.5]]).expand(c, 1, 2, 2)
    return F.conv2d(x, k1, stride=2, groups=c), F.conv2d(x, k2, stride=2, groups=c)


def _network(channels: int, width: int, gen: torch.Generator) -> torch.nn.Sequential:
    """conv3x3 -> LeakyReLU -> conv3x3 -> LeakyReLU -> conv1x1 (it predicts the noise),
    initialised from ``gen`` with torch's default bounds (uniform, +-1/sqrt(fan_in))."""
    net = torch.nn.Sequential(
        torch.nn.Conv2d(channels, width, 3, padding=1),
        torch.nn.LeakyReLU(LEAKY_SLOPE),
        torch.nn.Conv2d(width, width, 3, padding=1),
        torch.nn.LeakyReLU(LEAKY_SLOPE),
        torch.nn.Conv2d(width, channels, 1),
    )
    with torch.no_grad():
        for conv in (net[0], net[2], net[4]):
            bound = 1.0 / math.sqrt(conv.weight[0].numel())
            for p in (conv.weight, conv.bias):
                p.copy_(torch.rand(p.shape, generator=gen) * (2 * bound) - bound)
    return net


class ZSN2NFit:
    """One ZS-N2N fit (the :class:`evobench.api.IterativeFit` that run_iterations drives)."""

    def __init__(self, image: np.ndarray, *, seed: int, device: str, width: int, lr: float,
                 lr_step: int):
        self.shape = image.shape
        chw = image[None] if image.ndim == 2 else image.transpose(2, 0, 1)
        self.dev = torch.device(device)
        self.y = torch.as_tensor(np.ascontiguousarray(chw), dtype=torch.float32,
                                 device=self.dev)[None]
        self.d1, self.d2 = downsample(self.y)
        self.gen = torch.Generator().manual_seed(int(seed))  # weights (drawn on the CPU)
        self.net = _network(self.y.shape[1], width, self.gen).to(self.dev)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=lr)
        self.lr, self.lr_step = lr, lr_step
        self.steps = 0

    def denoise(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.net(x)

    def step(self) -> float:
        for group in self.opt.param_groups:
            group["lr"] = self.lr * LR_DECAY ** (self.steps // self.lr_step)
        g1, g2 = self.denoise(self.d1), self.denoise(self.d2)
        residual = 0.5 * (F.mse_loss(g2, self.d1) + F.mse_loss(g1, self.d2))
        full1, full2 = downsample(self.denoise(self.y))
        consistency = 0.5 * (F.mse_loss(g1, full1) + F.mse_loss(g2, full2))
        loss = residual + consistency
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.steps += 1
        return float(loss.detach())

    @torch.no_grad()
    def estimate(self, final: bool = False) -> np.ndarray:
        out = self.denoise(self.y)[0].double().cpu().numpy()
        return out[0] if len(self.shape) == 2 else out.transpose(1, 2, 0)

    def state(self) -> dict:
        return torch_state(self.net, self.opt, {"init": self.gen}) | {"steps": self.steps}

    def load_state(self, state: dict) -> None:
        steps = state.get("steps")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError("state entry 'steps' is not a step count")
        load_torch_state(self.net, self.opt, {"init": self.gen}, state)
        self.steps = steps


def run(call, ctx: MethodContext | None = None, *, iterations: int = 500, width: int = 48,
        lr: float = 1e-3, lr_step: int = 1000) -> MethodOutput:
    """Denoise ``call.image`` by ZS-N2N (the module docstring); the spec's parameters."""
    ctx = MethodContext() if ctx is None else ctx
    if call.task != "denoise":
        raise EvobenchError("zsn2n only denoises; use another method for inpainting")
    h, w = call.image.shape[:2]
    if min(h, w) < 8:
        raise EvobenchError(f"zsn2n needs an image of at least 8 x 8 pixels (its halves are "
                            f"down-sampled by 2), got {h} x {w}; use a larger image or crop")
    if h * w > MAX_PIXELS:
        raise EvobenchError(f"zsn2n trains on the whole {h} x {w} image at once (about 4 kB a "
                            f"pixel), more than {MAX_PIXELS} pixels is refused; denoise crops")
    if not (isinstance(width, int) and width >= 1 and isinstance(lr_step, int) and lr_step >= 1
            and math.isfinite(lr) and lr > 0):
        raise EvobenchError(f"zsn2n needs width >= 1, lr > 0 and lr_step >= 1, got width="
                            f"{width!r}, lr={lr!r}, lr_step={lr_step!r}")
    fit = ZSN2NFit(call.image, seed=call.seed, device=call.device, width=width, lr=lr,
                   lr_step=lr_step)
    ident = {"iterations": iterations, "width": width, "lr": lr, "lr_step": lr_step,
             "seed": call.seed, "device": str(call.device),
             "input": input_digest(call.image, call.mask)}
    res = run_iterations(fit, ctx, iterations=iterations, kind=KIND, ident=ident,
                         device=call.device)
    extras = {"iterations": res.iterations, "stopped_by_budget": res.stopped_by_budget,
              "final_loss": res.trace[-1]["loss"] if res.trace else float("nan"),
              "lr_final": fit.opt.param_groups[0]["lr"],
              "n_weights": sum(p.numel() for p in fit.net.parameters())}
    return MethodOutput(res.image, extras=extras, time_fit_s=res.time_fit_s,
                        time_infer_s=res.time_infer_s, trace=res.trace, snapshots=res.snapshots)
