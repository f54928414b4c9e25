"""Live progress from inside a method: ``report_progress(epoch=k, epochs=N, psnr=...)``.

A learned method calls :func:`report_progress` once per epoch. Outside the harness nothing is
listening and the call costs a dictionary look-up. Inside a harness worker the worker installs a
sink that forwards the fields to the parent process (a pipe locally, Dask's event log on a
cluster), where the progress display shows them next to the running cell. Only plain scalars
are forwarded, at most four times per second (the final epoch always).

A method may also pass its current estimate (``estimate=image``): the harness's worker, which
holds the clean image, scores it (PSNR) before forwarding, so the display shows the latest PSNR
while the method never sees the clean image. Such events are never dropped by the rate limit.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

_SINK: Callable[[dict], None] | None = None
_SCORER: Callable[[object], dict] | None = None
_LAST = 0.0
MIN_INTERVAL_S = 0.25


def set_sink(sink: Callable[[dict], None] | None) -> None:
    """Install (or remove, with None) the function that receives progress events."""
    global _SINK, _LAST
    _SINK, _LAST = sink, 0.0


def set_scorer(scorer: Callable[[object], dict] | None) -> None:
    """Install (or remove) the function that turns an ``estimate`` image into metrics."""
    global _SCORER
    _SCORER = scorer


def report_progress(**fields) -> None:
    """Send ``fields`` (``epoch``, ``epochs``, ``psnr``, ``free_energy``, ``loss``, ...) to
    whoever watches this cell; never raises (progress must not break a run)."""
    global _LAST
    sink = _SINK
    if sink is None:
        return
    now = time.monotonic()
    final = fields.get("epoch") is not None and fields.get("epoch") == fields.get("epochs")
    estimate = fields.pop("estimate", None)
    if now - _LAST < MIN_INTERVAL_S and not final and estimate is None:
        return
    _LAST = now
    if estimate is not None and _SCORER is not None:
        try:
            fields.update(_SCORER(estimate))
        except Exception:  # noqa: BLE001 - progress must not break a run
            pass
    event = {}
    for key, value in fields.items():
        if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
            value = value.item()
        if isinstance(value, bool | int | str) or (isinstance(value, float)
                                                   and math.isfinite(value)):
            event[str(key)] = value
    try:
        sink(event)
    except Exception:  # noqa: BLE001 - a closed pipe or lost scheduler: keep computing
        pass
