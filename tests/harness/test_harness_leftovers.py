"""Issue 23, item 14's leftovers: each test reproduces one defect a careless or hostile user
met (a dangling link, a missing table, a long name, a silent wait, an escaped error, litter
left behind, a read-only folder) and checks the one-line answer."""

from __future__ import annotations

import os

import numpy as np
import pytest

TINY = "skimage[images=camera,crop=32]"


def _one_error_line(result, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    line = result.output.strip()
    assert line.startswith("error: ") and "\n" not in line, result.output
    return line


# -- a. folder[path=DIR] ---------------------------------------------------------------------
def test_folder_names_a_dangling_link_it_leaves_out(invoke, tmp_path):
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(np.full((24, 24), 90, np.uint8)).save(folder / "a.png")
    (folder / "gone.png").symlink_to(tmp_path / "deleted.png")
    result = invoke("run", "--sigma", "25", "-m", "noisy", "--out", tmp_path / "R",
                    "-d", f"folder[path={folder}]", "--dry-run")
    assert result.exit_code == 0, result.output
    notes = [line for line in result.output.splitlines() if "gone.png" in line]
    assert len(notes) == 1 and notes[0].startswith("note: ") and "does not exist" in notes[0]
    assert "1 cells" in result.output


def test_folder_image_too_large_is_refused_before_it_is_decoded(tmp_path, monkeypatch):
    from evobench_standard.datasets import read_image
    from PIL import Image, ImageFile

    from evobench import validate
    from evobench.errors import EvobenchError

    Image.fromarray(np.zeros((300, 400), np.uint8)).save(tmp_path / "big.png")
    monkeypatch.setattr(validate, "available_memory", lambda device="cpu": 100_000)

    def no_decoding(self):
        raise AssertionError("decoded before the memory check")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(EvobenchError, match=r"^image .*big.png \(400 x 300\) needs about .* "
                       r"GiB, more than .* free in RAM; use a smaller image"):
        read_image(tmp_path / "big.png")


# -- b. a run folder without results.parquet -------------------------------------------------
def test_run_folder_missing_only_its_table_says_how_to_rebuild_it(invoke, tmp_path):
    import json

    run_args = ["run", "-d", TINY, "--sigma", "25", "-m", "noisy", "--quiet",
                "--out", tmp_path, "--run-name", "r"]
    assert invoke(*run_args).exit_code == 0
    run = tmp_path / "r"
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["command"] = ["/venv/bin/evobench", *map(str, run_args[:-1]), "my run"]
    (run / "manifest.json").write_text(json.dumps(manifest))
    (run / "results.parquet").unlink()
    for args in (["report", run, "-o", tmp_path / "rep"], ["figures", run, "-o", tmp_path / "f"],
                 ["compare", run, run], ["merge", run, "-o", tmp_path / "m"]):
        line = _one_error_line(invoke(*args))
        assert "not a run folder" not in line
        assert "without its results.parquet" in line, line
        assert "`evobench run -d 'skimage[images=camera,crop=32]'" in line
        assert "--run-name 'my run'` again" in line and "1 stored cell file(s)" in line
    assert invoke(*run_args).exit_code == 0  # the command named rebuilds the table
    assert (run / "results.parquet").is_file()


# -- c. long run names -----------------------------------------------------------------------
def test_over_long_run_name_is_refused_with_the_limit_and_its_length(invoke, tmp_path):
    line = _one_error_line(invoke("run", "-d", TINY, "-m", "noisy", "--out", tmp_path,
                                  "--run-name", "a" * 200, "--dry-run"))
    assert "200 characters long, at most 128" in line


def test_derived_run_name_is_shortened_to_fit(invoke, tmp_path):
    profile = "p" * 112
    suite = tmp_path / "s.toml"
    suite.write_text(f'[profiles.{profile}]\ndatasets = ["{TINY}"]\n'
                     'degradations = ["gaussian[sigma=25]"]\nmethods = ["noisy"]\n')
    result = invoke("run", "--suite", suite, "-m", "noisy", "--out", tmp_path, "--dry-run")
    assert result.exit_code == 0, result.output
    folder = result.output.split(" -> ")[1].splitlines()[0]
    name = os.path.basename(folder)
    assert len(name) == 128 and name.startswith(f"s-{profile}-nois-"), name


# -- d. a Dask cluster without workers -------------------------------------------------------
def test_dask_cluster_without_workers_says_it_waits(tmp_path):
    import threading
    import types

    distributed = pytest.importorskip("distributed")
    from waiting import wait_for

    from evobench.harness.executors import DaskExecutor

    lines: list[str] = []
    with distributed.LocalCluster(n_workers=0, processes=False, protocol="tcp://",
                                  host="127.0.0.1", threads_per_worker=1,
                                  dashboard_address=None) as cluster:
        executor = DaskExecutor(cluster.scheduler_address, wait_s=0.4, say=lines.append)
        payload = types.SimpleNamespace(cell=types.SimpleNamespace(key="k"))
        results = []
        thread = threading.Thread(target=lambda: results.extend(executor.run([payload], None)),
                                  daemon=True)
        thread.start()
        wait_for(lambda: len(lines) >= 2, 20, "two waiting lines")
        assert lines[0].startswith(f"waiting for Dask workers at {cluster.scheduler_address} "
                                   "(0 connected for ")
        cluster.scale(1)  # a worker joins: the cell runs (and fails: its payload is a stub)
        wait_for(lambda: not thread.is_alive(), 60, "the run to end")
        executor.close()
    assert len(results) == 1 and results[0][1].row["status"] == "error"


# -- e. a method with its own multiprocessing.Pool -------------------------------------------
POOL_PLUGIN = '''
import multiprocessing

from evobench.api import MethodOutput, MethodSpec, hookimpl


def _square(x):
    return x * x


def run_pool(call, ctx):
    with multiprocessing.Pool(2) as pool:
        assert sum(pool.map(_square, [1, 2, 3])) == 14
    return MethodOutput(call.image)


@hookimpl
def evobench_register_methods(register):
    register(MethodSpec(name="pool-user", factory="pool_plugin:run_pool", tasks={"denoise"}))
'''


def test_a_method_may_use_a_multiprocessing_pool(invoke, tmp_path, monkeypatch,
                                                 evobench_plugin):
    import importlib

    import pandas as pd

    (tmp_path / "pool_plugin.py").write_text(POOL_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    evobench_plugin(importlib.import_module("pool_plugin"), "pool-plugin")
    result = invoke("run", "-d", TINY, "--sigma", "25", "-m", "pool-user", "--quiet",
                    "--out", tmp_path, "--run-name", "r")
    row = pd.read_parquet(tmp_path / "r" / "results.parquet").iloc[0]
    assert result.exit_code == 0, row["error"]
    assert row["status"] == "ok"


# -- g. a read-only --out --------------------------------------------------------------------
def test_read_only_out_is_an_os_error_exit_4(invoke, tmp_path):
    ro, afile = tmp_path / "ro", tmp_path / "afile"
    ro.mkdir()
    afile.write_text("")
    args = ["run", "-d", TINY, "--sigma", "25", "-m", "noisy", "--quiet"]
    ro.chmod(0o500)  # evobench honours the bits even for root (evobench.data.writable)
    try:
        line = _one_error_line(invoke(*args, "--out", ro), code=4)
        assert "is read-only; choose another with --out" in line
        line = _one_error_line(invoke(*args, "--out", afile / "x"), code=4)  # fails for root too
        assert "cannot write the output folder" in line
        if os.geteuid() != 0:  # root ignores the mode when it makes a folder
            line = _one_error_line(invoke("report", tmp_path / "nope", "--out", ro / "r"), 2)
            assert "does not exist" in line  # bad input is still exit 2 ...
            (tmp_path / "run").mkdir()
            assert invoke(*args, "--out", tmp_path, "--run-name", "run").exit_code == 0
            line = _one_error_line(invoke("report", tmp_path / "run", "--out", ro / "r"), 4)
            assert "[EACCES]" in line  # ... a refused write exit 4
    finally:
        ro.chmod(0o755)
