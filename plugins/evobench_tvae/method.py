"""``tvae`` behind the evobench method contract: fits ``evobench.tvae`` to the checked input
and maps the engine's result to a ``MethodOutput``.

The input arrives checked against the spec by ``evobench.api.run_spec``, so the method calls the
engine's :func:`evobench.tvae.pipeline.fit` directly (not ``denoise``/``inpaint``, which check
again for Python callers). The parameters are the spec's: ``preset`` and overrides that default
to None, meaning "the preset's value".

``artifacts["fields"]`` are the engine's singleton outputs minus the all-zero output (what each
latent adds), the same definition the ``gsvae`` method uses, so the two compare directly.
"""

from __future__ import annotations

import numpy as np

from evobench.api import MethodOutput
from evobench.inputs import MethodInput, reference


def run(image, *, task, mask=None, sigma=None, seed=0, device="cpu", budget_s=None, clean=None,
        preset="quick", **overrides):
    """Fit TVAE on the image's patches; ``clean`` (diagnostics only, the harness never passes
    it) adds PSNR to the trace. ``budget_s`` stops training after the epoch that crosses it.
    (Nine named parameters: the method contract's seven, ``clean`` and ``preset``.)"""
    from evobench.tvae.pipeline import fit

    ov = {k: v for k, v in overrides.items() if v is not None}
    if budget_s is not None:
        ov["budget_s"] = float(budget_s)
    call = MethodInput(image, task, mask, sigma if task == "denoise" else None, seed, device)
    res = fit(call, preset=preset, clean=reference(clean, image.shape), overrides=ov)
    last = res.trace[-1] if res.trace else {}
    extras = {
        "active_mean": float(res.sparsity["active_mean"]),
        "pi_sum": float(res.sparsity["pi_sum"]),
        "epochs": int(res.epochs_run),
        "free_energy": float(last.get("free_energy", np.nan)),
        "sigma_learned": float(np.sqrt(res.sigma2)),
        "H": int(res.config.get("H", len(res.pi))),
        "S": int(res.config.get("S", 0)),
    }
    artifacts = {
        "fields": np.asarray(res.fields - res.background, dtype=np.float32),
        "background": np.asarray(res.background, dtype=np.float32),
        "active_hist": np.asarray(res.sparsity["active_hist"], dtype=np.float32),
        "pi": np.asarray(res.pi, dtype=np.float32),
    }
    return MethodOutput(res.image, extras=extras, time_fit_s=float(res.time_fit_s),
                        time_infer_s=float(res.time_infer_s), trace=list(res.trace),
                        artifacts=artifacts, snapshots=dict(res.snapshots))
