"""The median method (the method contract in ~10 lines), the mae metric and the psnr-gain
figure."""

import time

import numpy as np
from scipy import ndimage

from evobench.api import MethodOutput


def run(call, ctx, *, size):
    """``call``: the checked input (image, task, mask, sigma, seed, device); ``ctx``: progress,
    budget, checkpoints and stop requests (unused by a method this fast)."""
    image = call.image
    start = time.perf_counter()
    window = (size, size) if image.ndim == 2 else (size, size, 1)
    restored = ndimage.median_filter(np.asarray(image, dtype=np.float64), size=window, mode="reflect")
    return MethodOutput(image=restored, time_infer_s=time.perf_counter() - start)


def mae(clean, restored, *, data_range=1.0):
    """Mean absolute error, in units of ``data_range``."""
    return float(np.mean(np.abs(np.asarray(restored) - clean)) / data_range)


def psnr_gain(data, *, image=None):
    """A figure kind: one bar per method, its mean PSNR gain over the input; returns
    ``[(name, Figure)]`` or the reason to skip."""
    from matplotlib.figure import Figure

    ok = data.results[data.results["status"] == "ok"]
    gain = (ok["psnr"] - ok["psnr_input"]).groupby(ok["method_label"]).mean().dropna()
    if gain.empty:
        return "no ok results with an input PSNR"
    fig = Figure(figsize=(4.0, 3.0))
    ax = fig.subplots()
    ax.bar(list(gain.index), gain.to_numpy())
    ax.set_ylabel("PSNR gain over the input (dB)")
    return [("psnr_gain", fig)]
