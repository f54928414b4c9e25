"""The zero-shot methods' cost models for ``evobench run --dry-run``: seconds of one cell on
one CPU core.

RATE: seconds per iteration per 128 x 128 pixels at the default width, measured with
``benchmarks/calibrate_cost.py`` (30-100 iterations on a 128 x 128 crop of House, one thread,
2-core shared machine, 2026-12-07). A cell costs ``RATE * iterations * pixels / 128^2 *
(width / default width)^2`` (a convolution's work grows with the square of its channels) plus
the inference passes (self2self's ensemble, noise2self's invariant estimate) at ENSEMBLE_RATE
per pass, plus OVERHEAD_S. Rough: small images pay more per pixel than this says.
"""

from __future__ import annotations

RATE = {"dip": 0.033, "zsn2n": 0.044, "noise2self": 0.045, "self2self": 0.060}
WIDTH = {"dip": 16, "zsn2n": 48, "noise2self": 16, "self2self": 32}
ENSEMBLE_RATE = 0.09  # one self2self inference pass per 128 x 128 pixels
OVERHEAD_S = 1.2


def _cost(name: str, shape, params: dict, passes: int = 0) -> float:
    pixels = int(shape[0]) * int(shape[1]) * (3 if len(shape) == 3 else 1) / (128 * 128)
    width = (float(params.get("width") or WIDTH[name]) / WIDTH[name]) ** 2
    return OVERHEAD_S + pixels * width * (RATE[name] * int(params["iterations"])
                                          + ENSEMBLE_RATE * passes)


def dip(shape, params):
    return _cost("dip", shape, params)


def zsn2n(shape, params):
    return _cost("zsn2n", shape, params)


def noise2self(shape, params):
    crop = int(params.get("crop") or 0)
    train = (min(crop, shape[0]), min(crop, shape[1])) if crop else shape[:2]
    invariant = params.get("estimate") == "invariant"
    passes = int(params.get("grid", 4)) ** 2 if invariant else 1
    return (_cost("noise2self", train, params) - OVERHEAD_S
            + _cost("noise2self", shape, {**params, "iterations": 0}, passes))


def self2self(shape, params):
    return _cost("self2self", shape, params, int(params.get("ensemble", 32)))
