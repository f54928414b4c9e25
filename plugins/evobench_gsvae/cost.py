"""gsvae's cost model for ``evobench run --dry-run``: seconds of one cell on one CPU core.

RATE is seconds per epoch per 1000 patches at the defaults (H=64, one hidden layer of 256,
batch 64), measured with ``benchmarks/calibrate_cost.py gsvae``: 2 and 6 epochs on a 40 x 40
crop of House (1089 patches of 8 x 8), one thread, 2-core shared machine at load about 2,
2026-12-07; the difference of the two fit times gives the per-epoch part (0.03 s per epoch),
the rest of the 2-epoch cell's time (1.2 s: torch start, the scheduled evaluations, the
final estimate) is OVERHEAD_S. An epoch visits every patch once, so a cell costs
``OVERHEAD_S + RATE * patches / 1000 * epochs``, scaled by ``H / 64 * sum(hidden) / 256``
when those are changed (the decoder's and encoder's work, a first-order guess). ``epochs``
not given is gsvae's default for the cell's task: 12 for denoising, 25 for inpainting.
"""

from __future__ import annotations

RATE = 0.028
OVERHEAD_S = 1.2
DEFAULT_EPOCHS = {"denoise": 12, "inpaint": 25}


def cost(shape, params, task: str = "denoise") -> float:
    p = int(params.get("patch_size") or 8)
    patches = max(0, int(shape[0]) - p + 1) * max(0, int(shape[1]) - p + 1)
    epochs = int(params.get("epochs") or DEFAULT_EPOCHS.get(task, 12))
    hidden = params.get("hidden") or (256,)
    if isinstance(hidden, str):  # as written in a selector: 256-256
        hidden = hidden.split("-")
    hidden = (hidden,) if isinstance(hidden, int | float) else tuple(hidden)
    scale = int(params.get("H") or 64) / 64 * sum(int(h) for h in hidden) / 256
    return OVERHEAD_S + RATE * scale * patches / 1000 * epochs
