"""The built-in figure kinds (registered in ``evobench_standard.FIGURES``): PSNR against the
noise level, the missing fraction and wall time, training curves, sparsity histograms,
generative fields and restoration panels.

Each kind follows ``FigureSpec``'s contract: ``draw(data, *, image=None)`` returns
``[(name, Figure)]`` or a one-line reason to skip. ``evobench.reports.figures.make_figures``
calls them inside the paper style and saves what they return; the styles per method and the
shared legend come from ``evobench.api``, as for any other plugin's figure kind.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
from matplotlib import ticker
from matplotlib.figure import Figure

from evobench.api import (
    RunData,
    get_registry,
    is_reference,
    legend_right,
    marker_edge,
    method_styles,
    row_level,
    wrap_label,
)

DATASET = "dataset_label"  # the loader's column: the dataset name, with parameters when ambiguous
HATCHES = ["", "//", "..", "xx", "\\\\", "++"]
MISSING_COLOR = (0.85, 0.15, 0.15)  # missing pixels in corrupted inpainting inputs
FIELD_GAP_COLOR = (0.55, 0.70, 0.85)
MAX_FIELDS = 144
MAX_LEVEL_PANELS = 6
Drawn = list[tuple[str, Figure]] | str  # the figures, or a note saying why there are none


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower().replace("σ", "sigma")).strip("-")



def _ok(df: pd.DataFrame) -> pd.DataFrame:
    return df[(df["status"] == "ok") & df["psnr"].notna()]


def _level_x(df: pd.DataFrame, task: str) -> pd.Series:
    return df["p_deg_sigma"] if task == "denoise" else 100 * df["p_deg_missing"]



def _psnr_label() -> str:
    """The PSNR axis label from the metric's facts (``PSNR (dB)``)."""
    return get_registry().metric("psnr").heading


def psnr_vs_noise(data: RunData, *, image: str | None = None) -> Drawn:
    """PSNR against the noise level (denoising)."""
    return psnr_vs_level(data, "denoise")


def psnr_vs_missing(data: RunData, *, image: str | None = None) -> Drawn:
    """PSNR against the missing fraction (inpainting)."""
    return psnr_vs_level(data, "inpaint")


def psnr_vs_level(data: RunData, task: str) -> list[tuple[str, Figure]] | str:
    """PSNR against noise level (denoising) or missing fraction (inpainting), one line per method."""
    df = _ok(data.results)
    df = df[df["task"] == task].copy()
    df["_x"] = _level_x(df, task)
    df = df[df["_x"].notna()]
    what = "noise level" if task == "denoise" else "missing fraction"
    if df.empty:
        return f"no ok {task} results with a {what}"
    if df["_x"].nunique() < 2:
        return f"only one {what} in the {task} results (a curve needs two)"
    styles = method_styles(data.results["method_label"], data.results["method"])
    datasets = list(dict.fromkeys(df[DATASET]))
    fig = Figure(figsize=(4.2 * len(datasets) + 2.2, 3.4))
    axes = fig.subplots(1, len(datasets), squeeze=False)[0]
    for ax, dataset in zip(axes, datasets):
        sub = df[df[DATASET] == dataset]
        n_images = sub["image"].nunique()
        per_rep = sub.groupby(["method_label", "_x", "rep"], sort=False)["psnr"].mean().reset_index()
        stats = per_rep.groupby(["method_label", "_x"], sort=False)["psnr"].agg(["mean", "std"])
        labels = list(dict.fromkeys(sub["method_label"]))
        # a small sideways shift per method, so equal values do not hide each other's markers
        span = float(sub["_x"].max() - sub["_x"].min()) or 1.0
        for i, label in enumerate(labels):
            s = stats.loc[label].sort_index()
            shift = (i - (len(labels) - 1) / 2) * 0.012 * span
            if s["std"].notna().any():  # a spread over repetitions: error bars
                ax.errorbar(s.index + shift, s["mean"], yerr=s["std"].fillna(0), label=label,
                            markersize=6, **marker_edge(styles[label]), **styles[label])
            else:  # one repetition: no bars, and no bar glyphs in the legend
                ax.plot(s.index + shift, s["mean"], label=label, markersize=6,
                        **marker_edge(styles[label]), **styles[label])
        ax.set_xlabel("noise level σ (0–255 scale)" if task == "denoise" else "missing pixels (%)")
        ax.set_ylabel(_psnr_label())
        ax.set_title(f"{dataset}: mean over {n_images} image{'s' * (n_images > 1)}")
    legend_right(fig, axes)
    name = "psnr_vs_noise" if task == "denoise" else "psnr_vs_missing"
    return [(name, fig)]


def psnr_vs_time(data: RunData, *, image: str | None = None) -> Drawn:
    """Quality per second: PSNR against wall time (log scale), one marker per method and level."""
    df = _ok(data.results)
    # the noisy input is no method: it takes no time and would squash the log axis
    df = df[(df["time_total_s"] > 0) & ~df["method"].map(is_reference).astype(bool)]
    if df.empty:
        return "no ok results of a method with a positive wall time"
    styles = method_styles(data.results["method_label"], data.results["method"])
    tasks = list(dict.fromkeys(df["task"]))
    fig = Figure(figsize=(4.4 * len(tasks) + 2.4, 3.6))
    axes = fig.subplots(1, len(tasks), squeeze=False)[0]
    for ax, task in zip(axes, tasks):
        sub = df[df["task"] == task]
        for label, cells in sub.groupby("method_label", sort=False):
            st = styles[label]
            ax.plot(cells["time_total_s"], cells["psnr"], linestyle="none", marker=st["marker"],
                    color=st["color"], markersize=3.5, alpha=0.35, **marker_edge(st, 0.0))
        groups = sub.groupby(["method_label", "p_deg_sigma", "p_deg_missing"], sort=False,
                             dropna=False)
        means = groups[["time_total_s", "psnr"]].mean().reset_index()
        means["_level"] = [row_level(r | {"task": task, "p_deg_per": ""})
                           for r in means.to_dict("records")]
        several = means["_level"].nunique() > 1
        for label in dict.fromkeys(sub["method_label"]):
            m = means[means["method_label"] == label]
            st = styles[label]
            ax.plot(m["time_total_s"], m["psnr"], marker=st["marker"], linestyle="none",
                    label=label, color=st["color"], markersize=8, **marker_edge(st))
            if several:  # which mean is which level: its label beside the marker
                for x, y, lev in zip(m["time_total_s"], m["psnr"], m["_level"]):
                    ax.annotate(lev, (x, y), xytext=(5, 3), textcoords="offset points",
                                fontsize=6.5, color=st["color"])
        ax.set_xscale("log")
        lo, hi = sub["time_total_s"].min(), sub["time_total_s"].max()
        if hi / lo < 10:  # less than a decade: label plain seconds, not 2×10^1
            plain = ticker.FuncFormatter(lambda v, _: f"{v:g}")
            ax.xaxis.set_major_formatter(plain)
            ax.xaxis.set_minor_formatter(plain)
        ax.set_xlabel("wall time per image (s, log scale)")
        ax.set_ylabel(_psnr_label())
        ax.set_title("denoising" if task == "denoise" else "inpainting")
    from matplotlib.lines import Line2D

    key = [(Line2D([], [], linestyle="none", marker="o", color="#666666", markersize=8),
            "mean per level"),
           (Line2D([], [], linestyle="none", marker="o", color="#666666", markersize=3.5,
                   alpha=0.35), "single cell")]
    legend_right(fig, axes, extra=key)
    return [("psnr_vs_time", fig)]


OBJECTIVES = (("free_energy", "free energy (per data point)"), ("loss", "loss"))


def _traces(data: RunData) -> pd.DataFrame | str:
    """The trace rows that carry an objective (``free_energy``: tvae; ``loss``: gsvae and the
    zero-shot methods), every method's."""
    tr = data.traces
    if tr is None or tr.empty:
        return "the run has no traces"
    have = [c for c, _ in OBJECTIVES if c in tr.columns and tr[c].notna().any()]
    if not have:
        return "no traces with a free energy or a loss"
    return tr[tr[have].notna().any(axis=1)]


def _step_unit(method: str) -> str:
    """What a method's trace counts: ``iteration`` for the zero-shot methods (an
    ``iterations`` parameter: Adam steps), else ``epoch``."""
    try:
        spec = get_registry().method(str(method))
    except Exception:  # noqa: BLE001 - a plugin no longer installed: epochs, as most
        return "epoch"
    return "iteration" if any(p.name == "iterations" for p in spec.params) else "epoch"


def training_curves(data: RunData, image: str | None = None) -> Drawn:
    """The objective (free energy, else loss) and PSNR per epoch (iteration, for the zero-shot
    methods) of every method that reports a training trace, one line per method and level,
    mean over repetitions: one row of panels per step unit, one panel per objective, then PSNR.
    """
    tr = _traces(data)
    if isinstance(tr, str):
        return tr
    res = data.results[["cell_key", "image", "task", "method_label", "p_deg_sigma",
                        "p_deg_missing", "p_deg_per", "rep"]].drop_duplicates("cell_key")
    res = res.assign(_level=[row_level(row) for row in res.to_dict("records")])
    tr = tr.merge(res, on="cell_key", how="inner")
    if tr.empty:
        return "traces do not match any result row"
    image = image if image is not None else tr["image"].iloc[0]
    tr = tr[tr["image"] == image]
    if tr.empty:
        return f"no traces for image {image!r}"
    tr = tr.copy()
    multi_level = tr["_level"].nunique() > 1
    tr["_line"] = tr["method_label"] + ((" " + tr["_level"]) if multi_level else "")
    tr["_unit"] = tr["method"].map({m: _step_unit(m) for m in tr["method"].unique()})
    units = [u for u in ("epoch", "iteration") if (tr["_unit"] == u).any()]
    rows = []  # per unit: [(column, label)] of its panels
    for unit in units:
        sub = tr[tr["_unit"] == unit]
        panels = [(c, lab) for c, lab in OBJECTIVES if c in sub.columns and sub[c].notna().any()]
        if "psnr" in sub.columns and sub["psnr"].notna().any():
            panels.append(("psnr", _psnr_label()))
        rows.append((unit, sub, panels))
    ncols = max(len(p) for *_, p in rows)
    fig = Figure(figsize=(4.0 * ncols + 2.6, 3.2 * len(rows) + 0.4))
    grid = fig.subplots(len(rows), ncols, squeeze=False)
    styles = method_styles(tr["_line"], tr["method"])
    used = []
    for axes, (unit, sub, panels) in zip(grid, rows):
        for ax, (col, ylabel) in zip(axes, panels):
            curves = sub.groupby(["_line", "epoch"], sort=False)[col].mean().reset_index()
            for line in dict.fromkeys(sub["_line"]):
                # PSNR exists only at evaluation epochs (1, 21, ..., and the last): join those
                c = curves[curves["_line"] == line].sort_values("epoch").dropna(subset=[col])
                if c.empty:
                    continue
                st = styles[line]
                ax.plot(c["epoch"], c[col], label=line, color=st["color"],
                        linestyle=st["linestyle"], marker=st["marker"], markersize=3.5,
                        markevery=1 if col == "psnr" else max(1, len(c) // 10))
            ax.set_xlabel(unit)
            ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
            ax.set_ylabel(ylabel)
            used.append(ax)
        for ax in axes[len(panels):]:
            ax.set_visible(False)
    legend_right(fig, used, title="method" + (", level" if multi_level else ""))
    n_reps = tr["rep"].nunique()
    level = "" if multi_level else f", {tr['_level'].iloc[0]}"
    fig.suptitle(f"Training on image {image}{level} (mean over {n_reps} repetition"
                 f"{'s' * (n_reps > 1)})", fontsize=10)
    return [(f"training_curves_{_slug(str(image))}", fig)]


def _artifacts(data: RunData, rows: pd.DataFrame, key: str):
    for _, row in rows.iterrows():
        arrays = data.artifact(row)
        if arrays is not None and key in arrays:
            yield row, arrays


def sparsity(data: RunData, *, image: str | None = None) -> Drawn:
    """Histogram of active latents per patch (normalised), TVAE against GSVAE, per level."""
    df = data.results[(data.results["status"] == "ok") & (data.results["artifact"] != "")]
    hists: dict[tuple[str, str], list[np.ndarray]] = {}
    pooled: dict[str, set] = {}  # label -> images its histograms average over
    sizes: dict[str, set] = {}  # label -> H (the histogram has H + 1 bins)
    for row, arrays in _artifacts(data, df, "active_hist"):
        h = np.asarray(arrays["active_hist"], dtype=float).ravel()
        if h.sum() <= 0:
            continue
        level = row_level(row)
        hists.setdefault((level, row["method_label"]), []).append(h / h.sum())
        pooled.setdefault(row["method_label"], set()).add(str(row["image"]))
        sizes.setdefault(row["method_label"], set()).add(len(h) - 1)
    if not hists:
        return "no artifacts with active_hist"
    levels = list(dict.fromkeys(k[0] for k in hists))[:MAX_LEVEL_PANELS]
    labels = list(dict.fromkeys(k[1] for k in hists))
    styles = method_styles(data.results["method_label"], data.results["method"])
    ncols = min(3, len(levels))
    nrows = math.ceil(len(levels) / ncols)
    fig = Figure(figsize=(3.8 * ncols + 2.4, 3.0 * nrows + 0.3))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    width = 0.8 / len(labels)
    hs = sorted(set().union(*sizes.values()))
    for ax, level in zip(axes, levels):
        top = 0
        for i, label in enumerate(labels):
            if (level, label) not in hists:
                continue
            group = hists[(level, label)]
            n = max(len(h) for h in group)
            mean = np.mean([np.pad(h, (0, n - len(h))) for h in group], axis=0)
            k = np.arange(n)
            active = float((k * mean).sum())
            color = styles[label]["color"]
            ax.bar(k + (i - (len(labels) - 1) / 2) * width, mean, width=width, color=color,
                   label=label if len(hs) == 1 else
                   f"{label}, H={'/'.join(map(str, sorted(sizes[label])))}", hatch=HATCHES[i % len(HATCHES)], edgecolor="white",
                   linewidth=0)
            ax.axvline(active, color=color, linestyle="--", linewidth=1.2)  # the mean
            nz = np.nonzero(mean > 1e-3)[0]
            top = max(top, int(nz.max()) if len(nz) else 0)
        ax.set_xlim(-0.7, top + 0.7)
        ax.set_xlabel("active latents per patch |s|")
        ax.set_ylabel("fraction of patches")
        ax.set_title(level)
    for ax in axes[len(levels):]:
        ax.set_visible(False)
    legend_right(fig, axes[:len(levels)], title="method\n(dashed line: mean)")
    images = sorted(set().union(*pooled.values()))
    what = f"H = {hs[0]} latents" if len(hs) == 1 else "H per method in the legend"
    names = ", ".join(images[:6]) + (" …" if len(images) > 6 else "")
    # left-aligned: the legend outside on the right starts at the top edge too
    fig.suptitle(f"Active latents per patch; {what}\npooled over image"
                 f"{'s' * (len(images) > 1)} {names}", fontsize=9, x=0.01,
                 horizontalalignment="left")
    return [("sparsity", fig)]


def _mosaic(fields: np.ndarray, ncols: int) -> np.ndarray:
    """Fields (H, p, p[, 3]) as one RGB image with 1-pixel coloured gaps (visible against any
    field), each field scaled symmetrically: 0 -> mid-gray, its max |w| -> black or white."""
    f = fields.astype(float)
    scale = np.abs(f).reshape(len(f), -1).max(axis=1)
    f = 0.5 + 0.5 * f / np.where(scale > 0, scale, 1.0).reshape((-1,) + (1,) * (f.ndim - 1))
    if f.ndim == 3:
        f = np.repeat(f[..., None], 3, axis=3)
    h, p = len(f), f.shape[1]
    nrows = math.ceil(h / ncols)
    out = np.empty((nrows * (p + 1) + 1, ncols * (p + 1) + 1, 3))
    out[:] = FIELD_GAP_COLOR
    for idx in range(h):
        r, c = divmod(idx, ncols)
        out[1 + r * (p + 1): 1 + r * (p + 1) + p, 1 + c * (p + 1): 1 + c * (p + 1) + p] = f[idx]
    return out


MAX_FIELD_METHODS = 4


def generative_fields(data: RunData, image: str | None = None) -> Drawn:
    """The generative fields of every method whose artifacts hold ``fields`` (tvae, gsvae: the
    same definition), one grid per method side by side, each field symmetric around 0 = gray."""
    df = data.results[(data.results["status"] == "ok") & (data.results["artifact"] != "")]
    if image is not None:
        df = df[df["image"] == image]
    df = df.sort_values(["p_deg_sigma", "p_deg_missing", "rep"], kind="stable")
    found: dict[str, tuple] = {}  # method label -> (row, fields) of its first cell with fields
    for row, arrays in _artifacts(data, df, "fields"):
        fields = np.asarray(arrays["fields"])
        if row["method_label"] in found:
            continue
        if fields.ndim not in (3, 4) or (fields.ndim == 4 and fields.shape[3] != 3):
            return f"fields have an unexpected shape {fields.shape}"
        found[row["method_label"]] = (row, fields)
        if len(found) == MAX_FIELD_METHODS:
            break
    if not found:
        return "no artifacts with fields" + (f" for image {image!r}" if image else "")
    first = next(iter(found.values()))[0]
    mosaics = []
    for row, fields in found.values():
        total = len(fields)
        fields = fields[:MAX_FIELDS]
        mosaics.append((row, fields, total, _mosaic(fields, math.ceil(math.sqrt(len(fields))))))
    height = max(m.shape[0] / m.shape[1] for *_, m in mosaics)
    # what the panels share goes into one figure title inside the canvas (constrained layout
    # makes room for it); each panel's own title stays one or two short lines
    where = {(str(row[DATASET]), str(row["image"]), row_level(row)) for row, *_ in mosaics}
    sizes = {f"{fields.shape[1]}×{fields.shape[2]} px" for _, fields, *_ in mosaics}
    shared = len(where) == 1
    fig = Figure(figsize=(5.5 * len(mosaics), 5.0 * height + 1.1), layout="constrained")
    for ax, (row, fields, total, mosaic) in zip(fig.subplots(1, len(mosaics), squeeze=False)[0],
                                               mosaics):
        ax.imshow(mosaic, interpolation="nearest")
        ax.set_axis_off()
        shown = f"{len(fields)} of {total}" if total > len(fields) else f"{total}"
        title = f"{wrap_label(row['method_label'], 40)}\n{shown} fields"
        if len(sizes) > 1:
            title += f", {fields.shape[1]}×{fields.shape[2]} px"
        if not shared:
            title += f"\n{row[DATASET]} image {row['image']}, {row_level(row)}"
        ax.set_title(title, fontsize=9)
    dataset, image_id, level = next(iter(where))
    head = (f"Generative fields, {dataset} image {image_id}, {level}" if shared
            else "Generative fields")
    if len(sizes) == 1:
        head += f" ({next(iter(sizes))})"
    fig.suptitle(f"{head}\nmid-gray = 0, each field scaled to its max |w|", fontsize=10)
    return [(f"fields_{_slug(str(first['image']))}", fig)]


def _display(img: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
    """An image ready for imshow: clipped for display only, missing pixels in red."""
    img = np.asarray(img, dtype=float)
    missing = ~np.isfinite(img)
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        missing |= m if m.shape == img.shape else (m[..., None] if img.ndim == 3 else m)
    if not missing.any():
        return np.clip(img, 0, 1), {"cmap": "gray", "vmin": 0, "vmax": 1}
    rgb = np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img.copy()
    rgb = np.clip(np.nan_to_num(rgb), 0, 1)
    pix = missing if missing.ndim == 2 else missing.any(axis=2)
    rgb[pix] = MISSING_COLOR
    return rgb, {}


def restoration_panels(data: RunData, image: str | None = None) -> list[tuple[str, Figure]] | str:
    """Clean / corrupted / restored images with their PSNR, one figure per level of one image."""
    df = data.results[(data.results["status"] == "ok") & (data.results["artifact"] != "")]
    if df.empty:
        return "no results with artifacts"
    if image is None:
        image = df["image"].iloc[0]
    df = df[df["image"] == image]
    if df.empty:
        return f"no results with artifacts for image {image!r}"
    out = []
    groups = df.groupby([DATASET, "task", "degradation", "p_deg_sigma", "p_deg_missing",
                         "p_deg_per"], sort=False, dropna=False)
    for (dataset, task, *_), group in groups:
        level = row_level(group.iloc[0])
        first = group.sort_values("rep", kind="stable").drop_duplicates("method_label")
        first = first[~first["method"].map(is_reference).astype(bool)]  # the input is shown
        panels = []
        for _, row in first.iterrows():
            arrays = data.artifact(row)
            if arrays is None or "restored" not in arrays:
                continue
            if not panels and "clean" in arrays:
                panels.append(("clean\n(reference)", *_display(arrays["clean"])))
                if "corrupted" in arrays:
                    psnr_in = row["psnr_input"]
                    shown, kw = _display(arrays["corrupted"], arrays.get("mask"))
                    title = "corrupted" + (" (red: missing)" if not kw else "")
                    title += f"\n{psnr_in:.2f} dB" if np.isfinite(psnr_in) else "\n "
                    panels.append((title, shown, kw))
            panels.append((f"{wrap_label(row['method_label'])}\n{row['psnr']:.2f} dB",
                           *_display(arrays["restored"])))
        if len(panels) < 2:
            continue
        # at most 5 a row, rows filled evenly: 6 panels are 2 x 3, not 5 and a lone one
        nrows = math.ceil(len(panels) / 5)
        ncols = math.ceil(len(panels) / nrows)
        fig = Figure(figsize=(2.1 * ncols, 2.35 * nrows + 0.35))
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        for ax, (title, img, kw) in zip(axes, panels):
            ax.imshow(img, interpolation="nearest", **kw)
            ax.set_title(title, fontsize=9)
            ax.set_axis_off()
        for ax in axes[len(panels):]:
            ax.set_visible(False)
        fig.suptitle(f"{dataset} image {image}: {task}, {level} (repetition "
                     f"{int(first['rep'].min())}; PSNR against the clean image)", fontsize=10)
        out.append((f"panels_{_slug(str(dataset))}_{_slug(str(image))}_{_slug(task)}_"
                    f"{_slug(level)}", fig))
    return out or f"no artifacts with restored images for image {image!r}"

