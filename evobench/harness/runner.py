"""One run: grid -> validated inputs -> cells executed (or found done) -> results store.

Order matters for the promise "bad input changes nothing": names and parameters are checked
when the grid is built, then every image the pending cells need is loaded (and its file
verified) before the first write; only then are the run folder, manifest and cells touched.
"""

from __future__ import annotations

import math
import platform
import socket
import subprocess
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from evobench import __version__, validate
from evobench.errors import EvobenchError
from evobench.harness import checkpoints
from evobench.harness.checkpoints import Stopper
from evobench.harness.claims import Claims
from evobench.harness.grid import Cell, Grid, describe, image_label
from evobench.harness.seeds import canonical_json, digest
from evobench.harness.store import RunStore, StoreWriteError
from evobench.specs import load_object

METRIC_VARIANT = ("float64, whole image (all pixels and channels), data_range=1.0, no clipping, "
                  "no quantisation")


@dataclass
class RunOptions:
    out: Path = Path("results")
    run_name: str | None = None
    jobs: int = 1
    timeout: float | None = None
    executor: str = "local"
    scheduler: str | None = None
    save_images: bool = True
    force: bool = False
    quiet: bool = False
    command: list[str] = field(default_factory=lambda: list(sys.argv))
    checkpoint_every: float | None = 600.0  # seconds of wall time; None or 0: off
    keep_checkpoints: bool = False
    stop_after: float | None = None
    stopper: Stopper | None = None  # set by the CLI so SIGTERM can reach it


@dataclass
class RunResult:
    store: RunStore
    records: list[dict]
    counts: dict
    interrupted: bool = False
    stopped: str | None = None  # why the run stopped early to be resumed (exit code 75)
    unfinished: int = 0  # cells of the grid still to run after a stop

    @property
    def failed(self) -> int:
        return sum(r["row"]["status"] in ("error", "timeout") for r in self.records)


def default_run_id(grid: Grid) -> str:
    """``<suite>-<profile>``: the same command lands in the same folder and so resumes."""
    return f"{grid.suite}-{grid.profile}"


def selection_run_id(grid: Grid, overrides) -> str | None:
    """A run name for an ad-hoc selection (``-m/-d/--sigma/--missing/-r``), or None without one:
    ``SUITE-PROFILE-<method and dataset names>-<hash of the selection>``. The same command gives
    the same name (so it resumes), and never the suite's own folder."""
    import re

    selection = {"methods": overrides.methods, "datasets": overrides.datasets,
                 "sigmas": overrides.sigmas, "missing": overrides.missing,
                 "repetitions": overrides.repetitions}
    if not any(v is not None for v in selection.values()):
        return None
    names = [sel.split("[")[0].strip().lower()
             for sel in (overrides.methods or []) + (overrides.datasets or [])]
    names = [re.sub(r"[^a-z0-9_.-]+", "_", n).strip("_.-") for n in dict.fromkeys(names)]
    names = [n for n in names if n]
    label = "-".join(names[:4]) + ("-etc" if len(names) > 4 else "")
    tag = digest({k: v for k, v in selection.items() if v is not None})[:8]
    return "-".join(p for p in (grid.suite, grid.profile, label, tag) if p)


def plan(grid: Grid, store: RunStore, force: bool) -> tuple[dict, list[Cell], list[Cell]]:
    """(cached records of done cells, cells to run, cells to skip)."""
    stored = store.load_cells()
    done, todo, skip = {}, [], []
    for cell in grid.cells:
        record = stored.get(cell.key)
        if cell.skip_reason:
            skip.append(cell)
        elif not force and record is not None and record["row"].get("status") == "ok":
            done[cell.key] = record
        else:
            todo.append(cell)
    return done, todo, skip


# -- rows --------------------------------------------------------------------------------------
def identity_row(cell: Cell, run_id: str, metric_variant: str) -> dict:
    sigma = cell.deg_params.get("sigma")
    row = {
        "run_id": run_id, "cell_key": cell.key, "suite": cell.suite, "profile": cell.profile,
        "dataset": cell.dataset, "dataset_params": canonical_json(cell.dataset_params),
        "image": cell.image, "image_name": cell.image_name, "color": cell.color,
        "task": cell.task, "degradation": cell.degradation,
        "p_deg_sigma": float(sigma) if sigma is not None else math.nan,
        "sigma01": float(sigma) / 255.0 if sigma is not None else math.nan,
        "p_deg_missing": float(cell.deg_params.get("missing", math.nan)),
        "p_deg_per": str(cell.deg_params.get("per", "")) if "missing" in cell.deg_params else "",
        "deg_params": canonical_json(cell.deg_params),
        "method": cell.method, "method_label": cell.method_label,
        "method_version": cell.method_version,
        "method_params": canonical_json(cell.method_params),
        "rep": cell.rep, "base_seed": cell.base_seed, "noise_seed": cell.noise_seed,
        "method_seed": cell.method_seed, "device": cell.device, "data_range": 1.0,
        "metric_variant": metric_variant,
    }
    for key, value in cell.deg_params.items():
        if key not in ("sigma", "missing", "per"):
            row[f"p_deg_{key}"] = value
    for key, value in cell.method_params.items():
        row[f"p_method_{key}"] = "-".join(map(str, value)) if isinstance(value, tuple | list) \
            else value
    return row


# -- inputs ------------------------------------------------------------------------------------
def centre_crop(image: np.ndarray, size: int) -> np.ndarray:
    if not size:
        return image
    h, w = image.shape[:2]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return np.ascontiguousarray(image[top:top + size, left:left + size])


def load_inputs(cells: list[Cell], registry) -> dict[tuple, np.ndarray]:
    """Every clean image the cells need, loaded once; any failure is a one-line error."""
    images: dict[tuple, np.ndarray] = OrderedDict()
    for cell in cells:
        if cell.input_key in images:
            continue
        spec = registry.dataset(cell.dataset)
        own = {k: v for k, v in cell.dataset_params.items() if k != "crop"}
        try:
            image = load_object(spec.loader)(cell.image, **own)
        except EvobenchError:
            raise
        except Exception as exc:  # noqa: BLE001 - a loader bug is still bad input here
            raise EvobenchError(f"dataset {cell.dataset!r} could not load image {cell.image!r}: "
                                f"{type(exc).__name__}: {exc}") from None
        image = np.asarray(image, dtype=np.float64)
        if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
            raise EvobenchError(f"dataset {cell.dataset!r} image {cell.image!r} has shape "
                                f"{image.shape}; expected H x W or H x W x 3")
        if not np.isfinite(image).all():
            raise EvobenchError(f"dataset {cell.dataset!r} image {cell.image!r} has NaN/inf pixels")
        validate.clean_range(image, f"dataset {cell.dataset!r} image {cell.image!r}")
        images[cell.input_key] = centre_crop(image, int(cell.dataset_params.get("crop", 0)))
    check_sizes(cells, images, registry)
    return images


SSIM_WINDOW = 7  # the ssim metric's window side


def check_sizes(cells: list[Cell], images: dict, registry) -> None:
    """Every pending cell's image is at least as large as its method (and SSIM) accepts."""
    for cell in cells:
        shape = images[cell.input_key].shape
        what = f"image {image_label(cell)}"
        if "ssim" in cell.metrics and min(shape[:2]) < SSIM_WINDOW:
            raise EvobenchError(f"{what} is {shape[0]} x {shape[1]} pixels; the ssim metric needs "
                                f"at least {SSIM_WINDOW} x {SSIM_WINDOW}")
        validate.image_size(registry.method(cell.method), cell.method_params, shape, what)


def make_payload(cell: Cell, clean: np.ndarray, registry, threads: int,
                 save_images: bool) -> dict:
    deg = registry.degradation(cell.degradation)
    rng = np.random.default_rng(cell.noise_seed)
    degraded = load_object(deg.factory)(clean, rng=rng, **cell.deg_params)
    mask = None if degraded.mask is None else np.asarray(degraded.mask, dtype=bool)
    return {
        "cell": cell, "method_spec": registry.method(cell.method),
        "metric_specs": {m: registry.metric(m) for m in cell.metrics},
        "clean": clean, "corrupted": np.asarray(degraded.image, dtype=np.float64),
        "mask": mask, "sigma": degraded.sigma, "threads": threads, "save_images": save_images,
    }


# -- provenance --------------------------------------------------------------------------------
def _version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return ""


def _git() -> dict:
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "-uno"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"commit": "", "dirty": None}
    return {"commit": commit, "dirty": bool(dirty) if commit else None}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def machine(device: str) -> dict:
    import psutil

    from evobench.harness.executors import available_cores

    info = {"host": socket.gethostname(), "platform": platform.platform(),
            "python": platform.python_version(), "cpu": _cpu_model(),
            "cores": available_cores(), "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "gpu": ""}
    if device.startswith("cuda"):
        try:
            import torch

            if torch.cuda.is_available():
                info["gpu"] = torch.cuda.get_device_name(0)
                info["cuda"] = torch.version.cuda
        except ImportError:
            pass
    return info


def manifest(grid: Grid, registry, options: RunOptions, run_id: str, extra: dict) -> dict:
    plugins = {name: {"distribution": p.distribution, "version": p.version, "status": p.status,
                      "module": p.module} for name, p in sorted(registry.plugins.items())}
    return {
        "evobench_schema": 1, "run_id": run_id, "evobench_version": __version__,
        "versions": {d: _version(d) for d in ("torch", "numpy", "scipy", "scikit-image", "bm3d",
                                              "pandas", "pyarrow", "dask", "distributed")},
        "plugins": plugins, "git": _git(), "machine": machine(grid.config["device"]),
        "command": options.command, "config": grid.config, "config_hash": digest(grid.config),
        "executor": options.executor, "scheduler": options.scheduler or "", "jobs": options.jobs,
        "timeout_s": options.timeout, **extra,
    }


def to_toml(config: dict) -> str:
    """The resolved grid as TOML (strings, numbers and lists of strings only)."""
    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        if isinstance(v, list | tuple):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = ["# the resolved grid of this run (written by evobench run)"]
    for key, v in config.items():
        if key != "blocks":
            lines.append(f"{key} = {value(v)}")
    for block in config.get("blocks", []):
        lines.append("\n[[blocks]]")
        lines += [f"{k} = {value(v)}" for k, v in block.items()]
    return "\n".join(lines) + "\n"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# -- the run -----------------------------------------------------------------------------------
def execute(grid: Grid, registry, options: RunOptions, executor, progress_factory) -> RunResult:
    run_id = options.run_name or default_run_id(grid)
    store = RunStore(options.out, run_id)
    done, todo, skip = plan(grid, store, options.force)
    images = load_inputs(todo, registry)  # may raise: nothing written yet
    store.check_writable()
    threads = executor.threads_per_cell()
    variant = METRIC_VARIANT + "; " + "; ".join(
        sorted({f"{m}: {registry.metric(m).summary}" for c in grid.cells for m in c.metrics}))
    started = now()
    info = {"started_at": started, "finished_at": "", "threads_per_cell": threads,
            "cells": {"total": len(grid.cells), "cached": len(done), "to_run": len(todo),
                      "skipped": len(skip)}}
    store.write_json("manifest.json", manifest(grid, registry, options, run_id, info))
    store.write_text("config.toml", to_toml(grid.config))
    records: dict[str, dict] = dict(done)
    for cell in skip:
        row = identity_row(cell, run_id, variant)
        row.update(status="skipped", error=cell.skip_reason, threads=threads, resumes=0,
                   jobs=options.jobs, started_at=now(), finished_at=now(),
                   evobench_version=__version__)
        records[cell.key] = store.write_cell(row, [], None)
    for record in done.values():  # a cached row belongs to this run now
        record["row"]["run_id"] = run_id
    interrupted = False
    stopper = options.stopper or Stopper()
    stopper.attach(store.root, options.stop_after)
    if not options.keep_checkpoints:  # left behind by a crash right after storing the cell
        for key in done:
            checkpoints.remove(store.root, key)
    if options.force:  # a forced rerun starts from scratch
        for cell in todo:
            checkpoints.remove(store.root, cell.key)

    def payload_of(c: Cell) -> dict:
        payload = make_payload(c, images[c.input_key], registry, threads, options.save_images)
        payload["checkpoint"] = checkpoints.payload_settings(
            store.root, c.key, options.checkpoint_every, stopper.stop_file)
        payload["show_notes"] = not options.quiet
        return payload

    write_error: StoreWriteError | None = None
    progress = progress_factory(len(todo), len(done), len(skip))
    claims = Claims(store.root)
    before = {c.key: store.cell_stamp(c.key) for c in todo}

    def by_other(cell: Cell) -> dict | None:
        """The record another runner on this folder stored for ``cell`` during this run."""
        if store.cell_stamp(cell.key) == before[cell.key]:
            return None
        return store.load_cell(cell.key)

    def take(cell: Cell, record: dict) -> None:
        records[cell.key] = record
        progress.counts["cached"] += 1  # computed by a cooperating runner

    def claimed(cells: list[Cell], deferred: list[Cell]):
        """Payloads of the cells this runner claims; cells claimed by a live runner wait."""
        for cell in cells:
            record = by_other(cell)
            if record is None and not claims.try_claim(cell.key):
                deferred.append(cell)
                continue
            record = record or by_other(cell)  # stored between the check and the claim?
            if record is not None:
                claims.release(cell.key)
                take(cell, record)
                continue
            if stopper.requested:  # a stop starts no more cells
                claims.release(cell.key)
                continue
            yield payload_of(cell)

    if hasattr(progress, "expect"):  # running cells, epochs and the ETA per method
        progress.expect(todo, getattr(executor, "jobs", None) or options.jobs)
        executor.on_event = progress.event
    try:
        with claims, progress:
            queue = list(todo)
            while queue and not stopper.requested:
                deferred: list[Cell] = []
                for payload, result in executor.run(claimed(queue, deferred), options.timeout):
                    cell = payload["cell"]
                    status = result["row"].get("status")
                    if status == "stopped" or (stopper.requested and status != "ok"):
                        claims.release(cell.key)
                        if not options.quiet:  # not stored: the next run resumes or reruns it
                            import click

                            click.echo(f"stopped {describe(cell)}: "
                                       f"{result['row'].get('error', '')}", err=True)
                        continue
                    row = identity_row(cell, run_id, variant)
                    row.update({"threads": threads, "host": socket.gethostname(),
                                "evobench_version": __version__})
                    row.update(result["row"])
                    row["jobs"] = options.jobs
                    row["executor"] = executor.name
                    records[cell.key] = store.write_cell(row, result.get("trace", []),
                                                         result.get("arrays"))
                    claims.release(cell.key)
                    if row.get("status") == "ok" and not options.keep_checkpoints:
                        checkpoints.remove(store.root, cell.key)
                    progress.update(describe(cell), row, cell)
                queue = deferred
                if queue and not stopper.requested:  # other runners hold these: wait until
                    time.sleep(min(2.0, claims.lease_s / 4))  # stored, or their lease expires
    except KeyboardInterrupt:
        interrupted = True
    except StoreWriteError as exc:  # the executor's clean-up has killed the running cells
        write_error = exc
    finally:
        stopper.close()
        ordered = [records[c.key] for c in grid.cells if c.key in records]
        info["finished_at"] = now()
        info["interrupted"] = interrupted
        info["stopped"] = stopper.reason or ""
        try:
            store.write_tables(ordered)
            store.write_json("manifest.json", manifest(grid, registry, options, run_id, info))
        except StoreWriteError as exc:
            write_error = write_error or exc
    if write_error is not None:
        raise write_error
    counts = dict(progress.counts)
    unfinished = sum(c.key not in records for c in grid.cells)
    return RunResult(store, ordered, counts, interrupted,
                     stopped=stopper.reason if stopper.requested and unfinished else None,
                     unfinished=unfinished)
