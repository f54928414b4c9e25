"""Merge several run folders into one (``evobench merge``).

A long benchmark is often run in pieces (one suite per machine, a re-run of failed cells); merging
keeps the last result per cell, copies the artifacts those results point at and records the
sources in the manifest, so the merged folder is an ordinary run every report command reads.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

from evobench.errors import EvobenchError
from evobench.reports.load import DATASET_LABEL, RUN_DIR, load_runs
from evobench.schema import parquet_bytes


def write_table(df: pd.DataFrame, file: Path) -> None:
    """Write a loaded table back as a store table (:func:`evobench.schema.parquet_bytes`),
    without the columns the loader added."""
    file.write_bytes(parquet_bytes(df.drop(columns=[RUN_DIR, DATASET_LABEL], errors="ignore")))


def merge_runs(sources, out: str | Path, *, force: bool = False) -> Path:
    """Merge ``sources`` (later wins per ``cell_key``) into the new run folder ``out``."""
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not force:
        raise EvobenchError(f"{out} exists and is not empty; choose a new folder or pass --force")
    data = load_runs(sources, keep="last")
    if str(out.resolve()) in data.manifests:
        raise EvobenchError(f"{out} is one of the runs being merged; choose a new folder")
    out.mkdir(parents=True, exist_ok=True)
    results = data.results
    (out / "artifacts").mkdir(exist_ok=True)
    from evobench.files import within

    for rel, folder in zip(results["artifact"], results[RUN_DIR]):
        if not rel:
            continue
        try:  # a (tampered) row pointing outside its run is neither read nor written
            source, target = within(folder, rel), within(out, rel)
        except EvobenchError:
            continue
        if source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
    write_table(results, out / "results.parquet")
    if len(data.traces):
        write_table(data.traces, out / "traces.parquet")
    kept = results[RUN_DIR].value_counts().to_dict()
    manifest = {
        "merged": True,
        "run_id": out.name,
        "sources": [
            {
                "path": folder,
                "run_id": m.get("run_id", Path(folder).name),
                "cells_kept": int(kept.get(folder, 0)),
                "manifest": m,
            }
            for folder, m in data.manifests.items()
        ],
        "cells": len(results),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))
    sources_toml = ", ".join(json.dumps(f) for f in data.manifests)
    (out / "config.toml").write_text(f"# merged run\n[merge]\nsources = [{sources_toml}]\n")
    return out
