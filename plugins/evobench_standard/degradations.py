"""Corruptions applied by the harness with the cell's noise seed.

Each function is a pure function of (clean image, parameters, ``rng``), so every method of a
cell sees the same input. Noise is never clipped. Missing entries are set to NaN: a method
cannot read a clean value it is not supposed to know, and one that ignores the mask fails loudly.
"""

from __future__ import annotations

import numpy as np

from evobench.api import Degraded


def _noise(clean: np.ndarray, rng: np.random.Generator, sigma: float) -> tuple[np.ndarray, float]:
    sigma01 = float(sigma) / 255.0
    return clean + sigma01 * rng.standard_normal(clean.shape), sigma01


def _mask(clean: np.ndarray, rng: np.random.Generator, missing: float, per: str) -> np.ndarray:
    """Bernoulli(missing) per pixel (H x W, shared by the channels) or per channel entry."""
    shape = clean.shape[:2] if per == "pixel" else clean.shape
    return rng.random(shape) < float(missing)


def _apply(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    full = mask if mask.shape == image.shape else np.broadcast_to(mask[..., None], image.shape)
    return np.where(full, np.nan, image)


def gaussian(clean: np.ndarray, *, rng: np.random.Generator, sigma: float = 25.0) -> Degraded:
    """Additive white Gaussian noise; ``sigma`` on the 0-255 scale."""
    noisy, sigma01 = _noise(clean, rng, sigma)
    return Degraded(image=noisy, mask=None, sigma=sigma01)


def inpaint(clean: np.ndarray, *, rng: np.random.Generator, missing: float = 0.5,
            per: str = "pixel") -> Degraded:
    """Missing entries at random (MCAR), no noise."""
    mask = _mask(clean, rng, missing, per)
    return Degraded(image=_apply(clean, mask), mask=mask, sigma=None)


def inpaint_noise(clean: np.ndarray, *, rng: np.random.Generator, missing: float = 0.5,
                  sigma: float = 25.0, per: str = "pixel") -> Degraded:
    """Missing entries plus Gaussian noise on the observed ones (mask drawn first)."""
    mask = _mask(clean, rng, missing, per)
    noisy, sigma01 = _noise(clean, rng, sigma)
    return Degraded(image=_apply(noisy, mask), mask=mask, sigma=sigma01)
