"""``evobench.api.run_method``: validation, parameter resolution and the returned output."""

import types

import numpy as np
import pytest

from evobench.api import EvobenchError, MethodOutput, MethodSpec, Param, hookimpl, run_method
from evobench.registry import Registry, UnknownNameError


def _identity(call, ctx, *, gain):
    image, mask = call.image, call.mask
    out = np.where(mask, 0.5, image) if mask is not None else image
    return MethodOutput(image=out * gain, extras={"seed_seen": call.seed})


def _nan_method(call, ctx, **kw):
    return MethodOutput(image=np.full_like(call.image, np.nan))


@pytest.fixture
def registry(monkeypatch):
    import sys

    mod = types.ModuleType("evobench_test_methods")
    mod.identity, mod.nan_method = _identity, _nan_method
    monkeypatch.setitem(sys.modules, "evobench_test_methods", mod)

    @hookimpl
    def evobench_register_methods(register):
        register(MethodSpec(name="ident", factory="evobench_test_methods:identity",
                            tasks=frozenset({"denoise", "inpaint"}), colors=frozenset({"gray"}),
                            params=(Param("gain", 1.0, float, low=0.0),)))
        register(MethodSpec(name="nanny", factory="evobench_test_methods:nan_method",
                            tasks=frozenset({"denoise"})))
        register(MethodSpec(name="needy", factory="evobench_test_methods:identity",
                            tasks=frozenset({"denoise"}), requires=("surely_not_installed_pkg",)))

    reg = Registry()
    reg.add_plugin(types.SimpleNamespace(evobench_register_methods=evobench_register_methods), "t")
    return reg


def test_run_method_returns_image_timing_and_extras(registry):
    img = np.linspace(0, 1, 64).reshape(8, 8)
    out = run_method("ident", img, task="denoise", sigma=0.1, seed=7, registry=registry, gain="0.5")
    np.testing.assert_allclose(out.image, img * 0.5)
    assert out.extras["seed_seen"] == 7
    assert out.extras["time_total_s"] >= 0 and out.time_infer_s is not None


def test_per_pixel_mask_is_broadcast_for_inpainting(registry):
    img = np.full((4, 4), 0.2)
    mask = np.zeros((4, 4), bool)
    mask[0, 0] = True
    out = run_method("ident", img, task="inpaint", mask=mask, registry=registry)
    assert out.image[0, 0] == 0.5 and out.image[1, 1] == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"task": "denoise", "image": np.zeros((4, 4, 3))}, "does not support rgb images"),
        ({"task": "denoise", "image": np.zeros((4,))}, "must be H x W"),
        ({"task": "denoise", "image": np.full((4, 4), np.nan)}, "NaN or infinite"),
        ({"task": "inpaint", "image": np.zeros((4, 4))}, "needs a mask"),
        ({"task": "inpaint", "image": np.zeros((4, 4)), "mask": np.zeros((3, 3), bool)},
         "does not match image shape"),
        ({"task": "inpaint", "image": np.zeros((4, 4)), "mask": np.ones((4, 4), bool)},
         "every pixel as missing"),
        ({"task": "denoise", "image": np.zeros((4, 4)), "device": "cuda"}, "does not run on device"),
        ({"task": "denoise", "image": np.zeros((4, 4)), "sigma": -1.0}, "sigma must be"),
        ({"task": "denoise", "image": np.zeros((4, 4)), "gain": -1}, "must be >= 0"),
        ({"task": "denoise", "image": np.zeros((4, 4)), "gian": 2}, "did you mean 'gain'"),
    ],
)
def test_bad_input_gives_one_line_errors(registry, kwargs, message):
    image = kwargs.pop("image")
    with pytest.raises(ValueError, match=message) as info:
        run_method("ident", image, registry=registry, **kwargs)
    assert "\n" not in str(info.value)


def test_unknown_method_and_missing_dependency(registry):
    with pytest.raises(UnknownNameError, match="did you mean 'ident'"):
        run_method("idnet", np.zeros((4, 4)), task="denoise", registry=registry)
    with pytest.raises(EvobenchError, match="needs surely_not_installed_pkg"):
        run_method("needy", np.zeros((4, 4)), task="denoise", registry=registry)


def test_non_finite_output_is_rejected(registry):
    with pytest.raises(EvobenchError, match="returned NaN"):
        run_method("nanny", np.zeros((4, 4)), task="denoise", registry=registry)


def test_unsupported_task(registry):
    with pytest.raises(EvobenchError, match="does not support task 'inpaint'"):
        run_method("nanny", np.zeros((4, 4)), task="inpaint", mask=np.zeros((4, 4), bool),
                   registry=registry)


def test_fixture_registers_a_temporary_plugin(evobench_plugin):
    from evobench.registry import get_registry

    @hookimpl
    def evobench_register_methods(register):
        register(MethodSpec(name="temporary-x", factory="evobench_test_methods:identity",
                            tasks=frozenset({"denoise"})))

    evobench_plugin(types.SimpleNamespace(evobench_register_methods=evobench_register_methods),
                    "tmp-plugin")
    assert "temporary-x" in get_registry().names("methods")


def test_fixture_cleans_up_after_itself(tmp_path):
    """A plugin registered through the fixture is gone in the next test. Checked in a pytest
    session of its own, where the checking test runs right after the registering one whatever
    order or selection the outer run uses."""
    import subprocess
    import sys
    import textwrap

    (tmp_path / "test_inner.py").write_text(textwrap.dedent("""
        import types

        from evobench.api import MethodSpec, hookimpl
        from evobench.registry import get_registry

        @hookimpl
        def evobench_register_methods(register):
            register(MethodSpec(name="temporary-x", factory="os:getcwd",
                                tasks=frozenset({"denoise"})))

        def test_a_registers(evobench_plugin):
            evobench_plugin(types.SimpleNamespace(
                evobench_register_methods=evobench_register_methods), "tmp-plugin")
            assert "temporary-x" in get_registry().names("methods")

        def test_b_is_clean_afterwards():
            assert "temporary-x" not in get_registry().names("methods")
            assert "tmp-plugin" not in get_registry().plugins
    """))
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "--rootdir", str(tmp_path), "test_inner.py"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and "2 passed" in run.stdout, run.stdout[-2000:]


@pytest.mark.parametrize(("field", "value"), [("time_infer_s", -1.0), ("time_fit_s", -0.5),
                                              ("time_infer_s", float("nan")),
                                              ("time_fit_s", "3")])
def test_negative_or_nonnumeric_method_times_are_refused(field, value):
    """Issue 23 item 14: a negative time_infer_s was stored."""
    from evobench.api import _checked_output

    out = MethodOutput(image=np.zeros((4, 4)), **{field: value})
    with pytest.raises(EvobenchError, match=f"returned {field}=.*a duration must be a finite "
                                            r"number of seconds >= 0"):
        _checked_output("m", out, (4, 4), 1.0)
    ok = _checked_output("m", MethodOutput(image=np.zeros((4, 4)), time_fit_s=0, time_infer_s=2.0),
                         (4, 4), 1.0)
    assert ok.time_infer_s == 2.0


def test_nan_snapshots_are_dropped_and_named():
    """Issue 23 item 14: a NaN snapshot gave an ok row with psnr_last_eval NaN, silently."""
    from evobench.api import _checked_output

    good = np.full((4, 4), 0.5)
    out = MethodOutput(image=good, snapshots={1: good, 2: np.full((4, 4), np.nan),
                                              3: np.zeros((2, 2))})
    checked = _checked_output("m", out, (4, 4), 1.0)
    assert list(checked.snapshots) == [1]
    assert checked.extras["snapshots_dropped"] == (
        "epoch(s) 2, 3: NaN, infinite or misshaped pixels; not scored")
    clean = _checked_output("m", MethodOutput(image=good, snapshots={1: good}), (4, 4), 1.0)
    assert "snapshots_dropped" not in clean.extras
