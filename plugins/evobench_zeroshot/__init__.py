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
DIP = MethodSpec(
    name="dip",
    factory="evobench_zeroshot.dip:run",
    cost="evobench_zeroshot.cost:dip",
    tasks=BOTH,
    devices=ANY_DEVICE,
    summary="Deep Image Prior: a random hourglass CNN with skips fitted by Adam from a fixed "
    "noise input to the one corrupted image, stopped at a fixed count; moving-average output",
    params=(
        Param("iterations", 1000, int, low=1,
              help="Adam steps (the paper's early stopping: more steps fit the noise)"),
        Param("lr", 0.01, float, low=0.0, help="Adam learning rate"),
        Param("width", 16, int, low=1, help="channels of every level (paper: 128)"),
        Param("levels", 4, int, low=1, high=8,
              help="down-sampling levels; the image needs a side of 2^(levels+1)"),
        Param("skip", 4, int, low=0, help="channels of each skip connection (0: none)"),
        Param("input_depth", 32, int, low=1, help="channels of the fixed input noise z"),
        Param("reg_noise", 1 / 30, float, low=0.0,
              help="std of the fresh noise added to z at each step (paper: 1/30)"),
        Param("ema", 0.99, float, low=0.0, high=0.999999,
              help="moving-average weight of the outputs that form the estimate (0: last "
              "output)"),
        Param("upsample", "bilinear", str, choices=("bilinear", "nearest"),
              help="up-sampling of the decoder"),
    ),
    licence="evobench's own code, written from the paper (Ulyanov, Vedaldi & Lempitsky, "
    "Deep Image Prior, CVPR 2018 / IJCV 2020); no code or weights of the authors'",
    version=__version__,
    budgeted=True,
    rank=4,  # reports: after tvae, gsvae and bm3d, the learned zero-shot peers in turn
    min_size=4,  # levels=1; run() asks for 2^(levels+1) pixels a side (32 at the default 4)
)


# --- zsn2n: Zero-Shot Noise2Noise (Mansour & Heckel, CVPR 2023) -------------------------------
ZSN2N = MethodSpec(
    name="zsn2n",
    factory="evobench_zeroshot.zsn2n:run",
    cost="evobench_zeroshot.cost:zsn2n",
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
    budgeted=True,
    rank=5,
    min_size=8,  # two half-resolution images of at least 4 x 4
)


# --- noise2self: J-invariant blind-spot training (Batson & Royer, ICML 2019) ------------------
NOISE2SELF = MethodSpec(
    name="noise2self",
    factory="evobench_zeroshot.noise2self:run",
    cost="evobench_zeroshot.cost:noise2self",
    tasks=DENOISE,
    devices=ANY_DEVICE,
    summary="Noise2Self (Batson & Royer, ICML 2019): a 2-level U-Net fitted to the one noisy "
    "image with a grid of masked pixel subsets (donut interpolation), MSE on masked pixels",
    params=(
        Param("iterations", 400, int, low=1, help="Adam steps, one masked subset each"),
        Param("lr", 3e-3, float, low=0.0, help="Adam learning rate (constant)"),
        Param("width", 16, int, low=1, help="U-Net base channels (x1, x2, x2 at the 3 scales)"),
        Param("grid", 4, int, low=2, high=16,
              help="mask lattice side: grid^2 subsets J of pixels (i mod grid, j mod grid)"),
        Param("estimate", "full", str, choices=("full", "invariant"),
              help="full: one pass on the unmasked image; invariant: the paper's J-invariant "
              "prediction, grid^2 masked passes, each pixel from the pass that masked it"),
        Param("crop", 0, int, low=0, help="train on random crops of this side (bounds memory "
              "on large images); 0: the whole image"),
    ),
    licence="evobench's own code, written from the paper (Batson & Royer, Noise2Self: Blind "
    "Denoising by Self-Supervision, ICML 2019, arXiv:1901.11365)",
    version=__version__,
    budgeted=True,
    rank=6,
    min_size=8,  # two 4 x 4 grid cells a side and two 2x down-samplings of the U-Net
)


# --- self2self: Bernoulli-masked training with dropout (Quan et al., CVPR 2020) ---------------
SELF2SELF = MethodSpec(
    name="self2self",
    factory="evobench_zeroshot.self2self:run",
    cost="evobench_zeroshot.cost:self2self",
    tasks=BOTH,
    devices=ANY_DEVICE,
    summary="Self2Self with dropout (Quan, Chen, Pang & Ji, CVPR 2020): a small encoder-decoder "
    "trained on Bernoulli-masked copies of the one image, loss on the dropped pixels, estimate "
    "= mean over Bernoulli instances with decoder dropout on",
    params=(
        Param("iterations", 400, int, low=1, help="Adam steps (one Bernoulli instance each)"),
        Param("width", 32, int, low=2, high=1024, help="channels of every network level"),
        Param("keep", 0.7, float, low=0.01, high=0.99,
              help="Bernoulli keep probability of an observed entry (the paper: 0.7)"),
        Param("dropout", 0.3, float, low=0.0, high=0.95,
              help="dropout rate before each decoder convolution (the paper: 0.3)"),
        Param("lr", 1e-3, float, low=1e-8, high=1.0, help="Adam learning rate (constant)"),
        Param("ensemble", 32, int, low=1, high=100000,
              help="Bernoulli instances averaged for the final estimate (the paper: 50-100)"),
        Param("snapshot_ensemble", 8, int, low=1, high=100000,
              help="instances averaged for the intermediate snapshots (at most ensemble)"),
    ),
    licence="evobench's own code, written from the paper (Quan et al., CVPR 2020)",
    version=__version__,
    budgeted=True,
    rank=7,
    min_size=8,  # the network halves the image three times
)


SPECS = tuple(spec for spec in (DIP, ZSN2N, NOISE2SELF, SELF2SELF) if spec is not None)


@hookimpl
def evobench_register_methods(register):
    for spec in SPECS:
        register(spec)
