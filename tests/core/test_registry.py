"""The plugin registry: isolation of broken plugins, blocking, strict mode, name suggestions."""

import types

import pluggy
import pytest

from evobench.api import MethodSpec, MetricSpec, Param, hookimpl
from evobench.registry import Registry, UnknownNameError, unknown_message


def _plugin(**hooks):
    return types.SimpleNamespace(**{k: hookimpl(v) for k, v in hooks.items()})


def _method(name, **kw):
    return MethodSpec(name=name, factory="x.y:z", tasks=frozenset({"denoise"}), **kw)


def test_registered_specs_are_found_and_attributed():
    reg = Registry()
    reg.add_plugin(_plugin(evobench_register_methods=lambda register: register(_method("alpha"))),
                   "p1")
    assert reg.names("methods") == ["alpha"]
    assert reg.method("alpha").factory == "x.y:z"
    assert reg.plugin_of("methods", "alpha").name == "p1"
    assert reg.plugins["p1"].provides == {"methods": ["alpha"]}


def test_hook_that_raises_marks_only_that_plugin_failed():
    def broken(register):
        register(_method("half"))
        raise RuntimeError("boom")

    reg = Registry(strict=False)
    reg.add_plugin(_plugin(evobench_register_methods=broken), "bad")
    reg.add_plugin(_plugin(evobench_register_methods=lambda register: register(_method("good"))),
                   "ok")
    assert reg.names("methods") == ["good"]  # nothing half-registered survives
    assert reg.plugins["bad"].status == "failed"
    assert "boom" in reg.plugins["bad"].errors[0]
    assert reg.plugins["ok"].status == "ok"


def test_strict_mode_reraises():
    def broken(register):
        raise RuntimeError("boom")

    reg = Registry(strict=True)
    reg.add_plugin(_plugin(evobench_register_methods=broken), "bad")
    with pytest.raises(RuntimeError, match="plugin 'bad'.*boom"):
        reg.collect()


def test_wrong_spec_type_is_reported():
    reg = Registry(strict=False)
    reg.add_plugin(_plugin(evobench_register_methods=lambda register: register(
        MetricSpec(name="m", factory="a:b"))), "confused")
    reg.collect()
    assert reg.plugins["confused"].status == "failed"
    assert "expected a MethodSpec" in reg.plugins["confused"].errors[0]


def test_duplicate_name_is_an_error_naming_both_plugins():
    """Issue 23 item 2 (was a warning): the second plugin is failed and left out entirely."""
    reg = Registry(strict=False)
    reg.add_plugin(_plugin(evobench_register_methods=lambda register: register(_method("same"))),
                   "first")
    reg.add_plugin(_plugin(evobench_register_methods=lambda register: [
        register(_method("other")), register(_method("same"))]), "second")
    reg.collect()
    assert reg.plugin_of("methods", "same").name == "first"
    assert reg.plugins["second"].status == "failed"
    assert reg.plugins["second"].errors == [
        "method 'same' is registered by both plugin 'first' and plugin 'second'; 'second' is "
        "left out: rename one of them, or disable one (--disable-plugin NAME)"]
    assert reg.names("methods") == ["same"]  # nothing of 'second' half-registered


def test_a_clash_the_hook_swallows_still_fails_the_plugin_and_strict_raises():
    def sneaky(register):
        register(_method("mine"))
        try:
            register(_method("same"))
        except Exception:  # noqa: BLE001
            pass

    reg = Registry(strict=False)
    reg.add_plugin(_plugin(evobench_register_methods=lambda register: register(_method("same"))),
                   "first")
    reg.add_plugin(_plugin(evobench_register_methods=sneaky), "second")
    assert reg.names("methods") == ["same"]
    assert reg.plugins["second"].status == "failed"
    twice = Registry(strict=True)
    twice.add_plugin(_plugin(evobench_register_methods=lambda register: [
        register(_method("x")), register(_method("x"))]), "p")
    with pytest.raises(RuntimeError, match="plugin 'p' registers method 'x' twice"):
        twice.collect()


def test_blocked_plugin_is_not_registered(monkeypatch):
    monkeypatch.setenv("EVOBENCH_DISABLE_PLUGINS", "nope, other")
    reg = Registry()
    reg.add_plugin(_plugin(evobench_register_methods=lambda register: register(_method("x"))),
                   "nope")
    assert reg.names("methods") == []
    assert reg.plugins["nope"].status == "blocked"


def test_misspelled_hook_is_rejected():
    reg = Registry()
    plugin = types.SimpleNamespace(evobench_register_metods=hookimpl(lambda register: None))
    with pytest.raises(pluggy.PluginValidationError, match="unknown hook"):
        reg.add_plugin(plugin, "typo")


def test_unknown_name_suggests_closest():
    reg = Registry()
    reg.add_plugin(_plugin(evobench_register_methods=lambda register: register(_method("tvae"))),
                   "p")
    with pytest.raises(UnknownNameError, match="did you mean 'tvae'"):
        reg.method("tvea")
    assert "known: a, b" in unknown_message("method", "zzz", ["b", "a"])


def test_remove_plugin_forgets_its_items():
    reg = Registry()
    reg.add_plugin(_plugin(evobench_register_methods=lambda register: register(_method("gone"))),
                   "tmp")
    assert "gone" in reg.names("methods")
    reg.remove_plugin("tmp")
    assert "gone" not in reg.names("methods")


def test_param_validation_messages():
    p = Param("S", 32, int, low=1)
    assert p.coerce("64") == 64
    with pytest.raises(ValueError, match="S='x' is not a valid int"):
        p.coerce("x")
    with pytest.raises(ValueError, match="must be >= 1"):
        p.coerce(0)
    choice = Param("mode", "a", str, choices=("a", "b"))
    with pytest.raises(ValueError, match=r"not one of \['a', 'b'\]"):
        choice.coerce("c")
    assert Param("flag", False, bool).coerce("yes") is True
    assert Param("hidden", (64, 64), tuple).coerce("128-64") == (128, 64)


def test_invalid_spec_names_and_tasks():
    with pytest.raises(ValueError, match="name 'Bad Name' is invalid"):
        _method("Bad Name")
    with pytest.raises(ValueError, match="tasks must be a subset"):
        MethodSpec(name="m", factory="a:b", tasks=frozenset({"deblur"}))


def test_the_cli_sets_the_plugin_policy_without_writing_the_environment(invoke, monkeypatch):
    """--strict-plugins and --disable-plugin reach the registry by a call, never through an
    environment variable (EVOBENCH_STRICT_PLUGINS is the user's, read only)."""
    import os

    from evobench import registry

    for name, value in (("_STRICT", False), ("_BLOCKED", set()), ("_REGISTRY", None)):
        monkeypatch.setattr(registry, name, value)  # restored after the test
    monkeypatch.delenv(registry.ENV_STRICT, raising=False)
    result = invoke("--strict-plugins", "--disable-plugin", "bm3d", "list", "methods")
    assert result.exit_code == 0, result.output
    assert registry.ENV_STRICT not in os.environ
    built = registry.get_registry()
    assert built.strict and "bm3d" not in built.names("methods")
    assert not registry.Registry().strict  # the user setting alone decides for others
