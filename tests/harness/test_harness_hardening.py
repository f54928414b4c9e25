"""Issue 9: bad input, faults and hostile names found by probing ``evobench run``; each test
reproduces one defect and checks the one-line answer (and that nothing stored is lost)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

TINY = "skimage[images=camera,crop=32]"
BASE = ["run", "-d", TINY, "--sigma", "25", "-m", "noisy", "--no-save-images", "--quiet",
        "--run-name", "base"]


def _one_error_line(result, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    line = result.output.strip()
    assert line.startswith("error: ") and "\n" not in line, result.output
    return line


def _suite(tmp_path: Path, text: str, name: str = "s.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


GRID = f'''
datasets = ["{TINY}"]
degradations = ["gaussian[sigma=25]"]
methods = ["noisy"]
'''


# -- 1. path escape --------------------------------------------------------------------------
def test_profile_name_cannot_escape_out(invoke, tmp_path):
    out = tmp_path / "deep" / "R"
    suite = _suite(tmp_path, f'[profiles."x/../../../../escaped"]\n{GRID}')
    line = _one_error_line(invoke("run", "--suite", suite, "--out", out, "--dry-run"))
    assert "profile name 'x/../../../../escaped'" in line
    result = invoke("run", "--suite", suite, "--out", out)
    _one_error_line(result)
    assert not any(p.name == "escaped" for p in tmp_path.rglob("*")), "a folder escaped --out"


@pytest.mark.parametrize("name", ["../x", "a/b", "..", "/abs", "x" * 200, "sp ace"])
def test_run_folder_names_are_one_safe_component(name, tmp_path):
    from evobench.errors import EvobenchError
    from evobench.harness.store import RunStore

    with pytest.raises(EvobenchError, match="cannot be used as a folder"):
        RunStore(tmp_path, name)


def test_run_folder_symlinked_out_of_out_is_refused(invoke, tmp_path):
    (tmp_path / "R").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "R" / "r").symlink_to(tmp_path / "elsewhere")
    line = _one_error_line(invoke(*BASE, "--out", tmp_path / "R", "--run-name", "r"))
    assert "outside" in line
    assert not any((tmp_path / "elsewhere").iterdir())


def test_artifact_paths_of_stored_rows_stay_in_the_run(tmp_path):
    from evobench.reports.load import RUN_DIR, load_artifact

    secret = tmp_path / "secret.npz"
    np.savez(secret, a=np.ones(2))
    run = tmp_path / "run"
    run.mkdir()
    for rel in ("../secret.npz", str(secret)):
        assert load_artifact({"artifact": rel, RUN_DIR: str(run)}) is None


# -- 4. write errors -------------------------------------------------------------------------
def test_write_error_is_one_line_and_keeps_stored_cells(invoke, tmp_path, monkeypatch):
    from evobench.harness import store

    args = ["run", "-d", "skimage[images=camera,coins,crop=32]", "--sigma", "25", "-m", "noisy",
            "-m", "tv", "--out", tmp_path, "--run-name", "r", "--quiet"]
    real, calls = store.atomic_write, []

    def failing(path, data):
        if path.parent.name == "cells":
            calls.append(path)
            if len(calls) > 2:  # two cells are stored, then the disk is full
                raise OSError(errno.EFBIG, "File too large")
        return real(path, data)

    monkeypatch.setattr(store, "atomic_write", failing)
    result = invoke(*args)
    line = _one_error_line(result, code=4)
    assert "File too large" in line and str(tmp_path / "r") in line
    kept = list((tmp_path / "r" / "cells").glob("*.json"))
    assert len(kept) == 2
    monkeypatch.setattr(store, "atomic_write", real)
    again = invoke(*args)  # the disk has room again: the rest runs, the two stored are reused
    assert again.exit_code == 0, again.output
    assert len(pd.read_parquet(tmp_path / "r" / "results.parquet")) == 4


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_FSIZE semantics")
def test_ulimit_f_gives_one_line_and_exit_4(tmp_path):
    """The probe as found: ``ulimit -f 40`` (40 KiB files) while the run stores its cells."""
    import resource

    limit = 40 * 1024

    def cap():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = subprocess.run(
        [sys.executable, "-m", "evobench", "run", "-d", "skimage[images=camera,crop=128]",
         "--sigma", "25", "-m", "noisy", "--out", str(tmp_path), "--run-name", "r", "--quiet"],
        capture_output=True, text=True, preexec_fn=cap, timeout=300, cwd=tmp_path)
    assert proc.returncode == 4, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "File too large" in proc.stderr and str(tmp_path / "r") in proc.stderr


# -- 5. seeds --------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", ["99999999999999999999999", "9223372036854775808", "-1"])
def test_seed_out_of_int64_is_rejected(invoke, tmp_path, seed):
    line = _one_error_line(invoke(*BASE, "--out", tmp_path, "--seed", seed))
    assert "2**63-1" in line
    assert not (tmp_path / "base").exists()


def test_largest_seed_is_stored_exactly(invoke, tmp_path):
    seed = 2**63 - 1
    result = invoke(*BASE, "--out", tmp_path, "--seed", seed, "--run-name", "big")
    assert result.exit_code == 0, result.output
    df = pd.read_parquet(tmp_path / "big" / "results.parquet")
    assert df.base_seed.tolist() == [seed] and df.base_seed.dtype == "int64"


# -- 6. devices ------------------------------------------------------------------------------
@pytest.mark.parametrize("device", ["cuda:abc", "cuda:-5", "gpu", "cpu:0:1"])
def test_malformed_device_is_rejected_before_any_cell(invoke, tmp_path, device):
    for extra in ([], ["--dry-run"]):
        line = _one_error_line(invoke(*BASE, "--out", tmp_path, "--device", device, *extra))
        assert "unknown device" in line
    assert not tmp_path.joinpath("base").exists()


def test_cuda_without_cuda_is_rejected_like_the_api(invoke, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    from evobench.errors import EvobenchError
    from evobench.tvae import denoise

    for extra in ([], ["--dry-run"]):
        line = _one_error_line(invoke(*BASE, "--out", tmp_path, "--device", "cuda", *extra))
        assert "CUDA is not available here" in line
    with pytest.raises(EvobenchError) as api:
        denoise(np.full((16, 16), 0.5), sigma=0.1, device="cuda", epochs=1)
    assert line == f"error: {api.value}"


# -- 7. suite files --------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "message"), [
    (f'default_profile = ["quick"]\n[profiles.quick]\n{GRID}', "default_profile must be a string"),
    (f'[profiles.quick]\n{GRID}repetitions = "two"\n', "repetitions must be an integer >= 1"),
    (f'[profiles.quick]\n{GRID}repetitions = 0\n', "repetitions must be an integer >= 1"),
    (f'[profiles.quick]\n{GRID}repetitions = true\n', "repetitions must be an integer >= 1"),
    (f'[profiles.quick]\n{GRID}timeout = [1]\n', "timeout must be a duration"),
    (f'[profiles.quick]\n{GRID}timeout = "nan"\n', "not a finite duration"),
    ('name = 3\n[profiles.quick]\n' + GRID, "name must be a string"),
    ('profiles = 3\n', "defines no [profiles.NAME] table"),
    ('profiles.quick = 3\n', "profiles.quick must be a table"),
    ('[profiles.quick]\ndatasets = [1]\n', "datasets must be a list of selector strings"),
    (f'default_profile = "big"\n[profiles.quick]\n{GRID}', "default_profile 'big' is not"),
    (f'[profiles.quick]\n{GRID}\n[profiles.other]\n{GRID}repetitions = "x"\n',
     "profile 'other': repetitions"),
])
def test_malformed_suite_file_is_one_line_naming_the_key(invoke, tmp_path, text, message):
    suite = _suite(tmp_path, text)
    line = _one_error_line(invoke("run", "--suite", suite, "--out", tmp_path, "--dry-run"))
    assert message in line


# -- 8. Dask scheduler address ---------------------------------------------------------------
def test_bad_scheduler_address_fails_at_once_without_noise(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "evobench", "run", *BASE[1:], "--out", str(tmp_path),
         "--executor", "dask", "--scheduler", "banana"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("error: --scheduler 'banana' is not a Dask scheduler address; "
                                   "use tcp://HOST:PORT (e.g. tcp://127.0.0.1:8786)")


def test_unreachable_scheduler_is_quick_and_quiet():
    from evobench.errors import EvobenchError
    from evobench.harness.executors import probe_scheduler

    with pytest.raises(EvobenchError, match="cannot reach the Dask scheduler"):
        probe_scheduler("tcp://127.0.0.1:9")
    with pytest.raises(EvobenchError, match="port 99999 is out of range"):
        probe_scheduler("tcp://127.0.0.1:99999")


# -- 9. NaN and Inf --------------------------------------------------------------------------
@pytest.mark.parametrize(("extra", "message"), [
    (["--timeout", "nan"], "timeout 'nan' is not a finite duration"),
    (["--timeout", "inf"], "timeout 'inf' is not a finite duration"),
    (["--sigma", "nan"], "--sigma: 'nan' is not a finite number"),
    (["--sigma", "inf"], "--sigma: 'inf' is not a finite number"),
    (["-m", "tvae[lr_min=nan]"], "parameter lr_min=nan is not a finite number"),
    (["-m", "tv[weight=-inf]"], "parameter weight=-inf is not a finite number"),
    (["-d", "skimage[images=camera,crop=nan]"], "crop='nan' is not a valid int"),
])
def test_nan_and_inf_are_rejected_naming_the_option(invoke, tmp_path, extra, message):
    line = _one_error_line(invoke(*BASE, "--out", tmp_path, *extra))
    assert message in line
    assert not (tmp_path / "base").exists()


def test_every_duration_option_takes_the_same_forms(invoke, tmp_path):
    """--timeout, --stop-after and --checkpoint-every share one parser: 1h30m is 5400 s."""
    out = invoke(*BASE, "--out", tmp_path, "--dry-run", "--timeout", "1h30m", "--stop-after",
                 "1h30m", "--checkpoint-every", "1h30m")
    assert out.exit_code == 0, out.output
    assert "; timeout 5400s per cell\n" in out.output  # then the cost estimate line
    for option in ("--timeout", "--stop-after", "--checkpoint-every"):
        line = _one_error_line(invoke(*BASE, "--out", tmp_path, option, "1h30x"))
        assert line == (f"error: {option} '1h30x' is not a duration; use e.g. 90s, 10m, 2h or "
                        "1h30m (0 = off)")
    suite = _suite(tmp_path, f'[profiles.quick]\n{GRID}timeout = "1h30m"\n')
    out = invoke("run", "--suite", suite, "--out", tmp_path, "--dry-run")
    assert out.exit_code == 0 and "timeout 5400s per cell" in out.output, out.output
    assert not (tmp_path / "base").exists()


def test_manifest_is_strict_json(invoke, tmp_path):
    assert invoke(*BASE, "--out", tmp_path, "--timeout", "30s").exit_code == 0
    text = (tmp_path / "base" / "manifest.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in manifest.json"))


# -- 10. sigma 0 -----------------------------------------------------------------------------
@pytest.mark.parametrize("extra", [["--sigma", "0"], ["--sigma", "15,0"]])
def test_sigma_zero_is_rejected_up_front(invoke, tmp_path, extra):
    args = [a for a in BASE if a not in ("--sigma", "25")]
    line = _one_error_line(invoke(*args, "-m", "tv", "--out", tmp_path, *extra))
    assert "sigma=0 adds no noise" in line


# -- 11/12. clean images on [0, 1] and large enough ------------------------------------------
def _tiff_folder(tmp_path: Path, array: np.ndarray) -> Path:
    import tifffile

    folder = tmp_path / "imgs"
    folder.mkdir(exist_ok=True)
    tifffile.imwrite(folder / "a.tif", array)
    return folder


def test_folder_float_tiff_far_outside_0_1_is_rejected(invoke, tmp_path):
    pytest.importorskip("tifffile")
    folder = _tiff_folder(tmp_path, np.full((32, 32), 1e6, np.float32))
    line = _one_error_line(invoke(*BASE[:1], "-d", f"folder[path={folder}]", *BASE[3:],
                                  "--out", tmp_path / "R"))
    assert "[0, 1]" in line and "1e+06" in line


@pytest.mark.parametrize(("size", "method", "message"), [
    (12, "bm3d", "smaller than the 16 x 16 that method 'bm3d' needs"),
    (12, "gsvae[patch_size=14]", "smaller than the 14 x 14 that method 'gsvae' needs"),
])
def test_too_small_images_fail_before_the_run(invoke, tmp_path, size, method, message):
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(np.full((size, size), 90, np.uint8)).save(folder / "a.png")
    args = ["run", "-d", f"folder[path={folder}]", "--sigma", "25", "-m", method,
            "--out", tmp_path / "R", "--quiet"]
    line = _one_error_line(invoke(*args))
    assert message in line and "12 x 12" in line
    assert not (tmp_path / "R").exists()


def test_image_smaller_than_the_ssim_window_fails_before_the_run(invoke, tmp_path):
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(np.full((5, 40), 90, np.uint8)).save(folder / "a.png")
    line = _one_error_line(invoke("run", "-d", f"folder[path={folder}]", "--sigma", "25",
                                  "-m", "noisy", "--out", tmp_path / "R"))
    assert "ssim metric needs at least 7 x 7" in line


# -- 13. messages ----------------------------------------------------------------------------
def test_suite_of_only_an_unknown_method_names_it(invoke, tmp_path):
    suite = _suite(tmp_path, GRID.replace('"noisy"', '"tvea"').join(["[profiles.quick]\n", ""]))
    line = _one_error_line(invoke("run", "--suite", suite, "--out", tmp_path, "--dry-run"))
    assert "unknown method 'tvea'; did you mean 'tvae'?" in line


def test_registered_suite_notes_name_the_close_match(fakes, tmp_path):
    from evobench.harness.grid import Overrides, build_grid
    from evobench.registry import get_registry
    from evobench.specs import SuiteSpec

    block = {"datasets": [TINY], "degradations": ["gaussian[sigma=25]"],
             "methods": ["tvea", "noisy"]}
    registry = get_registry()
    grid = build_grid(SuiteSpec("reg", {"quick": block}), None, Overrides(), registry)
    assert grid.notes == ["suite method 'tvea' is not installed; left out; did you mean 'tvae'?"]
    block["methods"] = ["tvea"]
    from evobench.errors import EvobenchError

    with pytest.raises(EvobenchError, match="expands to no cells: suite method 'tvea'"):
        build_grid(SuiteSpec("reg", {"quick": block}), None, Overrides(), registry)


def test_broken_plugin_is_one_warning_line_in_run_and_list(evobench_plugin, invoke, tmp_path):
    from evobench.registry import get_registry

    class Broken:
        from evobench.api import hookimpl

        @hookimpl
        def evobench_register_methods(self, register):
            raise RuntimeError("this plugin is broken")

    evobench_plugin(Broken(), "broken-one")
    assert get_registry().plugins["broken-one"].status == "failed"
    for args in (["list", "methods"], [*BASE, "--out", tmp_path, "--dry-run"]):
        result = invoke(*args)
        assert result.exit_code == 0, result.output
        warnings = [ln for ln in result.output.splitlines() if ln.startswith("warning:")]
        assert warnings == ["warning: plugin(s) broken-one failed to load and are left out; "
                            "details: evobench plugins"]


def test_sigkill_is_called_oom_only_when_the_kernel_counted_one(monkeypatch):
    import signal

    from evobench.harness import isolate

    monkeypatch.setattr(isolate, "oom_kills", lambda: 3)
    assert isolate._describe_exit(-signal.SIGKILL, 3) == "SIGKILL"
    assert isolate._describe_exit(-signal.SIGKILL, None) == "SIGKILL"
    assert isolate._describe_exit(-signal.SIGKILL, 2) == \
        "SIGKILL (the kernel's out-of-memory killer)"
    assert isolate._describe_exit(-signal.SIGSEGV, 2) == "SIGSEGV"
    assert isolate._describe_exit(1) == "exit code 1"
    # a cell that exited 0 without sending its result, and a signal Python has no name for
    assert isolate._describe_exit(0) == "exit code 0"
    assert isolate._describe_exit(-200) == "signal 200"
    assert isolate._describe_exit(None) == "unknown exit"


# -- 3. the current folder shadows the package ----------------------------------------------
def test_an_evobench_folder_in_the_cwd_does_not_shadow_the_package(tmp_path):
    # an importable package without the harness: e.g. a clone of another version, or a stub
    shadow = tmp_path / "evobench"
    shadow.mkdir()
    (shadow / "__init__.py").write_text("SHADOW = True\n")
    evobench_bin = Path(sys.executable).with_name("evobench")
    cmd = [str(evobench_bin)] if evobench_bin.exists() else [sys.executable, "-P", "-m",
                                                              "evobench"]
    proc = subprocess.run([*cmd, *BASE, "-m", "tv", "--out", "R", "-j", "2"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": ""})
    assert proc.returncode == 0, proc.stderr
    df = pd.read_parquet(tmp_path / "R" / "base" / "results.parquet")
    assert set(df.status) == {"ok"} and len(df) == 2


def test_subprocess_cells_ignore_an_evobench_folder_in_the_cwd(fakes, tmp_path, monkeypatch):
    """The Dask path: ``python -m evobench.harness.isolate`` in the worker's current folder."""
    from evobench.harness import isolate
    from evobench.harness.grid import Cell
    from evobench.harness.worker import CellPayload

    shadow = tmp_path / "evobench"
    shadow.mkdir()
    (shadow / "__init__.py").write_text("raise ImportError('the shadow package was imported')\n")
    monkeypatch.chdir(tmp_path)
    cell = Cell(suite="s", profile="p", dataset="skimage", dataset_params={}, image="camera",
                image_name="camera", color="gray", degradation="gaussian",
                deg_params={"sigma": 25}, task="denoise", method="fake-ok",
                method_label="fake-ok", method_params={"strength": 0.5}, method_version="1",
                rep=0, base_seed=0, device="cpu", metrics=("psnr",))
    from evobench.registry import get_registry

    img = np.random.default_rng(0).random((16, 16))
    payload = CellPayload(cell=cell, method_spec=get_registry().method("fake-ok"),
                          metric_specs={"psnr": get_registry().metric("psnr")}, clean=img,
                          corrupted=img, mask=None, sigma=0.1)
    result = isolate.run_in_subprocess(payload, 120)
    assert result.row["status"] == "ok", result.row["error"]


# -- also: symlinks in folder[path=DIR] ------------------------------------------------------
def test_folder_refuses_links_out_of_the_folder_unless_allowed(invoke, tmp_path):
    from PIL import Image

    folder, outside = tmp_path / "imgs", tmp_path / "private"
    folder.mkdir()
    outside.mkdir()
    Image.fromarray(np.full((24, 24), 90, np.uint8)).save(folder / "a.png")
    Image.fromarray(np.full((24, 24), 200, np.uint8)).save(outside / "secret.png")
    (folder / "inside.png").symlink_to(folder / "a.png")  # a link within DIR is fine
    args = ["run", "--sigma", "25", "-m", "noisy", "--out", tmp_path / "R", "--quiet"]
    ok = invoke(*args, "-d", f"folder[path={folder}]", "--run-name", "in")
    assert ok.exit_code == 0, ok.output
    (folder / "leak.png").symlink_to(outside / "secret.png")
    line = _one_error_line(invoke(*args, "-d", f"folder[path={folder}]", "--run-name", "x"))
    assert "leak.png" in line and "outside the folder" in line and "follow_links=true" in line
    assert not (tmp_path / "R" / "x").exists()
    allowed = invoke(*args, "-d", f"folder[path={folder},follow_links=true]", "--run-name", "y")
    assert allowed.exit_code == 0, allowed.output
    df = pd.read_parquet(tmp_path / "R" / "y" / "results.parquet")
    assert sorted(df.image) == ["a.png", "inside.png", "leak.png"]


def test_folder_loader_refuses_ids_that_are_paths(tmp_path):
    from evobench_standard.datasets import load_folder

    from evobench.errors import EvobenchError

    (tmp_path / "d").mkdir()
    for image_id in ("../x.png", "..", "/etc/passwd", "sub/x.png"):
        with pytest.raises(EvobenchError):
            load_folder(image_id, path=str(tmp_path / "d"))


def test_merge_never_reads_or_writes_artifacts_outside_the_runs(invoke, tmp_path):
    """A tampered ``artifact`` column (``../../x.npz``) must not make ``merge`` copy a file from
    outside the source run, nor write one outside the merged folder."""
    import pyarrow.parquet as pq

    from evobench.reports.merge import merge_runs

    assert invoke(*BASE, "--out", tmp_path, "--run-name", "src").exit_code == 0
    src = tmp_path / "src"
    np.savez(tmp_path / "loot.npz", a=np.ones(1))
    table = pq.read_table(src / "results.parquet")
    df = table.to_pandas()
    df["artifact"] = "../loot.npz"
    pq.write_table(table.from_pandas(df, preserve_index=False).replace_schema_metadata(
        table.schema.metadata), src / "results.parquet")
    out = tmp_path / "deep" / "merged"
    merge_runs([src], out)
    assert not (tmp_path / "deep" / "loot.npz").exists()
    assert not list((out / "artifacts").iterdir())


# -- issue 23 item 3: subfolders of a run folder linked out of it ---------------------------
@pytest.mark.parametrize("sub", ["cells", "artifacts", "claims", "checkpoints"])
def test_subfolder_linked_out_of_the_run_is_never_written_through(invoke, tmp_path, sub):
    """``RUN/cells`` (or artifacts/, claims/, checkpoints/) as a symlink to another folder:
    the run is refused in one line before any cell, and nothing appears in that folder."""
    run = tmp_path / "R" / "r"
    run.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (run / sub).symlink_to(elsewhere, target_is_directory=True)
    line = _one_error_line(invoke(*BASE, "--out", tmp_path / "R", "--run-name", "r"))
    assert "outside" in line and sub in line
    assert not any(elsewhere.iterdir())


def test_a_subfolder_linked_out_during_the_run_stops_the_writes(tmp_path):
    """A link that appears after the check (the store's own writes check every path): one
    line, exit 4 (a write error), nothing written through it."""
    from evobench.harness.store import RunStore, StoreWriteError

    store = RunStore(tmp_path / "R", "r")
    store.check_writable()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    store.cells_dir.rmdir()
    store.cells_dir.symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(StoreWriteError, match="outside"):
        store.write_cell({"cell_key": "k", "status": "ok"}, [], None)
    assert not any(elsewhere.iterdir())


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_the_lifeline_polls_its_parent_where_the_kernel_cannot_watch(monkeypatch):
    """Without ``PR_SET_PDEATHSIG`` (not Linux) a cell polls its parent and exits once it is
    gone (re-parented); ``os._exit`` and ``os.getppid`` are stood in for in this process."""
    from waiting import wait_for

    from evobench.harness import lifeline

    exits = []

    def fake_exit(code):
        exits.append(code)
        raise SystemExit  # ends the polling thread (the warning about it is expected)

    parent = [os.getppid()]
    monkeypatch.setattr(lifeline, "_prctl_pdeathsig", lambda: False)
    monkeypatch.setattr(lifeline.os, "getppid", lambda: parent[0])
    monkeypatch.setattr(lifeline.os, "_exit", fake_exit)
    lifeline.die_with_parent(parent[0])
    assert exits == []
    parent[0] = 1  # the parent died: the cell was re-parented
    wait_for(lambda: exits == [1], 10, "the lifeline never noticed its parent was gone")
