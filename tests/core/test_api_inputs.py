"""Issue 9, defects 11 and 12: images on the wrong scale, empty or too small are refused by
``run_method`` (every registered method) and ``evobench.tvae`` before library code sees them."""

from __future__ import annotations

import numpy as np
import pytest

from evobench.api import EvobenchError, run_method
from evobench.registry import get_registry

METHODS = ["noisy", "nlm", "tv", "wavelet", "bm3d", "gsvae", "tvae"]  # the denoisers


def _call(name, image, task="denoise", **kw):
    if task == "inpaint":
        mask = np.zeros(np.shape(image)[:2], bool)
        mask.flat[0] = True
        kw.setdefault("mask", mask)
    else:
        kw.setdefault("sigma", 0.1)
    return run_method(name, image, task=task, **kw)


def _all_methods():
    reg = get_registry()
    out = [(m, "denoise") for m in METHODS if m in reg.names("methods")]
    return out + [("biharmonic", "inpaint")]


@pytest.mark.parametrize(("name", "task"), _all_methods())
def test_integer_images_are_refused_by_every_method(name, task):
    image = np.full((32, 32), 133, np.uint8)
    with pytest.raises(EvobenchError, match=r"dtype uint8.*\[0, 1\].*image / 255.0"):
        _call(name, image, task)


@pytest.mark.parametrize(("name", "task"), _all_methods())
@pytest.mark.parametrize("value", [1e6, -1000.0])
def test_values_far_outside_0_1_are_refused(name, task, value):
    image = np.full((32, 32), 0.5)
    image[3, 3] = value
    with pytest.raises(EvobenchError, match=r"far outside \[0, 1\]"):
        _call(name, image, task)


def test_noise_within_what_sigma_explains_passes():
    rng = np.random.default_rng(0)
    image = 0.5 + 0.8 * rng.standard_normal((32, 32))  # strong noise: values near -3 and 4
    out = _call("noisy", image, sigma=0.8)
    assert out.image.shape == image.shape
    with pytest.raises(EvobenchError, match="far outside"):
        _call("noisy", image, sigma=0.05)  # the same values are not explained by sigma 0.05


@pytest.mark.parametrize("shape", [(0, 0), (0, 5), (5, 0), (0, 4, 3)])
def test_zero_size_images_are_refused(shape):
    with pytest.raises(EvobenchError, match="empty"):
        _call("noisy", np.zeros(shape))


@pytest.mark.parametrize(("name", "size", "need"), [("bm3d", 12, 16), ("nlm", 6, 8),
                                                     ("gsvae", 6, 8)])
def test_images_smaller_than_a_method_needs_are_refused(name, size, need):
    if name not in get_registry().names("methods"):
        pytest.skip(f"{name} not installed")
    image = np.full((size, size), 0.5)
    with pytest.raises(EvobenchError, match=f"smaller than the {need} x {need}"):
        _call(name, image)


def test_sigma_zero_and_nan_are_refused():
    image = np.full((16, 16), 0.5)
    for sigma in (0.0, float("nan"), float("inf"), -0.1, "x"):
        with pytest.raises(EvobenchError, match="sigma"):
            _call("tv", image, sigma=sigma)


def test_tvae_engine_refuses_integer_and_off_scale_images():
    from evobench.tvae import denoise, inpaint

    with pytest.raises(EvobenchError, match="dtype uint8"):
        denoise(np.full((16, 16), 133, np.uint8), sigma=0.1, epochs=1)
    with pytest.raises(EvobenchError, match="far outside"):
        denoise(np.full((16, 16), 1e6), sigma=0.1, epochs=1)
    with pytest.raises(EvobenchError, match="empty"):
        inpaint(np.zeros((0, 0)), mask=np.zeros((0, 0), bool), epochs=1)


@pytest.mark.parametrize("device", ["cuda:abc", "cuda:-5", "gpu", 3])
def test_malformed_devices_are_refused(device):
    with pytest.raises(EvobenchError, match="unknown device"):
        _call("tvae", np.full((16, 16), 0.5), epochs=1, device=device)


def test_cuda_without_cuda_is_refused_before_the_method_runs():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(EvobenchError, match="CUDA is not available here"):
        _call("gsvae", np.full((16, 16), 0.5), epochs=1, device="cuda")


def test_unknown_noise_level_allows_strong_noise_but_not_the_0_255_scale():
    from evobench.tvae import denoise

    rng = np.random.default_rng(1)
    noisy = np.clip(0.5 + 0.4 * rng.standard_normal((16, 16)), -2.5, 3.5)  # sigma ~100/255
    assert _call("noisy", noisy, sigma=None).image.shape == (16, 16)
    with pytest.raises(EvobenchError, match="far outside"):
        _call("noisy", noisy * 255, sigma=None)
    with pytest.raises(EvobenchError, match="far outside"):
        denoise(noisy * 255, epochs=1)


@pytest.mark.parametrize("name", [m for m, _ in _all_methods() if m != "biharmonic"])
def test_sigma_on_the_0_255_scale_is_refused_with_the_0_1_value(name):
    """Issue 23 item 1: sigma=25 on [0, 1] data was accepted (a near-black output)."""
    image = np.full((32, 32), 0.5)
    with pytest.raises(EvobenchError, match=r"\[0, 1\] scale: did you mean 25/255 = 0\.098\?"):
        _call(name, image, sigma=25)


def test_a_0_255_image_with_a_0_255_sigma_is_refused():
    """Issue 23 item 1: the range tolerance grew with sigma, so 0-255 data with sigma=25 passed;
    sigma is refused first, and the tolerance stops growing at sigma 1 (margin 11)."""
    from evobench import validate

    rng = np.random.default_rng(2)
    image = np.clip(128 + 25 * rng.standard_normal((32, 32)), 0, 255)
    with pytest.raises(EvobenchError, match="did you mean 25/255"):
        _call("noisy", image, sigma=25)
    with pytest.raises(EvobenchError, match="far outside"):
        validate.image_values(image, sigma=25.0)  # a direct caller: the margin is capped
    assert _call("noisy", np.full((8, 8), 0.5), sigma=1.0).image.shape == (8, 8)  # the limit
