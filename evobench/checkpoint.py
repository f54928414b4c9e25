"""Checkpoints of long fits: the file format, the atomic write, verification, and the cell context.

A checkpoint is a folder holding two files:

- ``state-<epoch>.npz``: the arrays (numpy's npz, written and read with ``allow_pickle=False``);
- ``checkpoint.json``: the header: format version, evobench version, cell key, config hash,
  epoch, the npz file's name and its SHA-256, and the small state (scalars, trace) as JSON.

Nothing is ever unpickled. A save writes the npz under a new name first, then replaces the
header atomically (temporary file + rename), then removes the previous npz, so a reader sees the
old checkpoint or the new one, never a mix. A reader loads the header, checks format, major
version, cell key and config hash, reads the npz into memory and checks its SHA-256 before any of
it is used: a truncated, tampered or mismatching checkpoint is rejected as a whole
(:class:`BadCheckpoint`, a one-line reason) and the fit starts from scratch.

A method gets its :class:`Checkpointer` from its context (``ctx.checkpointer(ident, kind)``,
:mod:`evobench.context`), which says where to write, how often, the cell key and whether a stop
was requested (``--stop-after``, SIGTERM).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from evobench import __version__
from evobench.files import atomic_write

FORMAT = 1
HEADER = "checkpoint.json"


class BadCheckpoint(Exception):
    """A checkpoint that must not be used; the message is one line saying why."""


class Stopped(Exception):
    """A fit stopped at an epoch boundary on request (``--stop-after``, SIGTERM), after writing its
    checkpoint (if checkpointing is on): the cell resumes on the next run."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def config_hash(obj) -> str:
    """SHA-256 of canonical JSON (sorted keys, no spaces)."""
    return sha256_bytes(json.dumps(obj, sort_keys=True, separators=(",", ":"),
                                   default=str).encode())


def _major(version: str) -> str:
    return str(version).split(".")[0]


def save(folder: str | os.PathLike, *, arrays: dict[str, np.ndarray], meta: dict, epoch: int,
         cell_key: str, cfg_hash: str) -> int:
    """Write a checkpoint into ``folder`` atomically; returns the bytes written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # uncompressed: float weights barely compress, writing is faster
    blob = buffer.getvalue()
    old = None
    try:
        old = json.loads((folder / HEADER).read_text()).get("file")
    except (OSError, ValueError, AttributeError):
        pass
    name = f"state-{int(epoch)}.npz"
    if name == old:  # never overwrite the file the current header names
        name = f"state-{int(epoch)}-{os.getpid()}-{time.monotonic_ns()}.npz"
    atomic_write(folder / name, blob)
    header = {"format": FORMAT, "evobench_version": __version__, "cell_key": cell_key,
              "config_hash": cfg_hash, "epoch": int(epoch), "file": name,
              "sha256": sha256_bytes(blob), "bytes": len(blob),
              "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "meta": meta}
    atomic_write(folder / HEADER, json.dumps(header).encode())  # key order kept (trace)
    for stale in folder.glob("state-*.npz"):  # earlier states (and leftovers of crashed saves)
        if stale.name != name:
            with contextlib.suppress(OSError):
                stale.unlink()
    return len(blob)


def load(folder: str | os.PathLike, *, cell_key: str, cfg_hash: str
         ) -> tuple[dict[str, np.ndarray], dict, int] | None:
    """(arrays, meta, epoch) of a verified checkpoint in ``folder``; None if there is none.

    Raises :class:`BadCheckpoint` (one line) for anything that is present but not usable.
    """
    folder = Path(folder)
    path = folder / HEADER
    if not path.exists():
        return None
    try:
        header = json.loads(path.read_text())
        if not isinstance(header, dict):
            raise ValueError("not an object")
    except (OSError, ValueError) as exc:
        raise BadCheckpoint(f"unreadable header ({type(exc).__name__})") from None
    if header.get("format") != FORMAT:
        raise BadCheckpoint(f"format {header.get('format')!r}, this evobench reads {FORMAT}")
    if _major(header.get("evobench_version", "")) != _major(__version__):
        raise BadCheckpoint(f"written by evobench {header.get('evobench_version')!r}, this is "
                            f"{__version__} (other major version)")
    if header.get("cell_key") != cell_key:
        raise BadCheckpoint("it belongs to another cell")
    if header.get("config_hash") != cfg_hash:
        raise BadCheckpoint("it was written with another configuration or input")
    name = header.get("file")
    if not isinstance(name, str) or "/" in name or not name.endswith(".npz"):
        raise BadCheckpoint("the header names no state file")
    try:
        blob = (folder / name).read_bytes()
    except OSError:
        raise BadCheckpoint(f"its state file {name} is missing") from None
    if sha256_bytes(blob) != header.get("sha256"):
        raise BadCheckpoint(f"SHA-256 mismatch of {name} (truncated or modified)")
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, KeyError) as exc:
        raise BadCheckpoint(f"its state file does not read ({type(exc).__name__})") from None
    meta = header.get("meta")
    if not isinstance(meta, dict) or not isinstance(header.get("epoch"), int):
        raise BadCheckpoint("the header has no state")
    return arrays, meta, header["epoch"]


def remove(folder: str | os.PathLike) -> None:
    """Delete a checkpoint folder written by :func:`save` (only its own files)."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for path in [*folder.glob("state-*.npz"), *folder.glob(".state-*.tmp"), folder / HEADER,
                 *folder.glob(f".{HEADER}.*.tmp")]:
        with contextlib.suppress(OSError):
            path.unlink()
    with contextlib.suppress(OSError):
        folder.rmdir()


class Checkpointer:
    """Periodic checkpoints of one fit, its resume, and stop requests at epoch boundaries.

    Generic over the model: the fit hands over its state as a dict of numpy arrays and plain
    scalars (``get_state()``) and takes it back through ``load_state(state)``, which must check
    everything before changing anything (raise ValueError for a state that does not fit).
    ``path`` None: nothing is written or read, but a stop request still ends the fit (the cell
    then starts again from scratch on the next run). ``ident`` (with ``kind``) is hashed into
    the config hash: everything the fit's result depends on. ``ctx`` is the call's
    :class:`evobench.context.MethodContext` (stop requests, messages, the counts the harness
    reads back); methods get a checkpointer from ``ctx.checkpointer``.
    """

    def __init__(self, path, every_s: float, ident: dict, ctx, kind: str):
        self.path = None if path is None else Path(path)
        self.every_s = float(every_s)
        self.kind = kind
        self.ctx = ctx
        self.cell_key = self.ctx.cell_key
        self.hash = config_hash({"kind": kind, **ident})
        self.resumes = 0
        self.resumed_at: int | None = None
        self.last = time.monotonic()
        self.saves: list[tuple[int, float]] = []  # (bytes, seconds) per save
        if self.path is not None:
            self.ctx.checkpointing = True

    def restore(self, load_state: Callable[[dict], None]
                ) -> tuple[int, float, list[dict], dict[int, np.ndarray]] | None:
        """(epochs done, fit seconds, trace, snapshots) from a usable checkpoint, else None
        (a bad one is reported in one line and ignored: the fit starts from scratch)."""
        if self.path is None:
            return None
        try:
            got = load(self.path, cell_key=self.cell_key, cfg_hash=self.hash)
            if got is None:
                return None
            arrays, meta, epoch = got
            state = {k[len("state_"):]: v for k, v in arrays.items() if k.startswith("state_")}
            scalars, trace, fit_s = meta.get("scalars"), meta.get("trace"), meta.get("fit_s")
            if (meta.get("kind") != self.kind or not isinstance(trace, list)
                    or not isinstance(scalars, dict) or not isinstance(fit_s, int | float)
                    or any(not isinstance(t, dict) or t.get("epoch", 0) > epoch
                           for t in trace)):
                raise BadCheckpoint(f"its header does not describe a {self.kind} fit")
            state |= scalars
            snapshots = {int(k[len("snap_"):]): v for k, v in arrays.items()
                         if k.startswith("snap_")}
            try:
                load_state(state)  # checks everything before changing anything
            except (ValueError, KeyError, TypeError, RuntimeError) as exc:
                raise BadCheckpoint(f"its state does not fit: {exc}") from None
        except BadCheckpoint as exc:
            self.ctx.say(f"ignoring the checkpoint in {self.path}: {exc}; starting from scratch")
            return None
        self.resumes = int(meta.get("resumes", 0)) + 1
        self.resumed_at = epoch
        self.ctx.resumes, self.ctx.resumed_at = self.resumes, epoch
        self.ctx.say(f"resumed at epoch {epoch}")
        self.last = time.monotonic()
        return epoch, float(fit_s), trace, snapshots

    def save(self, epoch: int, fit_s: float, state: dict, trace: list[dict],
             snapshots: dict) -> None:
        t0 = time.perf_counter()
        arrays = {f"state_{k}": v for k, v in state.items() if isinstance(v, np.ndarray)}
        arrays |= {f"snap_{e}": np.asarray(img) for e, img in snapshots.items()}
        scalars = {k: v for k, v in state.items() if not isinstance(v, np.ndarray)}
        meta = {"kind": self.kind, "scalars": scalars, "fit_s": float(fit_s),
                "resumes": self.resumes, "trace": trace}
        size = save(self.path, arrays=arrays, meta=meta, epoch=epoch, cell_key=self.cell_key,
                    cfg_hash=self.hash)
        self.saves.append((size, time.perf_counter() - t0))
        self.ctx.checkpoints += 1
        self.last = time.monotonic()

    def after_epoch(self, epoch: int, epochs: int, fit_s: float, get_state: Callable[[], dict],
                    trace: list[dict], snapshots: dict | None = None) -> None:
        """Save when due (or on a stop request) and raise :class:`Stopped` on a stop request.
        Nothing happens after the last epoch (the fit is about to end)."""
        if epoch >= epochs:
            return
        stop = self.ctx.stop_requested()
        due = self.every_s > 0 and time.monotonic() - self.last >= self.every_s
        if self.path is not None and (due or stop):
            try:
                self.save(epoch, fit_s, get_state(), trace, snapshots or {})
            except OSError as exc:  # a full disk must not end the fit; say so per failed save
                self.ctx.say(f"could not write the checkpoint in {self.path}: "
                             f"{exc.strerror or exc}")
                self.last = time.monotonic()
        if stop:
            raise Stopped(f"stopped after epoch {epoch} of {epochs}"
                          + ("; checkpoint written" if self.path is not None else ""))


def input_digest(image: np.ndarray, mask: np.ndarray | None) -> str:
    """SHA-256 of an input image (shape and float64 bytes) and its mask."""
    h = hashlib.sha256()
    h.update(repr(np.shape(image)).encode())
    h.update(np.ascontiguousarray(image, dtype=np.float64).tobytes())
    if mask is not None:
        h.update(np.ascontiguousarray(mask, dtype=bool).tobytes())
    return h.hexdigest()
