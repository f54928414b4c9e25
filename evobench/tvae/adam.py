"""Adam on one flat parameter buffer: the M-step takes ~N/batch_size tiny steps per epoch.

torch.optim.Adam (even fused) spends ~0.3 ms of Python and bookkeeping per step, more than the
step's arithmetic for a small decoder; ~2,000 steps per epoch make that a large share of an
epoch. Here every parameter (and its .grad) is a view into one contiguous buffer, so a step is
seven in-place ops on one tensor. Same update rule as torch.optim.Adam (no weight decay,
no amsgrad): m <- b1 m + (1-b1) g, v <- b2 v + (1-b2) g^2,
p <- p - lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps).
"""

from __future__ import annotations

import math

import torch


def flatten_params(params: list[torch.nn.Parameter],
                   transposed: tuple[torch.nn.Parameter, ...] = ()) -> torch.Tensor:
    """Move ``params`` into one contiguous buffer (each becomes a view of it); returns it.

    A 2-D parameter in ``transposed`` is laid out as its transpose (the view has the original
    shape, strides (1, rows)): the decoder's first layer, whose sparse forward and gradient
    work on the rows of W1^T, then needs no transposed copy per step.
    """
    ref = params[0]
    flat = torch.empty(sum(p.numel() for p in params), dtype=ref.dtype, device=ref.device)
    off = 0
    for p in params:
        k = p.numel()
        if any(p is t for t in transposed):
            view = flat[off:off + k].view(p.shape[1], p.shape[0]).t()
        else:
            view = flat[off:off + k].view_as(p)
        view.copy_(p.detach())
        p.data = view
        off += k
    return flat


def _views(buf: torch.Tensor, params: list[torch.nn.Parameter], flat: torch.Tensor
           ) -> list[torch.Tensor]:
    """Views of ``buf`` laid out like ``params`` are in ``flat``."""
    return [buf.as_strided(p.shape, p.stride(), p.storage_offset() - flat.storage_offset())
            for p in params]


class FlatAdam:
    """Adam whose parameters and gradients live in two flat buffers (views are rebound)."""

    def __init__(self, params: list[torch.nn.Parameter], betas=(0.9, 0.999), eps: float = 1e-8,
                 transposed: tuple[torch.nn.Parameter, ...] = ()):
        self.params = list(params)
        self.flat = flatten_params(self.params, transposed)
        self.grad = torch.zeros_like(self.flat)
        for p, g in zip(self.params, _views(self.grad, self.params, self.flat)):
            p.grad = g
        self.m = torch.zeros_like(self.flat)
        self.v = torch.zeros_like(self.flat)
        self.buf = torch.empty_like(self.flat)
        self.b1, self.b2 = betas
        self.eps = eps
        self.t = 0

    def step(self, lr: float) -> None:
        """One Adam update from the gradients currently in ``self.grad``."""
        self.t += 1
        b1, b2, g = self.b1, self.b2, self.grad
        self.m.lerp_(g, 1 - b1)
        self.v.mul_(b2).addcmul_(g, g, value=1 - b2)
        torch.sqrt(self.v, out=self.buf)
        self.buf.div_(math.sqrt(1 - b2**self.t)).add_(self.eps)
        self.flat.addcdiv_(self.m, self.buf, value=-lr / (1 - b1**self.t))

    def canonical(self, buf: torch.Tensor) -> torch.Tensor:
        """A flat buffer (``flat``, ``m`` or ``v``) with every parameter in its own shape's
        row-major order, whatever the layout in memory (the checkpoint format)."""
        views = _views(buf, self.params, self.flat)
        return torch.cat([v.reshape(-1) for v in views])

    def load_canonical(self, buf: torch.Tensor, values: torch.Tensor) -> None:
        """Write ``values`` in the canonical order (see ``canonical``) into ``buf``."""
        off = 0
        for v in _views(buf, self.params, self.flat):
            v.copy_(values[off:off + v.numel()].view(v.shape))
            off += v.numel()
