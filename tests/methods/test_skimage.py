"""The scikit-image baselines and the ``noisy`` floor."""

from __future__ import annotations

import numpy as np
import pytest
from method_inputs import SIGMA, mask_of, noisy_of, psnr

from evobench.api import EvobenchError, run_method

DENOISERS = ["nlm", "tv", "wavelet"]


def test_noisy_denoise_is_identity(gray_noisy):
    out = run_method("noisy", gray_noisy, task="denoise", sigma=SIGMA)
    np.testing.assert_array_equal(out.image, gray_noisy)


def test_noisy_inpaint_fills_channel_means(rgb_clean):
    mask = mask_of(rgb_clean.shape)
    out = run_method("noisy", np.where(mask, np.nan, rgb_clean), task="inpaint", mask=mask)
    np.testing.assert_array_equal(out.image[~mask], rgb_clean[~mask])
    for c in range(3):
        expected = rgb_clean[..., c][~mask[..., c]].mean()
        np.testing.assert_allclose(out.image[..., c][mask[..., c]], expected)


@pytest.mark.parametrize("name", DENOISERS)
def test_denoiser_beats_noisy_floor_gray(name, gray_clean, gray_noisy):
    floor = psnr(gray_clean, run_method("noisy", gray_noisy, task="denoise").image)
    out = run_method(name, gray_noisy, task="denoise", sigma=SIGMA)
    gain = psnr(gray_clean, out.image) - floor
    assert gain > 4.0, f"{name} gains only {gain:.2f} dB over the noisy input"
    again = run_method(name, gray_noisy, task="denoise", sigma=SIGMA, seed=0)
    np.testing.assert_array_equal(out.image, again.image)


@pytest.mark.parametrize("name", DENOISERS)
def test_denoiser_rgb_and_unknown_sigma(name, rgb_clean):
    noisy = noisy_of(rgb_clean)
    out = run_method(name, noisy, task="denoise")  # sigma estimated
    assert out.image.shape == rgb_clean.shape
    assert psnr(rgb_clean, out.image) > psnr(rgb_clean, noisy) + 3.0
    assert out.extras["sigma_used"] == pytest.approx(SIGMA, rel=0.3)


def test_tv_weight_follows_sigma(gray_noisy):
    low = run_method("tv", gray_noisy, task="denoise", sigma=0.02)
    high = run_method("tv", gray_noisy, task="denoise", sigma=0.2)
    assert high.extras["weight"] == pytest.approx(10 * low.extras["weight"])
    assert np.std(high.image) < np.std(low.image)
    fixed = run_method("tv", gray_noisy, task="denoise", sigma=0.2, weight=0.018)
    np.testing.assert_allclose(fixed.image, low.image)


def test_biharmonic_beats_floor_and_keeps_observed(gray_clean, gray_mask, gray_holed):
    floor = run_method("noisy", gray_holed, task="inpaint", mask=gray_mask)
    out = run_method("biharmonic", gray_holed, task="inpaint", mask=gray_mask)
    np.testing.assert_array_equal(out.image[~gray_mask], gray_clean[~gray_mask])
    gain = psnr(gray_clean, out.image) - psnr(gray_clean, floor.image)
    assert gain > 8.0


def test_biharmonic_rgb_per_entry_mask(rgb_clean):
    mask = mask_of(rgb_clean.shape)
    out = run_method("biharmonic", np.where(mask, np.nan, rgb_clean), task="inpaint", mask=mask)
    np.testing.assert_array_equal(out.image[~mask], rgb_clean[~mask])
    assert psnr(rgb_clean, out.image) > 25.0


def test_biharmonic_rgb_per_pixel_mask(rgb_clean):
    """Issue 23 item 12: an H x W mask on an RGB image failed with "ndarray is not
    C-contiguous" (the broadcast mask's channel 0 is a strided view)."""
    mask = mask_of(rgb_clean.shape[:2])
    holed = np.where(mask[..., None], np.nan, rgb_clean)
    out = run_method("biharmonic", holed, task="inpaint", mask=mask)
    np.testing.assert_array_equal(out.image[~mask], rgb_clean[~mask])
    assert psnr(rgb_clean, out.image) > 25.0


@pytest.mark.parametrize("name", DENOISERS)
def test_denoisers_reject_inpainting(name, gray_holed, gray_mask):
    with pytest.raises(EvobenchError, match="does not support task 'inpaint'"):
        run_method(name, gray_holed, task="inpaint", mask=gray_mask)


def test_input_is_checked_at_the_boundary(gray_noisy):
    """``run_method`` checks the input against the spec once; the methods do not check again."""
    with pytest.raises(EvobenchError, match="does not support task 'denoise'"):
        run_method("biharmonic", gray_noisy, task="denoise")
    with pytest.raises(EvobenchError, match="H x W"):
        run_method("tv", np.zeros((4, 4, 2)), task="denoise", sigma=0.1)
    with pytest.raises(EvobenchError, match="device"):
        run_method("nlm", gray_noisy, task="denoise", sigma=0.1, device="cuda")
