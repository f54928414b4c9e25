"""``evobench plugins`` and ``evobench list``: what is installed, from specs alone (no imports of
implementations, so listing stays fast and works even when a method's dependency is missing)."""

from __future__ import annotations

import json

import click

from evobench.registry import get_registry
from evobench.specs import Param

KINDS = ("methods", "datasets", "degradations", "metrics", "suites")


def _params_text(params: tuple[Param, ...]) -> str:
    return ", ".join(f"{p.name}={p.default!r}" for p in params) or "-"


def _availability(spec) -> str:
    from evobench.api import _importable

    missing = [m for m in getattr(spec, "requires", ()) if not _importable(m)]
    return "missing " + ", ".join(missing) if missing else "ok"


def describe(kind: str, spec) -> dict:
    """A JSON-able description of one registered item."""
    registry = get_registry()
    plugin = registry.plugin_of(kind, spec.name)
    row = {"name": spec.name, "plugin": plugin.name if plugin else "", "summary": spec.summary}
    if kind == "methods":
        row |= {
            "tasks": sorted(spec.tasks),
            "colors": sorted(spec.colors),
            "devices": sorted(spec.devices),
            "version": spec.version,
            "needs_sigma": spec.needs_sigma,
            "amortized": spec.amortized,
            "licence": spec.licence,
            "available": _availability(spec),
            "params": [_param_dict(p) for p in spec.params],
        }
    elif kind == "datasets":
        row |= {
            "color": spec.color,
            "images": list(spec.images),
            "aliases": dict(spec.aliases),
            "source": spec.source,
            "licence": spec.licence,
            "downloads": spec.fetch is not None,
        }
    elif kind == "degradations":
        row |= {"task": spec.task, "params": [_param_dict(p) for p in spec.params]}
    elif kind == "metrics":
        row |= {"higher_is_better": spec.higher_is_better}
    elif kind == "suites":
        row |= {"profiles": sorted(spec.profiles), "default_profile": spec.default_profile}
    return row


def _param_dict(p: Param) -> dict:
    out = {"name": p.name, "default": p.default, "type": p.type.__name__, "help": p.help}
    if p.choices is not None:
        out["choices"] = list(p.choices)
    if p.low is not None or p.high is not None:
        out["range"] = [p.low, p.high]
    return out


def _print_table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False, header_style="bold")
    for col in columns:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*row)
    Console().print(table)


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins(as_json: bool) -> None:
    """List plugins with version, status, what they provide and licence notes."""
    registry = get_registry()
    infos = sorted(registry.plugins.values(), key=lambda i: i.name)
    if as_json:
        click.echo(json.dumps([i.as_dict() for i in infos], indent=2, default=str))
        return
    rows = []
    for info in infos:
        provides = "; ".join(f"{k}: {', '.join(v)}" for k, v in info.provides.items() if v)
        notes = "; ".join(info.licences + info.errors)
        rows.append(
            [info.name, info.distribution or "-", info.version or "-", info.status, provides or "-",
             notes or "-"]
        )
    _print_table("evobench plugins", ["plugin", "distribution", "version", "status", "provides",
                                      "licence / errors"], rows)


@click.command("list")
@click.argument("kind", type=click.Choice(KINDS))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_items(kind: str, as_json: bool) -> None:
    """List registered methods, datasets, degradations, metrics or suites with their parameters."""
    registry = get_registry()
    specs = [registry.get(kind, name) for name in registry.names(kind)]
    if as_json:
        click.echo(json.dumps([describe(kind, s) for s in specs], indent=2, default=str))
        return
    if kind == "methods":
        cols = ["method", "tasks", "colours", "devices", "parameters (defaults)", "status / licence"]
        rows = [[s.name, ",".join(sorted(s.tasks)), ",".join(sorted(s.colors)),
                 ",".join(sorted(s.devices)), _params_text(s.params),
                 "; ".join(x for x in (_availability(s), s.licence) if x)] for s in specs]
    elif kind == "datasets":
        cols = ["dataset", "colour", "images", "source"]
        rows = [[s.name, s.color, _images_text(s), s.source or "-"] for s in specs]
    elif kind == "degradations":
        cols = ["degradation", "task", "parameters (defaults)", "summary"]
        rows = [[s.name, s.task, _params_text(s.params), s.summary] for s in specs]
    elif kind == "metrics":
        cols = ["metric", "better", "summary"]
        rows = [[s.name, "higher" if s.higher_is_better else "lower", s.summary] for s in specs]
    else:
        cols = ["suite", "profiles", "summary"]
        rows = [[s.name, ", ".join(f"{p}{' (default)' if p == s.default_profile else ''}"
                                   for p in s.profiles), s.summary] for s in specs]
    _print_table(f"evobench {kind}", cols, rows)


def _images_text(spec) -> str:
    names = list(spec.images)
    text = ", ".join(names[:6]) + (f", ... ({len(names)} images)" if len(names) > 6 else "")
    return text or "-"
