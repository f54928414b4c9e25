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
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from evobench import __version__, validate
from evobench.errors import EvobenchError
from evobench.harness import checkpoints
from evobench.harness.claims import Claims
from evobench.harness.grid import Cell, Grid, describe, image_label
from evobench.harness.seeds import canonical_json, digest
from evobench.harness.stopper import Stopper
from evobench.harness.store import RunStore, StoreWriteError
from evobench.harness.worker import CellPayload, CellResult, now
from evobench.specs import load_object


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
    """A run name for an ad-hoc selection (``-m/-d/--sigma/--missing/-r/--budget``), or None
    without one: ``SUITE-PROFILE-<method and dataset names>-<hash of the selection>``. The same
    command gives the same name (so it resumes), and never the suite's own folder (so a table
    never mixes budgeted and unbudgeted fits of one method)."""
    import re

    selection = {"methods": overrides.methods, "datasets": overrides.datasets,
                 "sigmas": overrides.sigmas, "missing": overrides.missing,
                 "repetitions": overrides.repetitions, "budget_s": overrides.budget_s}
    if getattr(overrides, "with_baselines", False):  # its own folder, apart from -m's alone
        selection["with_baselines"] = True
    if not any(v is not None for v in selection.values()):
        return None
    names = [sel.split("[")[0].strip().lower()
             for sel in (overrides.methods or []) + (overrides.datasets or [])]
    names = [re.sub(r"[^a-z0-9_.-]+", "_", n).strip("_.-") for n in dict.fromkeys(names)]
    names = [n for n in names if n]
    label = "-".join(names[:4]) + ("-etc" if len(names) > 4 else "")
    if selection.get("with_baselines"):
        label = "-".join(p for p in (label, "baselines") if p)
    if overrides.budget_s is not None:
        label = "-".join(p for p in (label, f"budget{overrides.budget_s:g}s") if p)
    tag = digest({k: v for k, v in selection.items() if v is not None})[:8]
    from evobench.validate import MAX_COMPONENT

    fixed = len("-".join(p for p in (grid.suite, grid.profile, tag) if p)) + 1
    if len(label) > MAX_COMPONENT - fixed:  # long names: the hash keeps the name distinct
        label = label[:max(0, MAX_COMPONENT - fixed)].rstrip("_.-")
    return "-".join(p for p in (grid.suite, grid.profile, label, tag) if p)


def plan(grid: Grid, store: RunStore, force: bool,
         say=None) -> tuple[dict, list[Cell], list[Cell]]:
    """(cached records of done cells, cells to run, cells to skip). A done cell whose
    artifact is missing or damaged runs again (``say`` gets one line naming the file)."""
    stored = store.load_cells()
    done, todo, skip = {}, [], []
    for cell in grid.cells:
        record = stored.get(cell.key)
        if cell.skip_reason:
            skip.append(cell)
        elif not force and record is not None and record["row"].get("status") == "ok":
            problem = store.artifact_problem(record)
            if problem is None:
                done[cell.key] = record
                continue
            if say is not None:
                say(f"note: the artifact of {describe(cell)}: {problem}; running the cell again "
                    "to repair it")
            todo.append(cell)
        else:
            todo.append(cell)
    return done, todo, skip


# -- rows --------------------------------------------------------------------------------------
def metric_columns(specs: dict) -> dict:
    """``data_range`` (the metrics' common one, NaN if they differ) and ``metric_variant`` (each
    metric's convention) of a row scored by the metric ``specs`` (name -> MetricSpec)."""
    ranges = {float(spec.data_range) for spec in specs.values()}
    variant = "; ".join(f"{name}: {spec.variant or spec.summary}, data_range={float(spec.data_range)!r}"
                        for name, spec in sorted(specs.items()))
    return {"data_range": ranges.pop() if len(ranges) == 1 else math.nan,
            "metric_variant": variant}


def identity_row(cell: Cell, run_id: str, metric_specs: dict) -> dict:
    """The columns a cell's row has before it runs: identity, seeds, device, metric facts.

    Every degradation parameter becomes ``p_deg_<name>``, whatever the degradation (the schema
    gives the standard ones, ``p_deg_sigma``, ``p_deg_missing`` and ``p_deg_per``, their empty
    values where a cell has none); ``sigma01``, the noise level the method was given, comes
    from the worker."""
    row = {
        "run_id": run_id, "cell_key": cell.key, "suite": cell.suite, "profile": cell.profile,
        "dataset": cell.dataset, "dataset_params": canonical_json(cell.dataset_params),
        "image": cell.image, "image_name": cell.image_name, "color": cell.color,
        "task": cell.task, "degradation": cell.degradation,
        "deg_params": canonical_json(cell.deg_params),
        "method": cell.method, "method_label": cell.method_label,
        "method_version": cell.method_version,
        "method_params": canonical_json(cell.method_params),
        "rep": cell.rep, "base_seed": cell.base_seed, "noise_seed": cell.noise_seed,
        "method_seed": cell.method_seed, "device": cell.device,
        "budget_s": math.nan if cell.budget_s is None else float(cell.budget_s),
        **metric_columns(metric_specs),
    }
    for key, value in cell.deg_params.items():
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
        image = np.asarray(image)
        if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
            raise EvobenchError(f"dataset {cell.dataset!r} image {cell.image!r} has shape "
                                f"{image.shape}; expected H x W or H x W x 3")
        crop = int(cell.dataset_params.get("crop", 0))
        image = centre_crop(image, crop) if crop else image  # before the float64 copies
        check_image_memory(cell, image.shape, images)
        image = np.asarray(image, dtype=np.float64)
        if not np.isfinite(image).all():
            raise EvobenchError(f"dataset {cell.dataset!r} image {cell.image!r} has NaN/inf pixels")
        validate.clean_range(image, f"dataset {cell.dataset!r} image {cell.image!r}")
        images[cell.input_key] = image
    check_sizes(cells, images, registry)
    return images


# the float64 copies of one image a cell holds at its peak, runner and cell process together:
# clean, corrupted, mask, the payload sent to the cell, the method's input and output, metrics
IMAGE_COPIES = 8


def check_image_memory(cell: Cell, shape: tuple, images: dict) -> None:
    """Refuse an image whose cells cannot fit in memory (its float64 bytes x
    :data:`IMAGE_COPIES`, plus the images already loaded) before its float64 copies are made."""
    pixels = int(np.prod(shape))
    held = sum(im.nbytes for im in images.values())
    dataset = cell.dataset
    validate.memory(pixels * 8 * IMAGE_COPIES + held,
                    f"image {image_label(cell)} ({' x '.join(map(str, shape))})",
                    f"crop it (add crop=1024 to its selector: -d '{dataset}[...,crop=1024]') "
                    "or use a smaller image")


def check_sizes(cells: list[Cell], images: dict, registry) -> None:
    """Every pending cell's image is at least as large as its method and metrics accept."""
    for cell in cells:
        shape = images[cell.input_key].shape
        what = f"image {image_label(cell)}"
        for name in cell.metrics:
            need = registry.metric(name).min_size
            if min(shape[:2]) < need:
                raise EvobenchError(f"{what} is {shape[0]} x {shape[1]} pixels; the {name} metric "
                                    f"needs at least {need} x {need}")
        validate.image_size(registry.method(cell.method), cell.method_params, shape, what)


def make_payload(cell: Cell, clean: np.ndarray, registry, threads: int,
                 save_images: bool) -> CellPayload:
    """The cell's worker payload: its corrupted input (the degradation drawn with the cell's
    noise seed), the specs it runs and scores with, and the clean image."""
    deg = registry.degradation(cell.degradation)
    rng = np.random.default_rng(cell.noise_seed)
    degraded = load_object(deg.factory)(clean, rng=rng, **cell.deg_params)
    mask = None if degraded.mask is None else np.asarray(degraded.mask, dtype=bool)
    return CellPayload(
        cell=cell, method_spec=registry.method(cell.method),
        metric_specs={m: registry.metric(m) for m in cell.metrics}, clean=clean,
        corrupted=np.asarray(degraded.image, dtype=np.float64), mask=mask,
        sigma=degraded.sigma, threads=threads, save_images=save_images, budget_s=cell.budget_s)


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


# -- the run -----------------------------------------------------------------------------------
def execute(grid: Grid, registry, options: RunOptions, executor, progress_factory) -> RunResult:
    """Run the grid's cells that are not done yet and store every result (see :class:`_Run`)."""
    run = _Run(grid, registry, options, executor)
    run.prepare()
    return run.execute(progress_factory)


class _Run:
    """One execution of a grid into its run folder, step by step: :meth:`prepare` (plan, load
    and check the inputs, then write the manifest and the skipped cells), :meth:`execute` (claim
    and run the pending cells, store each result as it arrives) and :meth:`finish` (the tables
    and the final manifest, also after Ctrl-C or a stop)."""

    def __init__(self, grid: Grid, registry, options: RunOptions, executor):
        self.grid, self.registry, self.options, self.executor = grid, registry, options, executor
        self.run_id = options.run_name or default_run_id(grid)
        self.store = RunStore(options.out, self.run_id)
        self.stopper = options.stopper or Stopper()
        self.records: dict[str, dict] = {}

    def prepare(self) -> None:
        grid, options, store = self.grid, self.options, self.store
        self.tables_before = store.tables_stamp()  # see RunStore.write_tables
        done, self.todo, skip = plan(grid, store, options.force, say=self._say)
        self.images = load_inputs(self.todo, self.registry)  # may raise: nothing written yet
        store.check_writable()
        self.threads = self.executor.threads_per_cell()
        self.info = {"started_at": now(), "finished_at": "", "threads_per_cell": self.threads,
                     "cells": {"total": len(grid.cells), "cached": len(done),
                               "to_run": len(self.todo), "skipped": len(skip)}}
        self._write_manifest()
        store.write_text("config.toml", to_toml(grid.config))
        self.records = dict(done)
        for cell in skip:
            row = self._identity(cell)
            row.update(status="skipped", error=cell.skip_reason, threads=self.threads,
                       resumes=0, jobs=options.jobs, started_at=now(), finished_at=now(),
                       evobench_version=__version__)
            self.records[cell.key] = store.write_cell(row, [], None)
        for record in done.values():  # a cached row belongs to this run now
            record["row"]["run_id"] = self.run_id
        self.counts = (len(self.todo), len(done), len(skip))
        self.stopper.attach(store.root, options.stop_after)
        if not options.keep_checkpoints:  # left behind by a crash right after storing the cell
            for key in done:
                checkpoints.remove(store.root, key)
        if options.force:  # a forced rerun starts from scratch
            for cell in self.todo:
                checkpoints.remove(store.root, cell.key)

    def _identity(self, cell: Cell) -> dict:
        specs = {m: self.registry.metric(m) for m in cell.metrics}
        return identity_row(cell, self.run_id, specs)

    def _write_manifest(self) -> None:
        self.store.write_json("manifest.json", manifest(self.grid, self.registry, self.options,
                                                        self.run_id, self.info))

    def payload(self, cell: Cell) -> CellPayload:
        options = self.options
        payload = make_payload(cell, self.images[cell.input_key], self.registry, self.threads,
                               options.save_images)
        payload.checkpoints = checkpoints.CellCheckpoints.of(
            self.store.root, cell.key, options.checkpoint_every, self.stopper.stop_file)
        payload.show_notes = not options.quiet
        return payload

    # -- cooperating runners ---------------------------------------------------------------------
    def _by_other(self, cell: Cell) -> dict | None:
        """The record another runner on this folder stored for ``cell`` during this run."""
        if self.store.cell_stamp(cell.key) == self.before[cell.key]:
            return None
        return self.store.load_cell(cell.key)

    def claimed(self, cells: list[Cell], deferred: list[Cell]):
        """Payloads of the cells this runner claims; cells claimed by a live runner wait in
        ``deferred``; cells another runner stored meanwhile are taken as cached."""
        for cell in cells:
            record = self._by_other(cell)
            if record is None and not self.claims.try_claim(cell.key):
                deferred.append(cell)
                continue
            record = record or self._by_other(cell)  # stored between the check and the claim?
            if record is not None:
                self.claims.release(cell.key)
                self.records[cell.key] = record
                self.progress.counts["cached"] += 1  # computed by a cooperating runner
                continue
            if self.stopper.requested:  # a stop starts no more cells
                self.claims.release(cell.key)
                continue
            yield self.payload(cell)

    # -- results ---------------------------------------------------------------------------------
    def store_result(self, payload: CellPayload, result: CellResult) -> None:
        """Store a finished cell's row (identity + what the worker measured) at once; a stopped
        cell is not stored (the next run resumes or reruns it)."""
        cell, options = payload.cell, self.options
        status = result.row.get("status")
        if status == "stopped" or (self.stopper.requested and status != "ok"):
            self.claims.release(cell.key)
            if not options.quiet:
                import click

                click.echo(f"stopped {describe(cell)}: {result.row.get('error', '')}", err=True)
            return
        row = self._identity(cell)
        row.update({"threads": self.threads, "host": socket.gethostname(),
                    "evobench_version": __version__})
        row.update(result.row)
        row["jobs"] = options.jobs
        row["executor"] = self.executor.name
        self.records[cell.key] = self.store.write_cell(row, result.trace, result.arrays)
        self.claims.release(cell.key)
        if row.get("status") == "ok" and not options.keep_checkpoints:
            checkpoints.remove(self.store.root, cell.key)
        self.progress.update(describe(cell), row, cell)

    def _loop(self) -> None:
        """Run the pending cells until all are stored (waiting for cells other runners hold)
        or a stop is requested."""
        queue = list(self.todo)
        while queue and not self.stopper.requested:
            deferred: list[Cell] = []
            for payload, result in self.executor.run(self.claimed(queue, deferred),
                                                     self.options.timeout):
                self.store_result(payload, result)
            queue = deferred
            self._say_waiting(queue)
            if queue and not self.stopper.requested:  # other runners hold these: wait until
                time.sleep(min(2.0, self.claims.lease_s / 4))  # stored, or their lease expires

    def _say(self, text: str) -> None:
        if not self.options.quiet:
            import click

            click.echo(text, err=True)

    def _say_waiting(self, cells: list[Cell]) -> None:
        """One line per cell this runner starts waiting for: who holds it, until when."""
        for cell in cells:
            if cell.key in self.waiting_for:
                continue
            self.waiting_for.add(cell.key)
            holder = self.claims.holder(cell.key)
            if holder:
                self._say(f"waiting for {describe(cell)}: {holder}")

    def _estimates(self) -> dict[str, float | None]:
        """Each pending cell's estimated seconds (``--dry-run``'s cost models) for the ETA."""
        from evobench.harness import cost

        shapes = {key: image.shape for key, image in self.images.items()}
        try:
            return {c.key: cost.cell_seconds(c, self.registry, shapes, self.options.timeout)
                    for c in self.todo}
        except Exception:  # noqa: BLE001 - an estimate must never stop a run
            return {}

    def execute(self, progress_factory) -> RunResult:
        self.progress = progress_factory(*self.counts)
        self.claims = Claims(self.store.root, note=self._say)
        self.waiting_for: set[str] = set()
        self.before = {c.key: self.store.cell_stamp(c.key) for c in self.todo}
        if hasattr(self.progress, "expect"):  # running cells, epochs and the ETA per method
            self.progress.expect(self.todo, getattr(self.executor, "jobs", None)
                                 or self.options.jobs, estimates=self._estimates())
            self.executor.on_event = self.progress.event
        interrupted, write_error = False, None
        try:
            with self.claims, self.progress:
                self._loop()
        except KeyboardInterrupt:
            interrupted = True
        except StoreWriteError as exc:  # the executor's clean-up has killed the running cells
            write_error = exc
        finally:
            ordered, write_error = self.finish(interrupted, write_error)
        if write_error is not None:
            raise write_error
        unfinished = sum(c.key not in self.records for c in self.grid.cells)
        return RunResult(self.store, ordered, dict(self.progress.counts), interrupted,
                         stopped=self.stopper.reason if self.stopper.requested and unfinished
                         else None, unfinished=unfinished)

    def finish(self, interrupted: bool, write_error):
        """Write the tables and the final manifest; returns the stored records in grid order
        and the first write error."""
        self.stopper.close()
        ordered = [self.records[c.key] for c in self.grid.cells if c.key in self.records]
        self.info.update(finished_at=now(), interrupted=interrupted,
                         stopped=self.stopper.reason or "")
        try:
            self.store.write_tables(ordered, since=self.tables_before)
            self._write_manifest()
        except StoreWriteError as exc:
            write_error = write_error or exc
        return ordered, write_error
