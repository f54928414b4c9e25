"""``evobench data``: list datasets with their cache state, fetch (and verify) downloads."""

from __future__ import annotations

import click

from evobench.errors import EvobenchError


@click.group("data")
def data():
    """Fetch and list datasets (cache: EVOBENCH_DATA_DIR or the user cache folder)."""


@data.command("list")
def list_datasets():
    """Datasets with image count, colour, source and cache state."""
    from evobench import data as store
    from evobench.registry import get_registry

    registry = get_registry()
    click.echo(f"cache: {store.data_dir()}" + ("  (offline)" if store.offline() else ""))
    rows = []
    for name in registry.names("datasets"):
        spec = registry.dataset(name)
        if spec.files:
            try:
                states = [store.status(f) for f in spec.remote_files()]
            except Exception:  # noqa: BLE001 - a plugin's broken file list: unknown state
                states = []
            if not states:
                state = "download"
            elif all(s == "ok" for s in states):
                state = "cached, verified"
            else:
                bad = sum(s != "ok" for s in states)
                worst = "corrupted" if "corrupted" in states else "missing"
                state = f"{bad}/{len(states)} {worst}: evobench data fetch {name}"
        else:
            state = "user files" if spec.lister else "embedded"
        count = str(len(spec.images)) if spec.images else "-"
        rows.append((name, count, spec.color, state, spec.summary))
    width = [max(len(r[i]) for r in rows + [("dataset", "images", "colour", "state", "")])
             for i in range(4)]
    head = ("dataset", "images", "colour", "state")
    click.echo("  ".join(h.ljust(w) for h, w in zip(head, width)) + "  summary")
    for row in rows:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row[:4], width)) + "  " + row[4])


@data.command("fetch")
@click.argument("names", nargs=-1, required=True)
@click.option("--force", is_flag=True, help="Download again even if the files verify.")
def fetch(names, force):
    """Download and verify datasets (NAMES: set12, bsd68, castle, or 'all')."""
    from evobench import data as store
    from evobench.registry import get_registry

    registry = get_registry()
    fetchable = [n for n in registry.names("datasets") if registry.dataset(n).files]
    wanted = fetchable if "all" in names else list(dict.fromkeys(names))
    for name in wanted:
        spec = registry.dataset(name)
        if not spec.files:
            raise EvobenchError(f"dataset {name!r} needs no download (it is "
                                f"{'embedded' if not spec.lister else 'your own files'})")
    for name in wanted:
        results = store.fetch_all(registry.dataset(name).remote_files(), force=force)
        got = {}
        for _, what in results or []:
            got[what] = got.get(what, 0) + 1
        summary = ", ".join(f"{n} {w}" for w, n in sorted(got.items())) or "nothing to do"
        click.echo(f"{name}: {summary} -> {store.data_dir()}")
