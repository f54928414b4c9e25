"""Where a TVAE epoch spends its time: a phase profile on the full House (not a test).

    python benchmarks/profile_tvae.py CONFIG [EPOCHS] [--threads N] [--json OUT]

CONFIG is ``yard-stick`` (8x8, H=64, 64-64-64, S=32, P=5 C=4 G=1), ``house-25`` or ``house-50``
(the paper presets). Phases are timed (CPU time of this process: robust to other jobs on a shared machine) by
wrapping the engine's functions, so the profile runs the E-step in line (one thread, no worker
overlap) and the phases add up to about the epoch:

- rescoring: log-joints of the current K_n at the start of each E-step
- children: log-joints of the evolutionary children
- estep-rest: parent selection, mutation, dedup and the top-S choice (E-step minus the above)
- mstep-forward: the rest of the epoch (M-step decoder forward, log-joints, posteriors,
  bookkeeping); backward and adam: the hand-written backprop and the Adam update
- estimate: the posterior-mean estimate of all patches (once, after the last epoch)
Prints one JSON object: per-epoch CPU and wall times, per-phase seconds per epoch (median over the
epochs after the first, or the last epoch when only one ran), peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

CONFIGS = {
    "yard-stick": ("quick", dict(patch_size=8, stride=1, H=64, hidden=(64,), S=32, P=5, C=4,
                                 G=1, batch_size=32, output_init="data", selection="best")),
    "house-25": ("house-25", dict(output_init="data", selection="best")),
    "house-50": ("house-50", dict(output_init="data", selection="best")),
    "barbara-25": ("barbara-25", dict(output_init="data", selection="best")),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("config", choices=sorted(CONFIGS))
    ap.add_argument("epochs", type=int, nargs="?", default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json")
    ap.add_argument("--timing", action="store_true",
                    help="no phase wrappers: the engine as it runs (worker overlap with >= 2 "
                         "threads); reports wall and CPU s/epoch and peak RSS only")
    ap.add_argument("--patches", type=int, default=0,
                    help="use only a random subset of this many patches (quicker profiles)")
    ap.add_argument("--barbara", action="store_true", help="use Barbara (Set12 08.png)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from skimage.io import imread

    import evobench.tvae.evolution as evo
    import evobench.tvae.training as training
    from evobench.patches import extract_patches
    from evobench.tvae.config import make_config
    from evobench.tvae.pipeline import build_trainer
    from evobench.tvae.presets import get_preset

    data = Path(os.environ.get("EVOBENCH_DATA_DIR", "/work/shared/data"))
    clean = imread(data / "set12" / ("08.png" if args.barbara else "02.png")) / 255.0
    noisy = clean + 25 / 255 * np.random.default_rng(0).standard_normal(clean.shape)
    preset, ov = CONFIGS[args.config]
    base = get_preset(preset)
    ov = {k: v for k, v in ov.items() if hasattr(base, k)}  # older engines lack some fields
    cfg = make_config(base, ov)
    Y = extract_patches(noisy, cfg.patch_size, cfg.stride) * cfg.scale
    if args.patches:
        Y = Y[np.random.default_rng(1).permutation(len(Y))[:args.patches]]
    tr = build_trainer(Y, None, cfg, torch.Generator().manual_seed(0),
                       float(np.var(Y, 0).mean()))
    def timed_epoch() -> tuple[float, float]:
        """One epoch as run_epochs runs it (denormals flushed); (wall s, CPU s)."""
        torch.set_flush_denormal(True)
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            tr.epoch()
        finally:
            torch.set_flush_denormal(False)
        return time.perf_counter() - t0, time.process_time() - c0

    if args.timing:
        walls, cpus = [], []
        for _ in range(args.epochs):
            wall, cpu = timed_epoch()
            walls.append(wall)
            cpus.append(cpu)
        late = walls[3:] or walls[1:] or walls
        out = {"config": args.config, "N": tr.N, "threads": args.threads,
               "epoch_wall_s": [round(w, 2) for w in walls],
               "epoch_cpu_s": [round(c, 2) for c in cpus],
               "median_wall_s_after_3rd": round(statistics.median(late), 2),
               "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
               "load_1m": os.getloadavg()[0]}
        print(json.dumps(out))
        if args.json:
            Path(args.json).write_text(json.dumps(out, indent=1))
        return
    tr.overlap = False  # phases are timed in line
    if hasattr(tr, "workers"):
        tr.workers = 1

    acc: dict[str, float] = defaultdict(float)

    def timed(name, fn):
        def wrapper(*a, **k):
            t0 = time.process_time()
            try:
                return fn(*a, **k)
            finally:
                acc[name] += time.process_time() - t0
        return wrapper

    S = cfg.S
    for fname in ("chunked_log_joint",):
        f = getattr(evo, fname, None)  # the E-step's log-joint passes, by what they score
        if f is None:
            continue

        def split(*a, _f=f, _n=fname, **k):
            states = a[2] if len(a) > 2 and a[2] is not None else k.get("keys")
            kind = "rescoring" if states is not None and states.shape[1] == S else "children"
            t0 = time.process_time()
            try:
                return _f(*a, **k)
            finally:
                acc[kind] += time.process_time() - t0
        setattr(evo, fname, split)
    for fname in ("estep", "evaluate", "select"):  # the E-step: one call, or search + selection
        if hasattr(training, fname):
            setattr(training, fname, timed("estep", getattr(training, fname)))
    dec_cls = type(tr.model.decoder)
    dec_cls.backward_from_output = timed("backward", dec_cls.backward_from_output)
    tr.opt.step = timed("adam", tr.opt.step)

    rows, walls, wall_clock = [], [], []
    for _ in range(args.epochs):
        acc.clear()
        wall, cpu = timed_epoch()
        walls.append(cpu)  # phases are CPU time, so the epoch is too
        wall_clock.append(wall)
        r = dict(acc)
        r["estep-rest"] = r.get("estep", 0.0) - r.get("rescoring", 0.0) - r.get("children", 0.0)
        r["mstep-forward"] = walls[-1] - r.get("estep", 0.0) - r.get("backward", 0.0) - r.get(
            "adam", 0.0)
        rows.append(r)
    t0 = time.process_time()
    tr.estimate()
    est = time.process_time() - t0
    keep = rows[1:] if len(rows) > 1 else rows
    phases = ("rescoring", "children", "estep-rest", "mstep-forward", "backward", "adam")

    out = {
        "config": args.config, "N": tr.N, "threads": args.threads, "epochs": args.epochs,
        "epoch_cpu_s": [round(w, 2) for w in walls],
        "epoch_wall_s": [round(w, 2) for w in wall_clock],
        "median_epoch_cpu_s": round(statistics.median(walls[1:] if len(walls) > 1 else walls),
                                    2),
        "phases_s": {p: round(statistics.median(r.get(p, 0.0) for r in keep), 3)
                     for p in phases} | {"estimate": round(est, 3)},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "load_1m": os.getloadavg()[0],
    }
    print(json.dumps(out))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
