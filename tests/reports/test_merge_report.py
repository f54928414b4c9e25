import base64
import json
import re

import pandas as pd
import pytest

from evobench.errors import EvobenchError
from evobench.reports.load import load_runs, read_results
from evobench.reports.merge import merge_runs

SMALL = {"images": ("01",), "sigmas": (25.0,), "missing": (), "reps": 1,
         "methods": ("bm3d", "tvae")}


def test_merge_keeps_last_copies_artifacts_and_lists_sources(make, tmp_path):
    a = make("a", **SMALL)
    b = make("b", psnr_shift={"tvae": 1.0}, **{**SMALL, "methods": ("tvae", "gsvae")})
    out = merge_runs([a, b], tmp_path / "merged")
    merged = read_results(out)
    assert sorted(merged["method"]) == ["bm3d", "gsvae", "tvae"]
    tvae = merged[merged["method"] == "tvae"].iloc[0]
    assert tvae["run_id"] == "b"  # keep-last, provenance kept per row
    assert tvae["psnr"] == pytest.approx(read_results(b).query("method == 'tvae'")["psnr"].iloc[0])
    for rel in merged["artifact"]:
        assert (out / rel).is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    assert [s["run_id"] for s in manifest["sources"]] == ["a", "b"]
    assert [s["cells_kept"] for s in manifest["sources"]] == [1, 2]
    traces = pd.read_parquet(out / "traces.parquet")
    assert set(traces["cell_key"]) == set(merged.query("method != 'bm3d'")["cell_key"])
    # the merged folder is an ordinary run
    assert len(load_runs(out).results) == 3


def test_a_source_without_a_run_id_is_named_by_its_folder(make, tmp_path):
    """A source whose manifest lacks ``run_id`` (a hand-made or old run) is listed under its
    folder's name in the merged manifest."""
    a = make("a", **SMALL)
    manifest = json.loads((a / "manifest.json").read_text())
    del manifest["run_id"]
    (a / "manifest.json").write_text(json.dumps(manifest))
    out = merge_runs([a], tmp_path / "merged")
    sources = json.loads((out / "manifest.json").read_text())["sources"]
    assert [s["run_id"] for s in sources] == ["a"]


def test_merge_refuses_a_non_empty_target(make, tmp_path):
    a = make("a", **SMALL)
    with pytest.raises(EvobenchError, match="not empty"):
        merge_runs([a], a)
    with pytest.raises(EvobenchError, match="does not exist"):
        merge_runs([tmp_path / "nope"], tmp_path / "m")


def test_merge_cli(make, invoke, tmp_path):
    a, b = make("a", **SMALL), make("b", **SMALL)
    res = invoke("merge", a, b, "-o", tmp_path / "m")
    assert res.exit_code == 0 and "2 cells" in res.output
    assert invoke("merge", a, "-o", tmp_path / "m").exit_code == 2


def test_report_writes_tables_and_a_self_contained_page(small_run, invoke, tmp_path):
    res = invoke("report", small_run, "--out", tmp_path / "rep")
    assert res.exit_code == 0, res.output
    rep = tmp_path / "rep"
    md = (rep / "summary.md").read_text()
    assert "PSNR (dB) of the final image: denoise on set12, mean over 2 images" in md and "**" in md
    assert (rep / "summary.tex").read_text().count(r"\begin{tabular}") == 18
    csv = pd.read_csv(rep / "summary.csv")
    assert set(csv["metric"]) == {"psnr", "ssim", "time_total_s"}
    html = (rep / "index.html").read_text()
    assert html.count("data:image/png;base64,") == len(list((rep / "figures").glob("*.png")))
    head, details = html.split("<h2>Figures</h2>")[0], html.split("<h2>All tables</h2>")[1]
    assert head.count('<table class="results">') == 2  # the headline: PSNR per task
    assert details.count('<table class="results">') == 18 and "<td>small</td>" in html
    assert "<td>0123456789ab (dirty)</td>" in html and "cpu=synthetic, cores=2, ram_gb=8.0" in html
    pngs = sorted((rep / "figures").glob("*.png"))
    assert pngs
    for png in pngs:  # each figure embedded as written
        assert base64.b64encode(png.read_bytes()).decode("ascii") in html
    # ... under a caption that says what it shows (a sentence, not its file name), also its alt
    found = re.findall(r'alt="([^"]*)">\n<figcaption>(.*?)</figcaption>', html, re.S)
    assert len(found) == len(pngs)
    stems = {png.stem for png in pngs}
    for alt, text in found:
        assert alt == text and text not in stems and len(text.split()) >= 8, text


def test_report_without_figures_and_with_failures(make, invoke, tmp_path):
    run = make("f", failures={("tvae", "01", 0): "timeout"}, **SMALL)
    res = invoke("report", run, "--out", tmp_path / "rep", "--no-figures", "--format",
                  "md,html", "--no-per-image")
    assert res.exit_code == 0
    assert not (tmp_path / "rep/figures").exists() and not (tmp_path / "rep/summary.csv").exists()
    md = (tmp_path / "rep/summary.md").read_text()
    assert "1 timeout" in md and "Cells by status" in md
    assert "data:image/png" not in (tmp_path / "rep/index.html").read_text()


def test_report_bad_input(invoke, run_dir, tmp_path):
    assert invoke("report", tmp_path / "nope").exit_code == 2
    res = invoke("report", run_dir, "--format", "docx", "--out", tmp_path / "r")
    assert res.exit_code == 2 and "unknown report format" in res.output


def test_figures_cli(make, invoke, tmp_path):
    run = make("t", sigmas=(25.0,), missing=(), methods=("tvae",), reps=1)
    res = invoke("figures", run, "--out", tmp_path / "f", "--format", "pdf,svg", "--image", "02")
    assert res.exit_code == 0, res.output
    assert "missing fraction" not in res.output  # a denoise-only run: no inpainting figure, no note
    assert "skipped PSNR vs noise level: only one noise level" in res.output
    files = [p for p in (tmp_path / "f").iterdir() if p.name != ".evobench-figures"]
    stems = {p.stem for p in files}
    assert {"fields_02", "training_curves_02", "sparsity", "psnr_vs_time"} <= stems
    for stem in stems:
        assert (tmp_path / "f" / f"{stem}.pdf").is_file() and (tmp_path / "f" / f"{stem}.svg").is_file()
    assert len(files) == 2 * len(stems)


def test_report_and_figures_default_to_one_folder_per_run(make, invoke, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a = make("runs/alpha", **SMALL)
    b = make("runs/beta", **{**SMALL, "methods": ("tvae",)})
    assert invoke("report", a, "--no-figures").exit_code == 0
    assert invoke("report", b, "--no-figures").exit_code == 0
    assert (tmp_path / "reports/alpha/summary.md").is_file()
    assert "bm3d" not in (tmp_path / "reports/beta/summary.md").read_text()  # nothing mixed
    both = invoke("report", a, b, "--no-figures")
    assert both.exit_code == 0 and "reports/alpha+beta/" in both.output
    figs = invoke("figures", b)
    assert figs.exit_code == 0 and "reports/beta/figures/" in figs.output
    assert list((tmp_path / "reports/beta/figures").glob("*.png"))
    assert not (tmp_path / "reports/alpha/figures").exists()
    assert invoke("report", a, "--no-figures", "--out", "elsewhere").exit_code == 0
    assert (tmp_path / "elsewhere/summary.md").is_file()  # --out still wins


def test_report_page_is_byte_stable(small_run, invoke, tmp_path):
    """Same runs, same page: nothing in it depends on the time or on set order."""
    pages = []
    for name in ("a", "b"):
        res = invoke("report", small_run, "--out", tmp_path / name, "--no-figures", "--format",
                     "html")
        assert res.exit_code == 0, res.output
        pages.append((tmp_path / name / "index.html").read_bytes())
    assert pages[0] == pages[1]


def test_headline_budget_and_machine_lines():
    """The headline's caption says what the numbers cost and where they were measured, from
    what the rows and manifests record."""
    from evobench.reports.html import budget_line, machine_line

    rows = pd.DataFrame({
        "method": ["tvae", "tvae", "bm3d", "noisy"], "p_method_epochs": [5.0, 10.0, None, None],
        "p_method_preset": ["quick", "quick", None, None], "budget_s": [60.0, 60.0, 60.0, None],
        "threads": [1, 1, 1, 1], "jobs": [2, 2, 2, 2], "device": ["cpu"] * 4,
        "loadavg_1m": [0.23, 1.31, 0.9, 0.5]})
    manifests = {"r": {"config": {"suite": "denoise", "profile": "quick"},
                       "machine": {"cpu": "AMD EPYC", "cores": 2, "gpu": ""}}}
    assert budget_line(rows, manifests) == ("Budget: suite denoise (quick); --budget 60 s of "
                                            "fitting per cell; tvae: 5–10 epochs, preset quick.")
    assert machine_line(rows, manifests) == (
        "Machine: AMD EPYC, 2 cores; 1 thread per cell, 2 cells at a time; device cpu; "
        "load 0.2–1.3 (1-minute load average as cells started).")


def test_a_merged_run_says_where_its_sources_were_measured(make, invoke, tmp_path):
    """A merged run's own manifest records no machine or suite: the report reads its sources'."""
    a, b = make("a", **SMALL), make("b", **SMALL)
    merged = merge_runs([a, b], tmp_path / "ab")
    res = invoke("report", merged, "--out", tmp_path / "rep", "--no-figures")
    assert res.exit_code == 0, res.output
    html = (tmp_path / "rep" / "index.html").read_text()
    assert "Machine: synthetic, 2 cores" in html and "unknown CPU" not in html
    assert "<td>cpu=synthetic, cores=2, ram_gb=8.0</td>" in html


def test_the_headline_leaves_out_methods_skipped_for_a_task():
    from evobench.reports.html import headline_tables

    base = {"task": "denoise", "dataset": "d", "image": "01", "repetition": 0, "sigma": 25.0,
            "missing": float("nan"), "degradation": "gaussian", "method_label": "x"}
    rows = pd.DataFrame([
        {**base, "method": "bm3d", "method_label": "bm3d", "status": "ok", "psnr": 30.0},
        {**base, "method": "zsn2n", "method_label": "zsn2n", "status": "skipped", "psnr": None},
    ])
    (table,) = headline_tables(rows, "psnr")
    assert "bm3d" in table and "zsn2n" not in table
