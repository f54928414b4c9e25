"""What a person reads for a method: display names and the order of methods in reports.

A results row names its method by ``method_label``: the suite's label where the suite gives one
(``TVAE (published)``), else the selector (``tvae[C=2,H=16,P=2,S=8,epochs=10]``). Selectors are
exact but long; tables, figure legends and the HTML page show a short form instead: the method
name plus only the parameters that set it apart, ``tvae (epochs=20)``. For a method that appears
with one parameter set that is the parameters that differ from the spec's defaults; for one
with several, the parameters the variants do not all give alike (those they share say nothing
to tell them apart), as each variant gives them. Two labels that would read the same keep
their selectors. Methods are ordered by their spec's ``rank`` (tvae first), unranked
methods after them in order of appearance, references (the noisy input) last.
"""

from __future__ import annotations

from collections import Counter

import pandas as pd

from evobench.errors import EvobenchError


def _spec(method: str):
    from evobench.registry import get_registry

    try:
        return get_registry().method(str(method))
    except EvobenchError:
        return None


def split_selector(label: str, method: str) -> dict[str, str] | None:
    """``tvae[C=2,hidden=[64,64]]`` -> ``{"C": "2", "hidden": "[64,64]"}``; ``{}`` for the bare
    method name; None when ``label`` is not a selector of ``method`` (a suite's own label)."""
    if label == method:
        return {}
    if not (label.startswith(method + "[") and label.endswith("]")):
        return None
    body, parts, depth, cur = label[len(method) + 1:-1], [], 0, ""
    for ch in body:
        depth += ch in "[({"
        depth -= ch in "])}"
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    out = {}
    for part in parts:
        key, eq, value = part.partition("=")
        if not eq or not key:
            return None
        out[key.strip()] = value.strip()
    return out


def _defaults(method: str) -> dict[str, str]:
    spec = _spec(method)
    return {p.name: str(p.default) for p in (spec.params if spec else ())}


def _short(method: str, params: dict[str, str]) -> str:
    inner = ", ".join(f"{k}={v}" for k, v in params.items())
    return f"{method} ({inner})" if inner else method


def display_names(labels, methods) -> dict[str, str]:
    """Label -> display name for the ``labels`` (a results frame's ``method_label``) and the
    ``methods`` they belong to, side by side; see the module's docstring."""
    method_of: dict[str, str] = {}
    for lab, method in zip(labels, methods):
        method_of.setdefault(str(lab), str(method))
    parsed = {lab: split_selector(lab, m) for lab, m in method_of.items()}
    out = {lab: lab for lab, p in parsed.items() if p is None}  # the suite's own labels
    by_method: dict[str, list[str]] = {}
    for lab, p in parsed.items():
        if p is not None:
            by_method.setdefault(method_of[lab], []).append(lab)
    for method, labs in by_method.items():
        defaults = _defaults(method)
        if len(labs) == 1:
            given = parsed[labs[0]]
            out[labs[0]] = _short(method, {k: v for k, v in given.items()
                                           if defaults.get(k) != v})
            continue
        keys = list(dict.fromkeys(k for lab in labs for k in parsed[lab]))
        # the parameters that set the variants apart: those not given alike in all of them
        varying = [k for k in keys if len({parsed[lab].get(k) for lab in labs}) > 1]
        for lab in labs:
            given = parsed[lab]
            out[lab] = _short(method, {k: given[k] for k in varying if k in given})
    seen = Counter(out.values())
    return {lab: (lab if seen[name] > 1 else name) for lab, name in out.items()}


def method_order(labels, methods) -> list[str]:
    """The distinct ``labels`` in report order: ranked methods by ``MethodSpec.rank`` (lower
    first), then unranked ones in order of appearance, references last."""
    method_of: dict[str, str] = {}
    for lab, method in zip(labels, methods):
        method_of.setdefault(lab, str(method))
    specs = {m: _spec(m) for m in set(method_of.values())}

    def key(item):
        i, lab = item
        spec = specs[method_of[lab]]
        if spec is None:
            return (1, 0, i)
        return (2 if spec.reference else 0 if spec.rank is not None else 1, spec.rank or 0, i)

    return [lab for _, lab in sorted(enumerate(method_of), key=key)]


def with_display_names(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with ``method_label`` replaced by display names and its rows in method order
    (stable within a method), the form every table and figure shows."""
    if df.empty or "method_label" not in df.columns:
        return df
    names = display_names(df["method_label"], df["method"])
    order = {lab: i for i, lab in enumerate(method_order(df["method_label"], df["method"]))}
    df = df.assign(_method_order=df["method_label"].map(order))
    df = df.sort_values("_method_order", kind="stable").drop(columns="_method_order")
    return df.assign(method_label=df["method_label"].map(names))
