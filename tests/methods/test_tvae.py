"""The ``tvae`` method plugin: engine wiring, sparsity reporting, seeds, rejections."""

from __future__ import annotations

import numpy as np
import pytest
from method_inputs import SIGMA, psnr
from stopping import run_direct

pytest.importorskip("torch")
tvae_engine = pytest.importorskip("evobench.tvae")
if not hasattr(tvae_engine, "denoise"):
    pytest.skip("the TVAE engine does not export denoise yet", allow_module_level=True)

import evobench_tvae  # noqa: E402
from evobench_tvae.method import run as _tvae  # noqa: E402

from evobench.api import EvobenchError, SpecError, run_method  # noqa: E402


def tvae_run(image, **kw):
    return run_direct(_tvae, image, **kw)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = dict(patch_size=5, H=16, hidden=(16,), S=16, epochs=5)


@pytest.fixture(scope="module")
def denoised(one_torch_thread, gray_noisy):
    return run_method("tvae", gray_noisy, task="denoise", sigma=SIGMA, seed=1, **TINY)


def test_preset_parameter_defaults_to_quick():
    assert evobench_tvae.SPEC.params[0].default == "quick"


def test_beats_noisy_floor(denoised, gray_clean, gray_noisy):
    gain = psnr(gray_clean, denoised.image) - psnr(gray_clean, gray_noisy)
    # measured 3.34 dB at one torch thread
    assert gain > 2.85, f"tvae gains only {gain:.2f} dB over the noisy input"


def test_reports_sparsity_fields_and_trace(denoised, gray_clean):
    H, p = TINY["H"], TINY["patch_size"]
    n_patches = (gray_clean.shape[0] - p + 1) * (gray_clean.shape[1] - p + 1)
    ex, art = denoised.extras, denoised.artifacts
    assert 0 < ex["active_mean"] < H and 0 < ex["pi_sum"] < H
    assert ex["epochs"] == TINY["epochs"] and ex["S"] == TINY["S"] and ex["H"] == H
    assert np.isfinite(ex["free_energy"]) and ex["free_energy"] == denoised.trace[-1][
        "free_energy"]
    assert art["fields"].shape == (H, p, p) and art["background"].shape == (p, p)
    hist = art["active_hist"]
    assert hist.shape == (H + 1,) and hist.sum() == pytest.approx(n_patches, rel=1e-4)
    assert (hist * np.arange(H + 1)).sum() / n_patches == pytest.approx(ex["active_mean"],
                                                                        rel=1e-3)
    assert [r["epoch"] for r in denoised.trace] == list(range(1, TINY["epochs"] + 1))
    assert denoised.time_fit_s > 0 and denoised.time_infer_s > 0


def test_seed_decides_the_output(denoised, gray_noisy):
    same = run_method("tvae", gray_noisy, task="denoise", sigma=SIGMA, seed=1, **TINY)
    np.testing.assert_array_equal(same.image, denoised.image)
    other = run_method("tvae", gray_noisy, task="denoise", sigma=SIGMA, seed=2, **TINY)
    assert np.abs(other.image - denoised.image).max() > 1e-3


def test_inpaint_keeps_observed_and_beats_floor(gray_clean, gray_mask, gray_holed):
    out = run_method("tvae", gray_holed, task="inpaint", mask=gray_mask, seed=0,
                     **dict(TINY, half_cycle=1.0))
    np.testing.assert_array_equal(out.image[~gray_mask], gray_clean[~gray_mask])
    floor = run_method("noisy", gray_holed, task="inpaint", mask=gray_mask)
    # measured 10.26 dB above the mean fill at one torch thread
    assert psnr(gray_clean, out.image) > psnr(gray_clean, floor.image) + 9.75


def test_budget_and_clean_trace(gray_clean, gray_noisy):
    crop, noisy = gray_clean[:24, :24], gray_noisy[:24, :24]
    out = tvae_run(noisy, task="denoise", sigma=SIGMA, budget_s=1e-3, **dict(TINY, epochs=40))
    assert out.extras["epochs"] == 1 and len(out.trace) == 1
    out = tvae_run(noisy, task="denoise", sigma=SIGMA, clean=crop, **dict(TINY, epochs=2))
    assert out.trace[-1]["psnr"] == pytest.approx(psnr(crop, out.image))


def test_rejects_bad_input(gray_noisy):
    with pytest.raises(SpecError, match="preset"):
        run_method("tvae", gray_noisy, task="denoise", preset="nonsense")
    with pytest.raises(SpecError, match="selection"):
        run_method("tvae", gray_noisy, task="denoise", selection="roulette")
    with pytest.raises(EvobenchError, match="no parameter"):
        run_method("tvae", gray_noisy, task="denoise", temperature=1.0)
    with pytest.raises(EvobenchError, match="needs a mask"):
        run_method("tvae", gray_noisy, task="inpaint")
    with pytest.raises(EvobenchError, match="patch_size"):
        run_method("tvae", gray_noisy[:6, :6], task="denoise", patch_size=8)
