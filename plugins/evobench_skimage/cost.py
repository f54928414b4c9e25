"""The classical methods' cost model for ``evobench run --dry-run``: seconds of one cell on one
CPU core, RATE seconds per megapixel (per channel) at the default parameters, measured with
``benchmarks/calibrate_cost.py`` (House 256 x 256, one thread, 2-core shared machine,
2026-12-07).

biharmonic's time grows with the missing pixels, faster than linearly (larger holes make
larger systems): ``calibrate_cost.py biharmonic`` measured 0.21-0.24 s at 50 % missing and
0.75-1.17 s at 80 % on House (load about 2). A cost model sees the image and the method's
parameters, not the degradation's missing fraction, so its rate is the one at 80 % missing
(0.96 s on 0.066 megapixels: 15 s per megapixel), an upper bound for the suites' fractions
(50 % and 80 %): about 4x too high at 50 %, on a cell of a second."""

from __future__ import annotations

RATE = {"nlm": 1.7, "tv": 1.6, "wavelet": 0.8, "noisy": 0.05, "biharmonic": 15.0}


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


def biharmonic(shape, params):
    return per_megapixel("biharmonic", shape)
