"""Plugin loading and the registry of everything plugins provide.

Plugins come from the ``evobench`` entry-point group (first-party ones too). Each plugin is
imported and each of its hooks called inside its own ``try``: a broken plugin is recorded with
its error and skipped, so the CLI and every other plugin keep working (the complaint of
simonw/llm#1280). ``--strict-plugins`` or the user setting ``EVOBENCH_STRICT_PLUGINS=1`` (read
here only) re-raise instead, for plugin authors.
"""

from __future__ import annotations

import os
import types
from collections.abc import Iterable
from dataclasses import dataclass, field
from difflib import get_close_matches
from importlib.metadata import entry_points

import pluggy

from evobench import hookspecs
from evobench.errors import EvobenchError
from evobench.specs import SPEC_KINDS, SpecError

ENTRY_POINT_GROUP = "evobench"
ENV_DISABLE = "EVOBENCH_DISABLE_PLUGINS"
ENV_STRICT = "EVOBENCH_STRICT_PLUGINS"

_REGISTER_HOOKS = {
    "methods": "evobench_register_methods",
    "datasets": "evobench_register_datasets",
    "degradations": "evobench_register_degradations",
    "metrics": "evobench_register_metrics",
    "suites": "evobench_register_suites",
    "figures": "evobench_register_figures",
}


# evobench's own plugins (the entry points of its pyproject.toml): the names they register cannot
# be taken over by another plugin, whatever the load order
FIRST_PARTY_DISTRIBUTION = "evobench"
FIRST_PARTY = {"standard": "evobench_standard", "tvae": "evobench_tvae",
               "skimage": "evobench_skimage", "bm3d": "evobench_bm3d", "gsvae": "evobench_gsvae",
               "zeroshot": "evobench_zeroshot"}


def _is_first_party(ep, dist) -> bool:
    name = dist.metadata["Name"] if dist is not None else ""
    return name == FIRST_PARTY_DISTRIBUTION and FIRST_PARTY.get(ep.name) == ep.value


class NameClash(SpecError):
    """A name that a second plugin (or the same one, twice) registers."""


class UnknownNameError(EvobenchError, LookupError):
    """A name that no plugin registered; the message suggests the closest one."""


@dataclass
class PluginInfo:
    name: str
    module: str = ""
    distribution: str = ""
    version: str = ""
    blocked: bool = False
    first_party: bool = False  # one of evobench's own entry points (FIRST_PARTY)
    load_errors: list[str] = field(default_factory=list)  # import / validation, kept for good
    register_errors: list[str] = field(default_factory=list)  # rebuilt on every collect()
    warnings: list[str] = field(default_factory=list)  # rebuilt on every collect()
    provides: dict[str, list[str]] = field(default_factory=dict)
    licences: list[str] = field(default_factory=list)  # "name, name: licence text"
    licence_owners: dict[str, list[str]] = field(default_factory=dict)  # text -> spec names

    @property
    def status(self) -> str:
        if self.blocked:
            return "blocked"
        return "failed" if self.load_errors or self.register_errors else "ok"

    @property
    def errors(self) -> list[str]:
        return self.load_errors + self.register_errors + self.warnings

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "module": self.module,
            "distribution": self.distribution,
            "version": self.version,
            "status": self.status,
            "errors": list(self.errors),
            "provides": {k: list(v) for k, v in self.provides.items() if v},
            "licences": list(self.licences),
        }


def _env_list(var: str) -> set[str]:
    return {item.strip() for item in os.environ.get(var, "").split(",") if item.strip()}


def _strict_default() -> bool:
    return os.environ.get(ENV_STRICT, "").strip().lower() in {"1", "true", "yes"}


class Registry:
    """Everything the loaded plugins registered, by kind and name."""

    def __init__(self, *, blocked: Iterable[str] = (), strict: bool | None = None):
        self.strict = _strict_default() if strict is None else strict
        self.blocked = set(blocked) | _env_list(ENV_DISABLE)
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self.items: dict[str, dict[str, object]] = {kind: {} for kind in SPEC_KINDS}
        self.owner: dict[tuple[str, str], str] = {}
        self._collected = False

    # -- loading -----------------------------------------------------------------------------
    def load_entry_points(self) -> Registry:
        """Load every entry point, evobench's own first (their names are claimed first)."""
        eps = [(ep, getattr(ep, "dist", None)) for ep in entry_points(group=ENTRY_POINT_GROUP)]
        eps.sort(key=lambda pair: (not _is_first_party(*pair), pair[0].name))
        for ep, dist in eps:
            info = PluginInfo(
                name=ep.name,
                module=ep.value,
                distribution=dist.metadata["Name"] if dist else "",
                version=dist.version if dist else "",
                first_party=_is_first_party(ep, dist),
            )
            if ep.name in self.plugins:
                if self.plugins[ep.name].first_party and not info.first_party:
                    # an impostor under a built-in plugin's name: shown as failed, never loaded
                    info.name = f"{ep.name} ({info.distribution or ep.value})"
                    info.load_errors.append(
                        f"entry point {ep.name!r} ({ep.value}) has the name of evobench's own "
                        f"plugin {ep.name!r} and is refused: rename the entry point")
                    self.plugins[info.name] = info
                continue  # else: the same distribution seen twice on sys.path
            self.plugins[ep.name] = info
            if ep.name in self.blocked:
                info.blocked = True
                continue
            try:
                self._register(ep.load(), ep.name)
            except Exception as exc:  # noqa: BLE001 - isolation is the point
                self._fail(info.load_errors, info, f"could not be loaded: {type(exc).__name__}: {exc}", exc)
        return self

    def add_plugin(self, plugin: object, name: str | None = None, *, version: str = "") -> str:
        """Register a plugin object or module directly (tests, scripts, notebooks)."""
        name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        if name in self.blocked:
            self.plugins[name] = PluginInfo(name=name, blocked=True)
            return name
        module = plugin.__name__ if isinstance(plugin, types.ModuleType) else type(plugin).__name__
        self.plugins[name] = PluginInfo(name=name, module=module, version=version)
        self._register(plugin, name)
        self._collected = False
        return name

    def remove_plugin(self, name: str) -> None:
        if self.pm.has_plugin(name):
            self.pm.unregister(name=name)
        self.plugins.pop(name, None)
        self._drop_items_of(name)
        self._collected = False

    def _drop_items_of(self, name: str) -> None:
        """A plugin whose hook failed half-way contributes nothing (no half-registered state)."""
        for (kind, item), owner in list(self.owner.items()):
            if owner == name:
                self.items[kind].pop(item, None)
                del self.owner[(kind, item)]
        if name in self.plugins:
            self.plugins[name].provides = {}

    def _register(self, plugin: object, name: str) -> None:
        self.pm.register(plugin, name=name)
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            self.pm.unregister(name=name)
            raise exc

    def _fail(self, into: list, info: PluginInfo, message: str, exc: BaseException | None = None):
        into.append(message)
        if self.strict:
            raise RuntimeError(f"plugin {info.name!r}: {message}") from exc

    # -- collecting --------------------------------------------------------------------------
    def collect(self) -> Registry:
        if self._collected:
            return self
        self._collected = True
        self.items = {kind: {} for kind in SPEC_KINDS}
        self.owner = {}
        for info in self.plugins.values():
            info.register_errors, info.warnings, info.provides, info.licences = [], [], {}, []
            info.licence_owners = {}
        for kind, hook_name in _REGISTER_HOOKS.items():
            impls = getattr(self.pm.hook, hook_name).get_hookimpls()
            infos = [self.plugins.setdefault(i.plugin_name, PluginInfo(name=i.plugin_name))
                     for i in impls]
            # evobench's own plugins claim their names first, then the others in load order
            for impl, info in sorted(zip(impls, infos, strict=True),
                                     key=lambda pair: not pair[1].first_party):
                if info.status != "ok":
                    continue
                try:
                    impl.function(register=self._registrar(kind, info))
                except NameClash as exc:  # already recorded by the registrar
                    if self.strict:
                        raise RuntimeError(f"plugin {info.name!r}: {exc}") from exc
                except Exception as exc:  # noqa: BLE001
                    self._fail(info.register_errors, info,
                               f"{hook_name} failed: {type(exc).__name__}: {exc}", exc)
                if info.register_errors:  # also a clash the hook caught itself
                    self._drop_items_of(info.name)
                    if self.strict:
                        raise RuntimeError(f"plugin {info.name!r}: {info.register_errors[0]}")
        return self

    def _registrar(self, kind: str, info: PluginInfo):
        spec_type = SPEC_KINDS[kind]

        def register(spec) -> None:
            if not isinstance(spec, spec_type):
                raise SpecError(f"expected a {spec_type.__name__}, got {type(spec).__name__}")
            previous = self.owner.get((kind, spec.name))
            if previous is not None:
                message = self._clash(kind[:-1], spec.name, previous, info)
                info.register_errors.append(message)
                raise NameClash(message)
            self.items[kind][spec.name] = spec
            self.owner[(kind, spec.name)] = info.name
            info.provides.setdefault(kind, []).append(spec.name)
            licence = getattr(spec, "licence", None)
            if licence:  # each licence line says what it covers
                info.licence_owners.setdefault(licence, []).append(spec.name)
                info.licences = [f"{', '.join(names)}: {text}"
                                 for text, names in info.licence_owners.items()]

        return register

    def _clash(self, kind: str, name: str, previous: str, info: PluginInfo) -> str:
        """The one line for ``name`` registered again, by ``info`` (which is left out)."""
        if previous == info.name:
            return f"plugin {info.name!r} registers {kind} {name!r} twice; register it once"
        if self.plugins.get(previous, PluginInfo(previous)).first_party:
            return (f"{kind} {name!r} belongs to evobench's own plugin {previous!r}; plugin "
                    f"{info.name!r} cannot replace it and is left out: rename its {kind}")
        return (f"{kind} {name!r} is registered by both plugin {previous!r} and plugin "
                f"{info.name!r}; {info.name!r} is left out: rename one of them, or disable one "
                "(--disable-plugin NAME)")

    # -- lookup ------------------------------------------------------------------------------
    def names(self, kind: str) -> list[str]:
        self.collect()
        return sorted(self.items[kind])

    def get(self, kind: str, name: str):
        self.collect()
        try:
            return self.items[kind][name]
        except KeyError:
            raise UnknownNameError(unknown_message(kind[:-1], name, self.items[kind])) from None

    def method(self, name: str):
        return self.get("methods", name)

    def dataset(self, name: str):
        return self.get("datasets", name)

    def degradation(self, name: str):
        return self.get("degradations", name)

    def metric(self, name: str):
        return self.get("metrics", name)

    def suite(self, name: str):
        return self.get("suites", name)

    def figure(self, name: str):
        return self.get("figures", name)

    def metric_specs(self) -> dict:
        """Every registered metric by name (their facts: direction, label, decimals ...)."""
        return {name: self.metric(name) for name in self.names("metrics")}

    def plugin_of(self, kind: str, name: str) -> PluginInfo | None:
        owner = self.owner.get((kind, name))
        return self.plugins.get(owner) if owner else None

    def add_commands(self, cli) -> None:
        for impl in self.pm.hook.evobench_register_commands.get_hookimpls():
            info = self.plugins.get(impl.plugin_name)
            if info is not None and info.status != "ok":
                continue
            try:
                impl.function(cli=cli)
            except Exception as exc:  # noqa: BLE001
                if info is not None:
                    self._fail(info.register_errors, info,
                               f"evobench_register_commands failed: {exc}", exc)


def unknown_message(kind: str, name: str, known: Iterable[str]) -> str:
    known = sorted(known)
    hint = get_close_matches(str(name), known, n=1)
    if hint:
        return f"unknown {kind} {name!r}; did you mean {hint[0]!r}? (see `evobench list {kind}s`)"
    listing = ", ".join(known) if known else "none registered"
    return f"unknown {kind} {name!r}; known: {listing}"


_REGISTRY: Registry | None = None
_BLOCKED: set[str] = set()
_STRICT = False  # --strict-plugins; else EVOBENCH_STRICT_PLUGINS decides


def broken_plugins_line(registry: Registry) -> str:
    """One warning line naming the plugins that failed to load ("" when none did)."""
    failed = sorted(n for n, info in registry.plugins.items() if info.status == "failed")
    if not failed:
        return ""
    return (f"warning: plugin(s) {', '.join(failed)} failed to load and are left out; "
            "details: evobench plugins")


def plugin_policy(*, blocked: Iterable[str] = (), strict: bool = False) -> None:
    """The CLI's ``--disable-plugin`` (``blocked``) and ``--strict-plugins`` (``strict``), for
    the process-wide registry built next (cell processes build none: their payload holds the
    specs)."""
    global _REGISTRY, _STRICT
    _BLOCKED.update(blocked)
    _STRICT = _STRICT or strict
    _REGISTRY = None


def get_registry(*, reload: bool = False) -> Registry:
    """The process-wide registry, built on first use from the entry points."""
    global _REGISTRY
    if _REGISTRY is None or reload:
        _REGISTRY = Registry(blocked=_BLOCKED, strict=_STRICT or None).load_entry_points()
    return _REGISTRY.collect()
