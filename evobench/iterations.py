"""The loop of a method that fits a network by many small steps (Deep Image Prior, Noise2Self, ...).

A method supplies an :class:`IterativeFit` (one optimisation step, the current estimate, its
state) and :func:`run_iterations` does what every such method needs from its context, the same
way for all of them:

- **budget**: with ``ctx.budget_s`` the fit stops after the step that crosses it (wall clock of
  the steps only: estimating snapshots is not fitting);
- **snapshots**: the estimate at a few iterations spaced by powers of two up to the last
  (..., N/4, N/2, N; and the step a budget stopped at), so the anytime (PSNR vs time) figure has
  a curve; the harness scores them, the method never sees the clean image and never stops on it;
- **trace**: one row per ``log_every`` steps (``epoch`` counts steps; ``loss`` is the mean over
  them), plus each snapshot step;
- **progress**: ``iteration k/N`` and the loss in the live display, and the snapshots scored;
- **checkpoints**: the context's checkpointer saves ``fit.state()`` between steps when due and
  on a stop request; a rerun continues from it bit for bit;
- **threads**: on the CPU the steps run on one torch thread, because convolution gradients are
  summed in an order that depends on the thread count (measured: 20 Adam steps of a small CNN
  differ at 1 and 2 threads), and a seed must give the same image whatever the thread count.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from evobench.context import MethodContext
from evobench.errors import EvobenchError

N_SNAPSHOTS = 6
TRACE_ROWS = 50


class IterativeFit(Protocol):
    """What :func:`run_iterations` drives."""

    def step(self) -> float:
        """One optimisation step; returns its loss."""

    def estimate(self, final: bool = False) -> np.ndarray:
        """The current restored image (shaped like the input, [0, 1] scale); ``final``: the one
        the fit returns (asked once, after the last step), on which a method may spend more
        than on a snapshot (self2self: a larger ensemble)."""

    def state(self) -> dict:
        """Everything the fit needs to continue bit for bit: numpy arrays and plain scalars
        (weights, optimiser moments, generator states, step counts)."""

    def load_state(self, state: dict) -> None:
        """Take :meth:`state`'s output back; check everything before changing anything (raise
        ValueError for a state that does not fit)."""


@dataclass
class IterationsResult:
    """The final estimate and what the fit recorded on its way."""

    image: np.ndarray
    iterations: int  # steps done (fewer than planned when the budget stopped the fit)
    time_fit_s: float
    time_infer_s: float
    stopped_by_budget: bool
    trace: list[dict] = field(default_factory=list)
    snapshots: dict[int, np.ndarray] = field(default_factory=dict)


def snapshot_steps(iterations: int, count: int = N_SNAPSHOTS) -> list[int]:
    """``count`` steps spaced by powers of two, ending at ``iterations`` (2000 -> 63, 125, 250,
    500, 1000, 2000)."""
    return sorted({max(1, round(iterations / 2**k)) for k in range(count)})


@contextlib.contextmanager
def one_cpu_thread(device: str) -> Iterator[None]:
    """torch on one intra-op thread while the block runs, on the CPU (see the module
    docstring); nothing changes on a GPU."""
    import torch

    if not str(device).startswith("cpu"):
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_iterations(fit: IterativeFit, ctx: MethodContext, *, iterations: int, kind: str,
                   ident: dict, device: str = "cpu",
                   log_every: int | None = None) -> IterationsResult:
    """Run ``fit`` for ``iterations`` steps under ``ctx`` (budget, snapshots, trace, progress,
    checkpoints; the module docstring says how). ``kind`` and ``ident`` identify the fit for
    its checkpoints: everything its result depends on (parameters, seed, device, the input's
    digest). (Six parameters: the fit, its context, its length, its identity, its device and
    the trace's spacing.)"""
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise EvobenchError(f"{kind}: iterations must be a whole number >= 1, got {iterations!r}")
    every = max(1, iterations // TRACE_ROWS) if log_every is None else int(log_every)
    planned = set(snapshot_steps(iterations))
    saver = ctx.checkpointer(ident, kind)
    loop = _Loop()
    done, fit_s, trace, snapshots = 0, 0.0, [], {}
    restored = saver.restore(lambda state: loop.load(fit, state))
    if restored is not None:
        done, fit_s, trace, snapshots = restored
    stopped = False
    with one_cpu_thread(device):  # a checkpoint is never of the last step: one step runs
        while done < iterations and not stopped:
            t0 = time.perf_counter()
            loss = float(fit.step())
            fit_s += time.perf_counter() - t0
            done += 1
            if not np.isfinite(loss):
                raise EvobenchError(f"{kind}: the loss became {loss} at iteration {done}; "
                                    "lower the learning rate")
            loop.add(loss)
            stopped = ctx.budget_s is not None and fit_s >= ctx.budget_s
            last = stopped or done == iterations
            snap = last or done in planned
            if last:  # the returned image, also the last snapshot: estimated once
                t0 = time.perf_counter()
                image = np.asarray(fit.estimate(final=True), np.float64)
                infer_s = time.perf_counter() - t0
                snapshots[done] = image.astype(np.float32)
            elif snap:
                snapshots[done] = np.asarray(fit.estimate(), np.float32)
            if snap or done % every == 0:
                trace.append({"epoch": done, "loss": loop.mean(), "seconds": fit_s})
            ctx.progress(epoch=done, epochs=iterations, unit="iteration",
                         loss=trace[-1]["loss"] if trace else loss,
                         estimate=snapshots.get(done) if snap else None)
            if not stopped and done < iterations:
                saver.after_epoch(done, iterations, fit_s, lambda: fit.state() | loop.state(),
                                  trace, snapshots)
    return IterationsResult(image, done, fit_s, infer_s, stopped, trace, snapshots)


class _Loop:
    """The running mean of the loss between trace rows (part of a checkpoint, so a resumed fit
    writes the same trace)."""

    def __init__(self):
        self.total, self.count = 0.0, 0

    def add(self, loss: float) -> None:
        self.total += loss
        self.count += 1

    def mean(self) -> float:
        value = self.total / max(self.count, 1)
        self.total, self.count = 0.0, 0
        return value

    def state(self) -> dict:
        return {"loop.loss_total": self.total, "loop.loss_count": self.count}

    def load(self, fit: IterativeFit, state: dict) -> None:
        total, count = state.pop("loop.loss_total", None), state.pop("loop.loss_count", None)
        if not isinstance(total, float) or isinstance(count, bool) or not isinstance(count, int):
            raise ValueError("the loop's loss average is missing")
        fit.load_state(state)
        self.total, self.count = total, count


def torch_state(net, opt, gens: dict) -> dict:
    """A torch fit's state between steps as numpy arrays: ``net.<name>`` (its parameters and
    buffers), ``opt.<i>.<key>`` (the optimiser's state of parameter i, e.g. Adam's step and
    moments) and ``gen.<name>`` (the generators' states). With :func:`load_torch_state`, what
    an :class:`IterativeFit`'s ``state``/``load_state`` need besides its own counters."""
    state = {f"net.{k}": v.detach().cpu().numpy().copy() for k, v in net.state_dict().items()}
    for i, p in enumerate(net.parameters()):
        for k, v in opt.state.get(p, {}).items():
            state[f"opt.{i}.{k}"] = v.detach().cpu().numpy().copy() if hasattr(v, "detach") \
                else np.asarray(v)
    state |= {f"gen.{k}": g.get_state().cpu().numpy().copy() for k, g in gens.items()}
    return state


def load_torch_state(net, opt, gens: dict, state: dict) -> None:
    """Take :func:`torch_state`'s output back into ``net``, ``opt`` and ``gens``: every entry is
    checked first (ValueError names the first that is missing or does not fit); the optimiser
    moves its state to its parameters' device itself."""
    import torch

    own = net.state_dict()
    for k, v in own.items():
        if np.shape(state.get(f"net.{k}")) != tuple(v.shape):
            raise ValueError(f"state entry 'net.{k}' is missing or does not fit this network")
    params = list(net.parameters())
    moments = {}
    for i, p in enumerate(params):
        keys = {k.split(".", 2)[2] for k in state if k.startswith(f"opt.{i}.")}
        for k in keys:
            value = np.asarray(state[f"opt.{i}.{k}"])
            if value.ndim and value.shape != tuple(p.shape):
                raise ValueError(f"state entry 'opt.{i}.{k}' does not fit this network")
        if keys:
            moments[i] = {k: torch.from_numpy(np.array(state[f"opt.{i}.{k}"])) for k in keys}
    for k, g in gens.items():
        value = state.get(f"gen.{k}")
        if getattr(value, "dtype", None) != np.uint8 or value.shape != tuple(g.get_state().shape):
            raise ValueError(f"state entry 'gen.{k}' is not a generator state")
    dev = next(iter(own.values())).device if own else torch.device("cpu")
    net.load_state_dict({k: torch.from_numpy(np.array(state[f"net.{k}"])).to(dev)
                         for k in own})
    opt_state = opt.state_dict()
    opt_state["state"] = moments
    opt.load_state_dict(opt_state)
    for k, g in gens.items():
        g.set_state(torch.from_numpy(state[f"gen.{k}"].copy()))
