"""Method ``noise2self``: J-invariant blind-spot training on the one noisy image (Batson &
Royer, "Noise2Self: Blind Denoising by Self-Supervision", ICML 2019), written from the paper.

The pixels are split by a ``grid`` x ``grid`` lattice into grid^2 subsets J (pixel (i, j)
belongs to subset (i mod grid, j mod grid)). Each step masks one subset: its pixels' inputs are
replaced by the paper's "interpolation", the average of the eight neighbours with weights
[[.5, 1, .5], [1, 0, 1], [.5, 1, .5]] / 6 (a donut: the centre is left out, and with grid >= 2
no neighbour is itself masked), a small U-Net predicts the image, and the loss is the MSE on the
masked pixels only, so the net cannot learn the identity. The subsets are visited in a random
order per cycle (a fresh permutation of all grid^2 subsets, drawn from the seeded generator,
each time the previous one is used up).

Estimate (``estimate``): ``invariant`` is the paper's J-invariant prediction: one pass per
subset on its masked input, each pixel taken from the pass that masked it (grid^2 forward
passes, one at a time, so memory is one pass's); ``full`` is one pass on the unmasked image.

Pixels are standardised (mean 0, std 1 over the image) before the net and mapped back after.
All randomness (weights, subset order, training crops) comes from torch Generators seeded by
``call.seed``; ``run_iterations`` runs the steps (budget, snapshots, checkpoints, one thread).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from evobench.api import (
    EvobenchError,
    MethodOutput,
    input_digest,
    load_torch_state,
    run_iterations,
    torch_state,
)

LEVELS = 2  # down-samplings of the U-Net: inputs are reflect-padded to a multiple of 2**LEVELS
DONUT = ((0.5, 1.0, 0.5), (1.0, 0.0, 1.0), (0.5, 1.0, 0.5))


class UNet(nn.Module):
    """Two levels: (conv-LeakyReLU x2) at 1, 1/2 and 1/4 scale, max-pool down, nearest up with
    skip concatenation, a 1x1 linear output. Widths ``width``, 2 ``width``, 2 ``width``."""

    def __init__(self, channels: int, width: int, generator: torch.Generator):
        super().__init__()
        w = width

        def block(c_in, c_out):
            return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.LeakyReLU(0.1),
                                 nn.Conv2d(c_out, c_out, 3, padding=1), nn.LeakyReLU(0.1))

        self.enc1, self.enc2, self.mid = block(channels, w), block(w, 2 * w), block(2 * w, 2 * w)
        self.dec2, self.dec1 = block(4 * w, 2 * w), block(3 * w, w)
        self.out = nn.Conv2d(w, channels, 1)
        for m in self.modules():  # seeded initialisation (PyTorch's default scheme)
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=5 ** 0.5, generator=generator)
                bound = 1 / (m.weight[0].numel() ** 0.5)
                nn.init.uniform_(m.bias, -bound, bound, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        m = self.mid(F.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([F.interpolate(m, scale_factor=2.0), e2], 1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, scale_factor=2.0), e1], 1))
        return self.out(d1)


def _padded(net: UNet, x: torch.Tensor) -> torch.Tensor:
    """``net(x)`` for any size: reflect-pad to a multiple of 2**LEVELS, crop back."""
    k = 2 ** LEVELS
    h, w = x.shape[-2:]
    x = F.pad(x, (0, -w % k, 0, -h % k), mode="reflect")
    return net(x)[..., :h, :w]


def _donut(x: torch.Tensor) -> torch.Tensor:
    """Each pixel replaced by the weighted mean of its eight neighbours (reflect borders)."""
    c = x.shape[1]
    kernel = torch.tensor(DONUT, dtype=x.dtype, device=x.device)
    kernel = (kernel / kernel.sum()).expand(c, 1, 3, 3)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), kernel, groups=c)


def _subset(shape: tuple, grid: int, index: int, device) -> torch.Tensor:
    """The (1, 1, H, W) float mask of subset ``index`` (1 on its pixels)."""
    h, w = shape[-2:]
    a, b = divmod(int(index), grid)
    rows = (torch.arange(h, device=device) % grid == a)
    cols = (torch.arange(w, device=device) % grid == b)
    return (rows[:, None] & cols[None, :]).to(torch.float32)[None, None]


def _masked(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return x * (1 - mask) + _donut(x) * mask


class _Noise2Self:
    """The fit driven by ``run_iterations``: one masked Adam step on the image (or a crop)."""

    def __init__(self, image: np.ndarray, p: dict, seed: int, device: str):
        self.p, self.dev = p, torch.device(device)
        self.shift, self.scale = float(image.mean()), float(image.std()) or 1.0
        arr = (image - self.shift) / self.scale
        arr = arr[None] if arr.ndim == 2 else np.moveaxis(arr, -1, 0)
        self.y = torch.as_tensor(arr[None], dtype=torch.float32, device=self.dev)
        self.g_init = torch.Generator().manual_seed(int(seed))
        self.g_order = torch.Generator().manual_seed(int(seed) + 1)
        self.net = UNet(self.y.shape[1], p["width"], self.g_init).to(self.dev)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=p["lr"])
        self.order = torch.zeros(0, dtype=torch.int64)  # the current cycle of subsets
        self.steps = 0

    def _crop(self) -> torch.Tensor:
        side = self.p["crop"]
        h, w = self.y.shape[-2:]
        if side == 0 or (side >= h and side >= w):
            return self.y
        sh, sw = min(side, h), min(side, w)
        i = int(torch.randint(h - sh + 1, (1,), generator=self.g_order))
        j = int(torch.randint(w - sw + 1, (1,), generator=self.g_order))
        return self.y[..., i:i + sh, j:j + sw]

    def step(self) -> float:
        n = self.p["grid"] ** 2
        if self.steps % n == 0:
            self.order = torch.randperm(n, generator=self.g_order)
        y = self._crop()
        mask = _subset(y.shape, self.p["grid"], self.order[self.steps % n], self.dev)
        out = _padded(self.net, _masked(y, mask))
        loss = (((out - y) * mask) ** 2).sum() / (mask.sum() * y.shape[1])
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.steps += 1
        return float(loss.detach()) * self.scale ** 2  # on the [0, 1] scale

    @torch.no_grad()
    def estimate(self, final: bool = False) -> np.ndarray:
        self.net.eval()
        if self.p["estimate"] == "full":
            out = _padded(self.net, self.y)
        else:
            out = torch.zeros_like(self.y)
            for index in range(self.p["grid"] ** 2):  # one pass per subset: bounded memory
                mask = _subset(self.y.shape, self.p["grid"], index, self.dev)
                out += _padded(self.net, _masked(self.y, mask)) * mask
        self.net.train()
        img = out[0].double().cpu().numpy() * self.scale + self.shift
        return img[0] if img.shape[0] == 1 else np.moveaxis(img, 0, -1)

    def state(self) -> dict:
        return torch_state(self.net, self.opt, self._gens()) | {
            "order": self.order.numpy().copy(), "steps": self.steps}

    def load_state(self, state: dict) -> None:
        if not isinstance(state.get("order"), np.ndarray):
            raise ValueError("state entry 'order' is missing")
        steps = state.get("steps")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError("state entry 'steps' is not a step count")
        load_torch_state(self.net, self.opt, self._gens(), state)
        self.order = torch.from_numpy(state["order"].copy()).to(torch.int64)
        self.steps = steps

    def _gens(self) -> dict:
        return {"init": self.g_init, "order": self.g_order}


def _checked(shape: tuple, p: dict) -> None:
    """One line for parameters the image cannot take (the spec checks each one's range)."""
    need = max(2 * p["grid"], 2 ** LEVELS)
    if min(shape[:2]) < need:
        raise EvobenchError(f"noise2self: the image is {shape[0]} x {shape[1]} pixels, smaller "
                            f"than the {need} x {need} that grid={p['grid']} needs; use a "
                            "larger image or a smaller grid")
    if p["crop"] and p["crop"] < need:
        raise EvobenchError(f"noise2self: crop={p['crop']} is smaller than {need} (two grid "
                            "cells a side); use crop=0 (the whole image) or a larger crop")


def run(call, ctx, **params) -> MethodOutput:
    """The evobench method contract (denoising, gray or RGB)."""
    from evobench_zeroshot import NOISE2SELF

    if call.task != "denoise":
        raise EvobenchError("noise2self denoises only; use task='denoise'")
    p = {q.name: q.default for q in NOISE2SELF.params} | params
    _checked(call.image.shape, p)
    fit = _Noise2Self(call.image, p, call.seed, call.device)
    ident = {"params": p, "seed": int(call.seed), "device": str(call.device),
             "input": input_digest(call.image, call.mask)}
    res = run_iterations(fit, ctx, iterations=p["iterations"], kind="noise2self", ident=ident,
                         device=call.device)
    extras = {"iterations": res.iterations, "stopped_by_budget": res.stopped_by_budget,
              "final_loss": res.trace[-1]["loss"] if res.trace else float("nan"),
              "subsets": p["grid"] ** 2,
              "n_weights": sum(q.numel() for q in fit.net.parameters())}
    return MethodOutput(res.image, extras=extras, time_fit_s=res.time_fit_s,
                        time_infer_s=res.time_infer_s, trace=res.trace,
                        snapshots=res.snapshots)
