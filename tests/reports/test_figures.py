import numpy as np
import pandas as pd
import pytest
from evobench_standard.figures import (
    FIELD_GAP_COLOR,
    _mosaic,
    generative_fields,
    psnr_vs_level,
    psnr_vs_time,
    restoration_panels,
    training_curves,
)
from matplotlib import style

from evobench.errors import EvobenchError
from evobench.reports.figures import STYLE, make_figures, save
from evobench.reports.load import load_runs

EXPECTED = {"psnr_vs_noise", "psnr_vs_missing", "psnr_vs_time", "training_curves_01",
            "sparsity", "fields_01"}


@pytest.fixture(scope="module")
def figures(small_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("figs")
    files, notes = make_figures(load_runs(small_run), out, formats=["png"])
    return out, files, notes


def test_every_figure_is_written(figures):
    out, files, notes = figures
    assert notes == []
    stems = {p.stem for p in files}
    assert EXPECTED <= stems
    panels = sorted(s for s in stems if s.startswith("panels_"))
    assert panels == ["panels_set12_01_denoise_sigma-15", "panels_set12_01_denoise_sigma-25",
                      "panels_set12_01_inpaint_50-missing", "panels_set12_01_inpaint_80-missing"]
    for p in files:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000


def test_output_is_byte_identical_and_dateless(small_run, tmp_path, monkeypatch):
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    data = load_runs(small_run)
    for attempt in ("a", "b"):
        with style.context(STYLE):
            for name, fig in psnr_vs_time(data) + generative_fields(data):
                save(fig, tmp_path / attempt, name, ["png", "pdf", "svg"])
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert len(files) == 6
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert b"CreationDate" not in (tmp_path / "a/psnr_vs_time.pdf").read_bytes()
    assert b"<dc:date>" not in (tmp_path / "a/psnr_vs_time.svg").read_bytes()


def test_source_date_epoch_is_honoured(small_run, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    (name, fig), = psnr_vs_level(load_runs(small_run), "denoise")
    save(fig, tmp_path, name, ["pdf"])
    assert b"D:20231114" in (tmp_path / "psnr_vs_noise.pdf").read_bytes()


def test_missing_data_skips_with_notes(make, tmp_path):
    bare = make("bare", methods=("noisy", "bm3d"), missing=(), artifacts=False, reps=1)
    files, notes = make_figures(load_runs(bare), tmp_path / "f")
    assert {p.stem for p in files} == {"psnr_vs_noise", "psnr_vs_time"}
    text = " | ".join(notes)
    for what in ("training curves", "sparsity", "generative fields", "restoration panels"):
        assert what in text
    assert "missing fraction" not in text  # a denoise-only run has no inpainting to miss


def test_methods_differ_in_colour_marker_and_line_style(small_run):
    from matplotlib.colors import to_rgb

    data = load_runs(small_run)
    with style.context(STYLE):
        (_, noise), = psnr_vs_level(data, "denoise")
        (_, timing), = psnr_vs_time(data)
    lines = {c.get_label(): c.lines[0] for c in noise.axes[0].containers}  # errorbar data
    assert set(lines) == {"noisy", "bm3d", "tvae[S=64]", "gsvae"}
    learned = [lines[m] for m in ("bm3d", "tvae[S=64]", "gsvae")]
    for attr in ("get_color", "get_marker", "get_linestyle"):
        assert len({str(getattr(ln, attr)()) for ln in learned}) == 3, attr
    assert lines["noisy"].get_linestyle() == ":" and lines["noisy"].get_marker() == "x"
    # equal values do not hide each other: each method's points sit at their own x
    xs = {m: tuple(ln.get_xdata()) for m, ln in lines.items()}
    assert len(set(xs.values())) == 4
    # colour-blind-safe palette without yellow; no colour too light for a white page
    for ln in lines.values():
        r, g, b = to_rgb(ln.get_color())
        assert 0.2126 * r + 0.7152 * g + 0.0722 * b < 0.6, ln.get_label()
    # psnr_vs_time: no figure title that could run into the legend; the legend explains marks
    assert timing._suptitle is None
    legend_texts = [t.get_text() for t in timing.legends[0].get_texts()]
    assert legend_texts[-2:] == ["mean per level", "single cell"]
    assert noise.legends[0].get_title().get_text() == "method"  # legend_right's default title
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(timing)
    canvas.draw()  # constrained layout done: the legend lies right of every panel's content
    renderer = canvas.get_renderer()
    right = max(ax.get_tightbbox(renderer).x1 for ax in timing.axes)
    assert timing.legends[0].get_window_extent(renderer).x0 >= right - 1


def test_chosen_image_and_bad_input(small_run, tmp_path):
    data = load_runs(small_run)
    with style.context(STYLE):
        stems = [name for build in (training_curves, generative_fields, restoration_panels)
                 for name, _ in build(data, "02")]
    assert stems[:2] == ["training_curves_02", "fields_02"]
    assert len(stems) == 6 and all("_02_" in s for s in stems[2:])
    with pytest.raises(EvobenchError, match="image '99' is not in the results"):
        make_figures(data, tmp_path, image="99")
    with pytest.raises(EvobenchError, match="unknown figure format"):
        make_figures(data, tmp_path, formats=["gif"])


def test_fields_mosaic_is_symmetric_per_field():
    fields = np.stack([np.full((3, 3), 2.0), -np.eye(3) * 5, np.zeros((3, 3))])
    fields[0, 0, 0] = -4.0
    m = _mosaic(fields, ncols=3)
    assert m.shape == (1 * 4 + 1, 3 * 4 + 1, 3)
    first = m[1:4, 1:4, 0]
    assert first[0, 0] == 0.0 and first[1, 1] == pytest.approx(0.75)  # -4 -> 0, 2 -> 0.75
    second = m[1:4, 5:8, 0]
    assert second[0, 0] == 0.0 and second[0, 1] == 0.5  # zero stays mid-gray
    assert (m[1:4, 9:12] == 0.5).all()  # an all-zero field does not divide by zero
    assert tuple(m[0, 0]) == FIELD_GAP_COLOR and tuple(m[4, 4]) == FIELD_GAP_COLOR
    rgb = _mosaic(np.ones((2, 3, 3, 3)), ncols=2)
    assert rgb.shape == (5, 9, 3) and (rgb[1:4, 1:4] == 1.0).all()


def test_a_new_report_removes_only_its_own_stale_figures(small_run, tmp_path):
    """Figures an earlier report wrote but this one does not (here: the svg format, no longer
    asked for) are deleted; a file evobench did not write is kept."""
    data = load_runs(small_run)
    first, _ = make_figures(data, tmp_path, formats=["png", "svg"])
    assert any(p.suffix == ".svg" for p in first)
    (tmp_path / "notes.svg").write_text("<svg/>")  # the user's own file
    second, _ = make_figures(data, tmp_path, formats=["png"])
    assert {p.name for p in second} == {p.name for p in first if p.suffix == ".png"}
    left = {p.name for p in tmp_path.iterdir()} - {".evobench-figures"}
    assert left == {p.name for p in second} | {"notes.svg"}


def test_styles_follow_the_method_specs(evobench_plugin):
    """Ranked methods take the first styles (lower rank first), references are gray and dotted,
    whatever their labels; unranked and uninstalled methods follow in order of appearance."""
    import types

    from evobench.api import MethodSpec, hookimpl, method_styles
    from evobench.reports.figures import PALETTE, REFERENCE_STYLE

    @hookimpl
    def evobench_register_methods(register):
        for name, rank, reference in (("late", 2, False), ("early", 1, False),
                                      ("floor", None, True)):
            register(MethodSpec(name=name, factory="x:y", tasks=frozenset({"denoise"}),
                                rank=rank, reference=reference))

    evobench_plugin(types.SimpleNamespace(evobench_register_methods=evobench_register_methods),
                    "ranked-plugin")
    labels = ["Floor input", "uninstalled", "late[k=1]", "The early one", "late[k=1]"]
    methods = ["floor", "uninstalled", "late", "early", "late"]
    styles = method_styles(labels, methods)
    assert styles["Floor input"] == REFERENCE_STYLE
    assert [styles[lab]["color"] for lab in ("The early one", "late[k=1]", "uninstalled")] == \
        PALETTE[:3]


def _titles_outside(fig) -> list[str]:
    """The titles (figure and axes) that reach past the canvas once drawn: a person would see
    them cut off at the edge."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    box = fig.bbox
    texts = [t for ax in fig.axes for t in (ax.title, ax._left_title, ax._right_title)]
    texts += [fig._suptitle] if fig._suptitle is not None else []
    out = []
    for t in texts:
        if t.get_text() and t.get_visible():
            b = t.get_window_extent(renderer)
            if b.y1 > box.y1 + 0.5 or b.y0 < -0.5 or b.x0 < -0.5 or b.x1 > box.x1 + 0.5:
                out.append(t.get_text())
    return out


def test_fields_titles_stay_inside_the_canvas(small_run):
    """Long selectors as labels made four- and five-line panel titles whose first line was cut
    off at the top edge; the shared lines are one figure title now, inside the canvas."""
    data = load_runs(small_run)
    data.results["method_label"] = data.results["method"].map(
        lambda m: f"{m}[C=2,H=16,P=3,S=8,crossover=True,epochs=10,mutation=sparseflip]")
    with style.context(STYLE):
        (name, fig), = generative_fields(data)
    assert _titles_outside(fig) == []
    assert fig._suptitle is not None and "mid-gray = 0" in fig._suptitle.get_text()


def test_legends_show_display_names_in_rank_order(small_run, tmp_path, monkeypatch):
    """What make_figures hands every figure kind: display names (``tvae (S=64)``), never a
    raw selector, and tvae (rank 1) first, the noisy reference last."""
    import evobench_standard.figures as kinds

    seen = []
    real = kinds.legend_right

    def spy(fig, axes, *args, **kwargs):
        seen.append([lab for ax in axes for lab in ax.get_legend_handles_labels()[1]])
        return real(fig, axes, *args, **kwargs)

    monkeypatch.setattr(kinds, "legend_right", spy)
    make_figures(load_runs(small_run), tmp_path, formats=["png"])
    assert seen and all("[" not in lab for labels in seen for lab in labels)
    noise = next(labels for labels in seen if "tvae (S=64)" in labels)
    assert noise[0] == "tvae (S=64)" and noise[-1] == "noisy"


def test_training_curves_draw_every_method_with_a_trace(small_run):
    """A loss-only method (gsvae) is drawn beside tvae's free energy, each in its own panel;
    a zero-shot method's loss is drawn against its iterations, not epochs."""
    import dataclasses

    data = load_runs(small_run)
    tr = data.traces.copy()
    gs = tr["method"] == "gsvae"
    tr.loc[gs, "loss"] = 100 - tr.loc[gs, "epoch"]
    tr.loc[gs, "free_energy"] = np.nan
    zs = tr[gs].copy()
    zs["method"] = "zsn2n"  # its spec has an 'iterations' parameter
    zs["epoch"] = zs["epoch"] * 50
    res = data.results.fillna({"p_deg_sigma": -1, "p_deg_missing": -1})
    where = ["image", "task", "p_deg_sigma", "p_deg_missing", "rep"]
    bm3d = {tuple(r[where]): r["cell_key"] for _, r in res[res["method"] == "bm3d"].iterrows()}
    of = {r["cell_key"]: bm3d.get(tuple(r[where])) for _, r in res.iterrows()}
    zs["cell_key"] = zs["cell_key"].map(of)  # the bm3d cells stand in for zsn2n's
    zs = zs[zs["cell_key"].notna()]
    data = dataclasses.replace(data, traces=pd.concat([tr, zs], ignore_index=True))
    with style.context(STYLE):
        (name, fig), = training_curves(data)
    shown = [ax for ax in fig.axes if ax.get_visible() and ax.get_lines()]
    ylabels = {ax.get_ylabel() for ax in shown}
    assert {"free energy (per data point)", "loss"} <= ylabels
    labels = {lab for ax in shown for lab in ax.get_legend_handles_labels()[1]}
    assert any(lab.startswith("gsvae") for lab in labels)
    assert any(ax.get_xlabel() == "iteration" for ax in shown)
    assert _titles_outside(fig) == []



def test_styles_no_black_no_cross_for_methods(evobench_plugin):
    """A plugin method added as the 8th (or 11th) method gets neither black nor a cross-like
    marker, which read as the noisy reference's gray 'x'; the first 110 methods all differ."""
    from evobench.api import method_styles

    labels = [f"m{i}" for i in range(110)]
    styles = method_styles(labels, labels)
    assert all(st["color"] != "#000000" and st["marker"] not in ("x", "X", "+")
               for st in styles.values())
    assert len({(st["color"], st["marker"]) for st in styles.values()}) == 110


def test_psnr_vs_time_levels_and_references_psnr_vs_noise_one_rep(small_run):
    """psnr_vs_time draws no reference (the noisy input) and labels which mean is which noise
    level; psnr_vs_noise with one repetition has plain markers, no error-bar glyphs; the
    sparsity figure's mean line is dashed and it says H and the pooled images."""
    import dataclasses

    from evobench_standard.figures import sparsity
    from matplotlib.container import ErrorbarContainer

    data = load_runs(small_run)
    with style.context(STYLE):
        (_, timing), = psnr_vs_time(data)
        one = dataclasses.replace(data, results=data.results[data.results["rep"] == 0])
        (_, noise), = psnr_vs_level(one, "denoise")
        (_, spars), = sparsity(data)
    labels = [lab for ax in timing.axes for lab in ax.get_legend_handles_labels()[1]]
    assert "noisy" not in labels and "bm3d" in labels
    assert any(t.get_text() == "σ=15" for ax in timing.axes for t in ax.texts)
    handles = [h for ax in noise.axes for h in ax.get_legend_handles_labels()[0]]
    assert handles and not any(isinstance(h, ErrorbarContainer) for h in handles)
    title = spars._suptitle.get_text()
    assert "H = " in title or "H per method" in title
    assert "pooled over image" in title
    means = [line for ax in spars.axes for line in ax.get_lines()]
    assert means and all(line.get_linestyle() == "--" for line in means)


def test_restoration_panels_leave_no_blank_row(small_run):
    """Six panels (clean, corrupted, four methods) fill 2 x 3, not 5 and a lone one beside
    four blank areas."""
    import dataclasses

    data = load_runs(small_run)
    res = data.results
    extra = res[res["method"] == "tvae"].assign(method_label="tvae (copy)",
                                                cell_key=lambda d: d["cell_key"] + "-copy")
    data = dataclasses.replace(data, results=pd.concat([res, extra], ignore_index=True))
    with style.context(STYLE):
        figs = restoration_panels(data)
    name, fig = next((n, f) for n, f in figs if "sigma-25" in n)
    shown = [ax for ax in fig.axes if ax.get_visible()]
    blank = [ax for ax in fig.axes if not ax.get_visible()]
    assert len(shown) == 6 and blank == []


def test_a_lower_rank_takes_the_first_style(monkeypatch):
    """Ranks order the styles, lower first, rank 0 included; unranked methods follow in order
    of appearance."""
    from types import SimpleNamespace

    from evobench.reports import figures

    ranks = {"late": None, "one": 1, "zero": 0}
    monkeypatch.setattr(figures, "method_spec",
                        lambda m: SimpleNamespace(rank=ranks[m], reference=False))
    styles = figures.method_styles(["late", "one", "zero"], ["late", "one", "zero"])
    assert [styles[m]["color"] for m in ("zero", "one", "late")] == list(figures.PALETTE[:3])
