"""The public, versioned API for plugin authors and scripts.

Import from here, not from evobench's private modules: names in ``__all__`` keep working across
minor releases. A plugin is a module (or object) with ``@hookimpl`` functions::

    from evobench.api import hookimpl, MethodSpec, Param

    @hookimpl
    def evobench_register_methods(register):
        register(MethodSpec(name="mymethod", factory="mypkg.impl:run", tasks={"denoise"}))

and an entry point in its ``pyproject.toml``::

    [project.entry-points.evobench]
    mymethod = "mypkg"
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from evobench import inputs
from evobench.checkpoint import Stopped, input_digest
from evobench.context import MethodContext
from evobench.data import RemoteFile, ensure
from evobench.errors import EvobenchError
from evobench.hookspecs import hookimpl
from evobench.inputs import MethodInput, color_of, mean_filled, reference_psnr
from evobench.inputs import reference as reference_image
from evobench.iterations import (
    IterationsResult,
    IterativeFit,
    load_torch_state,
    run_iterations,
    torch_state,
)
from evobench.patches import extract_patches, merge_patches
from evobench.registry import Registry, get_registry
from evobench.specs import (
    DatasetSpec,
    DegradationSpec,
    Degraded,
    FigureSpec,
    MethodOutput,
    MethodSpec,
    MetricSpec,
    Param,
    SpecError,
    SuiteSpec,
    resolve_params,
)
from evobench.validate import memory as check_memory

if TYPE_CHECKING:  # the figure helpers below, imported by __getattr__ when first used
    from evobench.reports.figures import legend_right, marker_edge, method_styles, wrap_label
    from evobench.reports.load import RunData
    from evobench.reports.tables import is_reference, row_level

API_VERSION = 2

# What a figure kind (``FigureSpec``) draws with, imported on first use so that importing a
# plugin (listing plugins) never loads pandas or matplotlib: ``RunData`` (the runs' results,
# traces and artifacts a kind draws), ``method_styles`` (colour, marker and line style per
# method label, from the methods' specs), ``legend_right`` (one legend beside all panels),
# ``marker_edge`` (marker rims that stay visible), ``wrap_label`` (long labels broken after
# commas), ``row_level`` (a result row's level, ``σ=25``, ``80% missing``) and ``is_reference``
# (a method is a floor, not a competitor: ``MethodSpec.reference``).
_FIGURE_HELPERS = {
    "RunData": "evobench.reports.load",
    "is_reference": "evobench.reports.tables",
    "legend_right": "evobench.reports.figures",
    "marker_edge": "evobench.reports.figures",
    "method_styles": "evobench.reports.figures",
    "row_level": "evobench.reports.tables",
    "wrap_label": "evobench.reports.figures",
}

__all__ = [
    "API_VERSION",
    "DatasetSpec",
    "Degraded",
    "DegradationSpec",
    "EvobenchError",
    "FigureSpec",
    "IterationsResult",
    "IterativeFit",
    "MethodContext",
    "MethodInput",
    "MethodOutput",
    "MethodSpec",
    "MetricSpec",
    "Param",
    "Registry",
    "RemoteFile",
    "RunData",
    "SpecError",
    "Stopped",
    "SuiteSpec",
    "check_memory",
    "check_method_input",
    "color_of",
    "ensure",
    "extract_patches",
    "get_registry",
    "hookimpl",
    "input_digest",
    "load_torch_state",
    "is_reference",
    "legend_right",
    "marker_edge",
    "mean_filled",
    "merge_patches",
    "method_styles",
    "reference_image",
    "reference_psnr",
    "row_level",
    "run_iterations",
    "torch_state",
    "run_method",
    "run_spec",
    "wrap_label",
]


def __getattr__(name: str) -> Any:
    """The figure helpers of ``_FIGURE_HELPERS``, imported when first asked for."""
    module = _FIGURE_HELPERS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


def check_method_input(spec: MethodSpec, image: Any, *, task: str, mask: Any = None,
                       sigma: float | None = None, device: str = "cpu",
                       params: dict | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """The checked ``(image, mask)`` of a call of ``spec`` (what :func:`run_spec` checks once,
    :func:`evobench.inputs.check`); a method need not call it."""
    checked = inputs.check(image, task=task, mask=mask, sigma=sigma, device=device, spec=spec,
                           params=params)
    return checked.image, checked.mask


def run_method(name: str, image: Any, *, task: str, sigma: float | None = None, mask: Any = None,
               seed: int = 0, device: str = "cpu", budget_s: float | None = None,
               ctx: MethodContext | None = None, registry: Registry | None = None,
               **params: Any) -> MethodOutput:
    """Run the registered method ``name`` on one image: :func:`run_spec` of its spec.

    ``budget_s`` is a shorthand for ``ctx=MethodContext(budget_s=...)``; without ``ctx`` the
    method gets a default context (no progress, checkpoints or stop). (Ten parameters: the
    checked input's six, the budget, the context, ``registry`` and the method's parameters.)
    """
    spec = (registry or get_registry()).method(name)
    if ctx is None:
        ctx = MethodContext(budget_s=budget_s)
    elif budget_s is not None:
        raise EvobenchError("pass the budget either as budget_s or in ctx, not both")
    return run_spec(spec, image, task=task, sigma=sigma, mask=mask, seed=seed, device=device,
                    ctx=ctx, params=params)


def run_spec(spec: MethodSpec, image: Any, *, task: str, sigma: float | None = None,
             mask: Any = None, seed: int = 0, device: str = "cpu",
             ctx: MethodContext | None = None,
             params: Mapping[str, Any] | None = None) -> MethodOutput:
    """Run one method on one image: the boundary of the method contract.

    Resolves ``params`` against the spec, checks the input once against the spec's needs
    (:func:`evobench.inputs.check`) and the method's required packages, then calls
    ``method(call, ctx, **params)`` with the checked :class:`MethodInput` and the
    :class:`MethodContext` (a default one when None) and checks what it returns. ``image`` is
    float on the [0, 1] scale; ``sigma`` is the noise std on that scale.
    ``extras["time_total_s"]`` is the call's wall time; ``time_infer_s`` is that too when the
    method reports neither timing. (Nine parameters: the spec, the checked input's six, the
    context and the method's parameters.)
    """
    resolved = resolve_params(f"method {spec.name!r}", spec.params, params or {})
    call = inputs.check(image, task=task, mask=mask, sigma=sigma, seed=seed, device=device,
                        spec=spec, params=resolved)
    missing = spec.missing_requirements()
    if missing:
        raise EvobenchError(
            f"method {spec.name!r} needs {', '.join(missing)}; install it (e.g. pip install "
            f"'evobench[{spec.name}]')"
        )
    fn = spec.load()
    start = time.perf_counter()
    out = fn(call, MethodContext() if ctx is None else ctx, **resolved)
    return _checked_output(spec.name, out, call.image.shape, time.perf_counter() - start)


def _checked_output(name: str, out: Any, shape: tuple, total: float) -> MethodOutput:
    if not isinstance(out, MethodOutput):
        raise EvobenchError(f"method {name!r} returned {type(out).__name__}, not a MethodOutput")
    restored = np.asarray(out.image, dtype=np.float64)
    if restored.shape != shape:
        raise EvobenchError(
            f"method {name!r} returned an image of shape {restored.shape}, expected {shape}"
        )
    if not np.isfinite(restored).all():
        raise EvobenchError(f"method {name!r} returned NaN or infinite pixels")
    out.image = restored
    for what in ("time_fit_s", "time_infer_s"):
        value = getattr(out, what)
        if value is not None and not (isinstance(value, int | float | np.integer | np.floating)
                                      and math.isfinite(value) and value >= 0):
            raise EvobenchError(f"method {name!r} returned {what}={value!r}; a duration must be "
                                "a finite number of seconds >= 0 (or None)")
    _drop_bad_snapshots(out, shape)
    if out.time_fit_s is None and out.time_infer_s is None:
        out.time_infer_s = total
    out.extras = dict(out.extras)
    out.extras.setdefault("time_total_s", total)
    return out


def _drop_bad_snapshots(out: MethodOutput, shape: tuple) -> None:
    """Intermediate estimates with NaN or infinite pixels (a diverged epoch) or the wrong shape
    are not scored: they are dropped, and ``extras["snapshots_dropped"]`` (the row's
    ``x_snapshots_dropped``) names their epochs, so ``psnr_last_eval`` is the last good one's."""
    snapshots = dict(out.snapshots or {})
    bad = []
    for epoch, image in snapshots.items():
        arr = np.asarray(image)
        if arr.shape != shape or arr.dtype.kind not in "biuf" or not np.isfinite(arr).all():
            bad.append(epoch)
    if bad:
        out.snapshots = {e: img for e, img in snapshots.items() if e not in bad}
        out.extras = dict(out.extras or {})
        out.extras["snapshots_dropped"] = (
            f"epoch(s) {', '.join(sorted(map(str, bad)))}: NaN, infinite or misshaped pixels; "
            "not scored")
