"""What runs inside a cell's worker process: one method on one corrupted image, then metrics.

The parent hands over everything the cell needs in a :class:`CellPayload` (the specs
themselves, the clean and corrupted arrays), so a worker never reads entry points or dataset
files: it works the same in a fresh local process, under a Dask worker on another machine, or
with a plugin a test registered. It calls the method's spec it holds (``api.run_spec``) and
scores the output with the metric specs it holds. Every failure becomes a :class:`CellResult`
(``status=error`` with a one-line message), never an exception.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from evobench import __version__
from evobench.errors import first_line
from evobench.specs import MethodSpec, MetricSpec, load_object

if TYPE_CHECKING:
    from evobench.harness.checkpoints import CellCheckpoints
    from evobench.harness.grid import Cell

THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
              "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


def now() -> str:
    """The current UTC time, ISO 8601 with milliseconds: every timestamp a run stores."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def one_line(exc: BaseException) -> str:
    """``Type: first line`` for a result row's error column."""
    msg = first_line(exc)
    return msg if msg == type(exc).__name__ else f"{type(exc).__name__}: {msg}"


@dataclass
class CellPayload:
    """Everything one cell's worker needs (picklable: it travels to a process or a Dask worker).

    ``cell`` holds the identity, method parameters, seeds and device; ``checkpoints`` None: no
    checkpoints.
    """

    cell: Cell
    method_spec: MethodSpec
    metric_specs: dict[str, MetricSpec]
    clean: np.ndarray
    corrupted: np.ndarray
    mask: np.ndarray | None
    sigma: float | None
    threads: int = 1
    save_images: bool = False
    checkpoints: CellCheckpoints | None = None
    show_notes: bool = True
    budget_s: float | None = None  # the fit's wall-clock budget (``--budget``)


@dataclass
class CellResult:
    """What a cell gives back: its row (outcome, metrics, timings, environment), its trace and
    the arrays to store (None for none). ``status=stopped`` rows are not stored."""

    row: dict[str, Any]
    trace: list[dict] = field(default_factory=list)
    arrays: dict[str, np.ndarray] | None = None

    @classmethod
    def failure(cls, status: str, message: str, started: float) -> CellResult:
        """A cell that ended without a result of its own (timeout, crash, cancelled);
        ``started`` is its ``time.time()`` at the start."""
        return cls({"status": status, "error": message, "time_total_s": time.time() - started,
                    "finished_at": now()})


def limit_threads(threads: int):
    """Pin BLAS/OpenMP/torch threads so jobs x threads <= cores; returns the threadpoolctl
    context (kept alive by the caller)."""
    for var in THREAD_ENV:
        os.environ[var] = str(threads)
    from threadpoolctl import threadpool_limits

    limits = threadpool_limits(limits=threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    return limits


def _rss_mb() -> float:
    # Linux reports ru_maxrss in KiB (macOS in bytes)
    scale = 1024.0 if sys.platform != "darwin" else 1024.0 * 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def _current_rss_mb() -> float:
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except Exception:  # noqa: BLE001
        return float("nan")


class _Scorer:
    """The cell's metrics against its clean image, each with its spec's data range."""

    def __init__(self, specs: dict[str, MetricSpec], clean: np.ndarray):
        self.clean = clean
        self.metrics = {name: (load_object(spec.factory), spec.data_range)
                        for name, spec in specs.items()}

    def __call__(self, image) -> dict[str, float]:
        return {name: self.one(name, image) for name in self.metrics}

    def one(self, name: str, image) -> float:
        fn, data_range = self.metrics[name]
        return float(fn(self.clean, image, data_range=data_range))


def execute(payload: CellPayload, notify: Callable[[str], None] | None = None,
            sink: Callable[[dict], None] | None = None) -> CellResult:
    """Run one cell: score the input, run the method, score its output, measure memory.

    The method gets the cell's context (:class:`evobench.context.MethodContext`): its checkpoint
    settings (``payload.checkpoints``), budget, ``sink`` for progress events and ``notify(text)``
    for one-line messages. A fit stopped on request gives ``status=stopped`` (the harness stores
    no row: the cell resumes).
    """
    from evobench.inputs import mean_filled

    row = _start_row(payload.threads)
    # the noise level the method is given (the degradation's own value, on [0, 1]), not the one
    # the grid asked for: the row says what the method got
    row["sigma01"] = float("nan") if payload.sigma is None else float(payload.sigma)
    limits = limit_threads(payload.threads)  # noqa: F841 - the limits hold while the object lives
    score = _Scorer(payload.metric_specs, payload.clean)
    try:
        inputs = score(mean_filled(payload.corrupted, payload.mask))
        row.update({f"{name}_input": value for name, value in inputs.items()})
    except Exception as exc:  # noqa: BLE001 - e.g. an image smaller than SSIM's window
        row.update(status="error", error=f"while scoring the input: {one_line(exc)}",
                   finished_at=now())
        return CellResult(row)
    gpu = payload.cell.device.startswith("cuda")
    if gpu:
        import torch

        torch.cuda.reset_peak_memory_stats()
    out = _run_method(payload, score, row, notify, sink)
    result = CellResult(row)
    if out is not None:
        try:
            _record_output(out, payload, score, result)
        except Exception as exc:  # noqa: BLE001
            row.update(status="error", error=f"while scoring: {one_line(exc)}")
    row["peak_rss_mb"] = _rss_mb()
    row["peak_gpu_mb"] = float("nan")
    if gpu:
        import torch

        row["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    row["finished_at"] = now()
    return result


def _start_row(threads: int) -> dict[str, Any]:
    return {"status": "ok", "error": "", "started_at": now(), "threads": int(threads),
            "loadavg_1m": os.getloadavg()[0], "host": socket.gethostname(),
            "evobench_version": __version__, "rss_start_mb": _current_rss_mb()}


def _run_method(payload: CellPayload, score: _Scorer, row: dict, notify, sink):
    """The method through the spec the payload holds (``api.run_spec``), timed, with the
    cell's context (SIGTERM asks it to stop when this is the main thread); a failure goes into
    ``row`` and gives None."""
    from evobench.api import run_spec
    from evobench.checkpoint import Stopped
    from evobench.harness.checkpoints import CellCheckpoints, sigterm_handler

    cell = payload.cell
    scorer = ((lambda image: {"psnr": score.one("psnr", image)})  # the live display's PSNR
              if "psnr" in score.metrics else None)
    ctx = (payload.checkpoints or CellCheckpoints()).context(
        cell.key, budget_s=payload.budget_s, sink=sink, scorer=scorer, notify=notify)
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, sigterm_handler(ctx)) if main else None
    cpu0, wall0 = time.process_time(), time.perf_counter()
    out = None
    try:
        out = run_spec(payload.method_spec, payload.corrupted, task=cell.task,
                       sigma=payload.sigma, mask=payload.mask, seed=cell.method_seed,
                       device=cell.device, ctx=ctx, params=cell.method_params)
    except Stopped as exc:
        row.update(status="stopped", error=str(exc))
    except Exception as exc:  # noqa: BLE001 - a crashing method is a result, not a crash
        row.update(status="error", error=one_line(exc))
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
    row["resumes"] = ctx.resumes
    if ctx.resumed_at is not None:
        row["resumed_at_epoch"] = ctx.resumed_at
    row["time_total_s"] = time.perf_counter() - wall0
    row["cpu_s"] = time.process_time() - cpu0
    return out


def _record_output(out, payload: CellPayload, score: _Scorer, result: CellResult) -> None:
    """Scores, timings, extras (``x_<key>``), trace (with scored snapshots) and arrays."""
    row = result.row
    final = score(out.image)
    row.update(final)
    row["time_fit_s"] = _num(out.time_fit_s)
    row["time_infer_s"] = _num(out.time_infer_s)
    for key, value in (out.extras or {}).items():
        if isinstance(value, bool | int | float | np.integer | np.floating | str):
            row[f"x_{key}"] = value.item() if hasattr(value, "item") else value
    result.trace = [_plain_dict(t) for t in (out.trace or [])]
    _score_snapshots(out.snapshots or {}, score, row, result.trace, final)
    # latent-code artifacts are small and feed the sparsity/fields figures: always kept
    arrays = {key: np.asarray(out.artifacts[key], np.float32)
              for key in ("fields", "active_hist") if key in (out.artifacts or {})}
    if payload.save_images:
        arrays |= {"restored": out.image.astype(np.float32),
                   "corrupted": payload.corrupted.astype(np.float32),
                   "clean": payload.clean.astype(np.float32)}
        if payload.mask is not None:
            arrays["mask"] = np.asarray(payload.mask, bool)
    result.arrays = arrays

def _score_snapshots(snapshots: dict, score: _Scorer, row: dict, trace: list[dict],
                     final: dict | None = None) -> None:
    """Score a method's intermediate estimates: into the trace row of their epoch, and the
    latest one into ``<metric>_last_eval`` (with ``last_eval_epoch``) of the result row. The
    trace's last epoch, whose estimate is the returned image, gets the final image's scores
    (``final``) when no snapshot was taken there (TVAE evaluates on the published schedule,
    1, 1+k, ...; its last epoch is rarely on it), so the PSNR curve ends where the table's
    value is."""
    by_epoch = {int(e): np.asarray(img, np.float64) for e, img in snapshots.items()}
    if not by_epoch:
        return
    scores = {e: score(img) for e, img in by_epoch.items()}
    for entry in trace:
        entry.update(scores.get(entry.get("epoch"), {}))
    ends = [t for t in trace if isinstance(t.get("epoch"), int | float)]
    if final and ends:
        last_entry = max(ends, key=lambda t: t["epoch"])
        if int(last_entry["epoch"]) not in scores:
            last_entry.update(final)
    last = max(by_epoch)
    row["last_eval_epoch"] = last
    for name, value in scores[last].items():
        row[f"{name}_last_eval"] = value


def _num(value) -> float:
    return float("nan") if value is None else float(value)


def _plain_dict(entry: dict) -> dict:
    out = {}
    for key, value in dict(entry).items():
        if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
            value = value.item()
        if isinstance(value, bool | int | float | str) or value is None:
            out[str(key)] = value
    return out
