"""Method ``tvae``: the evolutionary binary-latent VAE (Drefs et al., ECML 2022) of
``evobench.tvae``, with its presets and every main knob exposed as a parameter.

Overrides default to None, meaning "the preset's value", so ``tvae[preset=house-25]`` is the
paper's experiment with the published settings, ``tvae[preset=house-25+]`` the same experiment
with evobench's improvements, and ``tvae[S=64]`` changes one knob of the quick default.
"""

from __future__ import annotations

from evobench.api import MethodSpec, Param, hookimpl
from evobench.tvae.config import MUTATIONS, SELECTIONS
from evobench.tvae.presets import PRESETS as _ENGINE_PRESETS

__version__ = "1.0"

# the engine's preset names and choices, read from its torch-free config and presets
PRESETS = tuple(_ENGINE_PRESETS)

_OVERRIDE = "default: the preset's value"

SPEC = MethodSpec(
    name="tvae",
    factory="evobench_tvae.method:run",
    cost="evobench_tvae.cost:cost",
    tasks=frozenset({"denoise", "inpaint"}),
    devices=frozenset({"cpu", "cuda"}),
    summary="TVAE: binary-latent VAE trained by evolutionary truncated posteriors, zero-shot "
    "on the overlapping patches of the corrupted image",
    params=(
        Param("preset", "quick", str, choices=PRESETS,
              help="named configuration: quick (evobench's fast default), a paper "
                   "experiment with the published settings (house-25), or with evobench's "
                   "(house-25+)"),
        Param("patch_size", None, int, low=2, help=f"patch side p; {_OVERRIDE}"),
        Param("H", None, int, low=1, help=f"number of binary latents; {_OVERRIDE}"),
        Param("hidden", None, tuple, help=f"decoder hidden widths, e.g. 64 or 512-512; {_OVERRIDE}"),
        Param("S", None, int, low=1, help=f"states kept per patch |K_n|; {_OVERRIDE}"),
        Param("P", None, int, low=1, help=f"parents per generation; {_OVERRIDE}"),
        Param("C", None, int, low=1, help=f"children per parent; {_OVERRIDE}"),
        Param("G", None, int, low=1, help=f"generations per epoch; {_OVERRIDE}"),
        Param("batch_size", None, int, low=1, help=f"patches per gradient step; {_OVERRIDE}"),
        Param("epochs", None, int, low=1, help=f"training epochs; {_OVERRIDE}"),
        Param("selection", None, str, choices=SELECTIONS,
              help=f"parent selection (tvo: the published code's); {_OVERRIDE}"),
        Param("mutation", None, str, choices=MUTATIONS,
              help=f"mutation operator; {_OVERRIDE}"),
        Param("crossover", None, bool, help=f"one-point crossover before mutation; {_OVERRIDE}"),
        Param("lr_min", None, float, low=0.0, help=f"cyclic LR lower bound; {_OVERRIDE}"),
        Param("lr_max", None, float, low=0.0, help=f"cyclic LR upper bound; {_OVERRIDE}"),
        Param("half_cycle", None, float, low=0.0,
              help=f"epochs per half LR cycle; {_OVERRIDE}"),
    ),
    version=__version__,
    budgeted=True,
    rank=1,  # reports: the method the suite is about, the first and strongest styles
)


@hookimpl
def evobench_register_methods(register):
    register(SPEC)
