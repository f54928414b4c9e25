"""A schema-exact synthetic run folder, written without running any method.

Tests, benchmarks and the docs exercise the report commands on it: it follows the results-store
layout of docs/architecture.md column for column (results, traces, manifest, config, artifacts),
with plausible numbers drawn from one seed, so every report path has data without minutes of
training.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from evobench.reports.merge import write_table

# method -> (label, PSNR offset in dB against the noisy input, seconds per cell)
METHODS = {
    "noisy": ("noisy", 0.0, 0.001),
    "bm3d": ("bm3d", 8.0, 1.5),
    "tvae": ("tvae[S=64]", 8.4, 40.0),
    "gsvae": ("gsvae", 6.5, 20.0),
}


def _key(identity: dict) -> str:
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


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
    level of that cell; ``psnr_shift`` adds dB per method (to fake a regression).
    """
    folder = Path(folder)
    run_id = run_id or folder.name
    art_rng = np.random.default_rng([seed, 1])  # artifacts and traces
    failures = failures or {}
    psnr_shift = psnr_shift or {}
    (folder / "artifacts").mkdir(parents=True, exist_ok=True)
    rows, traces = [], []
    grid = [("denoise", "gaussian", s, np.nan) for s in sigmas]
    grid += [("inpaint", "random_pixels", np.nan, m) for m in missing]
    clean = _clean(size)
    for image in images:
        for task, degradation, sigma, frac in grid:
            deg = {"sigma": sigma} if task == "denoise" else {"fraction": frac, "per": "pixel"}
            for rep in range(reps):
                noise_seed = int(_key({"image": image, "deg": deg, "rep": rep})[:7], 16)
                for method in methods:
                    if task == "inpaint" and method in ("bm3d", "noisy"):
                        continue
                    label, gain, seconds = METHODS[method]
                    params = {"S": 64} if method == "tvae" else {}
                    identity = {
                        "suite": "synthetic", "dataset": "set12", "image": image, "task": task,
                        "degradation": degradation, "deg_params": deg, "method": method,
                        "method_params": params, "rep": rep, "base_seed": seed,
                    }
                    key = _key(identity)
                    rng = np.random.default_rng([seed, int(key[:8], 16)])  # per cell: stable
                    level = sigma if task == "denoise" else 10 * frac
                    psnr_in = 20 * np.log10(255 / level) if task == "denoise" else 6 + 5 * (1 - frac)
                    psnr = psnr_in + gain + psnr_shift.get(method, 0.0) + rng.normal(0, 0.1)
                    if task == "inpaint":
                        psnr += 12
                    status = failures.get((method, image, rep), "ok")
                    ok = status == "ok"
                    total = seconds * time_scale * (1 + 0.05 * rng.random())
                    art = ""
                    if artifacts and ok:
                        art = f"artifacts/{key}.npz"
                        _write_artifact(folder / art, clean, task, level, method, art_rng,
                                        n_fields, patch, psnr)
                    rows.append({
                        "run_id": run_id, "cell_key": key, "suite": "synthetic",
                        "profile": "smoke", "dataset": "set12", "image": image, "color": "gray",
                        "task": task, "degradation": degradation, "p_deg_sigma": sigma,
                        "sigma01": sigma / 255 if task == "denoise" else np.nan,
                        "p_deg_missing": frac, "p_deg_per": "" if task == "denoise" else "pixel",
                        "deg_params": json.dumps(deg, sort_keys=True), "method": method,
                        "method_label": label, "method_version": "1",
                        "method_params": json.dumps(params, sort_keys=True),
                        "p_method_S": 64.0 if method == "tvae" else np.nan,
                        "rep": rep, "base_seed": seed, "noise_seed": noise_seed,
                        "method_seed": int(rng.integers(2**31)),
                        "status": status, "error": "" if ok else f"synthetic {status}",
                        "psnr": psnr if ok else np.nan,
                        "ssim": min(0.99, 0.3 + psnr / 60) if ok else np.nan,
                        "psnr_input": psnr_in, "ssim_input": 0.2,
                        "data_range": 1.0, "metric_variant": "float,data_range=1,no-clip",
                        "time_fit_s": 0.9 * total if ok else np.nan,
                        "time_infer_s": 0.1 * total if ok else np.nan,
                        "time_total_s": total if ok else np.nan,
                        "cpu_s": 1.8 * total if ok else np.nan,
                        "peak_rss_mb": 300.0 + 10 * rng.random(), "peak_gpu_mb": np.nan,
                        "x_active_mean": 3.0 if method == "tvae" else (
                            9.0 if method == "gsvae" else np.nan),
                        "x_pi_sum": 2.9 if method == "tvae" else np.nan,
                        "device": "cpu", "threads": 2, "loadavg_1m": 1.0, "host": "synthetic",
                        "started_at": "2026-01-01T00:00:00+00:00",
                        "finished_at": "2026-01-01T00:01:00+00:00",
                        "evobench_version": "0.1.0", "artifact": art,
                    })
                    if method in ("tvae", "gsvae") and ok:
                        epochs = np.arange(10)
                        for e in epochs:
                            traces.append({
                                "cell_key": key, "method": method, "epoch": int(e),
                                "free_energy": -200.0 + 150 * np.exp(-e / 3) + art_rng.normal(0, 1),
                                "psnr": psnr - 6 * np.exp(-e / 3),
                                "seconds": total / 10 * (e + 1),
                            })
    write_table(pd.DataFrame(rows), folder / "results.parquet")
    if traces:
        write_table(pd.DataFrame(traces), folder / "traces.parquet")
    manifest = {
        "run_id": run_id, "evobench_version": "0.1.0", "evobench_schema": 1,
        "command": ["evobench", "synthetic"], "started_at": "2026-01-01T00:00:00+00:00",
        "git": {"commit": "0123456789abcdef0123456789abcdef01234567", "dirty": True},
        "machine": {"cpu": "synthetic", "cores": 2, "ram_gb": 8.0, "gpu": ""},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    (folder / "config.toml").write_text('suite = "synthetic"\nprofile = "smoke"\n')
    return folder


def _write_artifact(file, clean, task, level, method, rng, n_fields, patch, psnr):
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
