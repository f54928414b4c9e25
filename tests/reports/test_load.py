import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from evobench.errors import EvobenchError
from evobench.reports.load import ALL_COLUMNS, RUN_DIR, load_artifact, load_runs, read_results


def test_reads_every_schema_column_and_the_run_folder(run_dir):
    df = read_results(run_dir)
    assert set(ALL_COLUMNS) <= set(df.columns)
    assert (df[RUN_DIR] == str(run_dir.resolve())).all()
    assert df["cell_key"].is_unique
    assert set(df["status"]) == {"ok"}
    # string columns never hold NaN, so grouping and labels are safe
    assert not df["p_deg_per"].isna().any()


def test_results_parquet_path_is_accepted(run_dir):
    assert len(read_results(run_dir / "results.parquet")) == len(read_results(run_dir))


@pytest.mark.parametrize("what", ["missing", "not_a_run"])
def test_bad_folder_is_a_one_line_error(tmp_path, what):
    target = tmp_path / "nope" if what == "missing" else tmp_path
    with pytest.raises(EvobenchError, match="results/<run_id>"):
        read_results(target)


def test_missing_required_column_is_named(tmp_path):
    (tmp_path / "r").mkdir()
    pd.DataFrame({"cell_key": ["a"], "method": ["x"]}).to_parquet(tmp_path / "r/results.parquet")
    with pytest.raises(EvobenchError, match="dataset, image, task, status, psnr"):
        read_results(tmp_path / "r")


def test_newer_schema_is_refused(tmp_path, run_dir):
    table = pq.read_table(run_dir / "results.parquet")
    meta = dict(table.schema.metadata)
    meta[b"evobench_schema"] = b"2"
    (tmp_path / "r").mkdir()
    pq.write_table(table.replace_schema_metadata(meta), tmp_path / "r/results.parquet")
    with pytest.raises(EvobenchError, match="schema 2.*upgrade"):
        read_results(tmp_path / "r")


def test_damaged_parquet_is_a_user_error(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r/results.parquet").write_bytes(b"not parquet")
    with pytest.raises(EvobenchError, match="cannot read"):
        read_results(tmp_path / "r")


def test_minimal_table_gets_defaults(tmp_path):
    (tmp_path / "r").mkdir()
    df = pd.DataFrame({"cell_key": ["a"], "dataset": ["d"], "image": ["1"], "task": ["denoise"],
                       "method": ["m"], "status": ["ok"], "psnr": [30.0]})
    pq.write_table(pa.Table.from_pandas(df), tmp_path / "r/results.parquet")
    out = read_results(tmp_path / "r")
    assert out.loc[0, "method_label"] == "m"  # falls back to the method name
    assert np.isnan(out.loc[0, "ssim"]) and out.loc[0, "artifact"] == ""


def test_several_runs_keep_the_last_cell(make):
    a = make("a", images=("01",), methods=("bm3d",), reps=1, artifacts=False)
    b = make("b", images=("01",), methods=("bm3d",), reps=1, artifacts=False,
             psnr_shift={"bm3d": 1.0})
    data = load_runs([a, b])
    ra, rb = read_results(a), read_results(b)
    assert len(data.results) == len(ra)
    assert (data.results[RUN_DIR] == str(b.resolve())).all()
    np.testing.assert_allclose(data.results["psnr"].to_numpy(), rb["psnr"].to_numpy())
    assert set(data.manifests) == {str(a.resolve()), str(b.resolve())}
    assert json.loads((a / "manifest.json").read_text())["run_id"] == "a"


def test_traces_follow_the_winning_run(make):
    a = make("a", images=("01",), methods=("tvae",), reps=1, sigmas=(25.0,), missing=())
    b = make("b", images=("01",), methods=("tvae",), reps=1, sigmas=(25.0,), missing=())
    data = load_runs([a, b])
    assert len(data.traces) == 10
    assert (data.traces[RUN_DIR] == str(b.resolve())).all()


def test_artifact_arrays(run_dir):
    data = load_runs(run_dir)
    row = data.results[data.results["method"] == "tvae"].iloc[0]
    arrays = load_artifact(row)
    assert {"clean", "corrupted", "restored", "fields", "active_hist"} <= set(arrays)
    assert arrays["fields"].ndim == 3
    no_art = data.results.iloc[0].copy()
    no_art["artifact"] = ""
    assert load_artifact(no_art) is None
