"""Test helpers for learned methods: call a method function directly (the checked input and a
context, as ``evobench.api.run_spec`` would), and stop a fit (as --stop-after or SIGTERM would)
once it has finished a given epoch, whatever method's checkpointer runs it."""

from __future__ import annotations

from contextlib import contextmanager

from evobench import checkpoint as ckpt
from evobench import inputs
from evobench.context import MethodContext


def run_direct(fn, image, *, task, sigma=None, mask=None, seed=0, device="cpu", ctx=None,
               budget_s=None, **params):
    """``fn(call, ctx, **params)`` with the input checked and a default context (or ``ctx``;
    ``budget_s`` sets a fresh context's budget)."""
    call = inputs.check(image, task=task, mask=mask, sigma=sigma, seed=seed, device=device)
    return fn(call, ctx if ctx is not None else MethodContext(budget_s=budget_s), **params)


@contextmanager
def stop_at_epoch(state: dict):
    """While active, every fit requests a stop after epoch ``state["n"]`` (None: never); the
    checkpointer then writes its checkpoint and ends the fit with ``ckpt.Stopped``. Patches the
    shared :meth:`Checkpointer.after_epoch`, which every method's checkpointer goes through."""
    original = ckpt.Checkpointer.after_epoch

    def patched(self, epoch, *args, **kwargs):
        if state.get("n") is not None and epoch >= state["n"]:
            self.ctx.request_stop()
        try:
            return original(self, epoch, *args, **kwargs)
        finally:
            self.ctx.clear_stop()

    ckpt.Checkpointer.after_epoch = patched
    try:
        yield state
    finally:
        ckpt.Checkpointer.after_epoch = original
