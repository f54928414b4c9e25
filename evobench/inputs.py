"""The one check of a method call's input, against the rules of :mod:`evobench.validate` and the
needs a :class:`~evobench.specs.MethodSpec` declares (task, colour, sigma, minimum size, value
range, device).

Two boundaries call it: ``evobench.api.run_spec`` (every registered method, from the harness's
worker or a script) and ``evobench.tvae``'s ``denoise``/``inpaint`` (Python callers of the
engine). What it returns is what a method receives; methods and the engine's fit do not check
it again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from evobench import validate
from evobench.errors import EvobenchError


@dataclass(frozen=True)
class MethodInput:
    """A checked method call: what the method contract receives."""

    image: np.ndarray  # float64, H x W or H x W x 3
    task: str
    mask: np.ndarray | None  # bool, shaped like ``image``, True where missing; None: denoising
    sigma: float | None  # noise std on the [0, 1] scale; None when unknown
    seed: int
    device: str


def color_of(image: np.ndarray) -> str:
    """``"gray"`` for H x W, ``"rgb"`` for H x W x 3; anything else is rejected."""
    if image.ndim == 2:
        return "gray"
    if image.ndim == 3 and image.shape[2] == 3:
        return "rgb"
    raise EvobenchError(
        f"image must be H x W (gray) or H x W x 3 (RGB), got shape {tuple(image.shape)}"
    )


def check(image: Any, *, task: str, mask: Any = None, sigma: Any = None, seed: Any = 0,
          device: Any = "cpu", spec=None, params: dict | None = None) -> MethodInput:
    """Check one method call; with ``spec`` (a ``MethodSpec``) also its declared needs, with
    ``params`` its ``patch_size``. Each failure is one line saying what to change."""
    if spec is not None and task not in spec.tasks:
        raise EvobenchError(f"method {spec.name!r} does not support task {task!r} (it supports: "
                            f"{', '.join(sorted(spec.tasks))})")
    if task not in ("denoise", "inpaint"):
        raise EvobenchError(f"unknown task {task!r}; use denoise or inpaint")
    sigma = validate.noise_sigma(sigma, task)
    validate.image_values(image, sigma=sigma)  # integer dtype, empty, far outside [0, 1]
    image = np.asarray(image, dtype=np.float64)
    color = color_of(image)
    if spec is not None and color not in spec.colors:
        raise EvobenchError(f"method {spec.name!r} does not support {color} images")
    kind = validate.device_kind(device)
    if spec is not None and kind not in spec.devices:
        raise EvobenchError(f"method {spec.name!r} does not run on device {device!r} (it "
                            f"supports: {', '.join(sorted(spec.devices))})")
    mask = _mask(image, mask) if task == "inpaint" else _finite(image)
    if spec is not None and spec.needs_sigma and sigma is None and task == "denoise":
        raise EvobenchError(f"method {spec.name!r} needs the noise level: pass sigma")
    device = validate.device(device)  # CUDA requested: it must be there (and GPU N exist)
    seed = validate.seed(seed, "seed")
    if spec is not None:
        validate.image_size(spec, params or {}, image.shape)  # before library code sees it
    return MethodInput(image, task, mask, sigma, seed, device)


def _finite(image: np.ndarray) -> None:
    if not np.isfinite(image).all():
        raise EvobenchError("the noisy image contains NaN or infinite values; for missing "
                            "pixels use task='inpaint' with a mask")


def _mask(image: np.ndarray, mask: Any) -> np.ndarray:
    """An inpainting mask as bool shaped like ``image`` (a per-pixel mask applies to every
    channel), refusing masks that leave nothing observed or observed pixels without a value."""
    if mask is None:
        raise EvobenchError("inpainting needs a mask (True where a pixel is missing)")
    mask = np.asarray(mask)
    if mask.dtype != bool:
        raise EvobenchError(f"mask must be a boolean array (True = missing), got dtype "
                            f"{mask.dtype}")
    if mask.shape != image.shape and mask.shape != image.shape[:2]:
        raise EvobenchError(
            f"mask shape {tuple(mask.shape)} does not match image shape {tuple(image.shape)}"
        )
    if mask.shape != image.shape:
        mask = np.broadcast_to(mask[..., None], image.shape)
    mask = mask.copy()
    if mask.all():
        raise EvobenchError("the mask marks every pixel as missing; nothing to inpaint from")
    if not np.isfinite(image[~mask]).all():
        raise EvobenchError("the image has NaN or infinite values at pixels the mask marks "
                            "as observed")
    return mask


def reference(clean: Any, shape: tuple) -> np.ndarray | None:
    """A method's optional ``clean`` image (diagnostics: per-epoch PSNR), shaped like the
    input, on [0, 1]."""
    if clean is None:
        return None
    validate.image_values(clean, what="clean")
    clean = np.asarray(clean, dtype=np.float64)
    if clean.shape != tuple(shape):
        raise EvobenchError(f"clean has shape {clean.shape}, expected {tuple(shape)}")
    return clean


def mean_filled(image: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """The corrupted input as a picture: each missing entry (``mask`` True; H x W masks apply to
    every channel) gets the mean of its channel's observed entries. The ``noisy`` method's
    output, and the image the input metrics (``psnr_input``) score."""
    image = np.asarray(image, np.float64)
    if mask is None:
        return image.copy()
    full = mask if mask.shape == image.shape else np.broadcast_to(mask[..., None], image.shape)
    chans = image.reshape(-1, 1 if image.ndim == 2 else image.shape[2])
    miss = full.reshape(chans.shape)
    means = np.where(miss, 0.0, chans).sum(axis=0) / np.maximum((~miss).sum(axis=0), 1)
    return np.where(miss, means, chans).reshape(image.shape)


def reference_psnr(clean: np.ndarray, image: np.ndarray) -> float:
    """PSNR (data range 1) of a method's intermediate estimate against its optional ``clean``
    image: the ``psnr`` of a learned method's per-epoch trace rows (diagnostics)."""
    mse = float(np.mean((np.asarray(clean) - image) ** 2))
    return float("inf") if mse == 0 else 10.0 * math.log10(1.0 / mse)
