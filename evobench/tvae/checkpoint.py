"""Checkpoint and resume of a TVAE fit (the file format is :mod:`evobench.checkpoint`).

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

import hashlib
import time
from pathlib import Path

import numpy as np

from evobench import checkpoint as ckpt
from evobench.tvae.training import Trainer

KIND = "tvae"


def input_digest(corrupted: np.ndarray, mask: np.ndarray | None) -> str:
    h = hashlib.sha256()
    h.update(repr(corrupted.shape).encode())
    h.update(np.ascontiguousarray(corrupted, dtype=np.float64).tobytes())
    if mask is not None:
        h.update(np.ascontiguousarray(mask, dtype=bool).tobytes())
    return h.hexdigest()


class FitCheckpoint:
    """Periodic checkpoints of one fit, its resume, and stop requests at epoch boundaries.

    ``path`` None: nothing is written or read, but a stop request still ends the fit (the cell
    then restarts from scratch on the next run).
    """

    def __init__(self, path, every_s: float, ident: dict, ctx: ckpt.CellContext | None):
        self.path = None if path is None else Path(path)
        self.every_s = float(every_s)
        self.ctx = ctx if ctx is not None else ckpt.CellContext()
        self.cell_key = self.ctx.cell_key
        self.hash = ckpt.config_hash({"kind": KIND, **ident})
        self.resumes = 0
        self.resumed_at: int | None = None
        self.last = time.monotonic()
        self.saves: list[tuple[int, float]] = []  # (bytes, seconds) per save
        if self.path is not None:
            self.ctx.checkpointing = True

    def restore(self, trainer: Trainer) -> tuple[int, float, list[dict], dict] | None:
        """(epochs done, fit seconds, trace, snapshots) from a usable checkpoint, else None
        (a bad one is reported in one line and ignored: the fit starts from scratch)."""
        if self.path is None:
            return None
        try:
            got = ckpt.load(self.path, cell_key=self.cell_key, cfg_hash=self.hash)
            if got is None:
                return None
            arrays, meta, epoch = got
            state = {k[len("state_"):]: v for k, v in arrays.items() if k.startswith("state_")}
            state["adam_t"] = meta.get("adam_t")
            state["step"] = meta.get("step")
            trace = meta.get("trace")
            fit_s = meta.get("fit_s")
            if (meta.get("kind") != KIND or not isinstance(trace, list)
                    or not isinstance(fit_s, int | float) or len(trace) != epoch):
                raise ckpt.BadCheckpoint("its header does not describe a TVAE fit")
            snapshots = {int(k[len("snap_"):]): v for k, v in arrays.items()
                         if k.startswith("snap_")}
            try:
                trainer.load_state_dict(state)  # checks everything before changing anything
            except ValueError as exc:
                raise ckpt.BadCheckpoint(str(exc)) from None
        except ckpt.BadCheckpoint as exc:
            self.ctx.say(f"ignoring the checkpoint in {self.path}: {exc}; starting from scratch")
            return None
        self.resumes = int(meta.get("resumes", 0)) + 1
        self.resumed_at = epoch
        self.ctx.resumes, self.ctx.resumed_at = self.resumes, epoch
        self.ctx.say(f"resumed at epoch {epoch}")
        self.last = time.monotonic()
        return epoch, float(fit_s), trace, snapshots

    def save(self, epoch: int, fit_s: float, trainer: Trainer, trace: list[dict],
             snapshots: dict) -> None:
        t0 = time.perf_counter()
        state = trainer.state_dict()
        arrays = {f"state_{k}": v for k, v in state.items() if isinstance(v, np.ndarray)}
        arrays |= {f"snap_{e}": np.asarray(img) for e, img in snapshots.items()}
        meta = {"kind": KIND, "adam_t": state["adam_t"], "step": state["step"],
                "fit_s": float(fit_s), "resumes": self.resumes, "trace": trace}
        size = ckpt.save(self.path, arrays=arrays, meta=meta, epoch=epoch,
                         cell_key=self.cell_key, cfg_hash=self.hash)
        self.saves.append((size, time.perf_counter() - t0))
        self.ctx.checkpoints += 1
        self.last = time.monotonic()

    def after_epoch(self, epoch: int, epochs: int, fit_s: float, trainer: Trainer,
                    trace: list[dict], snapshots: dict) -> None:
        """Save when due (or on a stop request) and raise :class:`evobench.checkpoint.Stopped`
        on a stop request. Nothing happens after the last epoch (the fit is about to end)."""
        if epoch >= epochs:
            return
        stop = self.ctx.stop_requested()
        due = self.every_s > 0 and time.monotonic() - self.last >= self.every_s
        if self.path is not None and (due or stop):
            try:
                self.save(epoch, fit_s, trainer, trace, snapshots)
            except OSError as exc:  # a full disk must not end the fit; say so once per save
                self.ctx.say(f"could not write the checkpoint in {self.path}: "
                             f"{exc.strerror or exc}")
                self.last = time.monotonic()
        if stop:
            raise ckpt.Stopped(f"stopped after epoch {epoch} of {epochs}"
                               + ("; checkpoint written" if self.path is not None else ""))
