"""The static HTML report: one self-contained page that leads with its summary.

The order is what a reader needs first: one headline table per task and dataset (methods x
levels of the main metric, mean over the images, best in bold) with the budget and the machine
under it, then the figures with captions from their figure kinds (``FigureSpec.caption``), then
the detail tables and the runs. Figures are embedded as base64 PNG so the page can be mailed or
archived as one file; it carries no generation date, so the same runs give the same bytes.
"""

from __future__ import annotations

import base64
import math
from pathlib import Path

import jinja2
import pandas as pd

from evobench.reports.load import RUN_DIR

TEMPLATES = Path(__file__).with_name("templates")
WIDE_PX = 1400  # a PNG wider than this (at 150 dpi, a figure of several panels) gets a full row
# how a run's budget is recorded per row: a method parameter, read as "<value> <unit>"
BUDGET_PARAMS = (("p_method_epochs", "epochs"), ("p_method_iterations", "iterations"),
                 ("p_method_preset", "preset"))


def _span(values, fmt: str = "{:g}") -> str:
    """``1.2`` or ``0.2–1.3``: the range of ``values`` (NaNs left out), "" for none."""
    vals = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not vals:
        return ""
    lo, hi = fmt.format(min(vals)), fmt.format(max(vals))
    return lo if lo == hi else f"{lo}–{hi}"


def _column(df: pd.DataFrame, name: str) -> pd.Series:
    return pd.to_numeric(df[name], errors="coerce") if name in df.columns else pd.Series(dtype=float)


def _measured(manifest: dict) -> list[dict]:
    """The manifests of the runs that measured: a merged run's sources (recursively), since
    its own manifest records no machine, suite or git commit."""
    sources = [s.get("manifest") for s in manifest.get("sources") or [] if isinstance(s, dict)]
    if not manifest.get("merged") or not sources:
        return [manifest]
    return [m for source in sources if isinstance(source, dict) for m in _measured(source)]


def _run_rows(results: pd.DataFrame, manifests: dict[str, dict]) -> list[dict]:
    rows = []
    for folder, m in manifests.items():
        git = m.get("git") or {}
        commit = (git.get("commit", "") if isinstance(git, dict) else str(git))[:12]
        if isinstance(git, dict) and git.get("dirty"):
            commit += " (dirty)"
        machines = []
        for measured in _measured(m):
            machine = measured.get("machine") or {}
            if isinstance(machine, dict):
                machine = ", ".join(f"{k}={machine[k]}" for k in ("cpu", "cores", "ram_gb", "gpu")
                                    if machine.get(k))
            machines.append(str(machine))
        machine = "; ".join(dict.fromkeys(m for m in machines if m))
        cells = results[results[RUN_DIR] == folder]
        rows.append({
            "name": m.get("run_id") or Path(folder).name,
            "cells": len(cells),
            "started": m.get("start") or m.get("started_at") or "",
            "commit": commit,
            "machine": machine,
            "load": _span(_column(cells, "loadavg_1m"), "{:.1f}") or "–",
        })
    return rows


def budget_line(results: pd.DataFrame, manifests: dict[str, dict]) -> str:
    """What the numbers cost to make, as recorded: suite and profile, ``--budget``, and per
    method its epochs, iterations or preset (``tvae: 5–10 epochs, preset quick``)."""
    from evobench.reports.names import method_order

    parts = []
    runs = sorted({f"{m['config'].get('suite')} ({m['config'].get('profile')})"
                   for run in manifests.values() for m in _measured(run)
                   if isinstance(m.get("config"), dict) and m["config"].get("suite")})
    if runs:
        parts.append("suite " + ", ".join(runs))
    budget = _span(_column(results, "budget_s"))
    parts.append(f"--budget {budget} s of fitting per cell" if budget else "no time budget")
    methods = list(dict.fromkeys(method_order(results["method"], results["method"])))
    for method in methods:
        rows = results[results["method"] == method]
        said = []
        for col, unit in BUDGET_PARAMS:
            if col not in rows.columns or rows[col].isna().all():
                continue
            if unit == "preset":
                said.append("preset " + "/".join(sorted(map(str, rows[col].dropna().unique()))))
            else:
                said.append(f"{_span(_column(rows, col))} {unit}")
        if said:
            parts.append(f"{method}: {', '.join(said)}")
    return "Budget: " + "; ".join(parts) + "."


def machine_line(results: pd.DataFrame, manifests: dict[str, dict]) -> str:
    """Where the numbers were measured: CPU, cores, threads per cell and jobs, device and the
    1-minute load average when the cells started (its range over the cells)."""
    parts = []
    for m in (m for run in manifests.values() for m in _measured(run)):
        machine = m.get("machine") if isinstance(m.get("machine"), dict) else {}
        said = [str(machine.get("cpu") or "unknown CPU")]
        if machine.get("cores"):
            said.append(f"{machine['cores']} cores")
        if machine.get("gpu"):
            said.append(str(machine["gpu"]))
        parts.append(", ".join(said))
    parts = list(dict.fromkeys(parts)) or ["machine not recorded"]
    threads, jobs = _span(_column(results, "threads")), _span(_column(results, "jobs"))
    if threads:
        parts.append(f"{threads} thread{'s' * (threads != '1')} per cell"
                     + (f", {jobs} cell{'s' * (jobs != '1')} at a time" if jobs else ""))
    if "device" in results.columns:
        parts.append("device " + "/".join(sorted(map(str, results["device"].dropna().unique()))))
    load = _span(_column(results, "loadavg_1m"), "{:.1f}")
    if load:
        parts.append(f"load {load} (1-minute load average as cells started)")
    return "Machine: " + "; ".join(parts) + "."


def headline_tables(results: pd.DataFrame, metric: str) -> list[str]:
    """The ``metric`` tables averaged over images, one per task and dataset, as HTML. Skipped
    cells (a method that does not do the task or image) are left out: a summary shows what
    ran; the detail tables count them."""
    from evobench.reports.load import normalise
    from evobench.reports.tables import build_tables, html_table

    if metric not in results.columns:
        return []
    if "status" in results.columns:
        results = results[results["status"] != "skipped"]
    tables = build_tables(normalise(results), [metric], per_image=False)
    return [html_table(t) for t in tables if t.metric == metric]


def render_html(results: pd.DataFrame, manifests: dict[str, dict], tables_html: str,
                figures: list[Path], notes: list[str], title: str = "evobench report", *,
                captions: dict[str, str] | None = None, metric: str = "psnr") -> str:
    """The report page: the headline tables of ``metric``, then ``figures`` (PNG files to
    embed, each with ``captions[stem]``), then ``tables_html`` (the detail tables) and the
    runs; ``notes`` are skipped-figure reasons."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                             autoescape=jinja2.select_autoescape(["html", "j2"]))
    captions = captions or {}
    figs = []
    for p in figures:
        if p.suffix != ".png":
            continue
        raw = p.read_bytes()
        figs.append({"name": p.stem, "caption": captions.get(p.stem, ""),
                     "wide": int.from_bytes(raw[16:20], "big") > WIDE_PX,  # the PNG's width
                     "data": base64.b64encode(raw).decode("ascii")})
    return env.get_template("report.html.j2").render(
        title=title, runs=_run_rows(results, manifests), tables=tables_html, figures=figs,
        notes=notes, headline=headline_tables(results, metric),
        budget=budget_line(results, manifests), machine=machine_line(results, manifests))
