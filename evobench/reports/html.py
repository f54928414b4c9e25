"""The static HTML report: tables and figures in one self-contained page.

Figures are embedded as base64 PNG so the page can be mailed or archived as a single file; the
page carries no generation date, so re-rendering the same runs gives the same bytes.
"""

from __future__ import annotations

import base64
from pathlib import Path

import jinja2
import pandas as pd

from evobench.reports.load import RUN_DIR

TEMPLATES = Path(__file__).with_name("templates")


def _run_rows(results: pd.DataFrame, manifests: dict[str, dict]) -> list[dict]:
    rows = []
    for folder, m in manifests.items():
        git = m.get("git") or {}
        commit = (git.get("commit", "") if isinstance(git, dict) else str(git))[:12]
        if isinstance(git, dict) and git.get("dirty"):
            commit += " (dirty)"
        machine = m.get("machine") or {}
        if isinstance(machine, dict):
            machine = ", ".join(f"{k}={machine[k]}" for k in ("cpu", "cores", "ram_gb", "gpu")
                                if machine.get(k))
        rows.append({
            "name": m.get("run_id") or Path(folder).name,
            "cells": int((results[RUN_DIR] == folder).sum()),
            "started": m.get("start") or m.get("started_at") or "",
            "commit": commit,
            "machine": machine,
        })
    return rows


def render_html(results: pd.DataFrame, manifests: dict[str, dict], tables_html: str,
                figures: list[Path], notes: list[str], title: str = "evobench report") -> str:
    """The report page; ``figures`` are PNG files to embed, ``notes`` skipped-figure reasons."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                             autoescape=jinja2.select_autoescape(["html", "j2"]))
    figs = [{"name": p.stem, "data": base64.b64encode(p.read_bytes()).decode("ascii")}
            for p in figures if p.suffix == ".png"]
    return env.get_template("report.html.j2").render(
        title=title, runs=_run_rows(results, manifests), tables=tables_html, figures=figs,
        notes=notes)
