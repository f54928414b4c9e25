"""The results schema (``evobench.schema``) and what a run stores agree column for column, and
the report tests' synthetic runs are written in the same schema."""

from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq
from synthetic_run import make_run

from evobench import schema

DTYPES = {"str": {"object", "str", "string"}, "int": {"int64"}, "float": {"float64"}}


def _agrees(path) -> None:
    frame = pd.read_parquet(path / "results.parquet")
    fixed = list(frame.columns[:len(schema.COLUMNS)])
    assert fixed == list(schema.ROW_ORDER)  # every schema column, in the schema's order
    for column in frame.columns:
        known = schema.BY_NAME.get(column)
        if known is None:  # the rest: a documented family of per-method columns
            assert column.startswith(schema.FAMILIES), column
            continue
        dtype = known.dtype if frame[column].notna().all() or known.dtype != "int" else "float"
        assert str(frame[column].dtype) in DTYPES[dtype], (column, frame[column].dtype)
    extra = list(frame.columns[len(schema.COLUMNS):])
    assert extra == sorted(extra)
    meta = pq.read_schema(path / "results.parquet").metadata
    assert meta[schema.SCHEMA_KEY] == str(schema.SCHEMA_VERSION).encode()
    traces = pd.read_parquet(path / "traces.parquet")
    assert list(traces.columns[:len(schema.TRACE_KEYS)]) == list(schema.TRACE_KEYS)


def test_a_stored_run_agrees_with_the_schema(fakes, invoke, tmp_path):
    result = invoke("run", "--suite", "denoise", "--profile", "smoke", "-d",
                    "skimage[images=camera,crop=32]", "-m", "fake-ok", "-m", "fake-snapshots",
                    "-m", "fake-crash", "-m", "fake-needs", "--out", tmp_path, "--quiet",
                    "--run-name", "schema")
    assert result.exit_code == 3, result.output  # fake-crash fails; its row is stored
    _agrees(tmp_path / "schema")


def test_synthetic_runs_are_written_in_the_schema(tmp_path):
    _agrees(make_run(tmp_path / "synthetic", reps=1, artifacts=False,
                     failures={("bm3d", "01", 0): "timeout"}))
