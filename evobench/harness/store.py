"""The results store of one run folder (``<out>/<run_id>/``), schema in :mod:`evobench.schema`.

Resume works from the folder itself: each finished cell is written at once, atomically
(temporary file + rename), to ``cells/<cell_key>.json`` (its row and trace) and
``artifacts/<cell_key>.npz``. A crash or Ctrl-C therefore loses only the cells still running;
the next run of the same command finds the finished cells and skips those with status ``ok``
whose artifact is intact: each cell file records its artifact's SHA-256, and a damaged or
missing artifact (a truncated copy, a full disk) makes its cell run again.
``results.parquet`` / ``traces.parquet`` are rebuilt from the cell files of the current grid at
the end of every run (also an interrupted one), again through a temporary file and a rename, so
a failing run never leaves a half-written table behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import tempfile
import threading
from pathlib import Path

import numpy as np

from evobench import schema
from evobench.errors import EvobenchError
from evobench.files import OutsideFolderError, atomic_write, within

_THREAD_LOCK = threading.Lock()  # flock is per open file: threads of one process queue here


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    return value


class StoreWriteError(EvobenchError):
    """The run folder could not be written (disk full, file too large, permissions)."""


class RunStore:
    """Paths and atomic writes of one run folder."""

    def __init__(self, out: Path | str, run_id: str):
        from evobench.validate import path_component

        # the one place a run folder's path is made: a safe name that stays inside ``out``
        self.root = within(out, path_component("run", run_id))
        self.run_id = run_id
        self.cells_dir = self.root / "cells"
        self.artifacts_dir = self.root / "artifacts"

    SUBFOLDERS = ("cells", "artifacts", "claims", "checkpoints")

    # -- checks ----------------------------------------------------------------------------
    def check_writable(self) -> None:
        """Fail in one line (exit code 4, an OS refusal), before any work, if the run folder
        cannot be written (permission
        bits are honoured even for root, like the data cache) or one of its subfolders is a
        link leading out of it (never written through)."""
        from evobench.data import writable

        for name in self.SUBFOLDERS:
            within(self.root, name)

        if not writable(self.root) or not writable(self.root.parent):
            raise StoreWriteError(f"the output folder {self.root} is read-only; choose another "
                                  "with --out")
        try:
            self.cells_dir.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".probe-", dir=self.root)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise StoreWriteError(f"cannot write the output folder {self.root}: "
                                  f"{exc.strerror or exc}; choose another with --out") from None

    # -- cells -----------------------------------------------------------------------------
    def load_cells(self) -> dict[str, dict]:
        """cell_key -> stored record ({"row", "trace"}); unreadable files are ignored (the cell
        simply runs again)."""
        records = {}
        if not self.cells_dir.is_dir():
            return records
        for path in self.cells_dir.glob("*.json"):
            try:
                record = json.loads(path.read_text())
                records[record["row"]["cell_key"]] = record
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return records

    def cell_stamp(self, key: str) -> int | None:
        """When the cell's file last changed (ns), None if there is none: another runner on
        this folder storing a cell changes it."""
        try:
            return (self.cells_dir / f"{key}.json").stat().st_mtime_ns
        except OSError:
            return None

    def load_cell(self, key: str) -> dict | None:
        try:
            record = json.loads((self.cells_dir / f"{key}.json").read_text())
            return record if record["row"]["cell_key"] == key else None
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write_cell(self, row: dict, trace: list[dict], arrays: dict | None) -> dict:
        key = row["cell_key"]
        sha = ""
        if arrays:
            buffer = io.BytesIO()
            np.savez_compressed(buffer, **arrays)
            data = buffer.getvalue()
            self._write(self.artifacts_dir / f"{key}.npz", data)
            row["artifact"] = f"artifacts/{key}.npz"
            sha = hashlib.sha256(data).hexdigest()
        else:
            row.setdefault("artifact", "")
        record = {"row": {k: _json_safe(v) for k, v in row.items()},
                  "trace": [{k: _json_safe(v) for k, v in t.items()} for t in trace]}
        if sha:  # what resume checks the artifact against (artifact_problem)
            record["artifact_sha256"] = sha
        self._write(self.cells_dir / f"{key}.json",
                    json.dumps(record, sort_keys=True, allow_nan=False).encode())
        return record

    def artifact_problem(self, record: dict) -> str | None:
        """Why a stored cell's artifact cannot be used (missing, damaged), None when it is
        intact or the cell kept none. Checked against the SHA-256 recorded when it was
        written; a cell file from before that record is checked by reading the arrays."""
        rel = str(record["row"].get("artifact") or "")
        if not rel:
            return None
        try:
            path = within(self.root, rel)
            data = path.read_bytes()
        except EvobenchError as exc:
            return str(exc)
        except OSError as exc:
            return f"{self.root / rel} is missing ({exc.strerror or type(exc).__name__})"
        expected = record.get("artifact_sha256")
        if expected:
            if hashlib.sha256(data).hexdigest() != expected:
                return f"{path} is damaged (its SHA-256 is not the one recorded when written)"
            return None
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                for name in npz.files:
                    npz[name]
        except Exception as exc:  # noqa: BLE001 - zipfile, zlib and numpy raise several kinds
            return f"{path} is damaged ({type(exc).__name__}: {exc})"
        return None

    # -- tables ----------------------------------------------------------------------------
    def tables_stamp(self) -> str | None:
        """What ``results.parquet`` holds now (its SHA-256; None if absent): a runner takes it
        when it starts, and a different one at its end means another runner on this folder
        wrote its tables meanwhile (its cells must stay in them). The content, not the file's
        inode, size and mtime, which a rewrite within one clock tick can leave unchanged."""
        try:
            data = (self.root / "results.parquet").read_bytes()
        except OSError:
            return None
        return hashlib.sha256(data).hexdigest()

    @contextlib.contextmanager
    def _tables_lock(self):
        """An exclusive lock on ``RUN/.tables.lock`` around read-merge-write of the tables, so
        concurrent runners (and threads) never interleave there."""
        try:
            import fcntl
        except ImportError:  # no fcntl (Windows): unlocked
            yield
            return
        with _THREAD_LOCK:
            path = within(self.root, ".tables.lock")
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # releases the lock

    def write_tables(self, records: list[dict], since: str | None | bool = False) -> None:
        """``results.parquet`` and ``traces.parquet`` for these records (the current grid).

        ``since``: the :meth:`tables_stamp` taken when this run started. If the tables changed
        since then, another runner on this folder (another selection) wrote them during this
        run: its cells are kept, rebuilt from their ``cells/*.json`` files (the per-cell files
        every runner writes atomically), so two concurrent runners never lose each other's
        rows. The read-merge-write happens under a file lock."""
        try:
            with self._tables_lock():
                if since is not False and self.tables_stamp() != since:
                    records = records + self._concurrent(records)
                self._write_tables(records)
        except OSError as exc:
            raise StoreWriteError(
                f"cannot lock the tables in the run folder {self.root}: "
                f"{exc.strerror or type(exc).__name__}; the cells stored so far are kept"
            ) from None

    def _concurrent(self, records: list[dict]) -> list[dict]:
        """The records of cells listed in the current ``results.parquet`` but not in
        ``records``, as their cell files hold them now."""
        import pyarrow.parquet as pq

        try:
            keys = pq.read_table(self.root / "results.parquet",
                                 columns=["cell_key"]).column("cell_key").to_pylist()
        except (OSError, ValueError, KeyError):
            return []
        mine = {r["row"]["cell_key"] for r in records}
        extra = []
        for key in dict.fromkeys(keys):
            if key in mine or not isinstance(key, str):
                continue
            record = self.load_cell(key)
            if record is not None:
                extra.append(record)
        return extra

    def _write_tables(self, records: list[dict]) -> None:
        import pandas as pd

        self._write(self.root / "results.parquet", schema.parquet_bytes(results_frame(records)))
        traces = [{"cell_key": r["row"]["cell_key"], "method": r["row"]["method"], **t}
                  for r in records for t in r.get("trace", [])]
        frame = pd.DataFrame(traces, columns=None if traces else list(schema.TRACE_KEYS))
        frame = _uniform(frame)
        self._write(self.root / "traces.parquet", schema.parquet_bytes(frame))

    def write_json(self, name: str, data: dict) -> None:
        self._write(self.root / name, (json.dumps(data, indent=2, sort_keys=True,
                                                  default=str) + "\n").encode())

    def write_text(self, name: str, text: str) -> None:
        self._write(self.root / name, text.encode())

    def _write(self, path: Path, data: bytes) -> None:
        """``atomic_write``, with a write error (disk full, ``ulimit -f``, permissions) as one
        line naming the folder; files already written stay as they are."""
        try:
            within(self.root, path)  # a subfolder linked out of the run is never written through
            atomic_write(path, data)
        except OutsideFolderError as exc:
            raise StoreWriteError(f"{exc}; the cells stored so far are kept") from None
        except OSError as exc:
            raise StoreWriteError(
                f"cannot write {path.name} in the run folder {self.root}: "
                f"{exc.strerror or type(exc).__name__}; the cells stored so far are kept: free "
                "space (or fix the permissions) and run the same command again to resume"
            ) from None


def results_frame(records: list[dict]):
    """The tidy table: one row per cell, the schema's columns first with their dtypes, then the
    families and optional columns sorted by name, each typed consistently."""
    import pandas as pd

    rows = [dict(r["row"]) for r in records]
    frame = pd.DataFrame(rows)
    for col in schema.ROW_ORDER:
        if col not in frame.columns:
            frame[col] = "" if col in schema.STRING_COLUMNS else np.nan
    for col in schema.STRING_COLUMNS:
        frame[col] = frame[col].map(lambda v: "" if v is None or (isinstance(v, float)
                                                                  and math.isnan(v)) else str(v))
    for col in schema.INT_COLUMNS:  # int64; with gaps (a killed cell's resumes) float64
        if col not in frame.columns:
            continue
        values = pd.to_numeric(frame[col])
        frame[col] = values.astype("int64" if values.notna().all() else "float64")
    for col in schema.FLOAT_COLUMNS:
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    rest = sorted(c for c in frame.columns if c not in schema.ROW_ORDER)
    frame = frame[list(schema.ROW_ORDER) + rest]
    return _uniform(frame)


def _uniform(frame):
    """Columns whose values mix types (a parameter that is a number for one method and a word
    for another) become strings, so Parquet gets one type per column."""
    import pandas as pd

    for col in frame.columns:
        if frame[col].dtype != object:
            continue
        values = [v for v in frame[col] if v is not None and not (isinstance(v, float)
                                                                  and math.isnan(v))]
        kinds = {("num" if isinstance(v, int | float) and not isinstance(v, bool) else
                  type(v).__name__) for v in values}
        if kinds <= {"num"}:  # numbers, or nothing but missing values
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
        elif kinds == {"bool"}:
            frame[col] = frame[col].astype("boolean")
        elif len(kinds) > 1 or kinds - {"str"}:
            frame[col] = frame[col].map(lambda v: None if v is None or (
                isinstance(v, float) and math.isnan(v)) else str(v))
    return frame
