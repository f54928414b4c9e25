"""The torch-free config's choices are the ones the torch modules implement."""

import pytest
import torch

from evobench.tvae import config, model
from evobench.tvae.evolution import select_parents


def test_activation_names_are_the_decoders():
    assert set(config.ACTIVATIONS) == set(model.ACTIVATIONS)


@pytest.mark.parametrize("method", config.SELECTIONS)
def test_every_selection_choice_runs(method):
    lpj = -torch.rand(4, 6, generator=torch.Generator().manual_seed(0)) * 100
    idx = select_parents(lpj, 3, method, torch.Generator().manual_seed(1), block=4)
    assert idx.shape == (4, 3) and bool(((idx >= 0) & (idx < 6)).all())
