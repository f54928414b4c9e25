"""``evobench run`` end to end, with cells in real worker processes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from evobench.harness.executors import available_cores

TINY = "skimage[images=camera,coins,crop=32]"


def _results(path):
    return pd.read_parquet(path / "results.parquet")


def test_outcomes_resume_and_store(fakes, invoke, tmp_path):
    args = ["run", "--suite", "denoise", "--profile", "smoke", "-d", TINY, "--out", tmp_path,
            "-m", "fake-ok", "-m", "fake-ok[strength=1]", "-m", "fake-crash", "-m", "fake-die",
            "-m", "fake-hang", "-m", "fake-nan", "-m", "fake-needs", "--timeout", "3s",
            "-j", "2", "--quiet", "--run-name", "denoise-smoke"]
    result = invoke(*args)
    assert result.exit_code == 3, result.output
    run = tmp_path / "denoise-smoke"
    df = _results(run)
    assert len(df) == 2 * 7
    status = df.groupby("method_label")["status"].agg(set).to_dict()
    assert status == {"fake-ok": {"ok"}, "fake-ok[strength=1]": {"ok"}, "fake-crash": {"error"},
                      "fake-die": {"error"}, "fake-hang": {"timeout"}, "fake-nan": {"error"},
                      "fake-needs": {"skipped"}}
    err = df.set_index(["method", "image"])["error"]
    assert err["fake-crash", "camera"] == "ValueError: boom: the fake method crashed"
    assert err["fake-die", "camera"].startswith("worker process died (SIGKILL")
    assert err["fake-die", "camera"].endswith("about to die")
    assert err["fake-hang", "camera"] == "killed after the 3 s cell timeout"
    assert "NaN or infinite" in err["fake-nan", "camera"]
    ok = df[df.status == "ok"]
    # identity, metric and environment columns are filled
    assert (ok.psnr > ok.psnr_input).all() and ok.ssim.between(0, 1).all()
    assert (ok.data_range == 1.0).all() and ok.metric_variant.str.contains("data_range=1.0").all()
    assert (ok.p_deg_sigma == 25).all() and np.allclose(ok.sigma01, 25 / 255)
    assert ok.x_active_mean.notna().all() and (ok.x_pi_sum == 1.5).all()
    assert (ok.threads == max(1, available_cores() // 2)).all() and (ok.jobs == 2).all()
    assert (ok.peak_rss_mb > 10).all() and (ok.cpu_s >= 0).all() and (ok.time_total_s > 0).all()
    assert set(ok.p_method_strength) == {0.5, 1.0}
    # the same input for every method: equal noise seeds per image, and so equal input PSNR
    per_image = df[df.status != "skipped"].groupby("image")
    assert (per_image.noise_seed.nunique() == 1).all()
    assert (per_image.psnr_input.nunique() == 1).all()
    # the method seed reaches the method (a seed-dependent extra differs across the two labels)
    assert ok.groupby("image").x_active_mean.nunique().eq(2).all()
    meta = pq.read_schema(run / "results.parquet").metadata
    assert meta[b"evobench_schema"] == b"1"
    traces = pd.read_parquet(run / "traces.parquet")
    assert len(traces) == 2 * len(ok) and set(traces.cell_key) == set(ok.cell_key)
    npz = np.load(run / ok.artifact.iloc[0])
    assert set(npz.files) == {"restored", "corrupted", "clean", "active_hist"}
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["cells"]["total"] == 14 and manifest["versions"]["numpy"]
    assert manifest["git"]["commit"] and manifest["machine"]["cores"] >= 1
    assert "config.toml" in os.listdir(run)
    umask = os.umask(0)
    os.umask(umask)
    for name in ("results.parquet", "manifest.json", ok.artifact.iloc[0]):
        assert (run / name).stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600

    # a rerun of the same command skips the ok cells and runs the failed ones again
    before = df.set_index("cell_key")
    again = invoke(*args)
    assert again.exit_code == 3
    df2 = _results(run).set_index("cell_key")
    ok_keys = before.index[before.status == "ok"]
    pd.testing.assert_series_equal(df2.loc[ok_keys, "started_at"], before.loc[ok_keys, "started_at"])
    crash = before.index[before.method == "fake-crash"]
    assert (df2.loc[crash, "started_at"] > before.loc[crash, "started_at"]).all()
    # a narrower grid in the same run folder: only its rows in results.parquet, all cached
    narrow = invoke("run", "-d", TINY, "-m", "fake-ok", "--out", tmp_path, "--run-name",
                    "denoise-smoke", "--profile", "smoke", "--quiet")
    assert narrow.exit_code == 0
    df3 = _results(run)
    assert set(df3.method_label) == {"fake-ok"} and len(df3) == 2
    assert set(df3.started_at) <= set(before.started_at)


def test_snapshots_are_scored_into_the_trace_and_last_eval_columns(fakes, invoke, tmp_path):
    invoke("run", "-d", "skimage[images=camera,crop=32]", "-m", "fake-snapshots", "--sigma", "20", "--out", tmp_path,
           "--run-name", "snap", "--quiet")
    row = _results(tmp_path / "snap").iloc[0]
    traces = pd.read_parquet(tmp_path / "snap" / "traces.parquet").set_index("epoch")
    assert row["status"] == "ok" and row["last_eval_epoch"] == 2
    assert row["psnr_last_eval"] == pytest.approx(traces.loc[2, "psnr"])
    assert row["ssim_last_eval"] == pytest.approx(traces.loc[2, "ssim"])
    assert traces.loc[1, "psnr"] != traces.loc[2, "psnr"] != row["psnr"]
    # epoch 3 has no snapshot, but its estimate is the returned image: the trace ends on the
    # row's value, so the PSNR curve and the table agree
    assert traces.loc[3, "psnr"] == pytest.approx(row["psnr"])
    assert traces.loc[3, "ssim"] == pytest.approx(row["ssim"])


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_threads_are_limited_inside_each_worker(fakes, invoke, tmp_path, jobs):
    """What the row records is what the method sees: torch, every BLAS/OpenMP pool and the
    OpenMP variable are all held to cores // jobs inside the cell's process."""
    result = invoke("run", "-d", "skimage[images=camera,crop=32]", "-m", "fake-threads",
                    "--sigma", "20", "--out", tmp_path, "--run-name", "t", "-j", jobs, "--quiet")
    assert result.exit_code == 0, result.output
    row = _results(tmp_path / "t").iloc[0]
    expected = max(1, available_cores() // int(jobs))
    assert row["threads"] == expected
    assert row["x_torch_threads"] == expected and row["x_omp_env"] == expected
    assert row["x_n_pools"] >= 1 and row["x_pool_threads_max"] == expected


@pytest.mark.parametrize("jobs, threads", [("2", "1"), ("1", "3")])
def test_threads_per_cell_overrides_cores_over_jobs(fakes, invoke, tmp_path, jobs, threads):
    """--threads-per-cell N gives every cell N threads whatever the core count (here also
    more than cores // jobs on a 2-core machine), recorded in the row and the manifest."""
    import json

    result = invoke("run", "-d", "skimage[images=camera,crop=32]", "-m", "fake-threads",
                    "--sigma", "20", "--out", tmp_path, "--run-name", "t", "-j", jobs,
                    "--threads-per-cell", threads, "--quiet")
    assert result.exit_code == 0, result.output
    row = _results(tmp_path / "t").iloc[0]
    n = int(threads)
    assert row["threads"] == n and row["x_torch_threads"] == n and row["x_omp_env"] == n
    assert row["x_pool_threads_max"] == n
    manifest = json.loads((tmp_path / "t" / "manifest.json").read_text())
    assert manifest["threads_per_cell"] == n


@pytest.mark.parametrize("bad", ["0", "-1", "two"])
def test_threads_per_cell_must_be_a_positive_integer(fakes, invoke, tmp_path, bad):
    result = invoke("run", "-d", TINY, "-m", "fake-ok", "--out", tmp_path, "--run-name", "b",
                    "--threads-per-cell", bad, "--quiet")
    assert result.exit_code == 2, result.output
    assert "--threads-per-cell" in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert not (tmp_path / "b").exists()


def test_resume_after_interrupt_and_force(fakes, invoke, tmp_path):
    args = ["run", "-d", TINY, "-m", "fake-ok", "--sigma", "10,20", "--out", tmp_path,
            "--run-name", "r", "--quiet", "--no-save-images"]
    assert invoke(*args).exit_code == 0
    run = tmp_path / "r"
    first = _results(run)
    assert len(first) == 4
    # without images, the small latent-code artifacts are still kept for the figures
    kept = np.load(run / first.artifact.iloc[0])
    assert sorted(kept.files) == ["active_hist"]
    # a crash after two cells: results.parquet gone, two cell files left
    (run / "results.parquet").unlink()
    for path in sorted((run / "cells").glob("*.json"))[2:]:
        path.unlink()
    dry = invoke(*args, "--dry-run")
    assert dry.exit_code == 0 and "4 cells: 2 done, 2 todo, 0 skip" in dry.output
    assert not (run / "results.parquet").exists()  # a dry run writes nothing
    assert invoke(*args).exit_code == 0
    resumed = _results(run)
    pd.testing.assert_frame_equal(
        resumed.set_index("cell_key").sort_index()[["psnr", "ssim", "noise_seed"]],
        first.set_index("cell_key").sort_index()[["psnr", "ssim", "noise_seed"]])
    forced = invoke(*args, "--force", "--dry-run")
    assert "4 cells: 0 done, 4 todo" in forced.output


def test_ad_hoc_selections_get_their_own_stable_run_folder(fakes, invoke, tmp_path):
    def folder(*extra):
        result = invoke("run", "--out", tmp_path, "--dry-run", *extra)
        assert result.exit_code == 0, result.output
        return Path(result.output.split(" -> ", 1)[1].splitlines()[0]).name

    assert folder() == "denoise-quick" == folder("--seed", "3")  # the suite's own folder
    adhoc = folder("-m", "tvae[epochs=3]", "-m", "bm3d", "-d", TINY, "--sigma", "15,25")
    assert adhoc.startswith("denoise-quick-tvae-bm3d-skimage-") and len(adhoc.split("-")[-1]) == 8
    assert folder("-m", "tvae[epochs=3]", "-m", "bm3d", "-d", TINY, "--sigma", "15,25") == adhoc
    others = {folder("-m", "tvae[epochs=3]", "-m", "bm3d", "-d", TINY, "--sigma", "15"),
              folder("-m", "tvae[epochs=4]", "-m", "bm3d", "-d", TINY, "--sigma", "15,25"),
              folder("--sigma", "15"), folder("-r", "2"), folder("-d", TINY)}
    assert len(others) == 5 and adhoc not in others and "denoise-quick" not in others
    assert folder("-m", "noisy", "--run-name", "mine") == "mine"  # --run-name still wins
    # the label says what else the selection asks for
    assert folder("-m", "bm3d", "--with-suite-baselines").startswith("denoise-quick-bm3d-baselines-")
    assert folder("-m", "tvae", "--budget", "60s").startswith("denoise-quick-tvae-budget60s-")
    # a run really lands there, and the same command resumes it
    args = ["run", "-m", "fake-ok", "-d", TINY, "--out", tmp_path, "--quiet", "-j", "1"]
    assert invoke(*args).exit_code == 0
    run = tmp_path / folder("-m", "fake-ok", "-d", TINY)
    assert len(_results(run)) == 6 and not (tmp_path / "denoise-quick").exists()  # 2 x 3 sigmas
    assert "6 cells: 6 done, 0 todo" in invoke(*args, "--dry-run").output


def test_jobs_auto_and_bad_values(fakes, invoke, tmp_path):
    args = ["run", "-m", "fake-ok", "-d", TINY, "--out", tmp_path, "--run-name", "j", "--quiet"]
    quiet = invoke(*args)  # default: -j auto
    assert quiet.exit_code == 0
    # --quiet: only the table, no progress, no summary line, no hint
    assert quiet.output.startswith("PSNR (dB)") and "cells:" not in quiet.output
    assert "evobench report" not in quiet.output and "running" not in quiet.output
    loud = invoke(*args[:-1], "--force")
    assert "cells: 6 run, 0 cached" in loud.output and "evobench report" in loud.output
    df = _results(tmp_path / "j")
    assert (df.jobs == available_cores()).all() and (df.threads == 1).all()
    from evobench.harness.cli import _jobs

    assert _jobs("auto", "cuda:0") == 1 and _jobs("3", "cuda") == 3  # a GPU is not shared
    assert _jobs(" AUTO ") == available_cores()
    for bad in ("0", "-2", "many"):
        result = invoke(*args, "-j", bad)
        assert result.exit_code == 2 and result.output.startswith("error: --jobs "), result.output
        assert "auto" in result.output


def test_inpainting_and_rgb(fakes, invoke, tmp_path):
    result = invoke("run", "--suite", "inpaint", "--profile", "smoke", "--out", tmp_path,
                    "-d", "skimage-rgb[images=astronaut,crop=32]", "-m", "fake-ok", "-m", "noisy",
                    "-m", "fake-grayonly", "--missing", "0.5", "--quiet")
    assert result.exit_code == 0, result.output
    (run,) = tmp_path.iterdir()  # a folder named after the selection
    assert run.name.startswith("inpaint-smoke-fake-ok-noisy-fake-grayonly-skimage-rgb-")
    rows = _results(run)
    # the smoke profile's two inpainting blocks: missing pixels, and missing RGB entries
    assert sorted(rows.p_deg_per.unique()) == ["entry", "pixel"]
    assert (rows[rows.method == "fake-grayonly"].status == "skipped").all()
    df = rows[rows.p_deg_per == "pixel"].set_index("method")
    assert df.loc["noisy", "color"] == "rgb" and df.loc["noisy", "p_deg_per"] == "pixel"
    # the noisy method fills like the input metric does: identical PSNR
    assert df.loc["noisy", "psnr"] == pytest.approx(df.loc["noisy", "psnr_input"])
    assert df.loc["noisy", "p_deg_missing"] == 0.5 and np.isnan(df.loc["noisy", "p_deg_sigma"])
    npz = np.load(run / df.loc["noisy", "artifact"])
    assert npz["mask"].shape == (32, 32) and 0.4 < npz["mask"].mean() < 0.6


def test_bad_input_exits_2_and_keeps_stored_rows(fakes, invoke, fixture_cache, tmp_path):
    data = fixture_cache[0]  # a cache with (a stand-in of) House
    args = ["run", "-d", "set12[images=house,crop=32]", "-m", "fake-ok", "--out", tmp_path,
            "--run-name", "keep", "--quiet"]
    assert invoke(*args).exit_code == 0
    run = tmp_path / "keep"
    stored = (run / "results.parquet").read_bytes()
    cells = sorted(p.read_bytes() for p in (run / "cells").iterdir())
    raw = bytearray((data / "set12" / "02.png").read_bytes())
    raw[200] ^= 0xFF
    (data / "set12" / "02.png").write_bytes(bytes(raw))
    for extra in (["--force"], ["-m", "noisy"], ["-m", "tv[weight=-1]"], ["-m", "nope"],
                  ["--sigma", "a"], ["--timeout", "soon"], ["-d", "folder[path=/no/such]"]):
        result = invoke(*args, *extra)
        assert result.exit_code == 2, (extra, result.output)
        line = result.output.strip()
        assert line.startswith("error: ") and "\n" not in line
        assert (run / "results.parquet").read_bytes() == stored
        assert sorted(p.read_bytes() for p in (run / "cells").iterdir()) == cells
    assert "evobench data fetch set12" in invoke(*args, "--force").output


def test_unreadable_folder_image_and_unwritable_out(fakes, invoke, tmp_path):
    from PIL import Image

    images = tmp_path / "imgs"
    images.mkdir()
    Image.fromarray(np.full((24, 24), 100, np.uint8)).save(images / "ok.png")
    args = ["run", "-d", f"folder[path={images}]", "-m", "fake-ok", "--quiet"]
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        result = invoke(*args, "--out", ro)
        assert result.exit_code == 4 and "read-only" in result.output  # an OS refusal
    finally:
        ro.chmod(0o755)
    assert invoke(*args, "--out", tmp_path / "out").exit_code == 0
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    result = invoke(*args, "--out", tmp_path / "out")
    assert result.exit_code == 2 and "cannot read image" in result.output
    assert "broken.png" in result.output


def test_user_suite_file(fakes, invoke, tmp_path):
    suite = tmp_path / "my.toml"
    suite.write_text(f'''
name = "my"
[profiles.quick]
datasets = ["{TINY}"]
degradations = ["gaussian[sigma=30]", "inpaint_noise[missing=0.3,sigma=10]"]
methods = ["fake-ok", "fake-denoiser"]
''')
    result = invoke("run", "--suite", suite, "--out", tmp_path, "--quiet")
    assert result.exit_code == 0, result.output
    df = _results(tmp_path / "my-quick")
    assert len(df) == 2 * 2 * 2
    assert df.groupby(["degradation", "status"]).size().to_dict() == {
        ("gaussian", "ok"): 4, ("inpaint_noise", "ok"): 2, ("inpaint_noise", "skipped"): 2}


def test_budget_reaches_budgeted_methods_and_is_recorded(fakes, invoke, tmp_path):
    """--budget goes to the context of methods that declare ``budgeted``, is stored in every
    row (NaN elsewhere), changes those cells' keys only, and gets its own run folder."""
    base = ["run", "--suite", "denoise", "--profile", "smoke", "-d", "skimage[images=camera,"
            "crop=32]", "--out", tmp_path, "-m", "fake-budgeted", "-m", "fake-ok", "--quiet",
            "-j", "1"]
    assert invoke(*base, "--run-name", "plain").exit_code == 0
    result = invoke(*base, "--budget", "1m30s")
    assert result.exit_code == 0, result.output
    [folder] = [p for p in tmp_path.iterdir() if "budget90s" in p.name]
    plain = _results(tmp_path / "plain").set_index("method")
    timed = _results(folder).set_index("method")
    assert timed.loc["fake-budgeted", "budget_s"] == 90.0
    assert timed.loc["fake-budgeted", "x_budget_seen"] == 90.0
    assert np.isnan(plain.loc["fake-budgeted", "x_budget_seen"])
    assert np.isnan(plain.loc["fake-budgeted", "budget_s"])
    assert np.isnan(timed.loc["fake-ok", "budget_s"])  # not a learned method: no budget
    assert timed.loc["fake-ok", "cell_key"] == plain.loc["fake-ok", "cell_key"]
    assert timed.loc["fake-budgeted", "cell_key"] != plain.loc["fake-budgeted", "cell_key"]


@pytest.mark.parametrize("bad", ["0", "soon", ""])
def test_bad_budgets_are_one_line(fakes, invoke, tmp_path, bad):
    result = invoke("run", "--suite", "denoise", "--profile", "smoke", "-m", "fake-budgeted",
                    "--out", tmp_path, "--budget", bad, "--dry-run")
    assert result.exit_code == 2
    assert "--budget" in result.output and "Traceback" not in result.output


def test_the_row_records_the_sigma_the_method_got(fakes, invoke, tmp_path, monkeypatch):
    """The grid asks for sigma 25 (p_deg_sigma); the degradation tells the method 25/510: the
    row's sigma01 is what the method got."""
    suite = tmp_path / "halved.toml"
    suite.write_text('name = "halved"\ndefault_profile = "smoke"\n[[profiles.smoke]]\n'
                     'datasets = ["skimage[images=camera,crop=32]"]\n'
                     'degradations = ["fake-halved[sigma=25]"]\nmethods = ["fake-budgeted"]\n')
    result = invoke("run", "--suite", str(suite), "--out", tmp_path, "--quiet", "-j", "1")
    assert result.exit_code == 0, result.output
    row = _results(tmp_path / "halved-smoke").iloc[0]
    assert row.p_deg_sigma == 25 and row.x_sigma_seen == 25 / 510 and row.sigma01 == 25 / 510


# -- issue 25 item 4: the worker's own contract, in this process -------------------------------


def _payload(method: str, *, size: int = 24, save_images: bool = False, factory=None):
    import dataclasses

    from evobench.harness.grid import Cell
    from evobench.harness.worker import CellPayload
    from evobench.registry import get_registry

    reg = get_registry()
    cell = Cell(suite="s", profile="p", dataset="skimage", dataset_params={}, image="camera",
                image_name="camera", color="gray", degradation="gaussian",
                deg_params={"sigma": 25}, task="denoise", method=method, method_label=method,
                method_params={}, method_version="1", rep=0, base_seed=0, device="cpu",
                metrics=("psnr", "ssim"))
    rng = np.random.default_rng(0)
    clean = np.add.outer(np.linspace(0, 1, size), np.linspace(0, 1, size)) / 2  # smooth
    corrupted = clean + 0.1 * rng.standard_normal(clean.shape)
    spec = reg.method(method)
    if factory:
        spec = dataclasses.replace(spec, factory=factory)
    return CellPayload(cell=cell, method_spec=spec,
                       metric_specs={m: reg.metric(m) for m in ("psnr", "ssim")}, clean=clean,
                       corrupted=corrupted, mask=None, sigma=0.1, save_images=save_images)


def test_a_cell_in_process_scores_its_input_output_snapshots_and_failures(fakes):
    """``worker.execute`` (what every cell's process runs), called here so its row is checked
    field by field: scores of the input and of the output against the metrics themselves, the
    method's timings, extras and trace as plain values, the scored snapshots, the arrays, and
    a crash or an unscorable input as an error row, never an exception."""
    from evobench_standard.metrics import psnr, ssim
    from threadpoolctl import threadpool_limits

    from evobench import __version__
    from evobench.harness.worker import execute

    payload = _payload("fake-ok", save_images=True)
    with threadpool_limits(limits=1):  # undoes the worker's thread pins on the way out
        result = execute(payload)
        snap = execute(_payload("fake-snapshots"))
        crash = execute(_payload("fake-crash"))
        tiny = execute(_payload("fake-ok", size=4))
        latent = execute(_payload("fake-ok", factory="harness_fakes:run_latent"))
    row = result.row
    assert row["status"] == "ok" and row["error"] == ""
    assert row["psnr_input"] == psnr(payload.clean, payload.corrupted)
    assert row["ssim_input"] == ssim(payload.clean, payload.corrupted)
    restored = result.arrays["restored"]
    assert row["psnr"] == pytest.approx(psnr(payload.clean, restored), abs=1e-4)
    assert row["psnr"] > row["psnr_input"]
    assert (row["time_fit_s"], row["time_infer_s"]) == (0.01, 0.02)
    assert row["x_pi_sum"] == 1.5 and row["x_note"] == "x"
    assert row["threads"] == 1 and row["evobench_version"] == __version__
    assert row["sigma01"] == 0.1 and row["resumes"] == 0
    assert row["rss_start_mb"] > 10 and row["peak_rss_mb"] >= row["rss_start_mb"] * 0.5
    assert row["time_total_s"] >= 0 and row["cpu_s"] >= 0 and row["finished_at"]
    assert result.trace == [{"epoch": 1, "free_energy": -2.0, "seconds": 0.1},
                            {"epoch": 2, "free_energy": -1.0, "seconds": 0.1}]
    assert sorted(result.arrays) == ["active_hist", "clean", "corrupted", "restored"]
    assert result.arrays["active_hist"].tolist() == [1.0, 2.0, 3.0]
    assert (result.arrays["corrupted"] == payload.corrupted.astype(np.float32)).all()
    assert snap.row["last_eval_epoch"] == 2 and snap.arrays == {}
    by_epoch = {t["epoch"]: t for t in snap.trace}
    assert snap.row["psnr_last_eval"] == by_epoch[2]["psnr"] != by_epoch[1]["psnr"]
    assert by_epoch[3]["psnr"] == snap.row["psnr"] and by_epoch[3]["ssim"] == snap.row["ssim"]
    assert crash.row["status"] == "error" and crash.arrays is None
    assert crash.row["error"] == "ValueError: boom: the fake method crashed"
    assert tiny.row["status"] == "error"
    assert tiny.row["error"].startswith("while scoring the input: ValueError")
    # numpy scalars become plain values, other entries are dropped; only latent codes are kept
    assert latent.row["error"] == "" and latent.trace == [{"epoch": 1, "free_energy": -2.0}]
    assert [type(v) for v in latent.trace[0].values()] == [int, float]
    assert sorted(latent.arrays) == ["fields"] and latent.arrays["fields"].dtype == np.float32


def test_a_cell_announces_its_start_then_sends_its_result(fakes):
    """The cell's side of the pipe (``isolate._cell_side``, what a cell process runs): a
    ``start`` message, then its result, then the pipe is closed."""
    import multiprocessing

    from threadpoolctl import threadpool_limits

    from evobench.harness import isolate

    recv, send = multiprocessing.Pipe(duplex=False)
    with threadpool_limits(limits=1):
        isolate._cell_side(_payload("fake-ok"), send)
    messages = []
    while recv.poll(0):
        try:
            messages.append(recv.recv())
        except EOFError:
            break
    assert [kind for kind, _ in messages] == ["start", "result"] and messages[0][1] is None
    assert messages[1][1].row["status"] == "ok"



def test_a_silent_death_ends_its_message_at_the_exit(fakes, invoke, tmp_path):
    """With nothing in the cell's log, the error is the exit alone, no dangling ': '."""
    result = invoke("run", "--profile", "smoke", "-d", "skimage[images=camera,crop=32]", "--out",
                    tmp_path, "-m", "fake-die[say=false]", "--quiet", "--run-name", "r")
    assert result.exit_code == 3, result.output
    (error,) = _results(tmp_path / "r")["error"]
    assert error.startswith("worker process died (SIGKILL") and error.endswith(")"), error


def test_the_timeout_note_goes_to_stderr(fakes, invoke, tmp_path):
    result = invoke("run", "--profile", "smoke", "-d", "skimage[images=camera,crop=32]", "--out",
                    tmp_path, "-m", "fake-ok", "--timeout", "0", "--run-name", "r")
    assert result.exit_code == 0, result.output
    assert "cells run without a time limit" in result.stderr
    assert "cells run without a time limit" not in result.stdout


def test_the_manifest_counts_cached_cells(fakes, invoke, tmp_path):
    args = ("run", "--profile", "smoke", "-d", "skimage[images=camera,crop=32]", "--out",
            tmp_path, "-m", "fake-ok", "--quiet", "--run-name", "r")
    assert invoke(*args).exit_code == 0
    assert invoke(*args, "-m", "noisy").exit_code == 0
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["cells"]["total"] == 2 and manifest["cells"]["cached"] == 1, manifest["cells"]


def test_a_cpu_run_records_no_gpu():
    from evobench.harness.runner import machine

    assert machine("cpu")["gpu"] == ""
