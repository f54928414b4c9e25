"""Boundary checks, each rule in one place, each failure one line that says what to do.

Every name that becomes part of a path (suite, profile, run name, image id, artifact key) goes
through :func:`path_component`, and every path built from such names through
:func:`evobench.files.within`;
seeds, durations, devices, numbers and images are checked here once, where they enter evobench (the
command line, suite files, :mod:`evobench.inputs`), never deep inside a cell.
"""

from __future__ import annotations

import math
import re
from typing import Any

from evobench.errors import EvobenchError

SEED_LIMIT = 2**63  # seeds are stored as int64
UNKNOWN_NOISE_MARGIN = 3.0  # how far outside [0, 1] an image of unknown noise level may reach
SIGMA_MAX = 1.0  # the largest noise std on the [0, 1] scale; above it sigma is on the 0-255 scale
_COMPONENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$")
MAX_COMPONENT = 128  # characters of a folder or file name evobench makes
_DEVICE = re.compile(r"^(cpu|cuda)(?::(\d{1,4}))?$")
_NUMBER = r"(\d+(?:\.\d*)?|\.\d+)"
_DURATION = re.compile(rf"(?:{_NUMBER}h)?(?:{_NUMBER}m)?(?:{_NUMBER}s?)?")


# -- names and paths ---------------------------------------------------------------------------
def path_component(kind: str, name: Any) -> str:
    """``name`` as one safe path component: letters, digits, ``_ . + -``, starting with a letter
    or digit, at most 128 characters (so never ``..``, ``/``, ``\\`` or an absolute path)."""
    if isinstance(name, str) and len(name) > MAX_COMPONENT and _COMPONENT.match(name[:128]):
        raise EvobenchError(f"{kind} name {name[:24]}... cannot be used as a folder or file "
                            f"name: it is {len(name)} characters long, at most {MAX_COMPONENT} "
                            "are allowed; choose a shorter one")
    if not isinstance(name, str) or not _COMPONENT.match(name) or ".." in name:
        raise EvobenchError(f"{kind} name {name!r} cannot be used as a folder or file name: use "
                            "letters, digits, '_', '-', '+' or '.' (no '/', no '..')")
    return name


# -- numbers -----------------------------------------------------------------------------------
def finite(what: str, value: Any) -> float:
    """``value`` as a finite float, or a one-line error naming ``what``."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise EvobenchError(f"{what}: {value!r} is not a number") from None
    if not math.isfinite(number):
        raise EvobenchError(f"{what}: {value!r} is not a finite number; give a real value")
    return number


def duration(value: Any, what: str = "duration") -> float | None:
    """Seconds from ``90``, ``90s``, ``10m``, ``2h`` or ``1h30m`` (a suite file may give a
    number); ``0``, ``off``, ``none`` or None: None (no limit, off). The one parser of every
    duration: ``--timeout``, ``--checkpoint-every``, ``--stop-after``, a suite's ``timeout``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise EvobenchError(f"{what} must be a duration such as \"90s\", \"10m\" or \"1h30m\", "
                            f"got {value!r}")
    text = str(value).strip().lower()
    if text in {"", "0", "off", "none"}:
        return None
    try:
        seconds = float(text)  # plain seconds
    except ValueError:
        parts = _DURATION.fullmatch(text)
        if not parts or not any(parts.groups()):
            raise EvobenchError(f"{what} {value!r} is not a duration; use e.g. 90s, 10m, 2h or "
                                "1h30m (0 = off)") from None
        hours, minutes, secs = (float(g) if g else 0.0 for g in parts.groups())
        seconds = 3600 * hours + 60 * minutes + secs
    if not math.isfinite(seconds):
        raise EvobenchError(f"{what} {value!r} is not a finite duration; use e.g. 90s, 10m or 2h "
                            "(0 = off)")
    if seconds < 0:
        raise EvobenchError(f"{what} {value!r} is negative; use e.g. 90s, 10m or 2h (0 = off)")
    return seconds or None


def seed(value: Any, what: str = "--seed") -> int:
    """A base seed in [0, 2**63) (stored as int64)."""
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            value = int(value)
        except (TypeError, ValueError, OverflowError):
            raise EvobenchError(f"{what} {value!r} is not an integer") from None
    if not 0 <= value < SEED_LIMIT:
        raise EvobenchError(f"{what} {value} is out of range; use an integer from 0 to 2**63-1 "
                            f"({SEED_LIMIT - 1})")
    return value


# -- devices -----------------------------------------------------------------------------------
def device(value: Any, *, need_available: bool = True) -> str:
    """``cpu``, ``cuda`` or ``cuda:N``; with ``need_available`` CUDA (and GPU N) must exist."""
    text = str(value).strip() if isinstance(value, str) else value
    match = _DEVICE.match(text) if isinstance(text, str) else None
    if not match:
        raise EvobenchError(f"unknown device {value!r}; use cpu, cuda or cuda:N (N a GPU number)")
    if match.group(1) == "cuda" and need_available:
        try:
            import torch

            available = torch.cuda.is_available()
            count = torch.cuda.device_count() if available else 0
        except ImportError:
            available, count = False, 0
        if not available:
            raise EvobenchError("device 'cuda' was requested but CUDA is not available here; "
                                "use device='cpu' (--device cpu), or install a CUDA build of torch")
        if match.group(2) is not None and int(match.group(2)) >= count:
            raise EvobenchError(f"device {text!r}: this machine has {count} CUDA GPU(s), numbered "
                                f"0 to {count - 1}")
    return text


def device_kind(value: str) -> str:
    """``cpu`` or ``cuda`` (a ``cuda:N`` device's kind), the name a ``MethodSpec.devices`` uses."""
    return device(value, need_available=False).split(":")[0]


# -- sigma -------------------------------------------------------------------------------------
def noise_sigma(value: Any, task: str, *, unit_scale: bool = True) -> float | None:
    """The sigma rule: None (unknown noise level) or a finite noise std on the [0, 1] scale,
    >= 0, and > 0 when denoising (sigma 0 leaves nothing to denoise; an inpainting input may be
    noiseless), and at most :data:`SIGMA_MAX` (1): noise with a std above the whole value range
    of the image is a sigma given on the 0-255 scale, refused with the [0, 1] value to use.
    ``unit_scale=False`` (a degradation's sigma, on the 0-255 scale) skips that last rule."""
    if value is None:
        return None
    value = finite("sigma", value)
    if value < 0 or (value == 0 and task == "denoise"):
        raise EvobenchError(f"sigma must be a noise std > 0 on the [0, 1] scale (or None when "
                            f"unknown), got {value}; sigma=0 leaves nothing to denoise")
    if unit_scale and value > SIGMA_MAX:
        raise EvobenchError(f"sigma={value:g} is too large: sigma is on the [0, 1] scale: "
                            f"did you mean {value:g}/255 = "
                            f"{value / 255:.3f}?")
    return value


# -- memory ------------------------------------------------------------------------------------
MEMORY_SHARE = 0.8  # a planned allocation may use at most this share of the memory free now


def available_memory(device: str = "cpu") -> int | None:
    """Bytes free now: on ``cuda[:N]`` that GPU's free memory, else the machine's available RAM
    (``psutil``); None where it cannot be told (then nothing is refused)."""
    try:
        if str(device).startswith("cuda"):
            import torch

            index = int(str(device).partition(":")[2] or 0)
            return int(torch.cuda.mem_get_info(index)[0])
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001 - an estimate we cannot make refuses nothing
        return None


def memory(need: float, what: str, lower: str, device: str = "cpu") -> None:
    """One line if an estimated allocation of ``need`` bytes (``what``) exceeds
    :data:`MEMORY_SHARE` of the memory free now, naming what to lower (``lower``). An estimate
    checked before the allocation, so a too-large request fails at once instead of as a
    MemoryError traceback (or swap) minutes later."""
    free = available_memory(device)
    if free is None or need <= MEMORY_SHARE * free:
        return
    where = "on " + str(device) if str(device).startswith("cuda") else "in RAM"
    raise EvobenchError(f"{what} needs about {need / 2**30:.1f} GiB, more than the "
                        f"{free / 2**30:.1f} GiB free {where}; {lower}")


# -- images ------------------------------------------------------------------------------------
def image_values(image, *, sigma: float | None = None, what: str = "the image"):
    """Refuse integer/bool images (give floats on [0, 1]) and float values further outside
    [0, 1] than noise of std ``sigma`` explains (1 + 10 sigma, sigma taken at most
    :data:`SIGMA_MAX`, so the margin never exceeds 11 however large sigma is; 3 when sigma is
    unknown, which still refuses images on the 0-255 scale). NaN is left to the caller (it marks
    missing pixels when inpainting)."""
    import numpy as np

    try:
        arr = np.asarray(image)
    except (TypeError, ValueError, OverflowError):
        raise EvobenchError(f"{what} must be a numeric array (H x W or H x W x 3)") from None
    if arr.dtype.kind in "biu":
        scale = f" (e.g. image / {np.iinfo(arr.dtype).max}.0)" if arr.dtype.kind in "iu" else ""
        raise EvobenchError(f"{what} has dtype {arr.dtype}; evobench expects float images on the "
                            f"[0, 1] scale: convert it first{scale}")
    if arr.dtype.kind not in "f":
        raise EvobenchError(f"{what} has dtype {arr.dtype}; give a float array on the [0, 1] "
                            "scale")
    if arr.size == 0 or 0 in arr.shape:
        raise EvobenchError(f"{what} is empty (shape {tuple(arr.shape)})")
    observed = arr[np.isfinite(arr)]
    if observed.size:
        known = sigma is not None and math.isfinite(sigma)
        margin = 1.0 + 10.0 * min(float(sigma), SIGMA_MAX) if known else UNKNOWN_NOISE_MARGIN
        low, high = float(observed.min()), float(observed.max())
        if low < -margin or high > 1.0 + margin:
            raise EvobenchError(f"{what} has values in [{low:g}, {high:g}], far outside [0, 1] "
                                "(more than noise explains); evobench expects images on the "
                                "[0, 1] scale")
    return arr


def clean_range(image, what: str) -> None:
    """A clean (dataset) image must lie on [0, 1] (a rounding error of 1e-6 is tolerated)."""
    import numpy as np

    arr = np.asarray(image)
    if arr.size == 0 or 0 in arr.shape:
        raise EvobenchError(f"{what} is empty (shape {tuple(arr.shape)})")
    low, high = float(np.min(arr)), float(np.max(arr))
    if low < -1e-6 or high > 1 + 1e-6:
        raise EvobenchError(f"{what} has values in [{low:g}, {high:g}]; a dataset loader must "
                            "return images on the [0, 1] scale")


def min_side(spec, params: dict) -> int:
    """The smallest image side a method accepts: its spec's ``min_size`` and, for patch-based
    methods, its ``patch_size`` parameter."""
    side = int(getattr(spec, "min_size", 1) or 1)
    patch = params.get("patch_size") if isinstance(params, dict) else None
    if isinstance(patch, int | float) and not isinstance(patch, bool) and math.isfinite(patch):
        side = max(side, int(patch))
    return side


def image_size(spec, params: dict, shape: tuple, what: str = "the image") -> None:
    """One line if an image of ``shape`` is smaller than ``spec`` (with ``params``) accepts."""
    need = min_side(spec, params)
    if min(shape[:2]) < need:
        why = f" (patch_size={need})" if need > int(getattr(spec, "min_size", 1) or 1) else ""
        raise EvobenchError(f"{what} is {shape[0]} x {shape[1]} pixels, smaller than the "
                            f"{need} x {need} that method {spec.name!r} needs{why}; use a larger "
                            "image or crop")
