"""tvae's cost model for ``evobench run --dry-run``: seconds of one cell on one CPU core.

RATE holds seconds per epoch per 1000 patches of each preset (its ``+`` variant costs the
same), measured with ``benchmarks/calibrate_cost.py`` (2 epochs on a 40 x 40 crop of House or
Castle, one thread, 2-core shared machine, 2026-12-07). An epoch visits every patch, so a cell
costs ``RATE * patches / 1000 * epochs``; overriding H or the search (S, P, C, G) scales it by
``H / H_preset * (S + P*C*G) / (S + P*C*G)_preset``, a rough first-order guess.
"""

from __future__ import annotations

from evobench.tvae.presets import ALIASES, get_preset

RATE = {"quick": 0.033, "house-15": 0.233, "house-25": 0.233, "house-50": 0.207,
        "barbara-25": 0.191, "house-inpaint-50": 0.320, "castle-inpaint-50": 0.176,
        "castle-inpaint-80": 0.609}
OVERHEAD_S = 2.0  # process start, data, evaluations


def cost(shape, params) -> float | None:
    name = str(params.get("preset") or "quick")
    base = get_preset(name)
    rate = RATE.get(ALIASES.get(name, name).rstrip("+"))
    if rate is None:
        return None

    def given(key):
        value = params.get(key)
        return getattr(base, key) if value is None else value

    p, stride = int(given("patch_size")), int(getattr(base, "stride", 1) or 1)
    rows, cols = (int(shape[0]) - p) // stride + 1, (int(shape[1]) - p) // stride + 1
    patches = max(0, rows) * max(0, cols)
    search = given("S") + given("P") * given("C") * given("G")
    scale = (given("H") / base.H) * search / (base.S + base.P * base.C * base.G)
    return OVERHEAD_S + rate * scale * patches / 1000 * int(given("epochs"))
