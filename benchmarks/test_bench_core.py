"""Micro-benchmarks of the shared hot paths outside the engine: patch extraction and merging on
a 256 x 256 image (every patch-based method pays them), and reading/comparing a results store
(every report and the CI regression step pay those)."""

from __future__ import annotations

import numpy as np
import pytest

from evobench.patches import extract_patches, merge_patches
from evobench.reports.compare import compare_frames, parse_fail_on
from evobench.reports.load import load_runs, read_results
from evobench.reports.tables import render_summary


@pytest.mark.parametrize("patch", [8, 12])
def test_extract_patches(benchmark, image256, patch):
    out = benchmark(extract_patches, image256, patch, 1)
    assert out.shape == ((256 - patch + 1) ** 2, patch * patch)
    benchmark.extra_info["patches"] = out.shape[0]


@pytest.mark.parametrize("weighting", ["mean", "gaussian"])
def test_merge_patches(benchmark, image256, weighting):
    patches = extract_patches(image256, 8, 1)
    merged = benchmark.pedantic(merge_patches, args=(patches, image256.shape, 8, 1, weighting),
                                rounds=5, iterations=1, warmup_rounds=1)
    np.testing.assert_allclose(merged, image256, atol=1e-12)


def test_merge_patches_rgb_with_missing(benchmark, image256, rng):
    image = np.stack([image256] * 3, axis=-1)
    patches = extract_patches(image, 8, 1)
    patches[rng.random(patches.shape) < 0.5] = np.nan  # missing entries do not vote
    merged = benchmark.pedantic(merge_patches, args=(patches, image.shape, 8, 1),
                                rounds=3, iterations=1, warmup_rounds=1)
    # inside, 64 patches vote per entry, so some vote is valid; corners have a single voter
    inner = merged[8:-8, 8:-8]
    np.testing.assert_allclose(inner, image[8:-8, 8:-8], atol=1e-12)


def test_load_run(benchmark, results_run):
    data = benchmark(load_runs, [results_run])
    assert len(data.results) == 12 * (3 * 4 + 2 * 2) * 3


def test_compare_runs(benchmark, results_run):
    base = read_results(results_run)
    cand = base.copy()
    cand["psnr"] -= 0.01
    gates = parse_fail_on("psnr:-0.05,ssim:-0.002,time_total_s:+25%", base.columns)
    comp = benchmark.pedantic(compare_frames, args=(base, cand, gates), rounds=3, iterations=1)
    assert not comp.failed


def test_render_summary(benchmark, results_run):
    df = read_results(results_run)
    text = benchmark.pedantic(render_summary, args=(df, "text"), rounds=3, iterations=1)
    assert "PSNR (dB) of the final image: denoise on set12, mean over 12 images" in text
