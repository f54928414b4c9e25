"""The learned zero-shot baselines on a 128 x 128 crop of the real House (Set12 02.png, rows and
columns 64:192) at sigma 25: each gains at least 5 dB over the noisy input at a few hundred
iterations, and dip and self2self fill 50 % missing pixels far better than the mean fill.
Needs the real Set12 (EVOBENCH_DATA_DIR, or the shared data folder beside the checkout); skips
with the fetch hint elsewhere. Measured at their defaults (seed 0, one thread, quiet machine):
zsn2n +8.06 dB (500 iterations, 23 s), dip +10.13 (400, 13 s), noise2self +9.35 (400, 15 s),
self2self +9.39 (400, 25 s); inpainting dip +13.26 and self2self +13.31 dB over the mean fill.
"""

import numpy as np
import pytest
from fixture_data import REAL_DATA_HINT, real_data_dir

from evobench.api import run_method

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def house():
    if real_data_dir() is None:
        pytest.skip(REAL_DATA_HINT)
    from evobench_standard.datasets import load_set12

    return load_set12("02")[64:192, 64:192]


def _psnr(clean, image):
    return 10 * np.log10(1.0 / np.mean((image - clean) ** 2))


# a few hundred iterations each (fewer than the defaults, to keep the suite fast)
DENOISE = {"zsn2n": {"iterations": 300}, "dip": {"iterations": 300},
           "noise2self": {"iterations": 200}, "self2self": {"iterations": 200, "ensemble": 16}}


@pytest.mark.parametrize("name", list(DENOISE))
def test_denoises_the_house_crop_by_5_db(house, name):
    noisy = house + 25 / 255 * np.random.default_rng(0).standard_normal(house.shape)
    out = run_method(name, noisy, task="denoise", sigma=25 / 255, seed=0, **DENOISE[name])
    assert _psnr(house, out.image) > _psnr(house, noisy) + 5.0


@pytest.mark.parametrize("name", ["dip", "self2self"])
def test_inpaints_the_house_crop(house, name):
    mask = np.random.default_rng(1).random(house.shape) < 0.5
    holed = np.where(mask, np.nan, house)
    fill = run_method("noisy", holed, task="inpaint", mask=mask).image
    out = run_method(name, holed, task="inpaint", mask=mask, seed=0, **DENOISE[name])
    np.testing.assert_array_equal(out.image[~mask], house[~mask])
    assert _psnr(house, out.image) > _psnr(house, fill) + 8.0
