"""Shared small inputs for the method tests: seeded crops, noise and masks."""

from __future__ import annotations

import numpy as np
import pytest
from method_inputs import mask_of, noisy_of


@pytest.fixture(scope="session")
def gray_clean() -> np.ndarray:
    """A textured 64 x 64 crop of cameraman (the man's coat and the tripod), [0, 1] scale."""
    from skimage import data

    return data.camera()[160:224, 200:264] / 255.0


@pytest.fixture(scope="session")
def rgb_clean() -> np.ndarray:
    from skimage import data

    return data.astronaut()[30:78, 180:228] / 255.0


@pytest.fixture(scope="session")
def gray_noisy(gray_clean):
    return noisy_of(gray_clean)


@pytest.fixture(scope="session")
def gray_mask(gray_clean):
    return mask_of(gray_clean.shape)


@pytest.fixture(scope="session")
def gray_holed(gray_clean, gray_mask):
    """The inpainting input: missing entries are NaN (what the harness hands over)."""
    return np.where(gray_mask, np.nan, gray_clean)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models gain nothing from intra-op threads, and on a loaded 2-core machine extra
    threads spin against other processes (10x slower); restore the setting afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
