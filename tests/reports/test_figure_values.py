"""What a reader sees in the figures, read back from the matplotlib artists and compared with
the tables (``build_tables``): the plotted means and the error bars, which spread over
repetitions (the mean over images inside each repetition, then the std over repetitions), not
over images. Figure code is not touched here; only the numbers it draws are checked."""

import dataclasses
import math

import numpy as np
import pytest
from evobench_standard.figures import psnr_vs_level, psnr_vs_time
from matplotlib import style

from evobench.reports.figures import STYLE
from evobench.reports.load import load_runs
from evobench.reports.names import with_display_names
from evobench.reports.tables import build_tables


@pytest.fixture(scope="module")
def data(small_run):
    """The run as ``make_figures`` hands it to a figure kind: display names, rank order."""
    run = load_runs(small_run)
    return dataclasses.replace(run, results=with_display_names(run.results))


def _table(data, task):
    (table,) = [t for t in build_tables(data.results, ["psnr"], per_image=False)
                if t.task == task and t.metric == "psnr" and t.scope == "average"]
    return table


def _drawn(fig):
    """label -> (x, means, half error bar lengths) of each errorbar container, sorted by x."""
    out = {}
    (ax,) = fig.axes[:1]
    for c in ax.containers:
        line, _caps, (bars,) = c.lines
        x, y = np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)
        segs = np.asarray(bars.get_segments())  # (points, 2 ends, xy)
        assert np.allclose(segs[:, 0, 0], x) and np.allclose(segs[:, 1, 0], x)
        assert np.allclose(segs.mean(1)[:, 1], y)  # the bar is centred on the mean
        half = (segs[:, 1, 1] - segs[:, 0, 1]) / 2
        order = np.argsort(x)
        out[c.get_label()] = (x[order], y[order], np.abs(half[order]))
    return out


@pytest.mark.parametrize("task", ["denoise", "inpaint"])
def test_plotted_means_and_error_bars_are_the_tables(data, task):
    table = _table(data, task)
    with style.context(STYLE):
        ((_, fig),) = psnr_vs_level(data, task)
    drawn = _drawn(fig)
    assert set(drawn) == {m for m, _ in table.rows}
    for method, cells in table.rows:  # table columns are in increasing level order here
        _, means, half = drawn[method]
        assert len(means) == len(cells) == 2, method
        assert means == pytest.approx([c.mean for c in cells], abs=1e-9), method
        assert all(c.n_reps == 2 for c in cells)
        assert half == pytest.approx([0.0 if math.isnan(c.std) else c.std for c in cells],
                                     abs=1e-9), method


def test_error_bars_spread_over_repetitions_not_images(data):
    """The issue's example: bm3d at sigma 15 has +-0.027 over repetitions; the spread over the
    two images (of the per-image means) is much larger."""
    df = data.results
    sub = df[(df.method_label == "bm3d") & (df.p_deg_sigma == 15) & (df.status == "ok")]
    over_reps = sub.groupby("rep").psnr.mean().std()
    over_images = sub.groupby("image").psnr.mean().std()
    assert over_images > 3 * over_reps  # the synthetic run tells them apart
    with style.context(STYLE):
        ((_, fig),) = psnr_vs_level(data, "denoise")
    _, _, half = _drawn(fig)["bm3d"]
    assert half[0] == pytest.approx(over_reps, abs=1e-9)


def test_psnr_vs_time_means_are_the_tables(data):
    """The large 'mean per level' markers: one per method and level, at the table's mean (the
    noisy reference is not a method here: it has no fit time)."""
    with style.context(STYLE):
        ((_, fig),) = psnr_vs_time(data)
    assert [ax.get_title() for ax in fig.axes[:2]] == ["denoising", "inpainting"]
    for ax, task in zip(fig.axes[:2], ["denoise", "inpaint"]):
        table = _table(data, task)
        means = {ln.get_label(): sorted(ln.get_ydata()) for ln in ax.lines
                 if not ln.get_label().startswith("_")}
        rows = [(m, cells) for m, cells in table.rows if m != "noisy"]
        assert set(means) == {m for m, _ in rows}
        for method, cells in rows:
            assert means[method] == pytest.approx(sorted(c.mean for c in cells), abs=1e-9)
