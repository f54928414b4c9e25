import pandas as pd
import pytest

from evobench.errors import EvobenchError
from evobench.reports.compare import compare_frames, match_cells, parse_fail_on, render
from evobench.reports.load import read_results
from evobench.reports.merge import write_table

SMALL = {"images": ("01",), "sigmas": (25.0,), "missing": (0.5,), "reps": 1,
         "methods": ("bm3d", "tvae"), "artifacts": False}
COLS = {"psnr", "ssim", "time_total_s", "x_active_mean"}


def test_parse_fail_on():
    gates = parse_fail_on("psnr:-0.05, ssim:0.002,time_total_s:+25%,x_active_mean:+10%", COLS)
    psnr, ssim, time, active = gates
    assert (psnr.amount, psnr.relative, psnr.higher_better) == (0.05, False, True)
    assert ssim.higher_better and not ssim.relative  # direction from the metric
    assert (time.amount, time.relative, time.higher_better) == (0.25, True, False)
    assert active.higher_better is False  # unknown metric: the sign decides
    assert str(time) == "time_total_s:+25%"


@pytest.mark.parametrize("text, message", [
    ("lpips:-0.1", "unknown column 'lpips'"),
    ("psnr:+0.05", "higher-is-better; write psnr:-0.05"),
    ("time_total_s:-10%", "lower-is-better"),
    ("x_active_mean:5", "with a sign"),
    ("psnr=-0.05", "COLUMN:"),
])
def test_parse_fail_on_errors(text, message):
    with pytest.raises(EvobenchError, match=message):
        parse_fail_on(text, COLS)


def compare(base, cand, gates="psnr:-0.05,ssim:-0.002", **kw):
    b, c = read_results(base), read_results(cand)
    return compare_frames(b, c, parse_fail_on(gates, set(b.columns)), **kw)


def test_identical_runs_pass(make):
    a = make("a", **SMALL)
    comp = compare(a, a)
    assert not comp.failed and set(comp.cells["verdict"]) == {"ok"}
    assert "OK: no regression in 3 cells" in render(comp)


def test_quality_drop_beyond_the_gate_fails_and_within_passes(make):
    a = make("a", **SMALL)
    worse = make("b", psnr_shift={"tvae": -0.2}, **SMALL)
    slightly = make("c", psnr_shift={"tvae": -0.03}, **SMALL)
    comp = compare(a, worse)
    reg = comp.regressions
    assert comp.failed and set(reg["method"]) == {"tvae[S=64]"} and len(reg) == 2
    assert reg["reasons"].str.contains("psnr -0.2").all()
    assert not compare(a, slightly, gates="psnr:-0.05").failed


def test_relative_time_gate_and_floor(make):
    a = make("a", **SMALL)
    slow = make("b", time_scale=1.5, **SMALL)
    comp = compare(a, slow, gates="time_total_s:+25%")
    # bm3d (1.5 s) and tvae (40 s) are 50 % slower; all 3 cells exceed the gate
    assert comp.failed and len(comp.regressions) == 3
    assert not compare(a, slow, gates="time_total_s:+60%").failed
    # changes below the floor are timer noise
    assert not compare(a, slow, gates="time_total_s:+25%", time_floor_s=100).failed


def test_missing_failed_and_new_cells(make):
    a = make("a", **SMALL)
    failed = make("b", failures={("bm3d", "01", 0): "timeout"}, **SMALL)
    comp = compare(a, failed)
    assert comp.regressions["verdict"].tolist() == ["failed"]
    # a candidate lacking a cell regresses; a baseline lacking one reports it as new
    fewer = make("c", **{**SMALL, "methods": ("tvae",)})
    comp = compare(a, fewer)
    assert comp.regressions["verdict"].tolist() == ["missing"]
    comp = compare(fewer, a)
    assert not comp.failed and comp.counts == {"ok": 2, "new": 1}
    # failing on both sides is reported, not a regression; a fix is not a regression
    assert not compare(failed, failed).failed
    assert compare(failed, a).counts.get("fixed") == 1


def test_matching_falls_back_to_identity_when_keys_change(make, tmp_path):
    a = make("a", **SMALL)
    df = pd.read_parquet(a / "results.parquet")
    df["cell_key"] = "new-" + df["cell_key"]
    df["run_id"] = "other"
    (tmp_path / "rekeyed").mkdir()
    write_table(df, tmp_path / "rekeyed/results.parquet")
    b, c = read_results(a), read_results(tmp_path / "rekeyed")
    pairs = match_cells(b, c)
    assert (pairs["i_base"] == pairs["i_cand"]).all() and len(pairs) == 3
    assert not compare(a, tmp_path / "rekeyed").failed


def test_markdown_and_show_filters(make):
    a = make("a", **SMALL)
    worse = make("b", psnr_shift={"tvae": -0.2}, **SMALL)
    comp = compare(a, worse)
    md = render(comp, fmt="markdown", show="regressions")
    assert md.startswith("| verdict") and md.count("✗ regressed") == 2
    assert "- REGRESSION: 2 of 3 cells" in md
    with pytest.raises(EvobenchError):
        render(comp, fmt="html")


def test_cli_exit_codes(make, invoke, tmp_path):
    a = make("a", **SMALL)
    worse = make("b", psnr_shift={"tvae": -0.2}, time_scale=2.0, **SMALL)
    ok = invoke("compare", a, a)
    assert ok.exit_code == 0 and "OK" in ok.output
    out = tmp_path / "diff.md"
    bad = invoke("compare", a, worse, "--fail-on", "psnr:-0.05", "--format", "markdown",
                  "--output", out)
    assert bad.exit_code == 1 and "REGRESSION" in bad.output
    assert out.read_text() == bad.output
    # timing reported but gated generously: a 2x slowdown passes a +300% gate
    timing = invoke("compare", a, make("c", time_scale=2.0, **SMALL), "--fail-on",
                     "psnr:-0.05,time_total_s:+300%")
    assert timing.exit_code == 0 and "+100%" in timing.output
    assert invoke("compare", a, tmp_path / "missing").exit_code == 2
    unknown = invoke("compare", a, a, "--fail-on", "lpips:-1")
    assert unknown.exit_code == 2 and "unknown column" in unknown.output


def test_environment_warnings_one_line_each(make, invoke, tmp_path):
    import json

    def edit(run, torch, **columns):
        df = pd.read_parquet(run / "results.parquet")
        for key, value in columns.items():
            df[key] = value
        write_table(df, run / "results.parquet")
        manifest = json.loads((run / "manifest.json").read_text())
        manifest["versions"] = {"torch": torch}
        if torch != "2.13.0":
            manifest["machine"] |= {"cpu": "Other CPU", "cores": 16}
        (run / "manifest.json").write_text(json.dumps(manifest))
        return run

    a = edit(make("a", **SMALL), "2.13.0", jobs=1, executor="local")
    same = invoke("compare", a, a)
    assert same.exit_code == 0 and "warning:" not in same.output  # identical set-ups: silence
    b = edit(make("b", **SMALL), "9.0.0", threads=1, jobs=2, executor="dask",
             evobench_version="9.9.9")
    result = invoke("compare", a, b)
    assert result.exit_code == 0
    warnings = [line for line in result.output.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 6, warnings
    text = "\n".join(warnings)
    assert "warning: threads per cell differ: baseline 2, candidate 1 (" in text
    assert "jobs differ: baseline 1, candidate 2" in text
    assert "executors differ: baseline local, candidate dask" in text
    assert "evobench versions differ" in text and "candidate 9.9.9" in text
    assert "torch versions differ" in text and "candidate 9.0.0" in text
    assert "machines differ" in text and "Other CPU, 16 cores" in text
    # no shared cells: said once, besides the regressions it implies
    other = make("o", images=("02",), sigmas=(15.0,), missing=(), reps=1, methods=("noisy",),
                 artifacts=False)
    disjoint = invoke("compare", a, other)
    assert disjoint.exit_code == 1
    assert "warning: the runs share no cells" in disjoint.output


def test_default_gates_include_cpu_time_with_its_floor(make, invoke):
    a = make("a", **SMALL)
    assert invoke("compare", a, make("noisy", time_scale=1.3, **SMALL)).exit_code == 0
    slow = invoke("compare", a, make("slow", time_scale=2.0, **SMALL))
    assert slow.exit_code == 1 and "cpu_s +100.0%" in slow.output
    assert "gates: psnr:-0.05, ssim:-0.002, cpu_s:+50%" in slow.output
    # changes below the time floor are timer noise, for CPU time as for wall time
    assert invoke("compare", a, make("s2", time_scale=2.0, **SMALL), "--time-floor",
                  "1000").exit_code == 0


def test_nan_in_the_baseline_skips_the_gate_and_nan_in_the_candidate_regresses(make, tmp_path):
    """A metric the baseline lacks (NaN in an ok row: e.g. a column added since) cannot regress;
    the same metric missing from an ok candidate row is a regression ("psnr missing")."""
    a = make("a", **SMALL)
    df = pd.read_parquet(a / "results.parquet")
    df.loc[df.method == "tvae", "psnr"] = float("nan")
    (tmp_path / "nan").mkdir()
    write_table(df, tmp_path / "nan" / "results.parquet")
    worse = make("w", psnr_shift={"tvae": -0.2}, **SMALL)
    gate = "psnr:-0.05"
    assert compare(a, worse, gate).failed  # the drop fails against a real baseline value ...
    comp = compare(tmp_path / "nan", worse, gate)  # ... and is not judged against NaN
    assert not comp.failed and set(comp.cells["verdict"]) == {"ok"}
    assert not compare(tmp_path / "nan", tmp_path / "nan", gate).failed  # NaN on both sides
    comp = compare(a, tmp_path / "nan", gate)
    reg = comp.regressions
    assert comp.failed and set(reg["method"]) == {"tvae[S=64]"} and len(reg) == 2
    assert (reg["reasons"] == "psnr missing").all()


def test_time_floor_ignores_only_changes_below_it(make, invoke):
    """--time-floor S: a relative time gate skips cells whose time changed by less than S
    seconds (bm3d's ~1.5 s here), and still judges larger changes (tvae's ~40 s); an absolute
    time gate is not floored."""
    a = make("a", **SMALL)
    slow = make("b", time_scale=2.0, **SMALL)
    gates = ("--fail-on", "time_total_s:+25%", "--show", "regressions")
    none = invoke("compare", a, slow, *gates, "--time-floor", "0")
    assert none.exit_code == 1 and "REGRESSION: 3 of 3 cells" in none.output
    some = invoke("compare", a, slow, *gates, "--time-floor", "5")
    assert some.exit_code == 1 and "REGRESSION: 2 of 3 cells" in some.output
    assert "bm3d" not in some.output.split("\n\n")[0]  # the regressions table: tvae only
    assert invoke("compare", a, slow, *gates, "--time-floor", "100").exit_code == 0
    absolute = invoke("compare", a, slow, "--fail-on", "time_total_s:+1", "--time-floor", "100")
    assert absolute.exit_code == 1


# -- issue 25 item 4: what the harness/reports mutation sample found untested ------------------


def test_rendered_table_columns_decimals_and_summary(make):
    """The diff table's header, each metric at its own decimals (ssim 3, psnr 2), the
    ``changed`` filter, and the summary's mean and worst change over the cells ok on both
    sides."""
    a = make("a", **SMALL)
    worse = make("b", psnr_shift={"tvae": -0.2}, **SMALL)
    comp = compare(a, worse)
    md = render(comp, fmt="markdown")
    header = [h.strip() for h in md.splitlines()[0].strip("|").split("|")]
    assert header == ["verdict", "method", "dataset", "image", "level", "rep",
                      "psnr: base → cand (Δ)", "ssim: base → cand (Δ)",
                      "time_total_s: base → cand (Δ)", "why"]
    assert "| 0.780 → 0.777 (-0.003)  |" in md  # ssim to 3 decimals (its MetricSpec)
    assert "- psnr: mean Δ -0.1333, worst Δ -0.2 over 3 cells" in md
    changed = render(comp, show="changed")
    assert changed.count("✗ regressed") == 2 and "\nok " not in changed
    text = render(comp, fmt="text")
    assert text.splitlines()[1].startswith("---")  # tabulate's "simple": dashes under the header


def test_keys_pair_cells_whose_identity_columns_repeat():
    """Two cells may share every fallback identity column (e.g. they differ in the seeds or
    the method version, which are in the key only): their keys still pair them, each to its
    own."""
    row = {"dataset": "d", "dataset_params": "{}", "image": "01", "task": "denoise",
           "degradation": "gaussian", "deg_params": "{}", "method": "m", "method_params": "{}",
           "rep": 0}
    frame = pd.DataFrame([{**row, "cell_key": "k1"}, {**row, "cell_key": "k2"}])
    pairs = match_cells(frame, frame.iloc[::-1])
    assert sorted(zip(pairs["i_base"], pairs["i_cand"])) == [(0, 1), (1, 0)]


def test_a_two_sided_gate_keeps_a_lower_is_better_direction(make):
    """``time_total_s:±25%``: a slowdown beyond the gate is a regression, not a rise."""
    (gate,) = parse_fail_on("time_total_s:±25%", COLS)
    assert gate.two_sided and gate.higher_better is False
    a = make("a", **SMALL)
    comp = compare(a, make("slow", time_scale=1.5, **SMALL), gates="time_total_s:±25%")
    assert set(comp.cells["verdict"]) == {"regressed"}
    assert not comp.cells["reasons"].str.contains("a rise").any()


def test_version_warning_reads_the_rows_before_the_manifest(make, tmp_path):
    """The rows' ``evobench_version`` (a merged run holds cells of several versions) wins over
    the manifest's, which only stands in for rows without the column."""
    import json

    from evobench.reports.compare import environment_warnings

    a, b = make("a", **SMALL), make("b", **SMALL)
    manifest = json.loads((a / "manifest.json").read_text())
    other = {**manifest, "evobench_version": "9.9.9"}
    base, cand = read_results(a), read_results(b)
    assert not [w for w in environment_warnings(base, cand, other, manifest)
                if "evobench versions" in w]
    bare = base.drop(columns="evobench_version")
    warned = [w for w in environment_warnings(bare, cand, other, manifest)
              if "evobench versions" in w]
    assert warned == ["evobench versions differ: baseline 9.9.9, candidate 0.1.0 "
                      "(expected after an upgrade)"]
