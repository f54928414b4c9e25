"""Memory is estimated before a large allocation (issue 23 item 11): one line naming what to
lower, instead of a MemoryError traceback (or swap) minutes later. The free memory is faked, so
the tests allocate nothing large."""

from __future__ import annotations

import numpy as np
import pytest

from evobench import validate
from evobench.errors import EvobenchError


def _free(monkeypatch, gib: float) -> None:
    monkeypatch.setattr(validate, "available_memory", lambda device="cpu": int(gib * 2**30))


def test_an_image_too_large_for_memory_is_refused_naming_crop(invoke, tmp_path, monkeypatch):
    _free(monkeypatch, 0.01)  # 10 MiB: camera (512 x 512) needs 8 float64 copies = 16 MiB
    args = ["run", "-d", "skimage[images=camera]", "--sigma", "25", "-m", "noisy", "--out",
            tmp_path, "--run-name", "r", "--quiet", "--no-save-images"]
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    line = result.output.strip()
    assert "\n" not in line and line.startswith("error: image skimage/camera (512 x 512) needs "
                                                "about 0.0 GiB, more than the 0.0 GiB free")
    assert "crop=1024" in line and not (tmp_path / "r").exists()
    cropped = invoke(*[a if a != "skimage[images=camera]" else "skimage[images=camera,crop=64]"
                       for a in args])
    assert cropped.exit_code == 0, cropped.output  # the crop is taken before the copies


def test_tvae_with_a_huge_S_is_refused_before_the_states_are_allocated(monkeypatch):
    from evobench.api import run_method

    _free(monkeypatch, 4)
    image = 0.4 + 0.2 * np.random.default_rng(0).random((128, 128))
    with pytest.raises(EvobenchError, match=r"tvae with S=100000 on 14641 patches \(the K_n "
                                            r"states, N x S x H bits: 10\.9 GiB.*lower S"):
        run_method("tvae", image, task="denoise", sigma=0.1, S=100000)


def test_the_default_tvae_fits_in_little_memory(monkeypatch):
    from evobench.tvae.config import make_config
    from evobench.tvae.pipeline import check_memory
    from evobench.tvae.presets import get_preset

    needs = []
    monkeypatch.setattr(validate, "memory", lambda need, *a, **k: needs.append(need))
    check_memory(make_config(get_preset("quick"), {}), 14641, 64, "cpu")
    assert needs and needs[0] < 2**30  # the 128 x 128 default needs well under 1 GiB


def test_memory_check_message_and_unknown_free_memory(monkeypatch):
    _free(monkeypatch, 1)
    with pytest.raises(EvobenchError, match=r"^thing needs about 2\.0 GiB, more than the 1\.0 GiB "
                                            r"free in RAM; lower x$"):
        validate.memory(2 * 2**30, "thing", "lower x")
    validate.memory(0.5 * 2**30, "thing", "lower x")  # fits
    monkeypatch.setattr(validate, "available_memory", lambda device="cpu": None)
    validate.memory(2**50, "thing", "lower x")  # cannot tell: nothing refused
