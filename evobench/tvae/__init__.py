"""TVAE: the evolutionary binary-latent VAE engine (Drefs, Guiraud, Panagiotou, Lücke 2022).

Public API::

    from evobench.tvae import denoise, inpaint, PRESETS
    res = denoise(noisy, sigma=25/255, preset="quick", seed=0)
    res.image, res.trace, res.sparsity, res.fields

Modules: ``model`` (decoder, log-joints), ``codes`` (sparse active-unit lists), ``states``
(bit-packed K_n, uniqueness), ``evolution`` (EA operators, E-step), ``training`` (epoch loop),
``schedule`` (its threads), ``pipeline`` (denoise, inpaint), ``config`` / ``presets``
(settings).
"""

from evobench.tvae.config import TVAEConfig
from evobench.tvae.pipeline import TVAEResult, denoise, inpaint
from evobench.tvae.presets import ALIASES, PRESETS, get_preset

__all__ = ["ALIASES", "PRESETS", "TVAEConfig", "TVAEResult", "denoise", "get_preset", "inpaint"]
