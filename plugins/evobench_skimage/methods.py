"""scikit-image implementations of the classic baselines (the method contract of evobench).

Each receives its input checked against its spec by ``evobench.api.run_spec`` (task, colour,
mask shaped like the image, sigma rule) and does not check it again; each takes the method
contract's ``(call, ctx)`` plus its spec's parameters. Methods without a known noise level
estimate it with ``skimage.restoration.estimate_sigma`` (recorded in ``extras["sigma_used"]``).
"""

from __future__ import annotations

import time

import numpy as np
from skimage import restoration

from evobench.api import MethodOutput, mean_filled


def _channel_axis(image: np.ndarray) -> int | None:
    return -1 if image.ndim == 3 else None


def _sigma_or_estimate(image: np.ndarray, sigma: float | None) -> float:
    if sigma is not None:
        return float(sigma)
    est = restoration.estimate_sigma(image, average_sigmas=True, channel_axis=_channel_axis(image))
    return float(est)


def _timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def run_noisy(call, ctx):
    """The identity. For inpainting a missing entry gets the mean of the observed entries of its
    channel: a constant fill is the least-informed guess, so every method must beat it."""
    return MethodOutput(mean_filled(call.image, call.mask), time_fit_s=0.0, time_infer_s=0.0)


def run_nlm(call, ctx, *, patch_size=5, patch_distance=6, h_factor=0.7, fast_mode=True):
    """Non-local means; ``h = h_factor * sigma`` (skimage recommends h slightly below sigma in
    fast mode, and subtracts sigma^2 from patch distances when sigma is passed). (Parameters:
    the method contract's two and the spec's.)"""
    image, sigma = call.image, call.sigma
    sig = _sigma_or_estimate(image, sigma)
    out, secs = _timed(
        restoration.denoise_nl_means, image, patch_size=patch_size,
        patch_distance=patch_distance, h=h_factor * sig, fast_mode=fast_mode, sigma=sig,
        preserve_range=True, channel_axis=_channel_axis(image),
    )
    return MethodOutput(out, extras={"sigma_used": sig, "h": h_factor * sig},
                        time_fit_s=0.0, time_infer_s=secs)


def run_tv(call, ctx, *, weight=None, weight_factor=0.9, max_num_iter=200, eps=2e-4):
    """Chambolle's TV denoising; the weight scales with the noise level (0.9 sigma was the best
    factor on House and Cameraman at sigma 15-50 in a grid of 0.6-1.5). (Parameters: the
    method contract's two and the spec's.)"""
    image, sigma = call.image, call.sigma
    sig = None
    if weight is None:
        sig = _sigma_or_estimate(image, sigma)
        weight = weight_factor * sig
    out, secs = _timed(
        restoration.denoise_tv_chambolle, image, weight=weight, eps=eps,
        max_num_iter=max_num_iter, channel_axis=_channel_axis(image),
    )
    extras = {"weight": float(weight)}
    if sig is not None:
        extras["sigma_used"] = sig
    return MethodOutput(out, extras=extras, time_fit_s=0.0, time_infer_s=secs)


def run_wavelet(call, ctx, *, wavelet="db1", mode="soft", wavelet_levels=None, convert2ycbcr=True,
                rescale_sigma=True):
    """Wavelet shrinkage with BayesShrink (per-subband thresholds from sigma). (Parameters: the
    method contract's two and the spec's.)"""
    image, sigma = call.image, call.sigma
    sig = _sigma_or_estimate(image, sigma)
    out, secs = _timed(
        restoration.denoise_wavelet, image, sigma=sig, wavelet=wavelet, mode=mode,
        wavelet_levels=wavelet_levels, convert2ycbcr=bool(convert2ycbcr and image.ndim == 3),
        method="BayesShrink", rescale_sigma=rescale_sigma, channel_axis=_channel_axis(image),
    )
    return MethodOutput(out, extras={"sigma_used": sig}, time_fit_s=0.0, time_infer_s=secs)


def run_biharmonic(call, ctx, *, split_into_regions=False):
    """Biharmonic inpainting. A per-entry RGB mask (channels missing independently) is solved
    channel by channel, because skimage takes one H x W mask for all channels."""
    image, mask = call.image, call.mask
    filled = np.where(mask, 0.0, image)
    start = time.perf_counter()
    if image.ndim == 2:
        out = restoration.inpaint_biharmonic(filled, mask, split_into_regions=split_into_regions)
    elif (mask == mask[..., :1]).all():
        # one H x W mask for every channel; skimage's Cython code needs it C-contiguous
        out = restoration.inpaint_biharmonic(filled, np.ascontiguousarray(mask[..., 0]),
                                             channel_axis=-1,
                                             split_into_regions=split_into_regions)
    else:
        out = np.stack([
            restoration.inpaint_biharmonic(np.ascontiguousarray(filled[..., c]),
                                           np.ascontiguousarray(mask[..., c]),
                                           split_into_regions=split_into_regions)
            for c in range(image.shape[2])
        ], axis=-1)
    out = np.where(mask, out, image)  # observed entries are exact; keep them bit for bit
    return MethodOutput(out, time_fit_s=0.0, time_infer_s=time.perf_counter() - start)
