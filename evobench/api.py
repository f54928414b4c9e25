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

import time
from typing import Any

import numpy as np

from evobench.errors import EvobenchError
from evobench.hookspecs import hookimpl
from evobench.live import report_progress
from evobench.registry import Registry, get_registry
from evobench.specs import (
    DatasetSpec,
    DegradationSpec,
    Degraded,
    MethodOutput,
    MethodSpec,
    MetricSpec,
    Param,
    SpecError,
    SuiteSpec,
    resolve_params,
)

API_VERSION = 1

__all__ = [
    "API_VERSION",
    "DatasetSpec",
    "Degraded",
    "DegradationSpec",
    "EvobenchError",
    "MethodOutput",
    "MethodSpec",
    "MetricSpec",
    "Param",
    "Registry",
    "SpecError",
    "SuiteSpec",
    "check_method_input",
    "color_of",
    "get_registry",
    "hookimpl",
    "report_progress",
    "run_method",
]


def color_of(image: np.ndarray) -> str:
    """``"gray"`` for H x W, ``"rgb"`` for H x W x 3; anything else is rejected."""
    if image.ndim == 2:
        return "gray"
    if image.ndim == 3 and image.shape[2] == 3:
        return "rgb"
    raise EvobenchError(
        f"image must be H x W (gray) or H x W x 3 (RGB), got shape {tuple(image.shape)}"
    )


def check_method_input(
    spec: MethodSpec,
    image: Any,
    *,
    task: str,
    mask: Any = None,
    sigma: float | None = None,
    device: str = "cpu",
) -> tuple[np.ndarray, np.ndarray | None]:
    """Validate one method call up front so a bad call fails in one clear line."""
    if task not in spec.tasks:
        raise EvobenchError(
            f"method {spec.name!r} does not support task {task!r} (it supports: "
            f"{', '.join(sorted(spec.tasks))})"
        )
    from evobench import validate

    if sigma is not None:
        sigma = validate.finite("sigma", sigma)
        if sigma < 0 or (sigma == 0 and task == "denoise"):
            raise EvobenchError(f"sigma must be a noise std > 0 on the [0, 1] scale (or None when "
                                f"unknown), got {sigma}; sigma=0 leaves nothing to denoise")
    validate.image_values(image, sigma=sigma)  # integer dtype, empty, far outside [0, 1]
    image = np.asarray(image, dtype=np.float64)
    color = color_of(image)
    if color not in spec.colors:
        raise EvobenchError(f"method {spec.name!r} does not support {color} images")
    dev = validate.device(device, need_available=False).split(":")[0]
    if dev not in spec.devices:
        raise EvobenchError(
            f"method {spec.name!r} does not run on device {device!r} (it supports: "
            f"{', '.join(sorted(spec.devices))})"
        )
    if task == "inpaint":
        if mask is None:
            raise EvobenchError("inpainting needs a mask (True where a pixel is missing)")
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != image.shape and mask.shape != image.shape[:2]:
            raise EvobenchError(
                f"mask shape {tuple(mask.shape)} does not match image shape {tuple(image.shape)}"
            )
        if mask.shape != image.shape:  # a per-pixel mask applies to every channel
            mask = np.broadcast_to(mask[..., None], image.shape).copy()
        if np.isnan(image[~mask]).any():
            raise EvobenchError("the image has NaN values at pixels the mask marks as observed")
        if mask.all():
            raise EvobenchError("the mask marks every pixel as missing; nothing to inpaint from")
    else:
        mask = None
        if not np.isfinite(image).all():
            raise EvobenchError(
                "the noisy image contains NaN or infinite values; for missing pixels use "
                "task='inpaint' with a mask"
            )
    if spec.needs_sigma and sigma is None and task == "denoise":
        raise EvobenchError(f"method {spec.name!r} needs the noise level: pass sigma")
    validate.device(device)  # CUDA requested: it must be there (and GPU N exist)
    return image, mask


def run_method(
    name: str,
    image: Any,
    *,
    task: str,
    sigma: float | None = None,
    mask: Any = None,
    seed: int = 0,
    device: str = "cpu",
    budget_s: float | None = None,
    registry: Registry | None = None,
    **params: Any,
) -> MethodOutput:
    """Run one registered method on one image.

    ``image`` is float on the [0, 1] scale; ``sigma`` is the noise std on that scale. Returns
    the method's :class:`MethodOutput` with ``time_total_s`` added to ``extras``-free timing
    fields (``time_fit_s``, ``time_infer_s`` as the method reports them).
    """
    registry = registry or get_registry()
    spec = registry.method(name)
    resolved = resolve_params(f"method {name!r}", spec.params, params)
    image, mask = check_method_input(spec, image, task=task, mask=mask, sigma=sigma, device=device)
    from evobench import validate

    validate.image_size(spec, resolved, image.shape)  # before library code sees a tiny image
    missing = [m for m in spec.requires if not _importable(m)]
    if missing:
        raise EvobenchError(
            f"method {name!r} needs {', '.join(missing)}; install it (e.g. pip install "
            f"'evobench[{name}]')"
        )
    fn = spec.load()
    start = time.perf_counter()
    out = fn(
        image,
        task=task,
        mask=mask,
        sigma=sigma,
        seed=int(seed),
        device=device,
        budget_s=budget_s,
        **resolved,
    )
    total = time.perf_counter() - start
    if not isinstance(out, MethodOutput):
        raise EvobenchError(f"method {name!r} returned {type(out).__name__}, not a MethodOutput")
    restored = np.asarray(out.image, dtype=np.float64)
    if restored.shape != image.shape:
        raise EvobenchError(
            f"method {name!r} returned an image of shape {restored.shape}, expected {image.shape}"
        )
    if not np.isfinite(restored).all():
        raise EvobenchError(f"method {name!r} returned NaN or infinite pixels")
    out.image = restored
    if out.time_fit_s is None and out.time_infer_s is None:
        out.time_infer_s = total
    out.extras = dict(out.extras)
    out.extras.setdefault("time_total_s", total)
    return out


def _importable(module: str) -> bool:
    from importlib.util import find_spec

    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):
        return False
