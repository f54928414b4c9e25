"""Measure the rates behind ``evobench run --dry-run``'s cost estimate on this machine.

Runs each method briefly (one thread, one cell at a time) on a centre crop of House and prints
the rates the cost models read (``plugins/*/cost.py``): seconds per epoch per 1000 patches for
each tvae preset and for gsvae (defaults), per iteration per 128 x 128 pixels for the
zero-shot methods, per megapixel for the classical methods (biharmonic: per missing
megapixel, at 50 % and 80 % missing). Copy the printed numbers into the plugins' tables by hand.

    PYTHONPATH=.:plugins python benchmarks/calibrate_cost.py [OUT] [PART,...]

PART picks what to measure (default all): tvae, gsvae, zeroshot, classic, biharmonic.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

TVAE = ["quick", "house-25", "house-50", "barbara-25", "house-inpaint-50", "castle-inpaint-50",
        "castle-inpaint-80"]
ZEROSHOT = {"dip": 30, "zsn2n": 100, "noise2self": 30, "self2self": 30}
CLASSIC = ["bm3d", "nlm", "tv", "wavelet", "noisy"]


def _run(out: Path, name: str, dataset: str, methods: list[str], deg: list[str]) -> pd.DataFrame:
    cmd = [sys.executable, "-m", "evobench", "run", "--out", str(out), "--run-name", name,
           "-d", dataset, "-j", "1", "--threads-per-cell", "1", "--quiet", "--no-save-images"]
    for m in methods:
        cmd += ["-m", m]
    cmd += deg
    subprocess.run(cmd, check=False)
    return pd.read_parquet(out / name / "results.parquet")


def gsvae(out: Path) -> None:
    crop = 40  # 33 x 33 = 1089 patches of 8 x 8; 2 and 6 epochs, so start-up and per-epoch part
    patches = (crop - 8 + 1) ** 2
    times = {}
    for epochs in (2, 6):
        frame = _run(out, f"gsvae-{epochs}", f"set12[images=house,crop={crop}]",
                     [f"gsvae[epochs={epochs}]"], ["--sigma", "25"])
        times[epochs] = frame.iloc[0].time_total_s
    per_epoch = (times[6] - times[2]) / 4
    print(f"gsvae: {per_epoch / patches * 1000:.3f} s/epoch/1000 patches, overhead "
          f"{times[2] - 2 * per_epoch:.2f} s (total {times[2]:.2f} s at 2 epochs, {times[6]:.2f} s "
          "at 6)", flush=True)


def biharmonic(out: Path) -> None:
    for missing in (0.5, 0.8):
        frame = _run(out, f"biharmonic-{missing}", "set12[images=house]", ["biharmonic"],
                     ["--suite", "inpaint", "--missing", str(missing)])
        row = frame.iloc[0]
        print(f"biharmonic at {missing:.0%} missing: "
              f"{row.time_total_s / (256 * 256 * missing / 1e6):.3f} s/missing megapixel "
              f"(total {row.time_total_s:.2f} s, {row.status})", flush=True)


def tvae(out: Path) -> None:
    crop = 40
    for preset in TVAE:
        rgb = preset.startswith("castle")
        dataset = f"castle[crop={crop}]" if rgb else f"set12[images=house,crop={crop}]"
        deg = (["--missing", "0.5"] if "inpaint" in preset else ["--sigma", "25"])
        if "inpaint" in preset:
            deg = ["--suite", "inpaint", *deg]
        frame = _run(out, f"tvae-{preset}", dataset, [f"tvae[preset={preset},epochs=2]"], deg)
        row = frame.iloc[0]
        p = {"quick": 8, "house-25": 8, "barbara-25": 8, "castle-inpaint-50": 5}.get(preset, 12)
        patches = (crop - p + 1) ** 2
        print(f"tvae {preset}: {row.time_fit_s / 2 / patches * 1000:.3f} s/epoch/1000 patches "
              f"({row.status})", flush=True)


def zeroshot(out: Path) -> None:
    for method, iters in ZEROSHOT.items():
        frame = _run(out, f"zs-{method}", "set12[images=house,crop=128]",
                     [f"{method}[iterations={iters}]"], ["--sigma", "25"])
        row = frame.iloc[0]
        print(f"{method}: {row.time_total_s / iters:.4f} s/iteration/128x128 (fit "
              f"{row.time_fit_s:.2f} s, total {row.time_total_s:.2f} s, {row.status})", flush=True)


def classic(out: Path) -> None:
    frame = _run(out, "classic", "set12[images=house]", CLASSIC, ["--sigma", "25"])
    for _, row in frame.iterrows():
        print(f"{row.method}: {row.time_total_s / (256 * 256 / 1e6):.3f} s/megapixel "
              f"({row.status})", flush=True)


PARTS = {"tvae": tvae, "gsvae": gsvae, "zeroshot": zeroshot, "classic": classic,
         "biharmonic": biharmonic}

if __name__ == "__main__":
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/evobench-calibration")
    for part in (sys.argv[2].split(",") if len(sys.argv) > 2 else PARTS):
        PARTS[part](folder)
