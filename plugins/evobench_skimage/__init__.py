"""Classic baselines through scikit-image: ``noisy`` (the floor), ``nlm``, ``tv``, ``wavelet``
(denoising) and ``biharmonic`` (inpainting).

Only the specs live here; ``methods.py`` imports scikit-image when a method actually runs.
"""

from __future__ import annotations

from evobench.api import MethodSpec, Param, hookimpl

__version__ = "1.0"

_IMPL = "evobench_skimage.methods"

SPECS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        MethodSpec(
            name="noisy",
            factory=f"{_IMPL}:run_noisy",
            cost="evobench_skimage.cost:noisy",
            tasks=frozenset({"denoise", "inpaint"}),
            summary="identity: returns the corrupted image (missing entries filled with the "
            "mean of the observed ones); the floor every method must beat",
            reference=True,
            version=__version__,
        ),
        MethodSpec(
            name="nlm",
            factory=f"{_IMPL}:run_nlm",
            cost="evobench_skimage.cost:nlm",
            tasks=frozenset({"denoise"}),
            min_size=8,  # compares patches (default 5 x 5) with a margin
            summary="non-local means (skimage denoise_nl_means), filter strength h tied to sigma",
            params=(
                Param("patch_size", 5, int, low=1, help="side of the compared patches"),
                Param("patch_distance", 6, int, low=1, help="search radius in pixels"),
                Param("h_factor", 0.7, float, low=0.0, help="h = h_factor * sigma"),
                Param("fast_mode", True, bool, help="uniform patch weights (fast) or Gaussian"),
            ),
            version=__version__,
        ),
        MethodSpec(
            name="tv",
            factory=f"{_IMPL}:run_tv",
            cost="evobench_skimage.cost:tv",
            tasks=frozenset({"denoise"}),
            summary="total-variation denoising (skimage denoise_tv_chambolle)",
            params=(
                Param("weight", None, float, low=0.0,
                      help="TV weight; default weight_factor * sigma"),
                Param("weight_factor", 0.9, float, low=0.0,
                      help="weight = weight_factor * sigma when weight is not given"),
                Param("max_num_iter", 200, int, low=1, help="Chambolle iterations at most"),
                Param("eps", 2e-4, float, low=0.0, help="relative stopping tolerance"),
            ),
            version=__version__,
        ),
        MethodSpec(
            name="wavelet",
            factory=f"{_IMPL}:run_wavelet",
            cost="evobench_skimage.cost:wavelet",
            tasks=frozenset({"denoise"}),
            summary="wavelet shrinkage with BayesShrink thresholds (skimage denoise_wavelet)",
            params=(
                Param("wavelet", "db1", str,
                      choices=("db1", "db2", "db4", "db8", "sym4", "sym8", "coif1", "bior1.3"),
                      help="PyWavelets wavelet name"),
                Param("mode", "soft", str, choices=("soft", "hard"), help="thresholding"),
                Param("wavelet_levels", None, int, low=1,
                      help="decomposition levels; default: as many as the image allows"),
                Param("convert2ycbcr", True, bool, help="RGB only: shrink in YCbCr"),
                Param("rescale_sigma", True, bool,
                      help="rescale sigma for the wavelet transform's normalisation"),
            ),
            version=__version__,
        ),
        MethodSpec(
            name="biharmonic",
            factory=f"{_IMPL}:run_biharmonic",
            cost="evobench_skimage.cost:biharmonic",
            tasks=frozenset({"inpaint"}),
            summary="biharmonic inpainting (skimage inpaint_biharmonic)",
            params=(
                Param("split_into_regions", False, bool,
                      help="solve each connected missing region separately"),
            ),
            version=__version__,
        ),
    )
}


@hookimpl
def evobench_register_methods(register):
    for spec in SPECS.values():
        register(spec)
