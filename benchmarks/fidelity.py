"""Fidelity runs of issue 14: the faithful yard-stick and its ``+`` variant on the published
code's own noisy House (sigma 25), several seeds; and house-25 faithful vs ``+`` sparsity after a
few epochs. Not a test (minutes per run on a CPU): ``python benchmarks/fidelity.py --help``.

The noisy image is ``reference-noise/house-sigma25-torchseed0.npy`` from the dataset cache
(EVOBENCH_DATA_DIR or ../shared/data); House itself is Set12's 02.png. Writes one JSON line per
run to stdout: PSNR at every epoch, F/N on the 0..255 scale, sum(pi) and active units.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from skimage.io import imread

from evobench.tvae import denoise

YARDSTICK = dict(S=32, P=5, C=4, G=1)


def data_dir() -> Path:
    env = os.environ.get("EVOBENCH_DATA_DIR")
    here = Path(__file__).resolve().parents[2] / "shared" / "data"
    path = Path(env) if env else here
    if not (path / "reference-noise").is_dir():
        sys.exit(f"no reference-noise/ under {path}; set EVOBENCH_DATA_DIR to the data cache")
    return path


def run(preset: str, seed: int, epochs: int, extra: dict) -> dict:
    root = data_dir()
    clean = imread(root / "set12" / "02.png").astype(np.float64) / 255.0
    noisy = np.load(root / "reference-noise" / "house-sigma25-torchseed0.npy") / 255.0
    t0 = time.perf_counter()
    res = denoise(noisy, sigma=25 / 255, preset=preset, seed=seed, clean=clean, epochs=epochs,
                  eval_every=1, **extra)
    D = res.config["patch_size"] ** 2
    shift = D * math.log(255.0)  # F/N on [0, 1] -> on 0..255
    return {
        "preset": preset, "seed": seed, "epochs": epochs, "extra": extra,
        "psnr": [r.get("psnr") for r in res.trace],
        "F_255": [r["free_energy"] - shift for r in res.trace],
        "pi_sum_trace": [r["pi_sum"] for r in res.trace],
        "pi_sum": res.sparsity["pi_sum"], "active_mean": res.sparsity["active_mean"],
        "epoch_seconds": [r["epoch_seconds"] for r in res.trace],
        "wall_s": time.perf_counter() - t0, "threads": torch.get_num_threads(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--presets", default="house-25,house-25+")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--full", action="store_true",
                    help="the presets' own S/P/C/G instead of the yard-stick's S=32 P=5 C=4 G=1")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="one more override, e.g. --set output_init=data (ablations)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    extra = {} if args.full else dict(YARDSTICK)
    for item in args.set:
        key, _, value = item.partition("=")
        extra[key] = value
    for preset in args.presets.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            print(json.dumps(run(preset, seed, args.epochs, extra)), flush=True)


if __name__ == "__main__":
    main()
