"""A test helper for checkpointed fits: stop a fit (as --stop-after or SIGTERM would) once it
has finished a given epoch, whatever method's checkpointer runs it."""

from __future__ import annotations

from contextlib import contextmanager

from evobench import checkpoint as ckpt


@contextmanager
def stop_at_epoch(state: dict):
    """While active, every fit requests a stop after epoch ``state["n"]`` (None: never); the
    checkpointer then writes its checkpoint and ends the fit with ``ckpt.Stopped``. Patches the
    shared :meth:`Checkpointer.after_epoch`, which every method's checkpointer goes through."""
    original = ckpt.Checkpointer.after_epoch

    def patched(self, epoch, *args, **kwargs):
        if state.get("n") is not None and epoch >= state["n"]:
            ckpt.request_stop()
        try:
            return original(self, epoch, *args, **kwargs)
        finally:
            ckpt._STOP.clear()

    ckpt.Checkpointer.after_epoch = patched
    try:
        yield state
    finally:
        ckpt.Checkpointer.after_epoch = original
