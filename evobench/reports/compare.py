"""Cell-by-cell comparison of two runs with regression gates (``evobench compare``).

Cells are matched by identity, never by run id: first on ``cell_key``, then, for cells whose key
changed, on the identity columns. A cell that is missing or failed in the candidate is a
regression, because a gate that ignores disappearing cells lets every crash pass CI.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from tabulate import tabulate

from evobench import schema
from evobench.errors import EvobenchError
from evobench.registry import get_registry
from evobench.reports.tables import row_level
from evobench.schema import facts

FALLBACK_IDENTITY = ("dataset", "dataset_params", "image", "task", "degradation", "deg_params", "method",
                     "method_params", "rep")
SHOWN_ALWAYS = ("psnr", "ssim", "time_total_s")
_SPEC = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*(±|\+-|\+/-|[+-]?)\s*([0-9]*\.?[0-9]+(?:[eE][+-]?\d+)?)\s*(%?)\s*$")


def higher_is_better(column: str) -> bool | None:
    """True/False when the column's good direction is known (a metric's ``MetricSpec``, or the
    schema for measurements such as times and memory), None otherwise."""
    known = facts(column, get_registry().metric_specs())
    return None if known is None else known.higher_is_better


def _decimals(column: str) -> int:
    known = facts(column, get_registry().metric_specs())
    return 2 if known is None else known.decimals


def is_time(column: str) -> bool:
    """Wall or CPU seconds: relative gates on these ignore changes below the time floor."""
    return column in schema.BY_NAME and schema.BY_NAME[column].group == "timing"


@dataclass(frozen=True)
class Threshold:
    """How much a column may get worse: absolute (``-0.05``) or relative (``+25%``); a
    two-sided gate (``±0.05``) also flags a change the other way beyond the amount (a PSNR
    that rises beyond rounding is a finding too: a bug such as clipping can raise it)."""

    column: str
    amount: float
    relative: bool
    higher_better: bool
    two_sided: bool = False

    def worsening(self, base: float, cand: float) -> float:
        """How much worse the candidate is (positive = worse), in the column's units."""
        return (base - cand) if self.higher_better else (cand - base)

    def limit(self, base: float) -> float:
        return self.amount * abs(base) if self.relative else self.amount

    def __str__(self) -> str:
        sign = "±" if self.two_sided else "-" if self.higher_better else "+"
        return f"{self.column}:{sign}{self.amount * 100 if self.relative else self.amount:g}" + (
            "%" if self.relative else "")


def parse_fail_on(text: str, columns) -> list[Threshold]:
    """Parse ``"psnr:-0.05,ssim:-0.002,time_total_s:+25%"`` against the available columns.

    The sign says which way is worse; it may be left out for columns whose direction is known
    (a metric's ``higher_is_better``; times and memory lower is better) and must agree with it.
    ``±`` (or ``+-``) makes the gate two-sided: a change either way beyond the amount fails.
    """
    columns = set(columns)
    out = []
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        m = _SPEC.match(part)
        if not m:
            raise EvobenchError(
                f"cannot read --fail-on entry {part!r}; write COLUMN:[+|-|±]AMOUNT[%], "
                "e.g. psnr:-0.05, psnr:±0.05 or time_total_s:+25%"
            )
        col, sign, amount, pct = m.groups()
        if col not in columns:
            raise EvobenchError(f"--fail-on names unknown column {col!r}; the runs have no such column")
        known = higher_is_better(col)
        two_sided = sign in ("±", "+-", "+/-")
        if two_sided:
            known = True if known is None else known  # either way fails: the direction only
            # names which way is a regression and which a rise beyond the gate
        elif sign:
            given = sign == "-"  # "-0.05": a drop is bad, so higher is better
            if known is not None and given != known:
                better = "higher" if known else "lower"
                good = "-" if known else "+"
                raise EvobenchError(
                    f"--fail-on {part!r}: {col} is {better}-is-better; write {col}:{good}{amount}{pct}"
                )
            known = given
        elif known is None:
            raise EvobenchError(
                f"--fail-on {part!r}: say which way is worse for {col} with a sign "
                f"({col}:-{amount}{pct} if a drop is a regression)"
            )
        value = float(amount) / (100 if pct else 1)
        out.append(Threshold(col, value, bool(pct), known, two_sided))
    return out


@dataclass
class Comparison:
    """The matched cells and the verdicts of one comparison."""

    cells: pd.DataFrame  # one row per cell: identity, verdict, reasons, base_/cand_ metric values
    thresholds: list[Threshold]
    metrics: list[str]
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def regressions(self) -> pd.DataFrame:
        return self.cells[self.cells["regression"]]

    @property
    def failed(self) -> bool:
        return bool(self.cells["regression"].any())


def match_cells(base: pd.DataFrame, cand: pd.DataFrame) -> pd.DataFrame:
    """Pairs of row positions (``i_base``, ``i_cand``; -1 where one side lacks the cell)."""
    b = base.reset_index(drop=True)
    c = cand.reset_index(drop=True)
    pairs = []
    c_by_key = {}
    for i, key in enumerate(c["cell_key"]):
        if key:
            c_by_key.setdefault(key, i)
    used_c = set()
    left = []
    for i, key in enumerate(b["cell_key"]):
        j = c_by_key.get(key) if key else None
        if j is not None and j not in used_c:
            pairs.append((i, j))
            used_c.add(j)
        else:
            left.append(i)
    rest_c = [j for j in range(len(c)) if j not in used_c]
    # fallback for cells whose key changed: identity columns, when unique on both sides
    ident = [col for col in FALLBACK_IDENTITY if col in b.columns and col in c.columns]

    b_ident_cols = [b[col].astype(str).to_numpy() for col in ident]
    c_ident_cols = [c[col].astype(str).to_numpy() for col in ident]

    def key_of(df, i):
        cols = b_ident_cols if df is b else c_ident_cols
        return tuple(col[i] for col in cols)

    c_ident: dict[tuple, list[int]] = {}
    for j in rest_c:
        c_ident.setdefault(key_of(c, j), []).append(j)
    b_ident: dict[tuple, list[int]] = {}
    for i in left:
        b_ident.setdefault(key_of(b, i), []).append(i)
    for i in left:
        k = key_of(b, i)
        if len(b_ident[k]) == 1 and len(c_ident.get(k, [])) == 1:
            j = c_ident[k][0]
            pairs.append((i, j))
            used_c.add(j)
        else:
            pairs.append((i, -1))
    pairs += [(-1, j) for j in range(len(c)) if j not in used_c]
    return pd.DataFrame(pairs, columns=["i_base", "i_cand"])


def compare_frames(base: pd.DataFrame, cand: pd.DataFrame, thresholds: list[Threshold], *,
                   time_floor_s: float = 0.1) -> Comparison:
    """Compare two normalised result frames cell by cell.

    ``time_floor_s``: a relative gate on a time column ignores changes smaller than this many
    seconds, because a 25 % change of a millisecond cell is timer noise.
    """
    pairs = match_cells(base, cand)
    b = base.reset_index(drop=True)
    c = cand.reset_index(drop=True)
    metrics = list(dict.fromkeys([t.column for t in thresholds]
                                 + [m for m in SHOWN_ALWAYS if m in b.columns and m in c.columns]))
    records = []
    rb, rc = b.to_dict("records"), c.to_dict("records")  # row access without pandas overhead
    for i, j in zip(pairs["i_base"], pairs["i_cand"]):
        src = rb[i] if i >= 0 else rc[j]
        rec = {
            "cell_key": src["cell_key"], "method": src["method_label"] or src["method"],
            "dataset": src["dataset_label"], "image": src["image"], "task": src["task"],
            "level": row_level(src),
            "rep": int(src["rep"]),
            "base_status": rb[i]["status"] if i >= 0 else "",
            "cand_status": rc[j]["status"] if j >= 0 else "",
        }
        for m in metrics:
            rec[f"base_{m}"] = float(rb[i][m]) if i >= 0 else math.nan
            rec[f"cand_{m}"] = float(rc[j][m]) if j >= 0 else math.nan
        verdict, reasons = _verdict(rec, thresholds, time_floor_s)
        rec["verdict"], rec["reasons"] = verdict, "; ".join(reasons)
        rec["regression"] = verdict in ("missing", "failed", "regressed", "changed")
        records.append(rec)
    cells = pd.DataFrame(records)
    if cells.empty:
        cells = pd.DataFrame(columns=["verdict", "regression", "reasons"])
    counts = cells["verdict"].value_counts().to_dict() if len(cells) else {}
    return Comparison(cells=cells, thresholds=thresholds, metrics=metrics, counts=counts)


def _verdict(rec: dict, thresholds: list[Threshold], time_floor_s: float) -> tuple[str, list[str]]:
    bs, cs = rec["base_status"], rec["cand_status"]
    if not cs:
        return "missing", ["missing in candidate"]
    if not bs:
        return "new", []
    if cs != "ok":
        return ("failed", [f"{cs} in candidate"]) if bs == "ok" else ("still " + cs, [])
    if bs != "ok":
        return "fixed", []
    reasons, worse_any = [], False
    for t in thresholds:
        bv, cv = rec[f"base_{t.column}"], rec[f"cand_{t.column}"]
        if math.isnan(bv):
            continue
        if math.isnan(cv):
            reasons.append(f"{t.column} missing")
            continue
        worse = t.worsening(bv, cv)
        if t.relative and is_time(t.column) and abs(cv - bv) < time_floor_s:
            continue
        beyond = (abs(cv - bv) if t.two_sided else worse) > t.limit(bv) + 1e-12
        if beyond:
            change = f"{(cv - bv) / abs(bv):+.1%}" if t.relative and bv else f"{cv - bv:+.4g}"
            better = t.two_sided and worse < 0
            reasons.append(f"{t.column} {change}" + (f" (a rise beyond {t})" if better else ""))
            worse_any |= not better
    if not reasons:
        return "ok", []
    # "changed": only two-sided gates fired, each the good way (a finding, not a drop)
    return ("regressed" if worse_any else "changed"), reasons


def _fmt(value: float, metric: str) -> str:
    if math.isnan(value):
        return "–"
    return f"{value:.{_decimals(metric)}f}"


def _delta(base: float, cand: float, metric: str) -> str:
    if math.isnan(base) or math.isnan(cand):
        return ""
    d = cand - base
    if higher_is_better(metric) is False and base:
        return f"{d:+.2f}, {d / abs(base):+.0%}"
    return f"{d:+.{_decimals(metric)}f}"


def render(comp: Comparison, *, fmt: str = "text", show: str = "auto") -> str:
    """The diff table plus a one-line verdict; ``show`` = all, changed, regressions or auto."""
    cells = comp.cells
    if show == "auto":
        show = "all" if len(cells) <= 40 else "changed"
    if show not in ("all", "changed", "regressions"):
        raise EvobenchError(f"unknown --show {show!r}; use all, changed or regressions")
    shown = cells
    if show == "regressions":
        shown = cells[cells["regression"]]
    elif show == "changed":
        shown = cells[cells["verdict"] != "ok"]
    if len(shown):
        order = np.argsort(~shown["regression"].to_numpy(), kind="stable")
        shown = shown.iloc[order]
    header = ["verdict", "method", "dataset", "image", "level", "rep"]
    header += [f"{m}: base → cand (Δ)" for m in comp.metrics]
    header.append("why")
    body = []
    for _, r in shown.iterrows():
        row = [("✗ " if r["regression"] else "") + r["verdict"], r["method"], r["dataset"],
               r["image"], r["level"], r["rep"]]
        for m in comp.metrics:
            bv, cv = r[f"base_{m}"], r[f"cand_{m}"]
            delta = _delta(bv, cv, m)
            row.append(f"{_fmt(bv, m)} → {_fmt(cv, m)}" + (f" ({delta})" if delta else ""))
        row.append(r["reasons"])
        body.append(row)
    tablefmt = {"text": "simple", "markdown": "github"}.get(fmt)
    if tablefmt is None:
        raise EvobenchError(f"unknown output format {fmt!r}; use text or markdown")
    parts = []
    if body:
        parts.append(tabulate(body, header, tablefmt=tablefmt, disable_numparse=True))
    parts.append(_summary(comp, fmt))
    return "\n\n".join(parts) + "\n"


def _summary(comp: Comparison, fmt: str) -> str:
    cells = comp.cells
    lines = []
    if len(cells):
        both = cells[(cells["base_status"] == "ok") & (cells["cand_status"] == "ok")]
    for m in comp.metrics if len(cells) else []:
        d = (both[f"cand_{m}"] - both[f"base_{m}"]).dropna()
        if len(d):
            lines.append(f"{m}: mean Δ {d.mean():+.4g}, worst Δ "
                         f"{(d.min() if higher_is_better(m) is not False else d.max()):+.4g} "
                         f"over {len(d)} cells")
    n_reg = int(cells["regression"].sum()) if len(cells) else 0
    counts = ", ".join(f"{n} {v}" for v, n in sorted(comp.counts.items()))
    gates = ", ".join(map(str, comp.thresholds)) or "none"
    verdict = (f"REGRESSION: {n_reg} of {len(cells)} cells" if n_reg
               else f"OK: no regression in {len(cells)} cells")
    lines.append(f"{verdict} ({counts}); gates: {gates}")
    if fmt == "markdown":
        return "\n".join(f"- {line}" for line in lines)
    return "\n".join(lines)


def _values(df: pd.DataFrame, column: str) -> set:
    if column not in df.columns:
        return set()
    return {str(v) for v in df[column].dropna().unique() if str(v) not in ("", "nan")}


def _machine(manifest: dict) -> str:
    m = manifest.get("machine") or {}
    if not m:
        return ""
    ram = f", {m['ram_gb']:g} GB" if isinstance(m.get("ram_gb"), int | float) else ""
    return f"{m.get('host', '?')} ({m.get('cpu', '?')}, {m.get('cores', '?')} cores{ram})"


def environment_warnings(base: pd.DataFrame, cand: pd.DataFrame, base_manifest: dict,
                         cand_manifest: dict, comp: Comparison | None = None) -> list[str]:
    """One line per difference between the two runs that makes timings (or, for threads, some
    results) incomparable: threads per cell, jobs, executor, device, evobench and torch
    versions, machine; and a line when the runs share no cell."""
    out = []

    def differ(what: str, a: set, b: set, why: str) -> None:
        if a and b and a != b:
            out.append(f"{what} differ: baseline {', '.join(sorted(a))}, candidate "
                       f"{', '.join(sorted(b))} ({why})")

    ok_b, ok_c = base[base.get("status", "ok") == "ok"], cand[cand.get("status", "ok") == "ok"]
    differ("threads per cell", _values(ok_b, "threads"), _values(ok_c, "threads"),
           "timings are not comparable, and methods other than tvae, which is bit-identical "
           "at any thread count, may round differently; pin --threads-per-cell")
    differ("jobs", _values(ok_b, "jobs"), _values(ok_c, "jobs"),
           "cells in parallel compete for cores: timings are not comparable")
    differ("executors", _values(ok_b, "executor"), _values(ok_c, "executor"),
           "timings are not comparable")
    differ("devices", _values(ok_b, "device"), _values(ok_c, "device"),
           "results and timings are not comparable")
    differ("evobench versions", _values(base, "evobench_version") or
           {str(base_manifest.get("evobench_version", ""))} - {""},
           _values(cand, "evobench_version") or
           {str(cand_manifest.get("evobench_version", ""))} - {""}, "expected after an upgrade")
    torch_b = str((base_manifest.get("versions") or {}).get("torch", ""))
    torch_c = str((cand_manifest.get("versions") or {}).get("torch", ""))
    differ("torch versions", {torch_b} - {""}, {torch_c} - {""},
           "learned methods may give other numbers")
    mach_b, mach_c = _machine(base_manifest), _machine(cand_manifest)
    differ("machines", {mach_b} - {""}, {mach_c} - {""}, "timings are not comparable")
    if comp is not None and len(base) and len(cand):
        cells = comp.cells
        shared = int(((cells["base_status"] != "") & (cells["cand_status"] != "")).sum()) \
            if "base_status" in cells else 0
        if not shared:
            out.append("the runs share no cells: every baseline cell is missing from the candidate "
                       "(compare runs of the same suite and profile)")
    return out
