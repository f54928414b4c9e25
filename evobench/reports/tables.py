"""Comparison tables: methods x noise level (or missing fraction), mean ± std over repetitions.

One table model feeds every output format (terminal text, Markdown, CSV, LaTeX, HTML), so the
table ``evobench run`` prints and the files ``evobench report`` writes can never disagree. Cells
that failed, timed out or were skipped are counted in the table, never silently dropped.
"""

from __future__ import annotations

import html as _html
import io
import math
import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from tabulate import tabulate

from evobench.errors import EvobenchError
from evobench.reports.load import DATASET_LABEL, normalise
from evobench.reports.names import with_display_names
from evobench.schema import Facts, facts

FORMATS = ("text", "markdown", "csv", "latex", "html")
DEFAULT_COLUMNS = ("psnr", "ssim", "time_total_s")  # the result columns tabulated by default
# shown right after their main metric whenever a run has them (TVAE's published schedule)
COMPANIONS = {"psnr": "psnr_last_eval"}


def column_facts(column: str) -> Facts:
    """How a table shows ``column``: its metric's facts (``MetricSpec``) or the schema's, else
    its name, higher is better, three decimals."""
    from evobench.registry import get_registry

    return facts(column, get_registry().metric_specs()) or Facts(column, True, 3)


def heading(column: str) -> str:
    """A table's heading: the column's label (a metric with a companion column says that it
    scores the final image)."""
    label = column_facts(column).label
    return f"{label} of the final image" if column in COMPANIONS else label


def with_companions(df: pd.DataFrame, metrics) -> list[str]:
    """``metrics`` plus each companion column that tells something the main one does not,
    after its main one (see :func:`companion_rows`)."""
    out: list[str] = []
    for m in metrics:
        out.append(m)
        extra = COMPANIONS.get(m)
        if extra and extra not in metrics and companion_rows(df, m, extra).any():
            out.append(extra)
    return out


def _non_default_preset(method: str, params: str) -> bool:
    """Whether a row's method parameters choose a ``preset`` other than the spec's default
    (TVAE's paper presets, whose published number is the last scheduled evaluation)."""
    import json

    try:
        given = json.loads(params) if params else {}
    except ValueError:
        return False
    preset = given.get("preset") if isinstance(given, dict) else None
    if preset is None:
        return False
    spec = method_spec(method)
    default = next((p.default for p in (spec.params if spec else ()) if p.name == "preset"), None)
    return str(preset) != str(default)


def companion_rows(df: pd.DataFrame, metric: str, extra: str) -> pd.Series:
    """The rows whose companion column (``psnr_last_eval``) is worth a table: it differs from
    the final image's value and the row ran a non-default preset (a paper preset, scored as
    published). A quick run's last scheduled evaluation is just an earlier, worse estimate, and
    a learned zero-shot method's last snapshot is its final image: neither gets the table."""
    if extra not in df.columns or metric not in df.columns:
        return pd.Series(False, index=df.index)
    decimals = column_facts(metric).decimals
    values = pd.to_numeric(df[extra], errors="coerce")
    differs = values.notna() & (values.round(decimals)
                                != pd.to_numeric(df[metric], errors="coerce").round(decimals))
    params = df["method_params"] if "method_params" in df.columns else pd.Series("", df.index)
    preset = [bool(d) and _non_default_preset(str(m), str(p or ""))
              for d, m, p in zip(differs, df["method"], params)]
    return pd.Series(preset, index=df.index)


def method_spec(method: str):
    """The registered ``MethodSpec`` of ``method``, or None where its plugin is not installed
    (a results store outlives the plugins that wrote it): reports then show the method with
    neutral defaults, a contender without a rank."""
    from evobench.registry import get_registry

    try:
        return get_registry().method(str(method))
    except EvobenchError:
        return None


def is_reference(method: str) -> bool:
    """Whether ``method`` is a reference, not a competitor (``MethodSpec.reference``, e.g. the
    corrupted input itself): never marked best, drawn gray; False where its plugin is not
    installed."""
    spec = method_spec(method)
    return spec is not None and spec.reference


@dataclass
class Entry:
    """One table entry: the statistic over repetitions plus the count of non-ok rows."""

    mean: float = math.nan
    std: float = math.nan
    n_reps: int = 0
    failed: Counter = field(default_factory=Counter)
    best: bool = False
    nan: int = 0  # ok rows whose metric is NaN: left out of the mean, said in the entry
    images: tuple[int, int] | None = None  # (images with a value, images attempted), averages

    def text(self, decimals: int) -> str:
        notes = [f"{n} {s}" for s, n in sorted(self.failed.items())]
        if self.nan:
            over = (f"mean over {self.images[0]} of {self.images[1]} images; "
                    if self.images and not math.isnan(self.mean) else "")
            notes.append(f"{over}{self.nan} NaN")
        note = ", ".join(notes)
        if math.isnan(self.mean):
            return note or "–"
        value = f"{self.mean:.{decimals}f}"
        if self.n_reps > 1 and not math.isnan(self.std):
            value += f" ± {self.std:.{decimals}f}"
        return f"{value} ({note})" if note else value


@dataclass
class Table:
    """A methods x levels table for one metric, task and dataset (averaged or one image)."""

    title: str
    metric: str
    task: str
    dataset: str
    scope: str  # "average" or an image id
    columns: list[str]
    rows: list[tuple[str, list[Entry]]]


def level_label(task: str, sigma: float, missing: float, per: str = "") -> str:
    """A human label for a degradation level: ``σ=25``, ``80% missing`` (``per entry`` when
    channels are dropped independently; ``, σ=10`` when also noisy)."""
    parts = []
    if isinstance(missing, float) and not math.isnan(missing):
        parts.append(f"{100 * missing:g}% missing" + (f" per {per}" if per == "entry" else ""))
    if isinstance(sigma, float) and not math.isnan(sigma) and (sigma > 0 or not parts):
        parts.append(f"σ={sigma:g}")
    return ", ".join(parts) or task


def row_level(row) -> str:
    """``level_label`` of one result row (a Series or a dict)."""
    return level_label(row["task"], float(row["p_deg_sigma"]), float(row["p_deg_missing"]),
                       str(row.get("p_deg_per", "") or ""))


def levels(df: pd.DataFrame) -> list[str]:
    """``level_label`` of every row of a results frame."""
    per = df["p_deg_per"] if "p_deg_per" in df.columns else [""] * len(df)
    return [level_label(t, s, m, str(p or "")) for t, s, m, p in
            zip(df["task"], df["p_deg_sigma"].astype(float), df["p_deg_missing"].astype(float), per)]


def _with_columns(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    sig = df["p_deg_sigma"].astype(float)
    mis = df["p_deg_missing"].astype(float)
    df["_level"] = levels(df)
    multi = df.groupby(["task", DATASET_LABEL])["degradation"].transform("nunique") > 1
    df["_column"] = np.where(multi, df["degradation"] + " " + df["_level"], df["_level"])
    df["_order"] = list(zip(df["degradation"], mis.fillna(-1), sig.fillna(-1)))
    return df


def _ordered(values) -> list:
    return list(dict.fromkeys(values))


KEYS = ["task", DATASET_LABEL, "method_label", "_column"]


def _statistics(df: pd.DataFrame, metric: str) -> tuple[dict, dict]:
    """Mean, std and repetition count per table cell, in two vectorised group-bys.

    Averaged cells: the mean over images inside each repetition, then mean ± std over
    repetitions; a repetition that lost an image would bias its average, so only complete
    repetitions are used when there is any. Per-image cells: mean ± std over repetitions.
    """
    ok = df[(df["status"] == "ok") & df[metric].notna()]
    attempted = df.groupby(KEYS, sort=False)["image"].nunique().rename("n_img")
    per_rep = ok.groupby([*KEYS, "rep"], sort=False).agg(m=(metric, "mean"), n=("image", "nunique"))
    per_rep = per_rep.reset_index().join(attempted, on=KEYS)
    per_rep["complete"] = per_rep["n"] == per_rep["n_img"]
    any_complete = per_rep.groupby(KEYS, sort=False)["complete"].transform("any")
    used = per_rep[per_rep["complete"] | ~any_complete]
    avg = used.groupby(KEYS, sort=False)["m"].agg(["mean", "std", "count"])
    img = ok.groupby([*KEYS, "image"], sort=False)[metric].agg(["mean", "std", "count"])
    return ({k: tuple(v) for k, v in zip(avg.index, avg.to_numpy())},
            {k: tuple(v) for k, v in zip(img.index, img.to_numpy())})


def _nans(df: pd.DataFrame, metric: str) -> tuple[dict, dict, dict]:
    """NaN values of a registered metric in ok rows (a metric that failed on one image), per
    averaged cell and per image cell, and per averaged cell the (images with a value, images
    attempted) counts. Columns that are legitimately empty for some methods (timings, extras,
    ``psnr_last_eval``) are not metrics and count nothing."""
    from evobench.registry import get_registry

    if metric not in get_registry().metric_specs():
        return {}, {}, {}
    ok = df["status"] == "ok"
    nan = df[ok & df[metric].isna()]
    if nan.empty:
        return {}, {}, {}
    avg = nan.groupby(KEYS, sort=False).size()
    img = nan.groupby([*KEYS, "image"], sort=False).size()
    valued = df[ok & df[metric].notna()].groupby(KEYS, sort=False)["image"].nunique()
    attempted = df.groupby(KEYS, sort=False)["image"].nunique()
    images = {k: (int(valued.get(k, 0)), int(attempted[k])) for k in avg.index}
    return ({k: int(n) for k, n in avg.items()}, {k: int(n) for k, n in img.items()}, images)


def _failures(df: pd.DataFrame) -> tuple[dict, dict]:
    """Counters of non-ok statuses per averaged cell and per image cell."""
    bad = df[df["status"] != "ok"]
    avg: dict[tuple, Counter] = {}
    img: dict[tuple, Counter] = {}
    for key, n in bad.groupby([*KEYS, "status"], sort=False).size().items():
        avg.setdefault(key[:-1], Counter())[key[-1]] = int(n)
    for key, n in bad.groupby([*KEYS, "image", "status"], sort=False).size().items():
        img.setdefault(key[:-1], Counter())[key[-1]] = int(n)
    return avg, img


def _entry(stats: tuple | None, failed: Counter | None, nan: int = 0,
           images: tuple[int, int] | None = None) -> Entry:
    entry = Entry(failed=Counter(failed or {}), nan=nan, images=images)
    if stats is not None:
        mean, std, count = stats
        entry.mean, entry.n_reps = float(mean), int(count)
        entry.std = float(std) if count > 1 else math.nan
    return entry


def _mark_best(rows: list[tuple[str, list[Entry]]], metric: str, references: set) -> None:
    known = column_facts(metric)
    higher, decimals = known.higher_is_better is not False, known.decimals
    contenders = [(name, cells) for name, cells in rows if name not in references]
    for j in range(len(rows[0][1]) if rows else 0):
        # an entry missing NaN values averages fewer images: it is never marked best
        shown = [math.nan if cells[j].nan else round(cells[j].mean, decimals)
                 for _, cells in contenders]
        valid = [v for v in shown if not math.isnan(v)]
        if len(valid) < 2:
            continue
        target = max(valid) if higher else min(valid)
        for (_, cells), v in zip(contenders, shown):
            cells[j].best = v == target


def build_tables(df: pd.DataFrame, metrics=DEFAULT_COLUMNS, *, per_image: bool = True) -> list[Table]:
    """All tables for ``df`` (a results frame): per (task, dataset) and metric, averaged over images
    first, then one per image when ``per_image``."""
    unknown = [m for m in metrics if m not in df.columns]
    if unknown:
        raise EvobenchError(f"unknown metric column(s) {', '.join(unknown)} in the results")
    if df.empty:
        return []
    metrics = with_companions(df, metrics)
    df = with_display_names(df)  # rows show display names, in method order (rank)
    for main, extra in COMPANIONS.items():
        if extra in metrics:  # only the rows the companion is about
            df.loc[~companion_rows(df, main, extra), extra] = np.nan
    df = _with_columns(df)
    fail_avg, fail_img = _failures(df)
    stats = {m: _statistics(df, m) for m in metrics}
    nans = {m: _nans(df, m) for m in metrics}
    references = {m for m in df["method"].unique() if is_reference(m)}
    references = set(df.loc[df["method"].isin(references), "method_label"])  # rows show labels
    tables = []
    for (task, dataset), group in df.groupby(["task", DATASET_LABEL], sort=False):
        columns = _ordered(group.sort_values("_order", kind="stable")["_column"])
        methods = _ordered(group["method_label"])
        images = _ordered(group["image"])
        scopes = ["average"]
        if per_image and len(images) > 1:
            scopes += images
        for metric in metrics:
            title_of = heading(metric)
            avg, img = stats[metric]
            nan_avg, nan_img, nan_images = nans[metric]
            for scope in scopes:
                rows = []
                for method in methods:
                    if scope == "average":
                        keys = [(task, dataset, method, col) for col in columns]
                        cells = [_entry(avg.get(k), fail_avg.get(k), nan_avg.get(k, 0),
                                        nan_images.get(k)) for k in keys]
                    else:
                        keys = [(task, dataset, method, col, scope) for col in columns]
                        cells = [_entry(img.get(k), fail_img.get(k), nan_img.get(k, 0))
                                 for k in keys]
                    if any(c.n_reps or c.failed or c.nan for c in cells):
                        rows.append((method, cells))
                if not rows:
                    continue
                _mark_best(rows, metric, references)
                where = (f"mean over {len(images)} images" if scope == "average" and len(images) > 1
                         else f"image {images[0] if scope == 'average' else scope}")
                if any(c.nan for _, cells in rows for c in cells):
                    where += " (an entry with NaN values averages the rest; never marked best)"
                title = f"{title_of}: {task} on {dataset}, {where}"
                tables.append(Table(title, metric, task, dataset, scope, columns, rows))
    return tables


def status_counts(df: pd.DataFrame) -> pd.DataFrame:
    """Rows per method and status (ok, error, timeout, skipped), for the status table."""
    if df.empty:
        return pd.DataFrame()
    df = with_display_names(df)
    counts = pd.crosstab(df["method_label"], df["status"])
    counts = counts.reindex(_ordered(df["method_label"]))
    cols = ["ok"] + sorted(c for c in counts.columns if c != "ok")
    return counts.reindex(columns=[c for c in cols if c in counts.columns], fill_value=0)


def render_summary(df: pd.DataFrame, fmt: str = "text", *, metrics=DEFAULT_COLUMNS,
                   per_image: bool = True) -> str:
    """The comparison tables of ``df`` in ``fmt`` (text, markdown, csv, latex or html).

    ``evobench run`` prints this at its end and ``evobench report`` writes it to files.
    """
    if fmt not in FORMATS:
        raise EvobenchError(f"unknown table format {fmt!r}; use one of {', '.join(FORMATS)}")
    df = normalise(df)  # the harness passes its in-memory frame; give it every column
    tables = build_tables(df, metrics, per_image=per_image)
    if fmt == "csv":
        return _csv(tables)
    counts = status_counts(df)
    render = {"text": _text, "markdown": _markdown, "latex": _latex, "html": html_table}[fmt]
    parts = [render(t) for t in tables]
    if len(counts) and (counts.columns != "ok").any():
        parts.append(_status(counts, fmt))
    if not parts:
        return {"html": "<p>No results.</p>", "latex": "% no results"}.get(fmt, "No results.")
    sep = "\n\n" if fmt != "html" else "\n"
    return sep.join(parts) + "\n"


def _grid(table: Table, mark) -> tuple[list[str], list[list[str]]]:
    decimals = column_facts(table.metric).decimals
    header = ["method", *table.columns]
    body = [[name] + [mark(c.text(decimals)) if c.best else c.text(decimals) for c in cells]
            for name, cells in table.rows]
    return header, body


def _text(table: Table) -> str:
    header, body = _grid(table, lambda s: s + " *")
    marked = any(c.best for _, cells in table.rows for c in cells)
    return f"{table.title}{'  (* best)' if marked else ''}\n" + tabulate(body, header, tablefmt="simple",
                                                    disable_numparse=True)


def _markdown(table: Table) -> str:
    header, body = _grid(table, lambda s: f"**{s}**")
    return f"#### {table.title}\n\n" + tabulate(body, header, tablefmt="github",
                                                disable_numparse=True)


_LATEX_ESCAPES = {"&": r"\&", "%": r"\%", "_": r"\_", "#": r"\#", "$": r"\$", "σ": r"$\sigma$",
                  "±": r"$\pm$", "–": "--"}


def _tex(text: str) -> str:
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in text)


def _latex(table: Table) -> str:
    header, body = _grid(table, lambda s: "\x00" + s + "\x01")
    lines = [f"% {table.title}", r"\begin{tabular}{l" + "r" * len(table.columns) + "}",
             r"\toprule", " & ".join(_tex(h) for h in header) + r" \\", r"\midrule"]
    for row in body:
        cells = [_tex(c).replace("\x00", r"\textbf{").replace("\x01", "}") for c in row]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines)


def html_table(table: Table) -> str:
    header, body = _grid(table, lambda s: "\x00" + s + "\x01")
    out = ['<table class="results">', f"<caption>{_html.escape(table.title)}</caption>",
           "<thead><tr>" + "".join(f"<th>{_html.escape(h)}</th>" for h in header)
           + "</tr></thead>", "<tbody>"]
    for row in body:
        cells = [_html.escape(c).replace("\x00", "<strong>").replace("\x01", "</strong>")
                 for c in row]
        out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    out += ["</tbody>", "</table>"]
    return "\n".join(out)


def _status(counts: pd.DataFrame, fmt: str) -> str:
    header = ["method", *counts.columns]
    body = [[m, *map(str, r)] for m, r in zip(counts.index, counts.to_numpy())]
    title = "Cells by status (non-ok cells are not in the averages)"
    if fmt == "text":
        return f"{title}\n" + tabulate(body, header, tablefmt="simple", disable_numparse=True)
    if fmt == "markdown":
        return f"#### {title}\n\n" + tabulate(body, header, tablefmt="github",
                                              disable_numparse=True)
    if fmt == "latex":
        lines = [f"% {title}", r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}", r"\toprule",
                 " & ".join(_tex(h) for h in header) + r" \\", r"\midrule"]
        lines += [" & ".join(_tex(c) for c in row) + r" \\" for row in body]
        return "\n".join(lines + [r"\bottomrule", r"\end{tabular}"])
    rows = "".join("<tr>" + "".join(f"<td>{_html.escape(c)}</td>" for c in row) + "</tr>"
                   for row in body)
    head = "".join(f"<th>{_html.escape(h)}</th>" for h in header)
    return (f'<table class="status"><caption>{_html.escape(title)}</caption>'
            f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def csv_safe(value):
    """A CSV cell that a spreadsheet will not run as a formula (the OWASP rule): text starting
    with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading ``'``. Numbers,
    and text that is just a number (``-0.5``), are left as they are."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) \
            and not _PLAIN_NUMBER.match(value):
        return "'" + value
    return value


def _csv(tables: list[Table]) -> str:
    """A tidy long table (one line per method, column and scope) for spreadsheets and scripts."""
    records = []
    for t in tables:
        for method, cells in t.rows:
            for col, c in zip(t.columns, cells):
                records.append({
                    "task": t.task, "dataset": t.dataset, "scope": t.scope, "metric": t.metric,
                    "method": method, "level": col, "mean": c.mean, "std": c.std,
                    "n_reps": c.n_reps, "n_not_ok": sum(c.failed.values()),
                    "not_ok": ";".join(f"{s}={n}" for s, n in sorted(c.failed.items())),
                    "n_nan": c.nan,
                    "best": c.best,
                })
    buf = io.StringIO()
    cols = ["task", "dataset", "scope", "metric", "method", "level", "mean", "std", "n_reps",
            "n_not_ok", "not_ok", "n_nan", "best"]
    frame = pd.DataFrame(records, columns=cols)
    for col in frame.columns:  # text cells only: numbers stay numbers
        if not pd.api.types.is_numeric_dtype(frame[col]):
            frame[col] = frame[col].map(csv_safe)
    frame.to_csv(buf, index=False, float_format="%.6g")
    return buf.getvalue()
