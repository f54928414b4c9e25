"""``evobench plugins`` and ``evobench list``: what is installed, from specs alone (no imports of
implementations, so listing stays fast and works even when a method's dependency is missing)."""

from __future__ import annotations

import json

import click

from evobench.registry import get_registry
from evobench.specs import Param

KINDS = ("methods", "datasets", "degradations", "metrics", "suites", "figures")


def _availability(spec) -> str:
    missing = spec.missing_requirements()
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
            "downloads": spec.files is not None,
        }
    elif kind == "degradations":
        row |= {"task": spec.task, "params": [_param_dict(p) for p in spec.params]}
    elif kind == "metrics":
        row |= {"higher_is_better": spec.higher_is_better, "heading": spec.heading,
                "decimals": spec.decimals, "data_range": spec.data_range}
    elif kind == "figures":
        row |= {"title": spec.title, "tasks": sorted(spec.tasks)}
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


def _echo_block(title: str, lines: list[str]) -> None:
    click.echo(click.style(title, bold=True))
    for line in lines:
        click.echo(f"    {line}")


def _param_lines(params: tuple[Param, ...]) -> list[str]:
    lines = []
    for p in params:
        extra = f" (one of: {', '.join(map(str, p.choices))})" if p.choices is not None else ""
        bounds = [
            f">= {p.low}" if p.low is not None else "",
            f"<= {p.high}" if p.high is not None else "",
        ]
        bounds_text = f" ({', '.join(b for b in bounds if b)})" if any(bounds) else ""
        help_text = f"  {p.help}" if p.help else ""
        lines.append(f"{p.name}={p.default!r}{extra}{bounds_text}{help_text}")
    return lines


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins(as_json: bool) -> None:
    """List plugins with version, status, what they provide and licence notes."""
    registry = get_registry()
    infos = sorted(registry.plugins.values(), key=lambda i: i.name)
    if as_json:
        click.echo(json.dumps([i.as_dict() for i in infos], indent=2, default=str))
        return
    for info in infos:
        origin = f"{info.distribution} {info.version}".strip() or info.module or "-"
        lines = [f"{kind}: {', '.join(names)}" for kind, names in info.provides.items() if names]
        lines += [f"licence: {text}" for text in info.licences]
        lines += [f"error: {text}" for text in info.errors]
        _echo_block(f"{info.name}  [{info.status}]  {origin}", lines)


@click.command("list")
@click.argument("kind", type=click.Choice(KINDS))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_items(kind: str, as_json: bool) -> None:
    """List registered methods, datasets, degradations, metrics or suites with their parameters."""
    from evobench.registry import broken_plugins_line

    registry = get_registry()
    if broken_plugins_line(registry):
        click.echo(broken_plugins_line(registry), err=True)
    specs = [registry.get(kind, name) for name in registry.names(kind)]
    if as_json:
        click.echo(json.dumps([describe(kind, s) for s in specs], indent=2, default=str))
        return
    for s in specs:
        plugin = registry.plugin_of(kind, s.name)
        source = f"  (plugin {plugin.name})" if plugin else ""
        lines = [s.summary] if s.summary else []
        if kind == "methods":
            head = (
                f"{s.name}  tasks: {', '.join(sorted(s.tasks))} | colours: "
                f"{', '.join(sorted(s.colors))} | devices: {', '.join(sorted(s.devices))} | "
                f"{_availability(s)}"
            )
            lines += [f"licence: {s.licence}"] if s.licence else []
            lines += _param_lines(s.params)
        elif kind == "datasets":
            count = (f"{len(s.images)} image{'s' * (len(s.images) != 1)}" if s.images
                     else "your images" if s.lister else "no images")
            head = f"{s.name}  {s.color}, {count}"
            lines += [f"images: {_images_text(s)}"] if s.images else []
            lines += (
                [f"aliases: {', '.join(f'{a}={i}' for a, i in s.aliases.items())}"]
                if s.aliases
                else []
            )
            lines += [f"source: {s.source}"] if s.source else []
            lines += _param_lines(getattr(s, "params", ()))
        elif kind == "degradations":
            head = f"{s.name}  task: {s.task}"
            lines += _param_lines(s.params)
        elif kind == "metrics":
            head = f"{s.name}  ({'higher' if s.higher_is_better else 'lower'} is better)"
        elif kind == "figures":
            head = f"{s.name}  {s.title}"
        else:
            head = s.name
            lines += [
                f"profiles: {', '.join(p + (' (default)' if p == s.default_profile else '') for p in s.profiles)}"
            ]
        _echo_block(head + source, lines)


def _images_text(spec) -> str:
    names = list(spec.images)
    return ", ".join(names[:12]) + (f", ... ({len(names)} in all)" if len(names) > 12 else "")
