"""Plain helpers of the method tests (seeded noise and masks, PSNR), importable by name from
any test module: ``from conftest import`` would pick whichever conftest.py was imported first
when several test folders run together."""

from __future__ import annotations

import numpy as np

SIGMA = 25 / 255


def psnr(clean: np.ndarray, est: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((np.asarray(est) - clean) ** 2)))


def noisy_of(clean: np.ndarray, seed: int = 0) -> np.ndarray:
    return clean + SIGMA * np.random.default_rng(seed).standard_normal(clean.shape)


def mask_of(shape: tuple[int, ...], seed: int = 0, fraction: float = 0.5) -> np.ndarray:
    return np.random.default_rng(seed + 1000).random(shape) < fraction
