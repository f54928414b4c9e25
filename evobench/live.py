"""Live progress from inside a method: ``report_progress(epoch=k, epochs=N, psnr=...)``.

A learned method calls :func:`report_progress` once per epoch. Outside the harness nothing is
listening and the call costs a dictionary look-up. Inside a harness worker the worker installs a
sink that forwards the fields to the parent process (a pipe locally, Dask's event log on a
cluster), where the progress display shows them next to the running cell. Only plain scalars
are forwarded, at most four times per second (the final epoch always).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

_SINK: Callable[[dict], None] | None = None
_LAST = 0.0
MIN_INTERVAL_S = 0.25


def set_sink(sink: Callable[[dict], None] | None) -> None:
    """Install (or remove, with None) the function that receives progress events."""
    global _SINK, _LAST
    _SINK, _LAST = sink, 0.0


def report_progress(**fields) -> None:
    """Send ``fields`` (``epoch``, ``epochs``, ``psnr``, ``free_energy``, ``loss``, ...) to
    whoever watches this cell; never raises (progress must not break a run)."""
    global _LAST
    sink = _SINK
    if sink is None:
        return
    now = time.monotonic()
    final = fields.get("epoch") is not None and fields.get("epoch") == fields.get("epochs")
    if now - _LAST < MIN_INTERVAL_S and not final:
        return
    _LAST = now
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
