"""Method ``gsvae``: an amortized binary-latent VAE trained with the Gumbel-softmax /
binary-concrete relaxation, zero-shot on the patches of the one corrupted image.

It shares TVAE's generative model (Bernoulli prior, MLP decoder, one learned sigma^2), patches
and merge, so TVAE-vs-GSVAE isolates the training method (evolutionary truncated posteriors vs
an amortized relaxed encoder). Only specs here; torch is imported when the method runs.
"""

from __future__ import annotations

from evobench.api import MethodSpec, Param, hookimpl

__version__ = "1.0"

SPEC = MethodSpec(
    name="gsvae",
    factory="evobench_gsvae.method:run",
    cost="evobench_gsvae.cost:cost",
    tasks=frozenset({"denoise", "inpaint"}),
    devices=frozenset({"cpu", "cuda"}),
    summary="binary-latent VAE, amortized encoder, binary-concrete relaxation with annealed "
    "temperature; TVAE's decoder family, patches and merge",
    params=(
        Param("patch_size", 8, int, low=2, help="patch side p (D = C p^2)"),
        Param("H", 64, int, low=1, help="number of binary latents"),
        Param("hidden", (256,), tuple, help="decoder hidden widths, e.g. 64 or 256-256; the "
              "encoder mirrors them"),
        Param("activation", "relu", str, choices=("relu", "leaky_relu"),
              help="hidden-layer activation (encoder and decoder)"),
        Param("epochs", None, int, low=1,
              help="passes over all patches; default 12 for denoising, 25 for inpainting"),
        Param("batch_size", 64, int, low=1, help="patches per Adam step"),
        Param("lr", 3e-3, float, low=0.0, help="initial Adam learning rate"),
        Param("lr_final", 1e-4, float, low=0.0, help="learning rate at the end (cosine decay)"),
        Param("tau0", 1.0, float, low=0.0, help="initial relaxation temperature"),
        Param("tau_min", 0.5, float, low=1e-3, help="lowest temperature"),
        Param("anneal_rate", 0.1, float, low=0.0,
              help="per epoch: tau = max(tau_min, tau0 exp(-rate * epochs))"),
        Param("pi_init", 0.5, float, low=1e-4, high=1 - 1e-4, help="initial prior pi_h"),
        Param("estimate", "mean", str, choices=("samples", "mean"),
              help="clean patch: decoder mean over hard samples of q, or decoder at q's mean"),
        Param("n_samples", 16, int, low=1, help="hard samples per patch (estimate=samples)"),
        Param("data_scale", "standardize", str, choices=("standardize", "none"),
              help="train on standardised pixels (mean 0, std 1) or on the [0, 1] scale"),
    ),
    version=__version__,
    budgeted=True,
    rank=2,  # reports: the second of the compared methods (after tvae)
)


@hookimpl
def evobench_register_methods(register):
    register(SPEC)
