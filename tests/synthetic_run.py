"""A synthetic run folder in the real results schema, written without running any method.

The report tests and benchmarks exercise the report commands on it: its rows are built from
:mod:`evobench.schema`'s columns and written by the harness's own store (``RunStore``), so the
tables, traces, manifest, config and artifacts have the layout and dtypes of a real run, with
plausible numbers drawn from one seed and no minutes of training.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from evobench.harness.seeds import canonical_json, digest
from evobench.harness.store import RunStore
from evobench.schema import ROW_ORDER, STRING_COLUMNS

# method -> (label, PSNR offset in dB against the noisy input, seconds per cell)
METHODS = {
    "noisy": ("noisy", 0.0, 0.001),
    "bm3d": ("bm3d", 8.0, 1.5),
    "tvae": ("tvae[S=64]", 8.4, 40.0),
    "gsvae": ("gsvae", 6.5, 20.0),
}


def _clean(size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size] / size
    return 0.5 + 0.3 * np.sin(6 * xx) * np.cos(4 * yy) + 0.1 * (xx > 0.5)


def make_run(
    folder: str | Path,
    *,
    seed: int = 0,
    images: tuple[str, ...] = ("01", "02"),
    sigmas: tuple[float, ...] = (15.0, 25.0, 50.0),
    missing: tuple[float, ...] = (0.5, 0.8),
    methods: tuple[str, ...] = ("noisy", "bm3d", "tvae", "gsvae"),
    reps: int = 2,
    artifacts: bool = True,
    size: int = 24,
    n_fields: int = 16,
    patch: int = 5,
    failures: dict[tuple[str, str, int], str] | None = None,
    psnr_shift: dict[str, float] | None = None,
    time_scale: float = 1.0,
    run_id: str | None = None,
) -> Path:
    """Write a run with denoising (``sigmas``) and inpainting (``missing``) cells.

    ``failures`` maps (method, image, rep) to a status ("error", "timeout", "skipped") for every
    level of that cell; ``psnr_shift`` adds dB per method (to fake a regression). (Fifteen
    keyword parameters: each is one knob of the fake grid a test may turn.)
    """
    folder = Path(folder)
    run_id = run_id or folder.name
    folder.joinpath("artifacts").mkdir(parents=True, exist_ok=True)
    fake = _Fake(folder, run_id, seed, size, n_fields, patch, artifacts, failures or {},
                 psnr_shift or {}, time_scale)
    grid = [("denoise", "gaussian", {"sigma": s}) for s in sigmas]
    grid += [("inpaint", "inpaint", {"missing": m, "per": "pixel"}) for m in missing]
    records = [fake.record(image, task, degradation, deg, rep, method)
               for image in images for task, degradation, deg in grid for rep in range(reps)
               for method in methods if not (task == "inpaint" and method in ("bm3d", "noisy"))]
    RunStore(folder.parent, folder.name).write_tables(records)
    manifest = {
        "run_id": run_id, "evobench_version": "0.1.0", "evobench_schema": 1,
        "command": ["evobench", "synthetic"], "started_at": "2026-01-01T00:00:00+00:00",
        "git": {"commit": "0123456789abcdef0123456789abcdef01234567", "dirty": True},
        "machine": {"cpu": "synthetic", "cores": 2, "ram_gb": 8.0, "gpu": ""},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    (folder / "config.toml").write_text('suite = "synthetic"\nprofile = "smoke"\n')
    return folder


class _Fake:
    """Plausible rows, traces and artifacts for one synthetic run."""

    def __init__(self, folder, run_id, seed, size, n_fields, patch, artifacts, failures,
                 psnr_shift, time_scale):
        """(Eleven parameters: ``make_run``'s knobs, kept for every cell.)"""
        self.folder, self.run_id, self.seed = folder, run_id, seed
        self.n_fields, self.patch, self.artifacts = n_fields, patch, artifacts
        self.failures, self.psnr_shift, self.time_scale = failures, psnr_shift, time_scale
        self.clean = _clean(size)
        self.art_rng = np.random.default_rng([seed, 1])  # artifacts and traces

    def record(self, image, task, degradation, deg, rep, method) -> dict:
        label, gain, seconds = METHODS[method]
        params = {"S": 64} if method == "tvae" else {}
        identity = {"dataset": "set12", "dataset_params": {}, "image": image,
                    "degradation": degradation, "deg_params": deg, "method": method,
                    "method_params": params, "rep": rep, "base_seed": self.seed}
        key = digest(identity)
        rng = np.random.default_rng([self.seed, int(key[:8], 16)])  # per cell: stable
        sigma, frac = deg.get("sigma", np.nan), deg.get("missing", np.nan)
        level = sigma if task == "denoise" else 10 * frac
        psnr_in = 20 * np.log10(255 / level) if task == "denoise" else 6 + 5 * (1 - frac)
        psnr = psnr_in + gain + self.psnr_shift.get(method, 0.0) + rng.normal(0, 0.1)
        psnr += 12 if task == "inpaint" else 0
        status = self.failures.get((method, image, rep), "ok")
        ok = status == "ok"
        total = seconds * self.time_scale * (1 + 0.05 * rng.random())
        art = ""
        if self.artifacts and ok:
            art = f"artifacts/{key}.npz"
            _write_artifact(self.folder / art, self.clean, task, level, method, self.art_rng,
                            self.n_fields, self.patch, psnr)
        row = dict.fromkeys(ROW_ORDER, np.nan) | dict.fromkeys(STRING_COLUMNS, "")
        row |= {
            "run_id": self.run_id, "cell_key": key, "suite": "synthetic", "profile": "smoke",
            "dataset": "set12", "dataset_params": "{}", "image": image, "image_name": image,
            "color": "gray", "task": task, "degradation": degradation, "p_deg_sigma": sigma,
            "sigma01": sigma / 255, "p_deg_missing": frac,
            "p_deg_per": deg.get("per", ""), "deg_params": canonical_json(deg),
            "method": method, "method_label": label, "method_version": "1",
            "method_params": canonical_json(params), "rep": rep, "base_seed": self.seed,
            "noise_seed": int(key[8:15], 16), "method_seed": int(rng.integers(2**31)),
            "status": status, "error": "" if ok else f"synthetic {status}",
            "psnr_input": psnr_in, "ssim_input": 0.2, "data_range": 1.0,
            "metric_variant": "psnr: float64 whole-image, data_range=1.0, no clipping",
            "peak_rss_mb": 300.0 + 10 * rng.random(), "rss_start_mb": 150.0,
            "device": "cpu", "threads": 2, "jobs": 2, "loadavg_1m": 1.0, "host": "synthetic",
            "started_at": "2026-01-01T00:00:00.000+00:00",
            "finished_at": "2026-01-01T00:01:00.000+00:00", "evobench_version": "0.1.0",
            "executor": "local", "resumes": 0,
        }
        if ok:
            row |= {"psnr": psnr, "ssim": min(0.99, 0.3 + psnr / 60), "time_fit_s": 0.9 * total,
                    "time_infer_s": 0.1 * total, "time_total_s": total, "cpu_s": 1.8 * total}
        if method == "tvae":
            row |= {"p_method_S": 64, "x_active_mean": 3.0, "x_pi_sum": 2.9}
        elif method == "gsvae":
            row["x_active_mean"] = 9.0
        trace = self._trace(key, method, psnr, total) if ok else []
        return {"row": row | {"artifact": art}, "trace": trace}

    def _trace(self, key, method, psnr, total) -> list[dict]:
        if method not in ("tvae", "gsvae"):
            return []
        return [{"epoch": int(e),
                 "free_energy": -200.0 + 150 * np.exp(-e / 3) + self.art_rng.normal(0, 1),
                 "psnr": psnr - 6 * np.exp(-e / 3), "seconds": total / 10 * (e + 1)}
                for e in range(10)]


def _write_artifact(file, clean, task, level, method, rng, n_fields, patch, psnr):
    """Arrays of one ok cell. (Nine parameters: the cell's facts the arrays are drawn from.)"""
    noise = rng.normal(0, level / 255 if task == "denoise" else 0.0, clean.shape)
    corrupted = clean + noise
    mask = None
    if task == "inpaint":
        mask = rng.random(clean.shape) < level / 10
        corrupted = np.where(mask, np.nan, clean)
    err = 10 ** (-psnr / 20)
    arrays = {
        "clean": clean.astype(np.float32),
        "corrupted": corrupted.astype(np.float32),
        "restored": (clean + rng.normal(0, err, clean.shape)).astype(np.float32),
    }
    if mask is not None:
        arrays["mask"] = mask
    if method in ("tvae", "gsvae"):
        h = n_fields
        yy, xx = np.mgrid[0:patch, 0:patch] / patch
        angles = np.linspace(0, np.pi, h, endpoint=False)[:, None, None]
        arrays["fields"] = np.cos(6 * (xx * np.cos(angles) + yy * np.sin(angles))).astype(np.float32)
        mean_active = 3.0 if method == "tvae" else 7.0
        k = np.arange(h + 1)
        hist = np.exp(-0.5 * ((k - mean_active) / 1.5) ** 2) * 500
        arrays["active_hist"] = hist.astype(np.float32)
    np.savez_compressed(file, **arrays)
