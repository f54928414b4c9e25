"""The learned zero-shot baselines: single-image methods that fit a network to the corrupted
image alone, as the field compares against (Deep Image Prior, Zero-Shot Noise2Noise,
Noise2Self, Self2Self). Each is written from its paper in plain torch, one module per method,
and runs its steps through ``evobench.api.run_iterations`` (budget, snapshots, progress,
checkpoints) like every other iterative method.

Only light specs live here; the implementations (which import torch) are named by strings.
"""

from __future__ import annotations

from evobench.api import MethodSpec, Param, hookimpl

__version__ = "1.0"

BOTH = frozenset({"denoise", "inpaint"})
DENOISE = frozenset({"denoise"})
ANY_DEVICE = frozenset({"cpu", "cuda"})

# --- dip: Deep Image Prior (Ulyanov, Vedaldi & Lempitsky, CVPR 2018) --------------------------
DIP = None  # SPEC-DIP


# --- zsn2n: Zero-Shot Noise2Noise (Mansour & Heckel, CVPR 2023) -------------------------------
ZSN2N = MethodSpec(
    name="zsn2n",
    factory="evobench_zeroshot.zsn2n:run",
    tasks=DENOISE,
    devices=ANY_DEVICE,
    summary="Zero-Shot Noise2Noise: a 2-layer residual CNN trained to map one diagonal "
    "half-resolution copy of the noisy image onto the other (residual + consistency loss)",
    params=(
        Param("iterations", 500, int, low=1,
              help="Adam steps on the whole image (paper: 2000; 500 take about 25 s of one "
              "CPU core on a 128 x 128 crop, 4x that at 256 x 256)"),
        Param("width", 48, int, low=1, high=1024,
              help="channels of the two 3 x 3 convolutions (paper: 48)"),
        Param("lr", 1e-3, float, low=1e-8, high=1.0, help="initial Adam learning rate"),
        Param("lr_step", 1000, int, low=1,
              help="halve the learning rate every lr_step iterations (paper: 1000 of 2000; "
              "the default 500 iterations end before the first halving)"),
    ),
    licence="evobench's own code, written from the paper (Y. Mansour and R. Heckel, "
    "Zero-Shot Noise2Noise: Efficient Image Denoising without any Data, CVPR 2023)",
    version=__version__,
    min_size=8,  # two half-resolution images of at least 4 x 4
)


# --- noise2self: J-invariant blind-spot training (Batson & Royer, ICML 2019) ------------------
NOISE2SELF = None  # SPEC-NOISE2SELF


# --- self2self: Bernoulli-masked training with dropout (Quan et al., CVPR 2020) ---------------
SELF2SELF = None  # SPEC-SELF2SELF


SPECS = tuple(spec for spec in (DIP, ZSN2N, NOISE2SELF, SELF2SELF) if spec is not None)


@hookimpl
def evobench_register_methods(register):
    for spec in SPECS:
        register(spec)
