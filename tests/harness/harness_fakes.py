"""A test plugin with methods that behave well, crash, hang, die or print, so the harness's
isolation, timeouts and error rows are exercised for real (in worker processes)."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from evobench.api import DegradationSpec, Degraded, MethodOutput, MethodSpec, Param, hookimpl

BOTH = frozenset({"denoise", "inpaint"})


def run_ok(call, ctx, *, strength=0.5):
    """A 3x3 box blur mixed with the input; extras/trace/artifacts like a latent-variable model,
    and a seed-dependent extra so tests can check that the method seed arrives."""
    image, mask, seed = call.image, call.mask, call.seed
    filled = image if mask is None else np.where(mask, np.nanmean(image), image)
    size = (3, 3) if filled.ndim == 2 else (3, 3, 1)
    out = strength * ndimage.uniform_filter(filled, size=size) + (1 - strength) * filled
    rng = np.random.default_rng(seed)
    return MethodOutput(
        out, extras={"active_mean": float(rng.random()), "pi_sum": 1.5, "note": "x"},
        time_fit_s=0.01, time_infer_s=0.02,
        trace=[{"epoch": 1, "free_energy": -2.0, "seconds": 0.1},
               {"epoch": 2, "free_energy": -1.0, "seconds": 0.1}],
        artifacts={"active_hist": np.array([1.0, 2.0, 3.0])})


def run_latent(call, ctx, **kwargs):
    """A trace of numpy scalars and a non-scalar, and latent-code artifacts besides another
    array: what a worker keeps of a latent-variable model's output."""
    return MethodOutput(call.image, trace=[{"epoch": np.int64(1), "free_energy": np.float32(-2.0),
                                            "units": [1, 2]}],
                        artifacts={"fields": np.ones((2, 3, 3)), "scratch": np.zeros(2)})


def run_snapshots(call, ctx):
    """Three 'epochs' of ever stronger blur; estimates kept at epochs 1 and 2 (a schedule), the
    returned image is epoch 3's."""
    image, mask = call.image, call.mask
    filled = image if mask is None else np.where(mask, np.nanmean(image), image)
    size = (3, 3) if filled.ndim == 2 else (3, 3, 1)
    steps = [filled]
    for _ in range(3):
        steps.append(0.5 * ndimage.uniform_filter(steps[-1], size=size) + 0.5 * steps[-1])
    return MethodOutput(steps[3], trace=[{"epoch": e} for e in (1, 2, 3)],
                        snapshots={1: steps[1], 2: steps[2]})


def run_epochs(call, ctx, *, epochs=4):
    """A 'learned' method: reports epoch k/N and a PSNR while it runs, like tvae and gsvae."""
    for k in range(1, epochs + 1):
        time.sleep(0.3)  # above ctx.progress's rate limit: every epoch arrives
        ctx.progress(epoch=k, epochs=epochs, psnr=20.0 + k, loss=np.float64(1.0 / k))
    return run_ok(call, ctx)


def run_estimates(call, ctx):
    """Reports its estimate (the input itself) each epoch; only the harness can score it."""
    for k in (1, 2):
        ctx.progress(epoch=k, epochs=2, estimate=call.image)
    return MethodOutput(call.image)


def run_budget(call, ctx):
    """Reports the budget its context carries (NaN: none)."""
    budget = float("nan") if ctx.budget_s is None else ctx.budget_s
    sigma = float("nan") if call.sigma is None else call.sigma
    return MethodOutput(call.image, extras={"budget_seen": budget, "sigma_seen": sigma})


def halved_noise(clean, *, rng, sigma=25.0):
    """Gaussian noise of std ``sigma``/255 that claims half of it: the row must record what
    the method was told."""
    return Degraded(clean + sigma / 255 * rng.standard_normal(clean.shape), None, sigma / 510)


def run_threads(call, ctx):
    """Reports the thread limits it sees from inside its worker: torch's, every BLAS/OpenMP
    pool's (threadpoolctl) and the OpenMP variable."""
    import torch
    from threadpoolctl import threadpool_info

    pools = [int(p["num_threads"]) for p in threadpool_info()]
    return MethodOutput(call.image, extras={"torch_threads": torch.get_num_threads(),
                                       "pool_threads_max": max(pools, default=-1),
                                       "n_pools": len(pools),
                                       "omp_env": int(os.environ.get("OMP_NUM_THREADS", -1))})


def run_crash(call, ctx, **kwargs):
    raise ValueError("boom: the fake method crashed\nsecond line is dropped")


def run_hang(call, ctx, **kwargs):
    time.sleep(600)


def run_die(call, ctx, say=True, **kwargs):
    if say:
        print("about to die", file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


def run_nan(call, ctx, **kwargs):
    return MethodOutput(np.full_like(call.image, np.nan))


def run_logged(call, ctx, **kwargs):
    """Waits for the file ``$EVOBENCH_FAKE_GATE`` (if set), then appends its seed and the
    runner's PID to ``$EVOBENCH_FAKE_LOG``: which runner computed which cell, how often."""
    gate = os.environ.get("EVOBENCH_FAKE_GATE")
    deadline = time.monotonic() + 120
    while gate and not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.05)
    with open(os.environ["EVOBENCH_FAKE_LOG"], "a") as fh:
        fh.write(f"{call.seed} {os.environ.get('EVOBENCH_PARENT_PID', '?')}\n")
    return MethodOutput(call.image)


SPECS = (
    MethodSpec(name="fake-ok", factory="harness_fakes:run_ok", tasks=BOTH,
               params=(Param("strength", 0.5, float, low=0.0, high=1.0),), version="1"),
    MethodSpec(name="fake-epochs", factory="harness_fakes:run_epochs", tasks=BOTH,
               params=(Param("epochs", 4, int, low=1),)),
    MethodSpec(name="fake-crash", factory="harness_fakes:run_crash", tasks=BOTH),
    MethodSpec(name="fake-budgeted", factory="harness_fakes:run_budget", tasks=BOTH,
               budgeted=True),
    MethodSpec(name="fake-estimates", factory="harness_fakes:run_estimates", tasks=BOTH),
    MethodSpec(name="fake-threads", factory="harness_fakes:run_threads", tasks=BOTH),
    MethodSpec(name="fake-snapshots", factory="harness_fakes:run_snapshots", tasks=BOTH),
    MethodSpec(name="fake-hang", factory="harness_fakes:run_hang", tasks=BOTH),
    MethodSpec(name="fake-die", factory="harness_fakes:run_die", tasks=BOTH,
               params=(Param("say", True, bool),)),
    MethodSpec(name="fake-nan", factory="harness_fakes:run_nan", tasks=BOTH),
    MethodSpec(name="fake-grayonly", factory="harness_fakes:run_ok", tasks=BOTH,
               colors=frozenset({"gray"})),
    MethodSpec(name="fake-denoiser", factory="harness_fakes:run_ok",
               tasks=frozenset({"denoise"})),
    MethodSpec(name="fake-logged", factory="harness_fakes:run_logged", tasks=BOTH),
    MethodSpec(name="fake-spawner", factory="harness_fakes:run_spawner", tasks=BOTH,
               params=(Param("how", "subprocess", str, choices=("subprocess", "fork")),)),
    MethodSpec(name="fake-needs", factory="harness_fakes:run_ok", tasks=BOTH,
               requires=("evobench_no_such_module",)),
)


@hookimpl
def evobench_register_methods(register):
    for spec in SPECS:
        register(spec)


@hookimpl
def evobench_register_degradations(register):
    register(DegradationSpec(name="fake-halved", factory="harness_fakes:halved_noise",
                             task="denoise", params=(Param("sigma", 25.0, float, low=0.0),)))


def run_spawner(call, ctx, *, how="subprocess"):
    """Starts a ``sleep 600`` child (``subprocess`` or ``os.fork``), appends its PID to
    ``$EVOBENCH_FAKE_CHILDREN``, then hangs: its child must die with the cell."""
    if how == "fork":
        pid = os.fork()
        if pid == 0:
            time.sleep(600)
            os._exit(0)
    else:
        import subprocess

        pid = subprocess.Popen(["sleep", "600"]).pid
    with open(os.environ["EVOBENCH_FAKE_CHILDREN"], "a") as fh:
        fh.write(f"{pid}\n")
    time.sleep(600)


# A Dask-style host in a script: it runs one hanging cell through run_in_subprocess (a new
# session), as a Dask worker does; the orphan and litter tests kill -9 it.
DASK_STYLE_HOST = f"""
import sys
sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
import numpy as np
import harness_fakes
from evobench.harness import isolate
from evobench.harness.grid import Cell
cell = Cell(suite="s", profile="p", dataset="skimage", dataset_params={{}}, image="camera",
            image_name="camera", color="gray", degradation="gaussian", deg_params={{"sigma": 25}},
            task="denoise", method="fake-hang", method_label="fake-hang", method_params={{}},
            method_version="0", rep=0, base_seed=0, device="cpu", metrics=("psnr",))
spec = next(s for s in harness_fakes.SPECS if s.name == "fake-hang")
img = np.full((16, 16), 0.5)
isolate.run_in_subprocess({{"cell": cell, "method_spec": spec, "metric_specs": {{}},
                           "clean": img, "corrupted": img, "mask": None, "sigma": 0.1,
                           "threads": 1, "save_images": False}}, None)
"""
