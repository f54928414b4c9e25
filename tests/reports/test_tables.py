import io
import math

import numpy as np
import pandas as pd
import pytest

from evobench.errors import EvobenchError
from evobench.reports.load import normalise, read_results
from evobench.reports.tables import build_tables, level_label, render_summary


def frame(rows):
    """A results frame from (method, image, sigma, rep, psnr, status) tuples."""
    recs = [{"cell_key": f"{m}-{i}-{s}-{r}", "dataset": "set12", "image": i, "task": "denoise",
             "degradation": "gaussian", "p_deg_sigma": s, "method": m, "method_label": m,
             "rep": r, "psnr": p, "ssim": p / 40, "time_total_s": 1.0 + r, "status": st}
            for m, i, s, r, p, st in rows]
    return normalise(pd.DataFrame(recs))


def test_average_over_images_then_spread_over_repetitions():
    df = frame([
        ("a", "01", 25.0, 0, 30.0, "ok"), ("a", "02", 25.0, 0, 32.0, "ok"),
        ("a", "01", 25.0, 1, 31.0, "ok"), ("a", "02", 25.0, 1, 35.0, "ok"),
        ("b", "01", 25.0, 0, 29.0, "ok"), ("b", "02", 25.0, 0, 29.0, "ok"),
    ])
    table = build_tables(df, ["psnr"], per_image=False)[0]
    cell_a = table.rows[0][1][0]
    # per-repetition image means are 31 and 33 -> mean 32, sample std sqrt(2)
    assert cell_a.mean == pytest.approx(32.0)
    assert cell_a.std == pytest.approx(math.sqrt(2))
    assert cell_a.n_reps == 2 and cell_a.best
    assert not table.rows[1][1][0].best
    assert "32.00 ± 1.41 *" in render_summary(df, "text", metrics=["psnr"], per_image=False)


def test_failures_are_counted_not_dropped_and_incomplete_reps_are_left_out():
    df = frame([
        ("a", "01", 25.0, 0, 30.0, "ok"), ("a", "02", 25.0, 0, 32.0, "ok"),
        ("a", "01", 25.0, 1, 40.0, "ok"), ("a", "02", 25.0, 1, np.nan, "timeout"),
        ("c", "01", 25.0, 0, np.nan, "error"), ("c", "02", 25.0, 0, np.nan, "error"),
    ])
    table = build_tables(df, ["psnr"], per_image=False)[0]
    cell = table.rows[0][1][0]
    # rep 1 lost image 02, so only the complete rep 0 enters the average (31, not 35.5)
    assert cell.mean == pytest.approx(31.0) and cell.failed["timeout"] == 1
    assert table.rows[1][0] == "c" and table.rows[1][1][0].text(2) == "2 error"
    text = render_summary(df, "text", metrics=["psnr"], per_image=False)
    assert "31.00 (1 timeout)" in text and "2 error" in text
    assert "Cells by status" in text  # the status table appears when anything is not ok


def test_a_nan_metric_is_said_not_averaged_silently_and_never_best():
    """Issue 23 item 9: a metric NaN for one image gave "mean over 3 images" averaging 2, still
    marked the method best, and dropped that image's table, without a note."""
    df = frame([
        ("a", "01", 25.0, 0, 40.0, "ok"), ("a", "02", 25.0, 0, 40.0, "ok"),
        ("a", "03", 25.0, 0, np.nan, "ok"),
        ("b", "01", 25.0, 0, 30.0, "ok"), ("b", "02", 25.0, 0, 31.0, "ok"),
        ("b", "03", 25.0, 0, 32.0, "ok"),
    ])
    df.loc[df["image"] == "03", "psnr"] = [np.nan, np.nan]  # 03: NaN for both methods
    tables = build_tables(df, ["psnr"])
    avg = tables[0]
    assert avg.scope == "average" and "never marked best" in avg.title
    a, b = (cells[0] for _, cells in avg.rows)
    assert a.text(2) == "40.00 (mean over 2 of 3 images; 1 NaN)" and not a.best
    assert b.text(2) == "30.50 (mean over 2 of 3 images; 1 NaN)" and not b.best
    assert [t.scope for t in tables] == ["average", "01", "02", "03"]  # 03's table is kept
    assert [c[0].text(2) for _, c in tables[3].rows] == ["1 NaN", "1 NaN"]
    text = render_summary(df, "text", metrics=["psnr"], per_image=False)
    assert "mean over 2 of 3 images; 1 NaN" in text and " *\n" not in text
    csv = pd.read_csv(io.StringIO(render_summary(df, "csv", metrics=["psnr"])))
    assert list(csv.loc[csv.scope == "average", "n_nan"]) == [1, 1]
    # a NaN in one method only: the other is still best
    df2 = frame([("a", "01", 25.0, 0, 40.0, "ok"), ("a", "02", 25.0, 0, np.nan, "ok"),
                 ("b", "01", 25.0, 0, 30.0, "ok"), ("b", "02", 25.0, 0, 31.0, "ok"),
                 ("c", "01", 25.0, 0, 20.0, "ok"), ("c", "02", 25.0, 0, 21.0, "ok")])
    psnr = build_tables(df2, ["psnr"], per_image=False)[0]
    assert {n: c[0].best for n, c in psnr.rows} == {"a": False, "b": True, "c": False}
    # columns that are legitimately empty (timings, psnr_last_eval) count no NaN
    df2["time_fit_s"] = np.nan
    assert all(c.nan == 0 for t in build_tables(df2, ["time_total_s"]) for _, r in t.rows
               for c in r)


def test_best_marking_direction_ties_and_reference_rows():
    df = frame([
        ("noisy", "01", 25.0, 0, 20.0, "ok"), ("a", "01", 25.0, 0, 30.004, "ok"),
        ("b", "01", 25.0, 0, 30.001, "ok"), ("c", "01", 25.0, 0, 28.0, "ok"),
    ])
    psnr, time = build_tables(df, ["psnr", "time_total_s"], per_image=False)
    best = {name: cells[0].best for name, cells in psnr.rows}
    assert best == {"noisy": False, "a": True, "b": True, "c": False}  # tie at 2 decimals
    # lower is better for time, and the reference input never wins
    assert all(cells[0].best for name, cells in time.rows if name != "noisy")
    assert not dict(time.rows)["noisy"][0].best
    assert time.rows[-1][0] == "noisy"  # the reference comes last


def test_columns_follow_levels_and_per_image_tables(run_dir):
    df = read_results(run_dir)
    tables = build_tables(df, ["psnr"], per_image=True)
    scopes = [(t.task, t.scope) for t in tables]
    assert scopes == [("denoise", "average"), ("denoise", "01"), ("denoise", "02"),
                      ("inpaint", "average"), ("inpaint", "01"), ("inpaint", "02")]
    assert tables[0].columns == ["σ=15", "σ=25", "σ=50"]
    assert tables[3].columns == ["50% missing", "80% missing"]
    assert [name for name, _ in tables[3].rows] == ["tvae (S=64)", "gsvae"]  # no inpaint bm3d


def test_every_format_marks_the_best(run_dir):
    df = read_results(run_dir)
    md = render_summary(df, "markdown", per_image=False)
    assert "| method" in md and "**" in md and "± " in md
    tex = render_summary(df, "latex", per_image=False)
    assert r"\textbf{" in tex and r"$\pm$" in tex and r"$\sigma$=25" in tex
    assert tex.count(r"\begin{tabular}") == tex.count(r"\end{tabular}") == 6
    html = render_summary(df, "html", per_image=False)
    assert html.count("<table") == 6 and "<strong>" in html


def test_csv_is_tidy_and_numeric(run_dir):
    df = read_results(run_dir)
    out = pd.read_csv(io.StringIO(render_summary(df, "csv", per_image=True)))
    assert list(out.columns[:6]) == ["task", "dataset", "scope", "metric", "method", "level"]
    avg = out[(out.scope == "average") & (out.metric == "psnr") & (out.level == "σ=25")]
    assert set(avg["method"]) == {"noisy", "bm3d", "tvae (S=64)", "gsvae"}
    assert avg.loc[avg["mean"].idxmax(), "method"] == "tvae (S=64)"
    assert avg.set_index("method").loc["tvae (S=64)", "best"]


def test_csv_cells_that_look_like_formulas_are_neutralised():
    """Issue 23 item 5: an image id or label starting with =, +, -, @, tab or CR went into
    summary.csv verbatim (a spreadsheet runs it); numbers such as -0.5 stay numbers."""
    from evobench.reports.tables import csv_safe

    df = frame([("=HYPERLINK(\"x\")", "@SUM(A1)", 25.0, 0, -0.5, "ok"),
                ("+cmd", "-2+3", 25.0, 0, 30.0, "ok"), ("plain", "\tx", 25.0, 0, 31.0, "ok")])
    out = pd.read_csv(io.StringIO(render_summary(df, "csv", metrics=["psnr"])), dtype=str,
                      keep_default_na=False)
    assert set(out["method"]) == {"'=HYPERLINK(\"x\")", "'+cmd", "plain"}
    assert {"'@SUM(A1)", "'-2+3", "'\tx"} <= set(out["scope"])
    cells = [c for col in out.columns for c in out[col]]
    assert not [c for c in cells if c[:1] in ("=", "+", "@", "\t", "\r")]
    assert not [c for c in cells if c[:1] == "-" and not c.lstrip("-").replace(".", "").isdigit()]
    numbers = pd.read_csv(io.StringIO(render_summary(df, "csv", metrics=["psnr"])))
    assert numbers["mean"].dtype == float and -0.5 in set(numbers["mean"])
    assert [csv_safe(v) for v in ("-0.5", "+1e3", "-x", 2.0)] == ["-0.5", "+1e3", "'-x", 2.0]


def test_level_labels():
    assert level_label("denoise", 25.0, float("nan")) == "σ=25"
    assert level_label("inpaint", float("nan"), 0.8) == "80% missing"
    assert level_label("inpaint", 10.0, 0.5) == "50% missing, σ=10"
    assert level_label("inpaint", 0.0, 0.5) == "50% missing"
    assert level_label("inpaint", float("nan"), 0.5, "entry") == "50% missing per entry"
    assert level_label("inpaint", float("nan"), 0.5, "pixel") == "50% missing"


def test_bad_format_and_metric_are_user_errors(run_dir):
    df = read_results(run_dir)
    with pytest.raises(EvobenchError, match="unknown table format"):
        render_summary(df, "docx")
    with pytest.raises(EvobenchError, match="unknown metric"):
        render_summary(df, metrics=["lpips"])


def test_empty_results():
    assert render_summary(normalise(frame([]).iloc[:0])) == "No results."


def test_a_dataset_with_several_parameter_sets_gets_separate_tables():
    rows = frame([("a", "01", 25.0, 0, 30.0, "ok"), ("a", "01", 25.0, 1, 31.0, "ok")])
    rows["dataset_params"] = ['{"crop":64}', '{"crop":128}']
    tables = build_tables(normalise(rows.drop(columns=["dataset_label"])), ["psnr"])
    assert [t.dataset for t in tables] == ["set12[crop=64]", "set12[crop=128]"]
    assert [t.rows[0][1][0].mean for t in tables] == [30.0, 31.0]
    same = frame([("a", "01", 25.0, 0, 30.0, "ok")])
    assert build_tables(same, ["psnr"])[0].dataset == "set12"  # no suffix when unambiguous


def test_last_eval_psnr_is_tabulated_beside_psnr_when_a_run_has_it():
    df = frame([("tvae", "01", 25.0, 0, 30.0, "ok"), ("bm3d", "01", 25.0, 0, 31.0, "ok")])
    assert [t.metric for t in build_tables(df, ["psnr"])] == ["psnr"]
    df["psnr_last_eval"] = [29.5, np.nan]
    df["method_params"] = ['{"preset": "house-25"}', "{}"]  # a paper preset: scored as published
    tables = build_tables(df, ["psnr", "ssim"])
    assert [t.metric for t in tables] == ["psnr", "psnr_last_eval", "ssim"]
    assert [m for m, _ in tables[1].rows] == ["tvae"]  # only methods that have it
    assert "epoch 481" in tables[1].title and "final image" in tables[0].title


def test_no_last_eval_table_without_a_paper_preset():
    """A quick run's last scheduled evaluation (epoch 6 of 10) and a zero-shot method's last
    snapshot (its final image) are no second PSNR table, in text or in HTML."""
    df = frame([("tvae", "01", 25.0, 0, 30.0, "ok"), ("zsn2n", "01", 25.0, 0, 29.0, "ok"),
                ("bm3d", "01", 25.0, 0, 31.0, "ok")])
    df["psnr_last_eval"] = [29.5, 29.0, np.nan]
    df["method_params"] = ['{"preset": "quick"}', '{"iterations": 300}', "{}"]
    assert [t.metric for t in build_tables(df, ["psnr", "ssim"])] == ["psnr", "ssim"]
    for fmt in ("text", "html"):
        out = render_summary(df, fmt, metrics=["psnr"])
        assert "last scheduled evaluation" not in out and "final image" in out


def test_references_are_a_fact_of_the_method_spec(evobench_plugin):
    """The core names no method: a row is a reference (never marked best) when its method's
    spec says so, under whatever label; a method whose plugin is not installed is a contender."""
    import types

    from evobench.api import MethodSpec, hookimpl

    @hookimpl
    def evobench_register_methods(register):
        register(MethodSpec(name="floor", factory="x:y", tasks=frozenset({"denoise"}),
                            reference=True))

    evobench_plugin(types.SimpleNamespace(evobench_register_methods=evobench_register_methods),
                    "floor-plugin")
    df = frame([("floor", "01", 25.0, 0, 40.0, "ok"), ("uninstalled", "01", 25.0, 0, 30.0, "ok"),
                ("other", "01", 25.0, 0, 20.0, "ok")])
    df.loc[df["method"] == "floor", "method_label"] = "floor[x=1]"
    psnr, = build_tables(df, ["psnr"], per_image=False)
    assert {name: cells[0].best for name, cells in psnr.rows} == {
        "floor (x=1)": False, "uninstalled": True, "other": False}


def test_display_names_not_selectors_and_rank_order():
    """Tables show ``method (params that set it apart)``, never raw selectors; a suite's own
    label is kept; labels that would read the same keep their selectors; ranked methods (tvae)
    come first, references last; one method alone is no "(* best)" without a star."""
    from evobench.reports.names import display_names

    df = frame([("noisy", "01", 25.0, 0, 20.0, "ok"), ("bm3d", "01", 25.0, 0, 29.0, "ok"),
                ("tvae", "01", 25.0, 0, 26.0, "ok"), ("tvae", "01", 25.0, 0, 25.0, "ok"),
                ("tvae", "01", 25.0, 0, 24.0, "ok"), ("gsvae", "01", 25.0, 0, 23.0, "ok")])
    df["method_label"] = ["noisy", "bm3d", "tvae[C=2,H=16,S=8,epochs=10]",
                          "tvae[C=2,H=72,S=8,epochs=5]", "TVAE (published)", "gsvae[H=16,epochs=3]"]
    df["cell_key"] = [f"k{i}" for i in range(len(df))]
    psnr, = build_tables(df, ["psnr"], per_image=False)
    assert [name for name, _ in psnr.rows] == [
        "tvae (H=16, epochs=10)", "tvae (H=72, epochs=5)", "TVAE (published)",
        "gsvae (H=16, epochs=3)", "bm3d", "noisy"]
    text = render_summary(df, "text", metrics=["psnr"], per_image=False)
    assert "[" not in text and max(map(len, text.splitlines())) <= 90
    assert display_names(["x[a=1]", "x (a=1)"], ["x", "x"]) == {"x[a=1]": "x[a=1]",
                                                                "x (a=1)": "x (a=1)"}
    alone = frame([("tvae", "01", 25.0, 0, 26.0, "ok")])
    assert "(* best)" not in render_summary(alone, "text", metrics=["psnr"], per_image=False)


# -- issue 25 item 4: what the harness/reports mutation sample found untested ------------------


def test_status_table_in_latex_and_csv_numbers_to_six_digits():
    """The status table in LaTeX (a header row, then one row per method), and the CSV's
    numbers at 6 significant digits (``float_format``), not float noise."""
    df = frame([("a", "01", 25.0, 0, 30.123456789, "ok"), ("a", "02", 25.0, 0, np.nan, "error"),
                ("b", "01", 25.0, 0, 29.0, "ok"), ("b", "02", 25.0, 0, 28.0, "ok")])
    tex = render_summary(df, "latex", metrics=["psnr"], per_image=False)
    status = tex[tex.index("% Cells by status"):].splitlines()
    assert status[1:6] == [r"\begin{tabular}{lrr}", r"\toprule", r"method & ok & error \\",
                           r"\midrule", r"a & 1 & 1 \\"]
    html = render_summary(df, "html", metrics=["psnr"], per_image=False)
    assert "<thead><tr><th>method</th><th>ok</th><th>error</th></tr></thead>" in html
    csv = render_summary(df, "csv", metrics=["psnr"], per_image=True)
    assert ",30.1235," in csv and "30.12345" not in csv


def test_no_last_eval_table_for_a_method_without_a_preset():
    """A method whose parameters name no preset (its last evaluation earlier and worse than
    its final image: a quick run) gets no second PSNR table."""
    df = frame([("gsvae", "01", 25.0, 0, 30.0, "ok"), ("bm3d", "01", 25.0, 0, 31.0, "ok")])
    df["psnr_last_eval"] = [28.0, np.nan]
    df["method_params"] = ["{}", "{}"]
    assert [t.metric for t in build_tables(df, ["psnr"])] == ["psnr"]


def test_a_selector_splits_at_top_level_commas_only():
    from evobench.reports.names import split_selector

    assert split_selector("folder[path=/data/X1,color=gray]", "folder") == {
        "path": "/data/X1", "color": "gray"}
    assert split_selector("tvae[hidden=[64,64],C=2]", "tvae") == {"hidden": "[64,64]", "C": "2"}
    assert split_selector("mine", "tvae") is None and split_selector("tvae", "tvae") == {}
