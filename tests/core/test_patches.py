"""Patch extraction and merging are exact inverses, for every stride, colour mode and weighting."""

import numpy as np
import pytest

from evobench.patches import extract_patches, merge_patches, positions


@pytest.mark.parametrize("shape", [(37, 29), (20, 23, 3)])
@pytest.mark.parametrize("stride", [1, 3])
@pytest.mark.parametrize("weighting", ["mean", "gaussian"])
def test_merge_inverts_extract(shape, stride, weighting):
    img = np.random.default_rng(0).random(shape)
    patches = extract_patches(img, 5, stride)
    np.testing.assert_allclose(merge_patches(patches, shape, 5, stride, weighting), img)


def test_layout_is_channel_major_row_major():
    img = np.arange(4 * 5 * 3, dtype=float).reshape(4, 5, 3)
    p = extract_patches(img, 2, 1)
    assert p.shape == (3 * 4, 12)
    # first patch: channel 0 block first, row-major inside it
    np.testing.assert_array_equal(p[0, :4], [img[0, 0, 0], img[0, 1, 0], img[1, 0, 0], img[1, 1, 0]])
    np.testing.assert_array_equal(p[1, :4], [img[0, 1, 0], img[0, 2, 0], img[1, 1, 0], img[1, 2, 0]])


def test_mean_merge_averages_overlaps_and_ignores_nan():
    img = np.array([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]])
    p = extract_patches(img, 2, 1)  # two 2x2 patches, overlapping in column 1
    p[0, 1] = np.nan  # patch 0 has no estimate of pixel (0, 1): patch 1 decides alone
    p[1, 0] = 10.0
    assert merge_patches(p, img.shape, 2, 1)[0, 1] == 10.0
    p[0, 3], p[1, 2] = 2.0, 4.0  # both estimate pixel (1, 1): their mean
    assert merge_patches(p, img.shape, 2, 1)[1, 1] == 3.0
    p[1, 3] = 6.0  # pixel (1, 2) is covered by patch 1 only
    assert merge_patches(p, img.shape, 2, 1)[1, 2] == 6.0


def test_positions_reach_the_border():
    np.testing.assert_array_equal(positions(10, 4, 3), [0, 3, 6])
    np.testing.assert_array_equal(positions(11, 4, 3), [0, 3, 6, 7])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: extract_patches(np.zeros((4, 4)), 5), "larger than the image"),
        (lambda: extract_patches(np.zeros((4, 4, 2)), 2), "H x W x 3"),
        (lambda: extract_patches(np.zeros((8, 8)), 2, 0), "stride must be >= 1"),
        (lambda: merge_patches(np.zeros((3, 4)), (4, 4), 2), r"shape \(3, 4\), expected \(9, 4\)"),
        (lambda: merge_patches(np.zeros((9, 4)), (4, 4, 3), 2),
         r"shape \(9, 4\), expected \(9, 12\)"),
        (lambda: merge_patches(np.zeros((9, 4)), (4, 4), 2, weighting="max"), "unknown weighting"),
    ],
)
def test_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_gaussian_merge_is_the_weighted_mean_of_its_definition():
    """Each pixel: sum_k w(i_k, j_k) x_k / sum_k w(i_k, j_k) over the patches k covering it, at
    offset (i_k, j_k) inside patch k, with w(i, j) = exp(-(x_i^2 + x_j^2) / 2) on the cell
    centres x_i = -1 + (2 i + 1) / p of [-1, 1] (symmetric about the patch centre). Written as a
    loop over patches; values differ per patch so the weights matter."""
    p, shape = 4, (7, 6)
    rng = np.random.default_rng(3)
    patches = rng.random(((7 - p + 1) * (6 - p + 1), p * p))
    got = merge_patches(patches, shape, p, 1, "gaussian")
    x = -1 + (2 * np.arange(p) + 1) / p
    w = np.exp(-0.5 * (x[:, None] ** 2 + x[None, :] ** 2))
    acc, norm = np.zeros(shape), np.zeros(shape)
    k = 0
    for r in range(7 - p + 1):
        for c in range(6 - p + 1):
            acc[r:r + p, c:c + p] += w * patches[k].reshape(p, p)
            norm[r:r + p, c:c + p] += w
            k += 1
    np.testing.assert_allclose(got, acc / norm, rtol=1e-12, atol=0)
    # and a patch's weights are symmetric: a flipped image merges to the flipped result
    flipped = patches.reshape(-1, p, p)[::-1, ::-1, ::-1].reshape(len(patches), -1)
    np.testing.assert_allclose(merge_patches(flipped, shape, p, 1, "gaussian"),
                               got[::-1, ::-1], rtol=1e-12, atol=0)
