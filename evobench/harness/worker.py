"""What runs inside a cell's worker process: one method on one corrupted image, then metrics.

The parent hands over everything the cell needs (the specs themselves, the clean and corrupted
arrays), so a worker never reads entry points or dataset files: it works the same in a fresh
local process, under a Dask worker on another machine, or with a plugin a test registered.
Every failure becomes a result (``status=error`` with a one-line message), never an exception.
"""

from __future__ import annotations

import os
import resource
import socket
import sys
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np

from evobench import __version__, live
from evobench.errors import first_line
from evobench.hookspecs import hookimpl
from evobench.specs import load_object

THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
              "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def one_line(exc: BaseException) -> str:
    """``Type: first line`` for a result row's error column."""
    msg = first_line(exc)
    return msg if msg == type(exc).__name__ else f"{type(exc).__name__}: {msg}"


class _OneMethod:
    """A throw-away plugin registering exactly the cell's method spec."""

    def __init__(self, spec):
        self.spec = spec

    @hookimpl
    def evobench_register_methods(self, register):
        register(self.spec)


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


def execute(payload: dict, notify=None) -> dict:
    """Run one cell; returns ``{"row": ..., "trace": [...], "arrays": {...} | None}``.

    The method sees the cell's checkpoint settings (``payload["checkpoint"]``) through
    :func:`evobench.checkpoint.current`; ``notify(text)`` passes its one-line messages on. A fit
    stopped on request gives ``status=stopped`` (the harness stores no row: the cell resumes).
    """
    from evobench import checkpoint as ckpt
    from evobench.harness.checkpoints import context_for

    cell = payload["cell"]
    threads = int(payload["threads"])
    row: dict[str, Any] = {
        "status": "ok", "error": "", "started_at": now(), "threads": threads,
        "loadavg_1m": os.getloadavg()[0], "host": socket.gethostname(),
        "evobench_version": __version__, "rss_start_mb": _current_rss_mb(),
    }
    limits = limit_threads(threads)  # noqa: F841 - the limits hold while the object lives
    clean = payload["clean"]
    corrupted = payload["corrupted"]
    mask = payload["mask"]
    metrics = {name: load_object(spec.factory) for name, spec in payload["metric_specs"].items()}
    arrays = None
    trace: list[dict] = []
    try:
        filled = _fill_observed_mean(corrupted, mask)
        for name, fn in metrics.items():
            row[f"{name}_input"] = float(fn(clean, filled, data_range=1.0))
    except Exception as exc:  # noqa: BLE001 - e.g. an image smaller than SSIM's window
        row.update(status="error", error=f"while scoring the input: {one_line(exc)}",
                   finished_at=now())
        return {"row": row, "trace": [], "arrays": None}
    gpu = cell.device.startswith("cuda")
    if gpu:
        import torch

        torch.cuda.reset_peak_memory_stats()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    ctx = context_for(payload, notify)
    if "psnr" in metrics:  # the live display's PSNR of a method's reported estimates
        psnr = metrics["psnr"]
        live.set_scorer(lambda image: {"psnr": float(psnr(clean, image, data_range=1.0))})
    try:
        from evobench.api import run_method
        from evobench.registry import Registry

        registry = Registry(strict=False)
        registry.add_plugin(_OneMethod(payload["method_spec"]), "cell-method")
        with ckpt.use(ctx):
            out = run_method(cell.method, corrupted, task=cell.task, sigma=payload["sigma"],
                             mask=mask, seed=cell.method_seed, device=cell.device,
                             budget_s=None, registry=registry, **cell.method_params)
    except ckpt.Stopped as exc:
        row.update(status="stopped", error=str(exc))
        out = None
    except Exception as exc:  # noqa: BLE001 - a crashing method is a result, not a crash
        row.update(status="error", error=one_line(exc))
        out = None
    finally:
        live.set_scorer(None)
    row["resumes"] = ctx.resumes
    if ctx.resumed_at is not None:
        row["resumed_at_epoch"] = ctx.resumed_at
    row["time_total_s"] = time.perf_counter() - wall0
    row["cpu_s"] = time.process_time() - cpu0
    if out is not None:
        try:
            for name, fn in metrics.items():
                row[name] = float(fn(clean, out.image, data_range=1.0))
            row["time_fit_s"] = _num(out.time_fit_s)
            row["time_infer_s"] = _num(out.time_infer_s)
            for key, value in (out.extras or {}).items():
                if isinstance(value, bool | int | float | np.integer | np.floating | str):
                    row[f"x_{key}"] = value.item() if hasattr(value, "item") else value
            trace = [_plain_dict(t) for t in (out.trace or [])]
            _score_snapshots(out.snapshots or {}, clean, metrics, row, trace)
            # latent-code artifacts are small and feed the sparsity/fields figures: always kept
            arrays = {key: np.asarray(out.artifacts[key], np.float32)
                      for key in ("fields", "active_hist") if key in (out.artifacts or {})}
            if payload.get("save_images"):
                arrays |= {"restored": out.image.astype(np.float32),
                           "corrupted": corrupted.astype(np.float32),
                           "clean": clean.astype(np.float32)}
                if mask is not None:
                    arrays["mask"] = np.asarray(mask, bool)
        except Exception as exc:  # noqa: BLE001
            row.update(status="error", error=f"while scoring: {one_line(exc)}")
    row["peak_rss_mb"] = _rss_mb()
    row["peak_gpu_mb"] = float("nan")
    if gpu:
        import torch

        row["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    row["finished_at"] = now()
    return {"row": row, "trace": trace, "arrays": arrays}


def _score_snapshots(snapshots: dict, clean, metrics: dict, row: dict, trace: list[dict]) -> None:
    """Score a method's intermediate estimates: into the trace row of their epoch, and the
    latest one into ``<metric>_last_eval`` (with ``last_eval_epoch``) of the result row."""
    by_epoch = {int(e): np.asarray(img, np.float64) for e, img in snapshots.items()}
    if not by_epoch:
        return
    scores = {e: {name: float(fn(clean, img, data_range=1.0)) for name, fn in metrics.items()}
              for e, img in by_epoch.items()}
    for entry in trace:
        entry.update(scores.get(entry.get("epoch"), {}))
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


def _fill_observed_mean(image: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """The corrupted input as a picture (missing entries = their channel's observed mean, as the
    ``noisy`` method does), so PSNR/SSIM of the input are defined for inpainting too."""
    image = np.asarray(image, np.float64)
    if mask is None:
        return image
    full = mask if mask.shape == image.shape else np.broadcast_to(mask[..., None], image.shape)
    chans = image.reshape(-1, 1 if image.ndim == 2 else image.shape[2])
    miss = full.reshape(chans.shape)
    means = np.where(miss, 0.0, chans).sum(axis=0) / np.maximum((~miss).sum(axis=0), 1)
    return np.where(miss, means, chans).reshape(image.shape)
