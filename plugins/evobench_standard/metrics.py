"""PSNR and SSIM with an explicit data range, on the whole image, in float, without clipping.

Their facts (label, unit, decimals, data range, variant) are on their ``MetricSpec`` in
``evobench_standard``; the variant is stored in every result row.
"""

from __future__ import annotations

import numpy as np


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

