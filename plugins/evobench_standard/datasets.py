"""Dataset loaders: downloaded sets (Set12, BSD68, Castle), scikit-image's bundled images and a
user's own folder. Every loader returns float64 on the [0, 1] scale, H x W or H x W x 3.

Downloaded files are verified (SHA-256 from ``files.toml``) each time a process first reads
them, through :mod:`evobench.data`.
"""

from __future__ import annotations

import functools
import os
import tomllib
from pathlib import Path

import numpy as np

from evobench.api import EvobenchError, RemoteFile, check_memory, ensure
from evobench_standard import SKIMAGE_GRAY, SKIMAGE_RGB

FILES_TOML = Path(__file__).with_name("files.toml")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
DECODE_BYTES = 4 + 8 + 8  # per value while reading: decoded (up to 32 bit), float64, its copy


@functools.cache
def remote_files() -> dict[str, tuple[RemoteFile, ...]]:
    """dataset name -> its files, from the shipped ``files.toml``."""
    table = tomllib.loads(FILES_TOML.read_text())
    out: dict[str, list[RemoteFile]] = {}
    for row in table["files"]:
        base = table["sources"][row["source"]]["base"]
        out.setdefault(row["dataset"], []).append(
            RemoteFile(row["dataset"], row["path"], row["sha256"], f"{base}/{row['remote']}")
        )
    return {name: tuple(files) for name, files in out.items()}


def _file(dataset: str, rel: str) -> RemoteFile:
    for entry in remote_files()[dataset]:
        if entry.path == rel:
            return entry
    raise EvobenchError(f"dataset {dataset!r} has no image file {rel!r}")


def to_float(array: np.ndarray, name: str) -> np.ndarray:
    """Integer images to [0, 1] by their type's maximum; float images are kept as they are."""
    array = np.asarray(array)
    if array.dtype == bool:
        return array.astype(np.float64)
    if np.issubdtype(array.dtype, np.integer):
        return array.astype(np.float64) / float(np.iinfo(array.dtype).max)
    if np.issubdtype(array.dtype, np.floating):
        return array.astype(np.float64)
    raise EvobenchError(f"{name}: unsupported pixel type {array.dtype}")


def read_image(path: Path, color: str = "keep") -> np.ndarray:
    """Read a PNG/JPEG/TIFF into [0, 1] floats; an unreadable file is a one-line error naming it.

    ``color``: ``keep`` (as stored, alpha dropped), ``gray`` (ITU-R 601 luma, as PIL's ``L``),
    ``rgb`` (gray replicated to three channels).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:  # reads the header only: the size is known before decoding
            width, height = im.size
            check_memory(width * height * len(im.getbands()) * DECODE_BYTES,
                            f"image {path} ({width} x {height})",
                            "use a smaller image (the whole file is decoded before a crop)")
            im.load()
            if im.mode in {"P", "PA", "CMYK", "YCbCr", "LAB", "HSV"}:
                im = im.convert("RGBA" if "A" in im.mode or "transparency" in im.info else "RGB")
            if color == "gray" and im.mode not in {"L", "I", "I;16", "F", "1"}:
                im = im.convert("RGB").convert("L")
            array = np.asarray(im)
    except EvobenchError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise EvobenchError(f"cannot read image {path}: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else 'unreadable'}") from None
    if array.ndim == 3 and array.shape[2] in (2, 4):  # drop alpha
        array = array[..., :-1]
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.dtype == np.int32 and array.max(initial=0) <= 65535:  # PIL's 'I' mode for 16-bit
        array = array.astype(np.uint16)
    image = to_float(array, str(path))
    if color == "rgb" and image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise EvobenchError(f"cannot use image {path}: shape {image.shape} is neither gray nor RGB")
    return image


# -- downloaded sets ---------------------------------------------------------------------------
def load_set12(image_id: str) -> np.ndarray:
    return read_image(ensure(_file("set12", f"set12/{image_id}.png")))


def load_bsd68(image_id: str) -> np.ndarray:
    return read_image(ensure(_file("bsd68", f"bsd68/{image_id}.png")))


def load_castle(image_id: str) -> np.ndarray:
    return read_image(ensure(_file("castle", "castle.jpg")))


def files_of(dataset: str) -> tuple[RemoteFile, ...]:
    """The files of a downloaded set (its spec's ``files``), from ``files.toml``."""
    return remote_files()[dataset]


# -- scikit-image's bundled images (no network) -----------------------------------------------
def _skimage(image_id: str, allowed: tuple[str, ...]) -> np.ndarray:
    if image_id not in allowed:
        raise EvobenchError(f"unknown scikit-image image {image_id!r}; known: {', '.join(allowed)}")
    import skimage.data

    return to_float(getattr(skimage.data, image_id)(), image_id)


def load_skimage(image_id: str) -> np.ndarray:
    return _skimage(image_id, SKIMAGE_GRAY)


def load_skimage_rgb(image_id: str) -> np.ndarray:
    return _skimage(image_id, SKIMAGE_RGB)


# -- a user's folder ---------------------------------------------------------------------------
def _folder(path: str) -> Path:
    if not path:
        raise EvobenchError("dataset folder needs a path: use folder[path=/my/images]")
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise EvobenchError(f"dataset folder: {folder} is not a folder")
    return folder


def _leaves(folder: Path, entry: Path) -> bool:
    """Whether ``entry`` (a symlink, or inside one) resolves outside ``folder``."""
    base, real = folder.resolve(), entry.resolve()
    return base not in real.parents


def list_folder(path: str = "", color: str = "keep", follow_links: bool = False) -> tuple[str, ...]:
    """Image ids of a folder: its PNG/JPEG/TIFF file names, sorted. A symlink that leads out of
    the folder is refused unless ``follow_links`` (links inside it are fine); a dangling one
    is left out with a warning (the run prints it as a note)."""
    import warnings

    folder = _folder(path)
    names = []
    for p in sorted(folder.iterdir()):
        if p.is_symlink() and not p.exists() and p.suffix.lower() in IMAGE_SUFFIXES:
            warnings.warn(f"dataset folder: {p.name} in {folder} is a link to "
                          f"{os.readlink(p)}, which does not exist; left out", stacklevel=2)
            continue
        if not (p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES):
            continue
        if not follow_links and _leaves(folder, p):
            raise EvobenchError(f"dataset folder: {p.name} in {folder} links to {p.resolve()}, "
                                "outside the folder; remove the link or allow it with "
                                "folder[path=...,follow_links=true]")
        names.append(p.name)
    if not names:
        raise EvobenchError(f"dataset folder: {folder} holds no .png, .jpg or .tif images")
    return tuple(names)


def load_folder(image_id: str, path: str = "", color: str = "keep",
                follow_links: bool = False) -> np.ndarray:
    folder = _folder(path)
    file = folder / image_id
    if Path(image_id).name != image_id or image_id in ("", ".", ".."):
        raise EvobenchError(f"dataset folder: image id {image_id!r} is not a file name in {folder}")
    if not follow_links and _leaves(folder, file):
        raise EvobenchError(f"dataset folder: {image_id} in {folder} links outside the folder; "
                            "allow it with folder[path=...,follow_links=true]")
    return read_image(file, color)
