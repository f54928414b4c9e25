"""Checkpoint and resume of a TVAE fit (format and mechanics: :mod:`evobench.checkpoint`).

A checkpoint is taken at an epoch boundary, after that epoch's trace row and evaluation, when
``every_s`` seconds of wall time have passed since the fit (or this segment of it) started or the
last checkpoint was written, and always when a stop is requested. It holds the trainer's state
(:meth:`Trainer.state_dict`: decoder parameters, Adam moments and step, LR-schedule step, pi,
sigma2, the bit-packed K_n, the generator state), the trace so far, the evaluation snapshots, the
elapsed fit time and the number of resumes. Continuing from it gives the same result, bit for
bit, as the uninterrupted fit on the same device with the same number of threads.

The checkpoint's config hash covers the configuration (all of it but ``budget_s``), the preset
name, the seed, the device and a SHA-256 of the input (corrupted image and mask), so a
checkpoint of another fit is never used.
"""

from __future__ import annotations

from evobench import checkpoint as ckpt
from evobench.checkpoint import input_digest
from evobench.tvae.training import Trainer

KIND = "tvae"

__all__ = ["KIND", "FitCheckpoint", "input_digest"]


class FitCheckpoint(ckpt.Checkpointer):
    """:class:`evobench.checkpoint.Checkpointer` bound to a TVAE :class:`Trainer`."""

    def restore(self, trainer: Trainer):  # type: ignore[override]
        return super().restore(trainer.load_state_dict)

    def after_epoch(self, epoch: int, epochs: int, fit_s: float,  # type: ignore[override]
                    trainer: Trainer, trace: list[dict], snapshots: dict) -> None:
        super().after_epoch(epoch, epochs, fit_s, trainer.state_dict, trace, snapshots)
