"""Speed of the method plugins (``pytest benchmarks/test_bench_methods.py --benchmark-enable``):
BM3D on the full 256 x 256 House, and one GSVAE training epoch (default model) on a fixed
64 x 64 crop. Each records its CPU time and PSNR beside the wall time, since wall times on a
shared machine are noisy."""

from __future__ import annotations

import time

import numpy as np
import pytest

from evobench.api import run_method


def _psnr(clean, est) -> float:
    return float(10 * np.log10(1.0 / np.mean((est - clean) ** 2)))


def test_bm3d_house(benchmark, house, house_noisy):
    pytest.importorskip("bm3d")
    noisy, sigma = house_noisy
    cpu0 = time.process_time()
    out = benchmark.pedantic(run_method, args=("bm3d", noisy),
                             kwargs=dict(task="denoise", sigma=sigma), rounds=3, iterations=1)
    benchmark.extra_info["cpu_s_per_round"] = round((time.process_time() - cpu0) / 3, 3)
    benchmark.extra_info["psnr"] = round(_psnr(house, out.image), 3)
    assert benchmark.extra_info["psnr"] > 32.7


def test_gsvae_one_epoch(benchmark, image256):
    pytest.importorskip("torch")
    clean = image256[96:160, 96:160]
    noisy = clean + 25 / 255 * np.random.default_rng(0).standard_normal(clean.shape)
    cpu0 = time.process_time()
    out = benchmark.pedantic(run_method, args=("gsvae", noisy),
                             kwargs=dict(task="denoise", sigma=25 / 255, epochs=1),
                             rounds=3, iterations=1)
    benchmark.extra_info["cpu_s_per_round"] = round((time.process_time() - cpu0) / 3, 3)
    benchmark.extra_info["time_fit_s"] = round(out.time_fit_s, 3)
    benchmark.extra_info["psnr_gain"] = round(_psnr(clean, out.image) - _psnr(clean, noisy), 3)
    benchmark.extra_info["torch_threads"] = __import__("torch").get_num_threads()
    assert out.extras["epochs"] == 1
