"""Checkpoints in a run folder, and stopping a run so that it resumes (``--stop-after``, SIGTERM).

Cells that checkpoint (``tvae``) write ``RUN/checkpoints/<cell_key>/`` (format:
:mod:`evobench.checkpoint`) every ``--checkpoint-every``; a rerun of the same command hands the
same folder to the cell, which continues from it. A finished cell's folder is removed unless
``--keep-checkpoints``.

A stop (:class:`Stopper`) runs no new cell and asks the running ones to stop: it creates a stop
file in the checkpoints folder (seen at the next epoch boundary by cells running anywhere the
folder is shared, e.g. on Dask workers) and sends SIGTERM to the local cell processes. A cell
that checkpoints writes its checkpoint at the end of its current epoch and ends; any other cell
ends at once (it starts again on the next run).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

from evobench import checkpoint as ckpt
from evobench.context import MethodContext

FOLDER = "checkpoints"


def checkpoint_dir(root: Path, cell_key: str) -> Path:
    return Path(root) / FOLDER / cell_key


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


class Stopper:
    """A run's stop request, from ``--stop-after`` (a timer) or SIGTERM."""

    def __init__(self):
        self.reason: str | None = None
        self.stop_file: Path | None = None
        self._timer: threading.Timer | None = None

    @property
    def requested(self) -> bool:
        return self.reason is not None

    def attach(self, root: Path, stop_after: float | None) -> None:
        """Use ``root``'s checkpoints folder for the stop file; start the ``--stop-after``
        timer."""
        self.stop_file = Path(root) / FOLDER / f".stop-{uuid.uuid4().hex[:16]}"
        if self.requested:
            self._touch()
        if stop_after:
            self._timer = threading.Timer(stop_after, self.request, args=("--stop-after",))
            self._timer.daemon = True
            self._timer.start()

    def request(self, reason: str) -> None:
        if self.requested:
            return
        self.reason = reason
        self._touch()
        from evobench.harness import isolate

        isolate.signal_all(signal.SIGTERM)

    def _touch(self) -> None:
        if self.stop_file is not None:
            with contextlib.suppress(OSError):
                self.stop_file.parent.mkdir(parents=True, exist_ok=True)
                self.stop_file.touch()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.stop_file is not None:
            with contextlib.suppress(OSError):
                self.stop_file.unlink()
            with contextlib.suppress(OSError):
                self.stop_file.parent.rmdir()  # only if empty
