"""Issue 23, item 13: a damaged artifact of a done cell is found on resume and its cell runs
again; reports name the damaged file instead of failing with an unnamed BadZipFile."""

from __future__ import annotations

import json

import numpy as np

TINY = "skimage[images=camera,crop=32]"
RUN = ["run", "-d", TINY, "--sigma", "25", "-m", "noisy", "-m", "tv", "--quiet",
       "--run-name", "r"]


def _artifacts(run):
    return sorted((run / "artifacts").glob("*.npz"))


def test_damaged_artifact_is_named_by_figures_and_repaired_by_resume(invoke, tmp_path):
    out = tmp_path / "out"
    assert invoke(*RUN, "--out", out).exit_code == 0
    run = out / "r"
    tv = next(p for p in _artifacts(run)
              if json.loads((run / "cells" / f"{p.stem}.json").read_text())["row"]["method"] == "tv")
    record = json.loads((run / "cells" / f"{tv.stem}.json").read_text())
    assert len(record["artifact_sha256"]) == 64  # what resume checks the file against
    good = tv.read_bytes()
    tv.write_bytes(good[: len(good) // 2])  # a truncated copy

    result = invoke("figures", run, "--out", tmp_path / "fig")
    assert result.exit_code == 0, result.output
    assert "BadZipFile" not in result.output.replace(f"the artifact {tv} is damaged (BadZipFile",
                                                     "")
    assert f"the artifact {tv} is damaged" in result.output
    assert "run `evobench run` again" in result.output
    assert list((tmp_path / "fig").glob("*.png")), "the other figures must still be drawn"

    dry = invoke(*RUN, "--out", out, "--dry-run")
    assert f"{tv} is damaged" in dry.output and "1 todo" in dry.output, dry.output

    again = invoke(*[a for a in RUN if a != "--quiet"], "--out", out)  # notes are shown
    assert again.exit_code == 0, again.output
    assert "running the cell again to repair it" in again.output
    with np.load(tv) as npz:  # rewritten whole
        assert "restored" in npz.files
    assert invoke(*RUN, "--out", out, "--dry-run").output.count("done ") == 2


def test_missing_artifact_reruns_its_cell(invoke, tmp_path):
    assert invoke(*RUN, "--out", tmp_path).exit_code == 0
    for path in _artifacts(tmp_path / "r"):
        path.unlink()
    dry = invoke(*RUN, "--out", tmp_path, "--dry-run")
    assert "2 todo" in dry.output and "is missing" in dry.output, dry.output


def test_cell_file_without_hash_is_checked_by_reading(tmp_path):
    from evobench.harness.store import RunStore

    store = RunStore(tmp_path, "r")
    row = {"cell_key": "k", "status": "ok"}
    record = store.write_cell(row, [], {"a": np.arange(1000.0)})
    del record["artifact_sha256"]  # a cell stored before the hash was recorded
    assert store.artifact_problem(record) is None
    path = store.root / "artifacts" / "k.npz"
    path.write_bytes(path.read_bytes()[:40])
    assert "damaged" in store.artifact_problem(record)
