"""Self2Self with dropout (plugin ``evobench_zeroshot``): seeded, budgeted, snapshots,
resumable, refuses bad input in one line, denoises and inpaints gray and RGB."""

from __future__ import annotations

import numpy as np
import pytest
from method_inputs import SIGMA, mask_of, noisy_of, psnr
from stopping import run_direct, stop_at_epoch

torch = pytest.importorskip("torch")

from evobench.api import EvobenchError, MethodContext, Stopped, run_method  # noqa: E402
from evobench.iterations import snapshot_steps  # noqa: E402

TINY = dict(iterations=6, width=8, ensemble=4, snapshot_ensemble=2)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def small(gray_clean):
    return gray_clean[:32, :32]


@pytest.fixture(scope="module")
def small_noisy(small):
    return noisy_of(small)


def s2s(image, task="denoise", seed=0, **kw):
    return run_method("self2self", image, task=task, sigma=SIGMA if task == "denoise" else None,
                      seed=seed, **(TINY | kw))


def test_same_seed_same_image_other_seed_differs(small_noisy):
    a, b, c = s2s(small_noisy), s2s(small_noisy), s2s(small_noisy, seed=1)
    assert np.array_equal(a.image, b.image)
    assert not np.allclose(a.image, c.image)


def test_same_image_at_one_and_two_threads(small_noisy):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        a = s2s(small_noisy, width=16)
        torch.set_num_threads(2)
        b = s2s(small_noisy, width=16)
    finally:
        torch.set_num_threads(before)
    assert np.array_equal(a.image, b.image)


def test_snapshots_extras_and_trace(small_noisy):
    out = s2s(small_noisy, iterations=8)
    assert sorted(out.snapshots) == snapshot_steps(8)
    assert np.array_equal(out.snapshots[8], out.image.astype(np.float32))
    assert out.extras["iterations"] == 8 and out.extras["stopped_by_budget"] is False
    assert np.isfinite(out.extras["final_loss"]) and out.extras["ensemble"] == TINY["ensemble"]
    assert out.trace[-1]["epoch"] == 8 and out.time_fit_s > 0


def test_budget_stops_after_one_iteration(small_noisy):
    out = s2s(small_noisy, ctx=MethodContext(budget_s=1e-9))
    assert out.extras["iterations"] == 1 and out.extras["stopped_by_budget"] is True
    assert sorted(out.snapshots) == [1]


def test_resume_is_bit_identical(small_noisy, tmp_path):
    full = s2s(small_noisy, iterations=10)
    with stop_at_epoch({"n": 4}), pytest.raises(Stopped):
        s2s(small_noisy, iterations=10, ctx=MethodContext(checkpoint_dir=tmp_path))
    ctx = MethodContext(checkpoint_dir=tmp_path)
    resumed = s2s(small_noisy, iterations=10, ctx=ctx)
    assert ctx.resumes == 1 and ctx.resumed_at == 4
    assert np.array_equal(full.image, resumed.image)
    assert sorted(full.snapshots) == sorted(resumed.snapshots)
    assert [r["loss"] for r in full.trace] == [r["loss"] for r in resumed.trace]


@pytest.mark.parametrize("image, params, match", [
    (np.zeros((7, 32)), {}, "smaller than the 8 x 8"),
    (np.zeros((32, 32)), {"keep": 1.5}, "keep"),
    (np.zeros((32, 32)), {"width": 1}, "width"),
    (np.zeros((32, 32)), {"ensemble": 0}, "ensemble"),
    (np.zeros((32, 32)), {"iterations": 0}, "iterations"),
])
def test_bad_input_is_one_line(image, params, match):
    with pytest.raises(EvobenchError, match=match) as err:
        s2s(image, **params)
    assert "\n" not in str(err.value)


def test_the_implementation_refuses_a_small_image_itself():
    from evobench_zeroshot.self2self import run

    with pytest.raises(EvobenchError, match="at least 8 x 8 pixels"):
        run_direct(run, np.zeros((6, 6)), task="denoise", sigma=SIGMA)


def test_rgb_denoise(rgb_clean):
    noisy = noisy_of(rgb_clean[:24, :24])
    out = s2s(noisy)
    assert out.image.shape == noisy.shape and np.isfinite(out.image).all()


@pytest.mark.parametrize("color", ["gray", "rgb"])
def test_inpainting_keeps_observed_pixels_exactly(color, small, rgb_clean):
    clean = small if color == "gray" else rgb_clean[:24, :24]
    mask = mask_of(clean.shape)  # per entry for RGB
    holed = np.where(mask, np.nan, clean)
    out = s2s(holed, task="inpaint", mask=mask)
    assert np.array_equal(out.image[~mask], clean[~mask])
    assert np.isfinite(out.image).all()


def test_inpainting_beats_mean_fill(small):
    mask = mask_of(small.shape)
    holed = np.where(mask, np.nan, small)
    fill = run_method("noisy", holed, task="inpaint", mask=mask)
    out = s2s(holed, task="inpaint", mask=mask, iterations=60, width=16, ensemble=8)
    gain = psnr(small, out.image) - psnr(small, fill.image)
    # measured 6.60 dB over the mean fill (32 x 32 cameraman, 50 % missing)
    assert gain > 5.0, f"self2self inpaints only {gain:.2f} dB above the mean fill"


def test_denoising_quality_floor(gray_clean):
    clean = gray_clean[:48, :48]
    noisy = noisy_of(clean)
    out = s2s(noisy, iterations=80, width=16, ensemble=16)
    gain = psnr(clean, out.image) - psnr(clean, noisy)
    # measured 3.66 dB over the noisy input (48 x 48 cameraman coat, sigma 25)
    assert gain > 2.5, f"self2self gains only {gain:.2f} dB over the noisy input"


@pytest.mark.slow
def test_default_settings_gain_5_db_on_a_128_crop():
    from skimage import data

    clean = data.camera()[60:188, 180:308] / 255.0
    noisy = clean + SIGMA * np.random.default_rng(0).normal(size=clean.shape)
    out = run_method("self2self", noisy, task="denoise", sigma=SIGMA, seed=0)
    gain = psnr(clean, out.image) - psnr(clean, noisy)
    # measured 6.00 dB (20.21 -> 26.21 dB) with the defaults, 400 iterations, one thread
    assert gain > 5.0, f"self2self gains only {gain:.2f} dB at its defaults"
