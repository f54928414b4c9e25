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
ZSN2N = None  # SPEC-ZSN2N


# --- noise2self: J-invariant blind-spot training (Batson & Royer, ICML 2019) ------------------
NOISE2SELF = None  # SPEC-NOISE2SELF


# --- self2self: Bernoulli-masked training with dropout (Quan et al., CVPR 2020) ---------------
SELF2SELF = None  # SPEC-SELF2SELF


SPECS = tuple(spec for spec in (DIP, ZSN2N, NOISE2SELF, SELF2SELF) if spec is not None)


@hookimpl
def evobench_register_methods(register):
    for spec in SPECS:
        register(spec)
