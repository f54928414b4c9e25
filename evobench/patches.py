"""Cutting an image into overlapping patches and merging patch estimates back.

Shared by every patch-based method (TVAE, the Gumbel-softmax VAE), so that their comparison
uses the same data and the same merge. Patches are flattened channel after channel (all R
pixels, then G, then B), as in the reference pipeline, so D = C * p * p.
"""

from __future__ import annotations

import numpy as np

WEIGHTINGS = ("mean", "gaussian")


def positions(size: int, patch: int, stride: int) -> np.ndarray:
    """Top-left offsets along one axis; the last patch always touches the border."""
    if patch > size:
        raise ValueError(
            f"patch size {patch} is larger than the image side {size}; use a smaller patch_size"
        )
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    pos = np.arange(0, size - patch + 1, stride)
    if pos[-1] != size - patch:
        pos = np.append(pos, size - patch)
    return pos


def _as_hwc(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image[:, :, None]
    if image.ndim == 3 and image.shape[2] in (1, 3):
        return image
    raise ValueError(
        f"image must be H x W (gray) or H x W x 3 (RGB), got shape {tuple(image.shape)}"
    )


def extract_patches(image: np.ndarray, patch_size: int, stride: int = 1) -> np.ndarray:
    """All patches as an (N, C * p * p) array, in row-major order of their top-left corners."""
    img = _as_hwc(np.asarray(image))
    h, w, c = img.shape
    rows, cols = positions(h, patch_size, stride), positions(w, patch_size, stride)
    windows = np.lib.stride_tricks.sliding_window_view(img, (patch_size, patch_size), axis=(0, 1))
    # windows: (h-p+1, w-p+1, c, p, p) -> keep the chosen positions
    sel = windows[rows][:, cols]
    return np.ascontiguousarray(sel.reshape(len(rows) * len(cols), c * patch_size * patch_size))


def _weights(patch_size: int, weighting: str) -> np.ndarray:
    if weighting == "mean":
        return np.ones((patch_size, patch_size))
    if weighting == "gaussian":
        grid = np.linspace(-1.0, 1.0, patch_size, endpoint=False) + 1.0 / patch_size
        yy, xx = np.meshgrid(grid, grid, indexing="ij")
        return np.exp(-0.5 * (xx**2 + yy**2)) / (2 * np.pi)
    raise ValueError(f"unknown weighting {weighting!r}; use one of {list(WEIGHTINGS)}")


def merge_patches(
    patches: np.ndarray,
    image_shape: tuple[int, ...],
    patch_size: int,
    stride: int = 1,
    weighting: str = "mean",
) -> np.ndarray:
    """Average overlapping patch estimates into an image of ``image_shape``.

    Entries that are NaN in ``patches`` do not vote; a pixel no patch covers stays NaN.
    """
    shape = tuple(image_shape)
    h, w = shape[:2]
    c = shape[2] if len(shape) == 3 else 1
    rows, cols = positions(h, patch_size, stride), positions(w, patch_size, stride)
    n_expected = len(rows) * len(cols)
    patches = np.asarray(patches, dtype=np.float64)
    if patches.shape != (n_expected, c * patch_size * patch_size):
        raise ValueError(
            f"patches have shape {patches.shape}, expected {(n_expected, c * patch_size**2)} "
            f"for an image of shape {shape} with patch_size={patch_size}, stride={stride}"
        )
    # (c, p, p, R, Cc): each offset's plane is contiguous, so the loop below streams memory
    blocks = np.array(  # always a copy: NaNs are zeroed in place below
        patches.reshape(len(rows), len(cols), c, patch_size, patch_size).transpose(2, 3, 4, 0, 1),
        order="C",
    )
    valid = ~np.isnan(blocks)
    has_gaps = not valid.all()
    if has_gaps:
        blocks[~valid] = 0.0
    wgt = _weights(patch_size, weighting)
    acc = np.zeros((c, h, w))
    norm = np.zeros((c, h, w)) if has_gaps else np.zeros((1, h, w))
    regular = bool(np.all(np.diff(rows) == stride) and np.all(np.diff(cols) == stride))
    for i in range(patch_size):  # loop over offsets inside a patch (p^2), never over patches
        for j in range(patch_size):
            if regular:  # plain strided slices: no index arrays at all
                where = (slice(None), slice(i, i + stride * (len(rows) - 1) + 1, stride),
                         slice(j, j + stride * (len(cols) - 1) + 1, stride))
            else:  # positions are distinct, so fancy-indexed += never drops an update
                where = (slice(None), *np.ix_(rows + i, cols + j))
            acc[where] += blocks[:, i, j] * wgt[i, j] if weighting != "mean" else blocks[:, i, j]
            norm[where] += valid[:, i, j] * wgt[i, j] if has_gaps else wgt[i, j]
    if not has_gaps:
        norm = np.broadcast_to(norm, acc.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(norm > 0, acc / np.where(norm > 0, norm, 1.0), np.nan)
    out = np.moveaxis(out, 0, -1)
    return out[:, :, 0] if len(shape) == 2 else out
