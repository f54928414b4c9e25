"""Method ``self2self``: Self2Self with dropout (Quan, Chen, Pang & Ji, CVPR 2020), written from
the paper in plain torch, sized for a CPU.

Each step draws a Bernoulli mask b (keep probability ``keep``) over the observed entries,
feeds the masked image b*y together with b (an extra input channel per colour channel: plain
convolutions instead of the paper's partial convolutions) to a small encoder-decoder whose
decoder applies dropout, and minimises the squared error on the dropped entries only,
(1 - b)*(f(b*y) - y). The estimate averages the predictions of many Bernoulli-masked inputs
with dropout still active, in chunks so memory stays bounded. Missing pixels (inpainting) are
never kept in b and never a target; the estimate keeps the observed pixels exactly.

All randomness comes from torch Generators seeded by ``call.seed``: the weights (a CPU
generator), the training masks and dropout (a generator on the device, part of the state), and
the ensemble of each estimate (a fresh generator seeded by the seed and the step, so snapshots
never change the training).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from evobench.api import (
    EvobenchError,
    MethodContext,
    MethodInput,
    MethodOutput,
    input_digest,
    load_torch_state,
    run_iterations,
    torch_state,
)

KIND = "self2self"
LEVELS = 3  # down-samplings: the image side must be at least 2**LEVELS (the spec's min_size)
CHUNK_FLOATS = 2**23  # one ensemble chunk's activation tensor stays near 32 MB of float32
SLOPE = 0.1  # leaky ReLU slope (the paper's)


def _seed(*words: int) -> int:
    return int(np.random.SeedSequence([int(w) for w in words]).generate_state(1)[0])


class _Net(torch.nn.Module):
    """An encoder-decoder: full-resolution block and LEVELS max-pooled levels of ``width``
    channels, nearest up-sampling with skip connections, dropout before every decoder
    convolution (the network's random part at training and at test time)."""

    def __init__(self, channels: int, width: int, gen: torch.Generator):
        super().__init__()

        def conv(cin, cout):
            layer = torch.nn.Conv2d(cin, cout, 3, padding=1)
            bound = 1.0 / np.sqrt(cin * 9)  # torch's default (kaiming-uniform a=sqrt 5) range
            with torch.no_grad():
                layer.weight.uniform_(-bound, bound, generator=gen)
                layer.bias.uniform_(-bound, bound, generator=gen)
            return layer

        self.first = conv(2 * channels, width)
        self.enc = torch.nn.ModuleList([conv(width, width) for _ in range(LEVELS)])
        self.dec = torch.nn.ModuleList([conv(2 * width, width) for _ in range(LEVELS)])
        self.last = conv(width, channels)

    def forward(self, x, drop: float, gen: torch.Generator):
        def dropout(h):
            if drop == 0:
                return h
            keep = torch.rand(h.shape, generator=gen, device=h.device) >= drop
            return h * keep / (1.0 - drop)

        act = lambda h: F.leaky_relu(h, SLOPE)  # noqa: E731
        x = act(self.first(x))
        skips = []
        for layer in self.enc:
            skips.append(x)
            x = act(layer(F.max_pool2d(x, 2, ceil_mode=True)))
        for layer, skip in zip(self.dec, reversed(skips), strict=True):
            x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
            x = act(layer(dropout(torch.cat([x, skip], dim=1))))
        return self.last(dropout(x))


class _Fit:
    """One Self2Self fit (the :class:`evobench.api.IterativeFit` protocol)."""

    def __init__(self, call: MethodInput, *, width, keep, drop, lr, ensemble, snapshot_ensemble):
        self.device = torch.device(call.device)
        image = call.image if call.image.ndim == 3 else call.image[..., None]
        y = torch.as_tensor(image.transpose(2, 0, 1).copy(), dtype=torch.float32)
        observed = (torch.ones_like(y, dtype=torch.bool) if call.mask is None else
                    torch.as_tensor(~np.asarray(call.mask).reshape(image.shape)
                                    .transpose(2, 0, 1).copy()))
        y = torch.where(observed, y, 0.0)  # missing entries (NaN from the harness) never count
        self.offset = float(y[observed].mean())  # the network works around the observed mean
        self.image = call.image
        self.missing = None if call.mask is None else np.asarray(call.mask)
        self.y = y[None].to(self.device)
        self.observed = observed[None].to(self.device)
        self.seed = call.seed
        self.keep, self.drop, self.ensemble, self.width = keep, drop, ensemble, width
        self.snapshot_ensemble = min(snapshot_ensemble, ensemble)
        self.net = _Net(y.shape[0], width,
                        torch.Generator().manual_seed(_seed(call.seed, 0))).to(self.device)
        self.params = list(self.net.parameters())
        self.opt = torch.optim.Adam(self.params, lr=lr)
        self.gen = torch.Generator(device=self.device).manual_seed(_seed(call.seed, 1))
        self.steps = 0

    def _predict(self, y, gen):
        """Predictions for a batch of fresh Bernoulli instances of ``y`` (dropout on)."""
        b = (torch.rand(y.shape, generator=gen, device=self.device) < self.keep) & self.observed
        x = torch.cat([(y - self.offset) * b, b.float()], dim=1)
        return self.net(x, self.drop, gen) + self.offset, b

    def step(self) -> float:
        pred, b = self._predict(self.y, self.gen)
        target = self.observed & ~b  # observed but dropped: the only entries with a loss
        loss = ((pred - self.y) ** 2 * target).sum() / target.sum().clamp(min=1)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.steps += 1
        return float(loss.detach())

    def estimate(self, final: bool = False) -> np.ndarray:
        """The mean of the ensemble: ``ensemble`` members for the returned image (``final``),
        ``snapshot_ensemble`` for a snapshot."""
        return self._mean(self.ensemble if final else self.snapshot_ensemble)

    def _mean(self, members: int) -> np.ndarray:
        gen = torch.Generator(device=self.device).manual_seed(_seed(self.seed, 2, self.steps))
        h, w = self.y.shape[-2:]
        chunk = max(1, min(members, CHUNK_FLOATS // (h * w * 2 * self.width)))
        total = torch.zeros_like(self.y)
        with torch.no_grad():
            for start in range(0, members, chunk):
                n = min(chunk, members - start)
                pred, _ = self._predict(self.y.expand(n, -1, -1, -1), gen)
                total += pred.sum(dim=0, keepdim=True)
        out = (total / members)[0].permute(1, 2, 0).double().cpu().numpy()
        out = out[..., 0] if out.shape[2] == 1 else out
        return out if self.missing is None else np.where(self.missing, out, self.image)

    def state(self) -> dict:
        return torch_state(self.net, self.opt, {"train": self.gen}) | {"steps": self.steps}

    def load_state(self, state: dict) -> None:
        steps = state.get("steps")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError("the step count is missing")
        load_torch_state(self.net, self.opt, {"train": self.gen}, state)
        self.steps = steps


def run(call: MethodInput, ctx: MethodContext, *, iterations: int = 400, width: int = 32,
        keep: float = 0.7, dropout: float = 0.3, lr: float = 1e-3, ensemble: int = 32,
        snapshot_ensemble: int = 8) -> MethodOutput:
    """Self2Self on ``call`` (the module docstring says how)."""
    side = 2**LEVELS
    if min(call.image.shape[:2]) < side:
        raise EvobenchError(f"self2self needs an image of at least {side} x {side} pixels (its "
                            f"network halves the image {LEVELS} times); use a larger crop")
    if not 2 <= width <= 1024 or not 0 < keep < 1 or not 0 <= dropout < 1 or not lr > 0 \
            or ensemble < 1 or snapshot_ensemble < 1:
        raise EvobenchError("self2self: need 2 <= width <= 1024, 0 < keep < 1, 0 <= dropout < 1, "
                            "lr > 0, ensemble >= 1 and snapshot_ensemble >= 1")
    params = {"iterations": iterations, "width": width, "keep": keep, "dropout": dropout,
              "lr": lr, "ensemble": ensemble, "snapshot_ensemble": snapshot_ensemble}
    fit = _Fit(call, width=width, keep=keep, drop=dropout, lr=lr, ensemble=ensemble,
               snapshot_ensemble=snapshot_ensemble)
    ident = params | {"seed": call.seed, "device": call.device,
                      "input": input_digest(call.image, call.mask)}
    res = run_iterations(fit, ctx, iterations=iterations, kind=KIND, ident=ident,
                         device=call.device)
    extras = {"iterations": res.iterations, "stopped_by_budget": res.stopped_by_budget,
              "final_loss": res.trace[-1]["loss"] if res.trace else float("nan"),
              "ensemble": ensemble, "n_params": sum(p.numel() for p in fit.params)}
    return MethodOutput(res.image, extras=extras, time_fit_s=res.time_fit_s,
                        time_infer_s=res.time_infer_s, trace=res.trace,
                        snapshots=res.snapshots)
