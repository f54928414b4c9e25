"""evobench's modules import each other without cycles, counting the imports inside functions
(a lazy import hides a cycle from Python, not from the design): every ``import`` and ``from ...
import`` of every module under ``evobench/`` is read with :mod:`ast`, relative imports resolved,
and the graph of ``evobench.*`` modules must have no cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import evobench

PACKAGE = Path(evobench.__file__).parent


def _modules() -> dict[str, tuple[Path, bool]]:
    """Module name -> (file, whether it is a package's ``__init__``)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = ["evobench", *path.relative_to(PACKAGE).with_suffix("").parts]
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def _imported(node: ast.Import | ast.ImportFrom, package: str) -> list[str]:
    """The dotted names an import statement may load (``from a import b``: ``a`` and
    ``a.b``, b being a module or not)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        parts = package.split(".")
        parts = parts[:len(parts) - (node.level - 1)]
        base = ".".join(parts + ([node.module] if node.module else []))
    return [base] + [f"{base}.{alias.name}" for alias in node.names]


def import_graph() -> dict[str, set[str]]:
    """``evobench.*`` module -> the ``evobench.*`` modules it imports, anywhere in its body."""
    modules = _modules()
    graph = {}
    for name, (path, is_package) in modules.items():
        package = name if is_package else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for target in _imported(node, package):
                while target and target not in modules:  # a name inside a module
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges.add(target)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _explain(graph: dict[str, set[str]], component: list[str]) -> str:
    inside = set(component)
    return "\n".join(f"  {m} -> {', '.join(sorted(graph[m] & inside))}" for m in component)


def test_the_graph_sees_lazy_and_relative_imports():
    graph = import_graph()
    assert "evobench.registry" in graph["evobench.cli"]  # imported inside a method
    assert "evobench.harness.worker" in graph["evobench.harness.isolate"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_evobench_has_no_import_cycles():
    graph = import_graph()
    found = cycles(graph)
    assert not found, "import cycles (imports inside functions count):\n" + "\n\n".join(
        _explain(graph, c) for c in found)


UPPER = ("evobench.harness", "evobench.reports", "evobench.cli", "evobench.__main__",
         "evobench.data_cli", "evobench.plugin_cli", "evobench.testing", "evobench.api")


def layer(module: str) -> int:
    """0: the core (specs, registry, inputs, context, checkpoint, ...); 1: the engine
    (``evobench.tvae``); 2: the harness, reports, command line and the public API (which
    plugins see: it re-exports from every layer)."""
    if module.startswith("evobench.tvae"):
        return 1
    if any(module == top or module.startswith(top + ".") for top in UPPER):
        return 2
    return 0


def test_layers_only_import_downwards():
    """core <- engine <- harness, reports, CLI: nothing imports a layer above its own."""
    graph = import_graph()
    upward = sorted(f"{m} -> {t}" for m, targets in graph.items() for t in targets
                    if layer(t) > layer(m))
    assert not upward, "imports of a higher layer:\n  " + "\n  ".join(upward)


PLUGINS = PACKAGE.parent / "plugins"


def _evobench_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import | ast.ImportFrom):
            for target in _imported(node, ""):
                if target == "evobench" or target.startswith("evobench."):
                    names.add(target)
    return names


def test_plugins_import_only_the_public_api():
    """First-party plugins are plugins like any other: ``evobench.api`` only (the tvae plugin
    may also use its engine, ``evobench.tvae``)."""
    found = []
    for path in sorted(PLUGINS.rglob("*.py")):
        allowed = ("evobench.api",) + (("evobench.tvae",) if "evobench_tvae" in path.parts
                                        else ())
        for name in sorted(_evobench_imports(path)):
            if not any(name == a or name.startswith(a + ".") for a in allowed):
                found.append(f"{path.relative_to(PLUGINS)}: {name}")
    assert not found, "plugins importing evobench's private modules:\n  " + "\n  ".join(found)
