"""The standard plugin: embedded and user datasets, degradations, metrics."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from evobench_standard import datasets as ds
from evobench_standard import degradations as deg
from evobench_standard import metrics

from evobench.errors import EvobenchError
from evobench.registry import get_registry


def test_plugin_import_is_light():
    code = ("import sys, evobench_standard; from evobench.registry import get_registry; "
            "get_registry().names('suites'); "
            "print(sorted(m for m in ('torch', 'skimage', 'pandas', 'PIL') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_registered_names():
    reg = get_registry()
    assert {"set12", "bsd68", "castle", "skimage", "skimage-rgb", "folder"} <= set(
        reg.names("datasets"))
    assert set(reg.names("degradations")) >= {"gaussian", "inpaint", "inpaint_noise"}
    assert {"psnr", "ssim"} <= set(reg.names("metrics"))
    assert {"denoise", "inpaint", "paper"} <= set(reg.names("suites"))
    set12 = reg.dataset("set12")
    assert set12.aliases["house"] == "02" and set12.aliases["barbara"] == "09"


@pytest.mark.parametrize("name", ds.SKIMAGE_GRAY)
def test_embedded_gray_images_load_offline(name):
    image = ds.load_skimage(name)
    assert image.ndim == 2 and image.dtype == np.float64
    assert 0.0 <= image.min() and image.max() <= 1.0 and image.std() > 0.01


def test_embedded_rgb_and_unknown():
    assert ds.load_skimage_rgb("astronaut").shape == (512, 512, 3)
    with pytest.raises(EvobenchError, match="unknown scikit-image image 'astronaut'"):
        ds.load_skimage("astronaut")


def test_folder_dataset(tmp_path):
    from PIL import Image

    rgb = (np.arange(20 * 30 * 3).reshape(20, 30, 3) % 256).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "b.png")
    Image.fromarray(rgb[..., 0]).save(tmp_path / "a.tif")
    (tmp_path / "notes.txt").write_text("not an image")
    assert ds.list_folder(str(tmp_path)) == ("a.tif", "b.png")
    gray = ds.load_folder("b.png", str(tmp_path), "gray")
    assert gray.shape == (20, 30)
    colour = ds.load_folder("b.png", str(tmp_path), "rgb")
    np.testing.assert_array_equal(colour, rgb / 255.0)
    assert ds.load_folder("a.tif", str(tmp_path), "rgb").shape == (20, 30, 3)
    (tmp_path / "c.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    with pytest.raises(EvobenchError, match=r"cannot read image .*c\.jpg"):
        ds.load_folder("c.jpg", str(tmp_path))
    with pytest.raises(EvobenchError, match="is not a folder"):
        ds.list_folder(str(tmp_path / "nope"))


def test_gaussian_is_unclipped_and_seeded():
    clean = np.full((128, 128), 0.98)
    a = deg.gaussian(clean, rng=np.random.default_rng(5), sigma=25)
    b = deg.gaussian(clean, rng=np.random.default_rng(5), sigma=25)
    np.testing.assert_array_equal(a.image, b.image)
    assert a.sigma == pytest.approx(25 / 255) and a.mask is None
    assert a.image.max() > 1.0  # never clipped
    assert np.std(a.image - clean) == pytest.approx(25 / 255, rel=0.03)


def test_inpaint_masks():
    clean = np.random.default_rng(0).random((100, 100, 3))
    pix = deg.inpaint(clean, rng=np.random.default_rng(1), missing=0.8, per="pixel")
    assert pix.mask.shape == (100, 100) and pix.sigma is None
    assert pix.mask.mean() == pytest.approx(0.8, abs=0.02)
    assert np.isnan(pix.image[pix.mask]).all() and not np.isnan(pix.image[~pix.mask]).any()
    np.testing.assert_array_equal(pix.image[~pix.mask], clean[~pix.mask])
    ent = deg.inpaint(clean, rng=np.random.default_rng(1), missing=0.5, per="entry")
    assert ent.mask.shape == clean.shape
    assert not (ent.mask == ent.mask[..., :1]).all()  # channels independent
    both = deg.inpaint_noise(clean, rng=np.random.default_rng(1), missing=0.5, sigma=50)
    assert both.sigma == pytest.approx(50 / 255)
    resid = (both.image - clean)[~both.mask]
    assert np.std(resid) == pytest.approx(50 / 255, rel=0.05)


def test_metrics_known_values():
    clean = np.zeros((32, 32))
    assert metrics.psnr(clean, clean + 0.1) == pytest.approx(20.0)
    assert metrics.psnr(clean, clean + 0.1, data_range=255.0) == pytest.approx(
        20 * np.log10(255 / 0.1))
    img = np.random.default_rng(0).random((32, 32, 3))
    assert metrics.ssim(img, img) == pytest.approx(1.0)
    assert metrics.ssim(img, img + 0.2) < 1.0
    # no hidden clipping: values above 1 count as they are
    assert metrics.psnr(img, img + 0.5) == pytest.approx(-20 * np.log10(0.5))
