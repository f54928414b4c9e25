"""Checkpoints in a run folder, the cell's side: its settings, and its SIGTERM handler.

Cells that checkpoint (``tvae``) write ``RUN/checkpoints/<cell_key>/`` (format:
:mod:`evobench.checkpoint`) every ``--checkpoint-every``; a rerun of the same command hands the
same folder to the cell, which continues from it. A finished cell's folder is removed unless
``--keep-checkpoints``. A stop (``--stop-after``, SIGTERM) is the run's side:
:mod:`evobench.harness.stopper`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from evobench import checkpoint as ckpt
from evobench.context import MethodContext
from evobench.files import within

FOLDER = "checkpoints"


def checkpoint_dir(root: Path, cell_key: str) -> Path:
    """``root/checkpoints/<cell_key>``, refused in one line if it leads out of ``root``."""
    return within(root, FOLDER, cell_key)


@dataclass(frozen=True)
class CellCheckpoints:
    """A cell's checkpoint settings, as its worker receives them (``CellPayload.checkpoints``):
    the folder (None: off), the interval and the run's stop file."""

    path: str | None = None
    every_s: float = 0.0
    stop_file: str | None = None

    @classmethod
    def of(cls, root: Path, cell_key: str, every_s: float | None,
           stop_file: Path | None) -> CellCheckpoints:
        """The settings of ``cell_key`` in the run folder ``root``; ``every_s`` None or 0: off."""
        on = bool(every_s)
        return cls(str(checkpoint_dir(root, cell_key)) if on else None, float(every_s or 0.0),
                   None if stop_file is None else str(stop_file))

    def context(self, cell_key: str, **channels) -> MethodContext:
        """The worker side: the cell's :class:`evobench.context.MethodContext` (``channels``:
        its ``budget_s``, ``sink``, ``scorer``, ``notify``)."""
        return MethodContext(
            checkpoint_dir=Path(self.path) if self.path else None, checkpoint_every_s=self.every_s,
            cell_key=cell_key, stop_file=Path(self.stop_file) if self.stop_file else None,
            **channels)


def end_now(signum, frame) -> None:
    """A cell process's SIGTERM handler until its method runs: end at once."""
    os._exit(128 + signum)


def sigterm_handler(ctx: MethodContext):
    """The SIGTERM handler while a method runs with ``ctx``: a fit that checkpoints stops at
    its next epoch boundary (after writing its checkpoint); any other cell ends now."""

    def handler(signum, frame) -> None:
        if ctx.checkpointing:
            ctx.request_stop()
        else:
            end_now(signum, frame)

    return handler


def remove(root: Path, cell_key: str) -> None:
    ckpt.remove(checkpoint_dir(root, cell_key))
