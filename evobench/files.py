"""Writing files safely: inside their own folder, and so that a reader sees the old content or
the new, never a part.

``within(root, *parts)`` is the one check of every path evobench writes or deletes under a
folder it owns (a run folder's ``cells/``, ``artifacts/``, ``claims/``, ``checkpoints/``; a
report's ``figures/``): the path is resolved, symlinks included, and refused in one line when it
leaves ``root`` (a symlinked subfolder pointing elsewhere is never written through).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from evobench.errors import EvobenchError


class OutsideFolderError(EvobenchError):
    """A path under a folder evobench owns resolves (through a symlink) outside it."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give; mkstemp's 0600 would hide results


def within(root: Path | str, *parts: str | os.PathLike) -> Path:
    """``root/parts...`` (``parts`` may also be a path already under ``root``), refusing one
    that resolves, symlinks included, outside ``root``. ``root`` itself may be a link."""
    base = Path(root).expanduser()
    path = base.joinpath(*parts)
    real_base, real = base.resolve(), path.resolve()
    if real != real_base and real_base not in real.parents:
        inner = path
        for parent in [path, *path.parents]:  # name the link that leaves the folder
            if parent == base or base not in parent.parents:
                break
            if parent.is_symlink():
                inner = parent
        raise OutsideFolderError(
            f"{inner} resolves to {inner.resolve()}, outside {base}; evobench writes only inside "
            f"its own folder: remove that link (or choose another folder)")
    return path


def atomic_write(path: Path, data: bytes, root: Path | str | None = None) -> None:
    """Write via a temporary file and a rename: readers see the old file or the new one. With
    ``root``, ``path`` must stay inside it (:func:`within`)."""
    path = Path(path)
    if root is not None:
        within(root, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if root is not None:
        within(root, path)  # mkdir may have followed a link created meanwhile
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
