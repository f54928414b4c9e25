"""Read one or more run folders into one validated DataFrame.

Every report command goes through here so that a folder that is not a run, a store written by a
newer schema or a table lacking the columns reports need fails in one clear line, before any
figure or table is half written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from evobench import schema
from evobench.errors import EvobenchError, first_line

ALL_COLUMNS = schema.ROW_ORDER
REQUIRED_COLUMNS = schema.REQUIRED_COLUMNS
RUN_DIR = "run_dir"  # added column: absolute path of the run folder a row came from
DATASET_LABEL = "dataset_label"  # added column: dataset name, with parameters when ambiguous


@dataclass
class RunData:
    """The rows of one or more runs plus their traces and manifests."""

    results: pd.DataFrame
    traces: pd.DataFrame
    manifests: dict[str, dict]  # run folder (absolute) -> manifest.json content
    damaged: dict[str, str] = field(default_factory=dict)  # artifact file -> one-line note

    def artifact(self, row: pd.Series) -> dict[str, np.ndarray] | None:
        """The arrays stored for one result row, or None when the cell kept no artifact or it
        is damaged (noted in ``damaged``, so a figure draws the rest and the report names it)."""
        try:
            return load_artifact(row)
        except DamagedArtifactError as exc:
            self.damaged.setdefault(exc.path, str(exc))
            return None


class DamagedArtifactError(EvobenchError):
    """An artifact file exists but cannot be read (truncated, overwritten)."""

    def __init__(self, path: Path, exc: BaseException):
        self.path = str(path)
        super().__init__(f"the artifact {path} is damaged ({type(exc).__name__}: "
                         f"{first_line(exc)}); run `evobench run` again with the command that "
                         "made this run to repair it")


def run_folder(path: str | Path) -> Path:
    """The run folder for ``path`` (a folder or its ``results.parquet``), checked to exist."""
    p = Path(path)
    if p.is_file() and p.name == "results.parquet":
        p = p.parent
    if not p.exists():
        raise EvobenchError(f"run folder {str(path)!r} does not exist; pass results/<run_id>")
    if p.is_dir() and not (p / "results.parquet").exists() and (
            (p / "cells").is_dir() or (p / "manifest.json").is_file()):
        raise EvobenchError(f"{str(path)!r} is a run folder without its results.parquet; "
                            f"{_rebuild_hint(p)}")
    if not p.is_dir() or not (p / "results.parquet").is_file():
        raise EvobenchError(
            f"{str(path)!r} is not a run folder (no results.parquet); pass results/<run_id>"
        )
    return p.resolve()


def _rebuild_hint(folder: Path) -> str:
    """How to rebuild a run's tables: its own command again (finished cells are reused, and
    every run ends by writing the tables from the cell files)."""
    import shlex

    cells = len(list((folder / "cells").glob("*.json"))) if (folder / "cells").is_dir() else 0
    try:
        command = json.loads((folder / "manifest.json").read_text())["command"]
        args = [str(a) for a in command]
        start = args.index("run")
        text = "`evobench " + shlex.join(args[start:]) + "`"
    except (OSError, ValueError, KeyError, TypeError):
        text = "the `evobench run` command that made it"
    return (f"rebuild it by running {text} again (its {cells} stored cell file(s) are reused, "
            "not run again)")


def read_results(path: str | Path) -> pd.DataFrame:
    """One run's ``results.parquet``, validated and with every schema column present."""
    folder = run_folder(path)
    file = folder / "results.parquet"
    try:
        table = pq.read_table(file)
    except Exception as exc:  # pyarrow raises several types for damaged files
        raise EvobenchError(f"cannot read {file}: {first_line(exc)}") from None
    meta = table.schema.metadata or {}
    if schema.SCHEMA_KEY in meta:
        try:
            version = int(meta[schema.SCHEMA_KEY])
        except ValueError:
            raise EvobenchError(f"{file} has an unreadable schema version "
                                f"{meta[schema.SCHEMA_KEY]!r}") from None
        if version > schema.SCHEMA_VERSION:
            raise EvobenchError(
                f"{file} uses results schema {version}, newer than this evobench reads "
                f"({schema.SCHEMA_VERSION}); upgrade evobench"
            )
    df = table.to_pandas()
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise EvobenchError(
            f"{file} lacks the column(s) {', '.join(missing)}; it was not written by evobench run"
        )
    return normalise(df, folder)


def normalise(df: pd.DataFrame, folder: Path | None = None) -> pd.DataFrame:
    """Give ``df`` every schema column with a stable dtype (strings never NaN)."""
    df = df.copy()
    for col in schema.ROW_ORDER:
        if col not in df.columns:
            df[col] = "" if col in schema.STRING_COLUMNS else np.nan
    for col in schema.STRING_COLUMNS:
        df[col] = df[col].fillna("").astype(str)
    empty_label = df["method_label"] == ""
    df.loc[empty_label, "method_label"] = df.loc[empty_label, "method"]
    for col in schema.FLOAT_COLUMNS:
        df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    df["rep"] = pd.to_numeric(df["rep"], errors="coerce").fillna(0).astype(int)
    if folder is not None:
        df[RUN_DIR] = str(folder)
    elif RUN_DIR not in df.columns:
        df[RUN_DIR] = ""
    return with_dataset_label(df)


def with_dataset_label(df: pd.DataFrame) -> pd.DataFrame:
    """Add ``dataset_label``: the dataset name, plus its parameters (``skimage[crop=64]``) when
    the same dataset appears with several parameter sets, so tables never mix them."""
    params = df["dataset_params"].fillna("").astype(str) if "dataset_params" in df.columns \
        else pd.Series("", index=df.index)
    ambiguous = params.groupby(df["dataset"]).transform("nunique") > 1
    labels = df["dataset"].astype(str).copy()
    for i in np.flatnonzero(ambiguous.to_numpy()):
        labels.iat[i] = f"{labels.iat[i]}[{_compact(params.iat[i])}]"
    df[DATASET_LABEL] = labels
    return df


def _compact(params: str) -> str:
    try:
        value = json.loads(params) if params else {}
    except ValueError:
        return params
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in sorted(value.items()))
    return str(value)


def read_traces(path: str | Path) -> pd.DataFrame:
    """One run's ``traces.parquet`` (empty frame when the run kept no traces)."""
    folder = run_folder(path)
    file = folder / "traces.parquet"
    if not file.is_file():
        return pd.DataFrame(columns=[*schema.TRACE_KEYS, RUN_DIR])
    try:
        df = pd.read_parquet(file)
    except Exception as exc:
        raise EvobenchError(f"cannot read {file}: {first_line(exc)}") from None
    missing = [c for c in schema.TRACE_KEYS if c not in df.columns]
    if missing:
        raise EvobenchError(f"{file} lacks the column(s) {', '.join(missing)}")
    df[RUN_DIR] = str(folder)
    return df


def read_manifest(path: str | Path) -> dict:
    """One run's ``manifest.json`` ({} when absent; a broken file is an error)."""
    file = run_folder(path) / "manifest.json"
    if not file.is_file():
        return {}
    try:
        return json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise EvobenchError(f"cannot read {file}: {exc}") from None


def load_runs(paths, *, keep: str = "last") -> RunData:
    """Read several runs into one table; a cell present in several runs keeps the later one.

    ``keep="all"`` keeps duplicates (used by ``compare``, which reads one run per side).
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    paths = list(paths)
    if not paths:
        raise EvobenchError("no run folder given; pass at least one results/<run_id>")
    frames, traces, manifests = [], [], {}
    for p in paths:
        folder = run_folder(p)
        frames.append(read_results(folder))
        traces.append(read_traces(folder))
        manifests[str(folder)] = read_manifest(folder)
    results = pd.concat(frames, ignore_index=True)
    non_empty = [t for t in traces if len(t)]
    trace_df = pd.concat(non_empty, ignore_index=True) if non_empty else traces[0]
    if len(frames) > 1:
        results = with_dataset_label(results)
    if keep == "last" and len(frames) > 1:
        results = results.drop_duplicates("cell_key", keep="last").reset_index(drop=True)
        if len(trace_df):
            winner = dict(zip(results["cell_key"], results[RUN_DIR]))
            own = trace_df["cell_key"].map(winner) == trace_df[RUN_DIR]
            trace_df = trace_df[own].reset_index(drop=True)
    return RunData(results=results, traces=trace_df, manifests=manifests)


def load_artifact(row) -> dict[str, np.ndarray] | None:
    """The ``.npz`` arrays a result row points at; None when there is none or it is missing."""
    rel = str(row.get("artifact", "") or "")
    folder = str(row.get(RUN_DIR, "") or "")
    if not rel or not folder:
        return None
    from evobench.files import within

    try:  # a tampered row must not read files outside its run folder
        file = within(folder, rel)
    except EvobenchError:
        return None
    if not file.is_file():
        return None
    try:
        with np.load(file, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except Exception as exc:  # noqa: BLE001 - zipfile, zlib, numpy and OSError kinds
        raise DamagedArtifactError(file, exc) from None
