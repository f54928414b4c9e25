"""PSNR and SSIM with an explicit data range, on the whole image, in float, without clipping.

``VARIANT`` is stored in every result row so a table says which convention produced it.
"""

from __future__ import annotations

import numpy as np

VARIANT = ("float64 whole-image (all pixels, all channels), data_range=1.0, no clipping, "
           "no quantisation; ssim: skimage 7x7 uniform window, channel_axis=-1 for RGB")


def psnr(clean: np.ndarray, restored: np.ndarray, *, data_range: float = 1.0) -> float:
    from skimage.metrics import peak_signal_noise_ratio

    return float(peak_signal_noise_ratio(np.asarray(clean, np.float64),
                                         np.asarray(restored, np.float64), data_range=data_range))


def ssim(clean: np.ndarray, restored: np.ndarray, *, data_range: float = 1.0) -> float:
    from skimage.metrics import structural_similarity

    clean = np.asarray(clean, np.float64)
    return float(structural_similarity(clean, np.asarray(restored, np.float64),
                                       data_range=data_range,
                                       channel_axis=-1 if clean.ndim == 3 else None))

