"""A small float64 TVAE model with a fixed pi and sigma2, for the E-step tests."""

import torch

from evobench.tvae.model import Decoder, TVAEModel


def tiny_model(H=10, D=9, seed=0):
    """The model and the generator its weights were drawn from (reused for later draws)."""
    g = torch.Generator().manual_seed(seed)
    dec = Decoder(H, (8,), D, "relu", "xavier", g, torch.float64)
    model = TVAEModel(dec, torch.full((H,), 0.2, dtype=torch.float64),
                      torch.tensor(0.5, dtype=torch.float64))
    return model, g
