"""What ``evobench run --dry-run`` says a run will cost: each cell's seconds on one CPU core
from its method's cost model (``MethodSpec.cost``, ``"module:callable"`` returning seconds for
``(image shape, parameters)``), summed into CPU-hours.

The plugins own the models and their rates (measured with ``benchmarks/calibrate_cost.py``);
the harness only reads each cell's image shape (after its crop), caps a cell at its fit budget
or timeout and sums. A method without a model, or one whose model returns None or fails, or a
cell whose image cannot be read here, is unknown: shown as ``?`` and counted in the total's
line, never guessed.
"""

from __future__ import annotations

from evobench.specs import load_object

# what every cell costs besides its method once its process started: the degradation, scoring
# and storing (the ``noisy`` method's cells take about this long on a 2-core machine)
CELL_START_S = 0.5


def image_shape(cell, registry, cache: dict) -> tuple | None:
    """The shape of the cell's clean image after its crop, or None when it cannot be read."""
    if cell.input_key in cache:
        return cache[cell.input_key]
    shape = None
    try:
        spec = registry.dataset(cell.dataset)
        own = {k: v for k, v in cell.dataset_params.items() if k != "crop"}
        shape = tuple(getattr(load_object(spec.loader)(cell.image, **own), "shape", ()))
        crop = int(cell.dataset_params.get("crop", 0) or 0)
        if crop and len(shape) >= 2:
            shape = (min(shape[0], crop), min(shape[1], crop), *shape[2:])
    except Exception:  # noqa: BLE001 - not fetched, a bad folder: the cell's cost is unknown
        shape = None
    cache[cell.input_key] = shape or None
    return cache[cell.input_key]


def _task(model, task: str) -> dict:
    """``{"task": task}`` for a model that takes it (gsvae: its default epochs depend on the
    task), else nothing: ``cost(shape, params)`` stays the whole contract for the others."""
    import inspect

    try:
        return {"task": task} if "task" in inspect.signature(model).parameters else {}
    except (TypeError, ValueError):  # a builtin or C callable without a signature
        return {}


def cell_seconds(cell, registry, shapes: dict, timeout: float | None = None) -> float | None:
    """One cell's estimated seconds on one CPU core, or None when unknown."""
    spec = registry.method(cell.method)
    if not spec.cost:
        return None
    shape = image_shape(cell, registry, shapes)
    if shape is None:
        return None
    try:
        model = load_object(spec.cost)
        seconds = model(shape, dict(cell.method_params), **_task(model, cell.task))
    except Exception:  # noqa: BLE001 - a plugin's estimate must never stop a dry run
        return None
    if seconds is None:
        return None
    seconds = max(0.0, float(seconds)) + CELL_START_S
    if cell.budget_s and spec.budgeted:  # stops after the epoch that crosses the budget
        seconds = min(seconds, float(cell.budget_s))
    if timeout:
        seconds = min(seconds, float(timeout))
    return seconds


def total_line(seconds: list[float | None], device: str, jobs: int, unreadable: int = 0) -> str:
    """``estimated cost: 3.2 CPU-hours (about 1.6 h of wall time at -j 2); 1 cell unknown``;
    ``unreadable``: how many of the unknown cells lack their image here (not fetched)."""
    known = [s for s in seconds if s is not None]
    unknown = len(seconds) - len(known) - unreadable
    hours = sum(known) / 3600
    text = f"estimated cost: {hours:.3g} CPU-hours for {len(known)} cell(s) to run"
    if known and not str(device).startswith("cuda"):
        text += f" (about {_clock(sum(known) / max(1, jobs))} wall at -j {jobs})"
    if unknown:
        text += f"; {unknown} cell(s) unknown (?: their method has no cost model)"
    if unreadable:
        text += (f"; {unreadable} cell(s) unknown because their image is not here (fetch it "
                 "first: evobench data fetch)")
    if str(device).startswith("cuda"):
        text += ("; unmeasured on cuda: the rates are one CPU core's, a GPU is usually far "
                 "faster, so read this as an upper bound")
    return text + "; rough (docs/harness.md, \"Cost estimate\")"


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}"


def cell_text(seconds: float | None) -> str:
    return "?" if seconds is None else _clock(seconds)
