"""BM3D behind the evobench method contract.

``sigma`` is the noise std in the image's own units (the [0, 1] scale), which is what the bm3d
package expects for ``sigma_psd`` given as a scalar; no rescaling to 0-255 happens. The input
arrives checked (``evobench.api.run_spec``): sigma given and > 0, the bm3d package importable,
``profile``/``stage``/``colorspace`` among the spec's choices.
"""

from __future__ import annotations

import time

import numpy as np

from evobench.api import MethodOutput


def _profile(bm3d, name: str):
    if name == "lc":
        return bm3d.BM3DProfileLC()
    return name  # "np", "vn", "high": the package's own string names


def run(call, ctx, *, profile="np", stage="all", colorspace="opp"):
    """Denoise with BM3D. Deterministic: the call's seed has no effect."""
    import bm3d

    image, sigma = call.image, call.sigma
    stage_arg = bm3d.BM3DStages.ALL_STAGES if stage == "all" else \
        bm3d.BM3DStages.HARD_THRESHOLDING
    prof = _profile(bm3d, profile)
    start = time.perf_counter()
    if image.ndim == 2:
        out = bm3d.bm3d(image, sigma_psd=float(sigma), profile=prof, stage_arg=stage_arg)
    elif stage == "all":
        out = bm3d.bm3d_rgb(image, sigma_psd=float(sigma), profile=prof, colorspace=colorspace)
    else:
        # bm3d_rgb has no stage argument: the same colour transform around a one-stage bm3d
        z, imax, imin, scale, _ = bm3d.rgb_to(image, colorspace)
        sig = float(sigma) * np.sqrt(np.asarray(scale, dtype=np.float64)).reshape(1, 1, 3)
        est = bm3d.bm3d(z, sigma_psd=sig, profile=prof, stage_arg=stage_arg)
        out = bm3d.rgb_to(est, colorspace, True, imax, imin)[0]
    return MethodOutput(np.asarray(out, dtype=np.float64), time_fit_s=0.0,
                        time_infer_s=time.perf_counter() - start)
