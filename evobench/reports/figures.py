"""Paper figures regenerated from a results store (``evobench figures``).

Figure kinds are plugins: each is a ``FigureSpec`` registered through the
``evobench_register_figures`` hook (the built-in kinds below by ``evobench_standard``), whose
factory follows the contract there: ``draw(data, *, image=None)`` returns ``[(name, Figure)]``
or a one-line reason to skip. Every figure is built from stored rows, traces and artifacts
only, with one style file (``paper.mplstyle``) and byte-stable output: no dates in the file
metadata unless ``SOURCE_DATE_EPOCH`` asks for one. A figure whose data is absent is skipped with
a note, so a run of baselines only still gets the figures it can have.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import style, ticker
from matplotlib.figure import Figure

from evobench.errors import EvobenchError
from evobench.reports.load import DATASET_LABEL, RunData, load_artifact
from evobench.reports.tables import is_reference, level_label, levels, method_spec, row_level
from evobench.specs import load_object

STYLE = Path(__file__).with_name("paper.mplstyle")
FORMATS = ("png", "pdf", "svg")
# Okabe-Ito (colour-blind safe) without its yellow, which vanishes on white; then Tol's wine.
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#882255"]
# Methods also differ in marker and line style, so they stay apart in grayscale print and where
# points overlap; references (MethodSpec.reference: the corrupted input) are gray and dotted.
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
LINESTYLES = ["-", "--", "-.", (0, (5, 1, 1, 1, 1, 1))]
HATCHES = ["", "//", "..", "xx", "\\\\", "++"]
REFERENCE_STYLE = {"color": "#666666", "marker": "x", "linestyle": ":"}
MISSING_COLOR = (0.85, 0.15, 0.15)  # missing pixels in corrupted inpainting inputs
FIELD_GAP_COLOR = (0.55, 0.70, 0.85)
MAX_FIELDS = 144
MAX_LEVEL_PANELS = 6


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower().replace("σ", "sigma")).strip("-")


def method_styles(labels, methods) -> dict[str, dict]:
    """Colour, marker and line style per label (``labels`` and the ``methods`` they belong to,
    side by side, e.g. a results frame's ``method_label`` and ``method`` columns); the same
    labels get the same styles in every figure. The methods' specs decide: references
    (``MethodSpec.reference``) are gray and dotted; ranked methods (``MethodSpec.rank``) take
    the first, strongest styles, lower rank first; the others follow in order of appearance. A
    method whose plugin is not installed here is an unranked contender."""
    method_of: dict = {}
    for lab, method in zip(labels, methods):
        method_of.setdefault(lab, method)
    specs = {m: method_spec(m) for m in set(method_of.values())}
    ranks = {m: (s.rank is None, s.rank or 0) if s else (True, 0) for m, s in specs.items()}
    out, i = {}, 0
    for lab in sorted(method_of, key=lambda lab: ranks[method_of[lab]]):
        spec = specs[method_of[lab]]
        if spec is not None and spec.reference:
            out[lab] = dict(REFERENCE_STYLE)
            continue
        out[lab] = {"color": PALETTE[i % len(PALETTE)], "marker": MARKERS[i % len(MARKERS)],
                    "linestyle": LINESTYLES[i % len(LINESTYLES)]}
        i += 1
    return out


def _wrap(label: str, width: int = 24) -> str:
    """Long method labels (``tvae[C=2,H=16,...]``) broken after commas so titles do not collide."""
    if len(label) <= width:
        return label
    lines, line = [], ""
    for part in re.split(r"(?<=[,\[])", label):
        if line and len(line) + len(part) > width:
            lines.append(line)
            line = ""
        line += part
    return "\n".join([*lines, line])


def _edge(style: dict, width: float = 0.6) -> dict:
    """Marker edges: a thin white rim for filled markers (overlaps stay readable); line-only
    markers such as the reference's 'x' need their own colour, or they vanish."""
    if style["marker"] in ("x", "+", "1", "2", "3", "4", "|", "_"):
        return {"markeredgecolor": style["color"], "markeredgewidth": 1.3}
    return {"markeredgecolor": "white", "markeredgewidth": width}


def _legend_right(fig: Figure, axes, title: str = "method", extra=()) -> None:
    """One legend for all panels, outside the axes, so it never covers data; ``extra`` adds
    (handle, label) pairs that explain the marks (instead of a title that could collide)."""
    handles, labels = {}, {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    for h, lab in extra:
        handles.setdefault(lab, h)
    labels = list(handles)
    fig.legend([handles[k] for k in labels], [_wrap(k) for k in labels],
               loc="outside right upper", title=title)


def _ok(df: pd.DataFrame) -> pd.DataFrame:
    return df[(df["status"] == "ok") & df["psnr"].notna()]


def _level_x(df: pd.DataFrame, task: str) -> pd.Series:
    return df["p_deg_sigma"] if task == "denoise" else 100 * df["p_deg_missing"]


# --- figures: each returns [(name, Figure)] or a note string saying why it was skipped ---------
Drawn = list[tuple[str, Figure]] | str


def _psnr_label() -> str:
    """The PSNR axis label from the metric's facts (``PSNR (dB)``)."""
    from evobench.reports.tables import column_facts

    return column_facts("psnr").label


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
    datasets = list(dict.fromkeys(df[DATASET_LABEL]))
    fig = Figure(figsize=(4.2 * len(datasets) + 2.2, 3.4))
    axes = fig.subplots(1, len(datasets), squeeze=False)[0]
    for ax, dataset in zip(axes, datasets):
        sub = df[df[DATASET_LABEL] == dataset]
        n_images = sub["image"].nunique()
        per_rep = sub.groupby(["method_label", "_x", "rep"], sort=False)["psnr"].mean().reset_index()
        stats = per_rep.groupby(["method_label", "_x"], sort=False)["psnr"].agg(["mean", "std"])
        labels = list(dict.fromkeys(sub["method_label"]))
        # a small sideways shift per method, so equal values do not hide each other's markers
        span = float(sub["_x"].max() - sub["_x"].min()) or 1.0
        for i, label in enumerate(labels):
            s = stats.loc[label].sort_index()
            shift = (i - (len(labels) - 1) / 2) * 0.012 * span
            ax.errorbar(s.index + shift, s["mean"], yerr=s["std"].fillna(0), label=label,
                        markersize=6, **_edge(styles[label]), **styles[label])
        ax.set_xlabel("noise level σ (0–255 scale)" if task == "denoise" else "missing pixels (%)")
        ax.set_ylabel(_psnr_label())
        ax.set_title(f"{dataset}: mean over {n_images} image{'s' * (n_images > 1)}")
    _legend_right(fig, axes)
    name = "psnr_vs_noise" if task == "denoise" else "psnr_vs_missing"
    return [(name, fig)]


def psnr_vs_time(data: RunData, *, image: str | None = None) -> Drawn:
    """Quality per second: PSNR against wall time (log scale), one marker per method and level."""
    df = _ok(data.results)
    df = df[df["time_total_s"] > 0]
    if df.empty:
        return "no ok results with a positive wall time"
    styles = method_styles(data.results["method_label"], data.results["method"])
    tasks = list(dict.fromkeys(df["task"]))
    fig = Figure(figsize=(4.4 * len(tasks) + 2.4, 3.6))
    axes = fig.subplots(1, len(tasks), squeeze=False)[0]
    for ax, task in zip(axes, tasks):
        sub = df[df["task"] == task]
        for label, cells in sub.groupby("method_label", sort=False):
            st = styles[label]
            ax.plot(cells["time_total_s"], cells["psnr"], linestyle="none", marker=st["marker"],
                    color=st["color"], markersize=3.5, alpha=0.35, **_edge(st, 0.0))
        groups = sub.groupby(["method_label", "p_deg_sigma", "p_deg_missing"], sort=False,
                             dropna=False)
        means = groups[["time_total_s", "psnr"]].mean().reset_index()
        for label in dict.fromkeys(sub["method_label"]):
            m = means[means["method_label"] == label]
            st = styles[label]
            ax.plot(m["time_total_s"], m["psnr"], marker=st["marker"], linestyle="none",
                    label=label, color=st["color"], markersize=8, **_edge(st))
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
    _legend_right(fig, axes, extra=key)
    return [("psnr_vs_time", fig)]


def _traces(data: RunData) -> tuple[pd.DataFrame, str] | str:
    """The trace rows to plot and their objective column: ``free_energy`` where any method
    reports one (tvae), else ``loss`` (gsvae); rows without it are left out."""
    tr = data.traces
    if tr is None or tr.empty:
        return "the run has no traces"
    energy = next((c for c in ("free_energy", "loss") if c in tr.columns
                   and tr[c].notna().any()), None)
    if energy is None:
        return "no traces with a free energy or a loss"
    return tr[tr[energy].notna()], energy


def training_curves(data: RunData, image: str | None = None) -> Drawn:
    """The objective (free energy, else loss) and PSNR per epoch of the methods that report a
    training trace, one line per level (and method), mean over repetitions."""
    found = _traces(data)
    if isinstance(found, str):
        return found
    tr, energy = found
    res = data.results[["cell_key", "image", "task", "method_label", "p_deg_sigma",
                        "p_deg_missing", "p_deg_per", "rep"]].drop_duplicates("cell_key")
    tr = tr.merge(res, on="cell_key", how="inner")
    if tr.empty:
        return "traces do not match any result row"
    image = image if image is not None else tr["image"].iloc[0]
    tr = tr[tr["image"] == image]
    if tr.empty:
        return f"no traces for image {image!r}"
    tr = tr.copy()
    tr["_level"] = levels(tr)
    multi = tr["method_label"].nunique() > 1
    tr["_line"] = (tr["method_label"] + " " if multi else "") + tr["_level"]
    panels = [(energy, "free energy (per data point)" if energy == "free_energy" else "loss")]
    if "psnr" in tr.columns and tr["psnr"].notna().any():
        panels.append(("psnr", _psnr_label()))
    fig = Figure(figsize=(4.0 * len(panels) + 0.6, 3.4))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    styles = method_styles(tr["_line"], tr["method"])
    for ax, (col, ylabel) in zip(axes, panels):
        curves = tr.groupby(["_line", "epoch"], sort=False)[col].mean().reset_index()
        for line in dict.fromkeys(tr["_line"]):
            # PSNR exists only at evaluation epochs (1, 21, ...): join those points
            c = curves[curves["_line"] == line].sort_values("epoch").dropna(subset=[col])
            st = styles[line]
            ax.plot(c["epoch"], c[col], label=line, color=st["color"],
                    linestyle=st["linestyle"], marker=st["marker"], markersize=3.5,
                    markevery=1 if col == "psnr" else max(1, len(c) // 10))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        ax.legend(loc="best")
    n_reps = tr["rep"].nunique()
    who = ", ".join(dict.fromkeys(str(m).split("[")[0].upper() for m in tr["method_label"]))
    fig.suptitle(f"{who} training on image {image} (mean over {n_reps} repetition"
                 f"{'s' * (n_reps > 1)})", fontsize=10)
    return [(f"training_curves_{_slug(str(image))}", fig)]


def _artifacts(data: RunData, rows: pd.DataFrame, key: str):
    for _, row in rows.iterrows():
        arrays = load_artifact(row)
        if arrays is not None and key in arrays:
            yield row, arrays


def sparsity(data: RunData, *, image: str | None = None) -> Drawn:
    """Histogram of active latents per patch (normalised), TVAE against GSVAE, per level."""
    df = data.results[(data.results["status"] == "ok") & (data.results["artifact"] != "")]
    hists: dict[tuple[str, str], list[np.ndarray]] = {}
    for row, arrays in _artifacts(data, df, "active_hist"):
        h = np.asarray(arrays["active_hist"], dtype=float).ravel()
        if h.sum() <= 0:
            continue
        level = row_level(row)
        hists.setdefault((level, row["method_label"]), []).append(h / h.sum())
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
                   label=label, hatch=HATCHES[i % len(HATCHES)], edgecolor="white",
                   linewidth=0)
            ax.axvline(active, color=color, linestyle=styles[label]["linestyle"],
                       linewidth=1.2)
            nz = np.nonzero(mean > 1e-3)[0]
            top = max(top, int(nz.max()) if len(nz) else 0)
        ax.set_xlim(-0.7, top + 0.7)
        ax.set_xlabel("active latents per patch |s|")
        ax.set_ylabel("fraction of patches")
        ax.set_title(level)
    for ax in axes[len(levels):]:
        ax.set_visible(False)
    _legend_right(fig, axes[:len(levels)], title="method\n(vertical line: mean)")
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
    fig = Figure(figsize=(5.5 * len(mosaics), 5.0 * height + 0.9))
    for ax, (row, fields, total, mosaic) in zip(fig.subplots(1, len(mosaics), squeeze=False)[0],
                                               mosaics):
        ax.imshow(mosaic, interpolation="nearest")
        ax.set_axis_off()
        shown = f"{len(fields)} of {total}" if total > len(fields) else f"{total}"
        ax.set_title(f"{_wrap(row['method_label'], 40)}: {shown} generative fields, "
                     f"{fields.shape[1]}×{fields.shape[2]} px\n{row[DATASET_LABEL]} image "
                     f"{row['image']}, {row_level(row)}\nmid-gray = 0, each field scaled to "
                     "its max |w|", fontsize=9)
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
    groups = df.groupby([DATASET_LABEL, "task", "degradation", "p_deg_sigma", "p_deg_missing",
                         "p_deg_per"], sort=False, dropna=False)
    for (dataset, task, _deg, sigma, missing, per), group in groups:
        level = level_label(task, float(sigma), float(missing), per)
        first = group.sort_values("rep", kind="stable").drop_duplicates("method_label")
        first = first[~first["method"].map(is_reference).astype(bool)]  # the input is shown
        panels = []
        for _, row in first.iterrows():
            arrays = load_artifact(row)
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
            panels.append((f"{_wrap(row['method_label'])}\n{row['psnr']:.2f} dB",
                           *_display(arrays["restored"])))
        if len(panels) < 2:
            continue
        ncols = min(len(panels), 5)
        nrows = math.ceil(len(panels) / ncols)
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


def _metadata(fmt: str) -> dict:
    """File metadata without dates, unless SOURCE_DATE_EPOCH pins one (reproducible builds)."""
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return {}
    return {"pdf": {"CreationDate": None}, "svg": {"Date": None}}.get(fmt, {})


def save(fig: Figure, out: Path, name: str, formats) -> list[Path]:
    """Write ``fig`` as ``out/name.<fmt>`` for each format, with date-free metadata."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = out / f"{name}.{fmt}"
        fig.savefig(path, format=fmt, metadata=_metadata(fmt))
        paths.append(path)
    return paths


def make_figures(data: RunData, out: str | Path, *, formats=("png",), image: str | None = None,
                 log: Callable[[str], None] | None = None,
                 registry=None) -> tuple[list[Path], list[str]]:
    """Write every figure the data allows into ``out``, one registered kind after the other;
    return the files and the skip notes (a kind that fails is a note too, not a lost report)."""
    from evobench.errors import first_line
    from evobench.registry import get_registry

    formats = [f.strip().lower() for f in formats if f.strip()]
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise EvobenchError(f"unknown figure format(s) {', '.join(bad) or '(none)'}; "
                            f"use {', '.join(FORMATS)}")
    if image is not None and image not in set(data.results["image"]):
        known = ", ".join(sorted(set(data.results["image"]))[:12])
        raise EvobenchError(f"image {image!r} is not in the results (images: {known})")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    registry = registry or get_registry()
    kinds = sorted((registry.figure(n) for n in registry.names("figures")),
                   key=lambda k: (k.order, k.name))
    tasks = set(data.results["task"])
    written, notes = [], []
    with style.context(STYLE):
        for kind in kinds:
            if kind.tasks and not kind.tasks & tasks:
                continue  # a figure for a task the runs do not have: left out without a note
            try:
                result = load_object(kind.factory)(data, image=image)
            except Exception as exc:  # noqa: BLE001 - one broken kind must not cost the rest
                result = f"failed: {type(exc).__name__}: {first_line(exc)}"
            if isinstance(result, str):
                notes.append(f"skipped {kind.title}: {result}")
                if log:
                    log(notes[-1])
                continue
            for name, fig in result:
                written += save(fig, out, name, formats)
    _forget_stale(out, written)
    return written, notes


FIGURE_LIST = ".evobench-figures"  # the files the last make_figures wrote into a folder


def _forget_stale(out: Path, written: list[Path]) -> None:
    """Delete the figures a previous report wrote into ``out`` that this one did not (a kind
    whose data is gone, a format no longer asked for), so a folder never shows figures of older
    results; files evobench did not write there are left alone."""
    listing = out / FIGURE_LIST
    names = {p.name for p in written}
    try:
        before = listing.read_text().split("\n")
    except OSError:
        before = []
    for name in before:
        if name and name not in names and Path(name).name == name:
            (out / name).unlink(missing_ok=True)
    listing.write_text("\n".join(sorted(names)))
