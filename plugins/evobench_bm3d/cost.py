"""bm3d's cost model for ``evobench run --dry-run``: RATE seconds per megapixel (per channel) on
one CPU core at the default profile, measured with ``benchmarks/calibrate_cost.py`` (House
256 x 256, one thread, 2-core shared machine, 2026-12-07)."""

from __future__ import annotations

RATE = 47.0


def cost(shape, params):
    channels = 3 if len(shape) == 3 else 1
    return RATE * int(shape[0]) * int(shape[1]) * channels / 1e6
