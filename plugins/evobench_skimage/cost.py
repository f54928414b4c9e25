"""The classical methods' cost model for ``evobench run --dry-run``: seconds of one cell on one
CPU core, RATE seconds per megapixel (per channel) at the default parameters, measured with
``benchmarks/calibrate_cost.py`` (House 256 x 256, one thread, 2-core shared machine,
2026-12-07)."""

from __future__ import annotations

RATE = {"nlm": 1.7, "tv": 1.6, "wavelet": 0.8, "noisy": 0.05, "biharmonic": None}


def per_megapixel(name: str, shape) -> float | None:
    rate = RATE.get(name)
    if rate is None:
        return None
    channels = 3 if len(shape) == 3 else 1
    return rate * int(shape[0]) * int(shape[1]) * channels / 1e6


def nlm(shape, params):
    return per_megapixel("nlm", shape)


def tv(shape, params):
    return per_megapixel("tv", shape)


def wavelet(shape, params):
    return per_megapixel("wavelet", shape)


def noisy(shape, params):
    return per_megapixel("noisy", shape)
