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

from evobench.api import MethodOutput, reference_image


def run(call, ctx, *, clean=None, preset="quick", **overrides):
    """Fit TVAE on the image's patches; ``clean`` (diagnostics only, the harness never passes
    it) adds PSNR to the trace. The context's budget stops training after the epoch that
    crosses it."""
    from evobench.tvae.pipeline import fit

    ov = {k: v for k, v in overrides.items() if v is not None}
    res = fit(call, ctx, preset=preset, clean=reference_image(clean, call.image.shape),
              overrides=ov)
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
