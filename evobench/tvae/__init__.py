"""TVAE: the evolutionary binary-latent VAE engine (Drefs, Guiraud, Panagiotou, Lücke 2022).

Public API::

    from evobench.tvae import denoise, inpaint, PRESETS
    res = denoise(noisy, sigma=25/255, preset="quick", seed=0)
    res.image, res.trace, res.sparsity, res.fields

Modules: ``model`` (decoder, log-joints), ``codes`` (sparse active-unit lists), ``states``
(bit-packed K_n, uniqueness), ``evolution`` (EA operators, E-step), ``training`` (epoch loop),
``schedule`` (its threads), ``pipeline`` (denoise, inpaint, checkpoints), ``config`` /
``presets`` (settings). The method, re-derived, with the published experiments' settings and
what evobench reproduces or changes: docs/tvae-method.md.

Importing the package, ``config`` or ``presets`` does not load torch: ``denoise``, ``inpaint``
and ``TVAEResult`` come from ``pipeline`` on first use.
"""

from evobench.tvae.config import TVAEConfig
from evobench.tvae.presets import ALIASES, PRESETS, get_preset

_FROM_PIPELINE = ("TVAEResult", "denoise", "inpaint")

__all__ = ["ALIASES", "PRESETS", "TVAEConfig", "TVAEResult", "denoise", "get_preset", "inpaint"]


def __getattr__(name: str):
    if name in _FROM_PIPELINE:
        from evobench.tvae import pipeline

        value = getattr(pipeline, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
