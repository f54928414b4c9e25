"""The learned zero-shot baselines beside TVAE and BM3D on the full House image (Set12 02.png,
256 x 256) at sigma 25, noise ``np.random.default_rng(0)``: PSNR, SSIM, wall and CPU seconds and
peak memory, at each method's default and at an equal wall-clock budget. Not a test (minutes
per method on a CPU)::

    python benchmarks/zeroshot_house.py                       # defaults, every method
    python benchmarks/zeroshot_house.py --budget 60 -m dip -m zsn2n

Each method runs in a fresh process (its own peak RSS), on one thread, one after the other.
House comes from the dataset cache (``evobench data fetch set12``; EVOBENCH_DATA_DIR). One JSON
line per run on stdout; ``--markdown`` prints the table docs/methods.md shows.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

METHODS = {
    "bm3d": {}, "zsn2n": {}, "dip": {}, "noise2self": {}, "self2self": {},
    "tvae[preset=quick]": {"preset": "quick"}, "tvae[preset=house-25+]": {"preset": "house-25+"},
}


def one(label: str, budget: float | None, seed: int) -> dict:
    """Runs inside the child process."""
    import resource
    import time

    import numpy as np
    import torch
    from skimage.metrics import structural_similarity

    from evobench.api import MethodContext, get_registry, run_method
    from evobench.specs import load_object

    torch.set_num_threads(1)
    clean = load_object(get_registry().dataset("set12").loader)("02")
    noisy = clean + 25 / 255 * np.random.default_rng(0).standard_normal(clean.shape)
    name = label.split("[")[0]
    ctx = MethodContext(budget_s=budget)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    out = run_method(name, noisy, task="denoise", sigma=25 / 255, seed=seed, ctx=ctx,
                     **METHODS[label])
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    mse = float(np.mean((out.image - clean) ** 2))
    return {"method": label, "budget_s": budget, "seed": seed,
            "psnr_noisy": round(10 * np.log10(1 / np.mean((noisy - clean) ** 2)), 2),
            "psnr": round(10 * np.log10(1 / mse), 2),
            "ssim": round(float(structural_similarity(clean, out.image, data_range=1.0)), 4),
            "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
            "fit_s": round(float(out.time_fit_s or 0.0), 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "iterations": out.extras.get("iterations", out.extras.get("epochs")),
            "load_1m": round(os.getloadavg()[0], 2)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-m", "--method", action="append", choices=list(METHODS))
    parser.add_argument("--budget", type=float, default=None, help="wall-clock fit budget, s")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(one(args.child, args.budget, args.seed)), flush=True)
        return 0
    rows = []
    for label in args.method or list(METHODS):
        cmd = [sys.executable, __file__, "--child", label, "--seed", str(args.seed)]
        if args.budget is not None:
            cmd += ["--budget", str(args.budget)]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            print(f"{label}: failed: {done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.markdown:
        print("\n| method | budget | PSNR | SSIM | wall s | CPU s | iterations/epochs | peak RSS MB "
              "| load |\n|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            budget = "default" if r["budget_s"] is None else f"{r['budget_s']:g} s"
            print(f"| {r['method']} | {budget} | {r['psnr']:.2f} | {r['ssim']:.4f} | "
                  f"{r['wall_s']} | {r['cpu_s']} | {r['iterations']} | {r['peak_rss_mb']} | "
                  f"{r['load_1m']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
