"""Method ``bm3d``: block-matching and 3-D filtering through the ``bm3d`` PyPI package.

The package is an optional extra (``pip install 'evobench[bm3d]'``) shipped as a closed binary
under a non-commercial licence, so evobench neither vendors nor imports it until BM3D runs.
"""

from __future__ import annotations

from evobench.api import MethodSpec, Param, hookimpl

__version__ = "1.0"

SPEC = MethodSpec(
    name="bm3d",
    factory="evobench_bm3d.method:run",
    cost="evobench_bm3d.cost:cost",
    tasks=frozenset({"denoise"}),
    summary="BM3D (Dabov et al. 2007; Makinen et al. 2020) via the bm3d package; RGB via "
    "bm3d_rgb (opponent colour space)",
    params=(
        Param("profile", "np", str, choices=("np", "lc", "vn", "high"),
              help="np: normal, lc: low complexity, vn: very noisy, high: high quality"),
        Param("stage", "all", str, choices=("all", "ht"),
              help="all: hard thresholding + Wiener; ht: hard-thresholding stage only"),
        Param("colorspace", "opp", str, choices=("opp", "YCbCr"),
              help="RGB only: transform in which block matching runs"),
    ),
    needs_sigma=True,
    licence="free for non-commercial use only (Tampere University); closed binary, not vendored",
    requires=("bm3d",),
    version=__version__,
    min_size=16,  # the bm3d binary refuses (or crashes on) images below its block size
    rank=3,  # reports: the third of the compared methods (after tvae and gsvae)
)


@hookimpl
def evobench_register_methods(register):
    register(SPEC)
