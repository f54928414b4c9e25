"""Dataset files on disk: where the cache lives, SHA-256 verification and downloads.

Plugins describe their files as :class:`RemoteFile` entries (relative path, SHA-256, address);
this module turns an entry into a verified local path. The cache folder is ``EVOBENCH_DATA_DIR``
or the platform's user cache, with the same layout as the shared test data (``set12/01.png``,
``bsd68/test001.png``, ``castle.jpg``), so a folder filled elsewhere works as a cache as long as
the hashes match. A folder without write permission bits is never written to (not even by root).
``EVOBENCH_OFFLINE=1`` forbids the network; ``EVOBENCH_DATA_MIRROR=URL`` fetches every file from
``URL/<relative path>`` instead of its public address (an institute mirror, or a test server).
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from evobench.errors import EvobenchError, first_line

ENV_DIR = "EVOBENCH_DATA_DIR"
ENV_OFFLINE = "EVOBENCH_OFFLINE"
ENV_MIRROR = "EVOBENCH_DATA_MIRROR"

# (path, size, mtime_ns) -> sha256 hex; hashing a file once per process is enough.
_VERIFIED: dict[tuple[str, int, int], str] = {}


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset: where it goes in the cache, its hash and its public address."""

    dataset: str
    path: str  # relative to the cache folder, '/'-separated
    sha256: str
    url: str


def data_dir() -> Path:
    """The cache folder: ``EVOBENCH_DATA_DIR`` or the user cache (``platformdirs``)."""
    env = os.environ.get(ENV_DIR, "").strip()
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("evobench")) / "data"


def offline() -> bool:
    return os.environ.get(ENV_OFFLINE, "").strip().lower() in {"1", "true", "yes", "on"}


def writable(folder: Path) -> bool:
    """Whether we may write in ``folder`` (or create it). Permission bits are honoured even for
    root, so a read-only shared cache is never modified."""
    folder = Path(folder)
    while not folder.exists():
        if folder.parent == folder:
            return False
        folder = folder.parent
    try:
        mode = folder.stat().st_mode
    except OSError:
        return False
    return bool(mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)) and os.access(folder, os.W_OK)


def sha256_of(path: Path) -> str:
    """SHA-256 of a file, cached per process by (path, size, mtime)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    digest = _VERIFIED.get(key)
    if digest is None:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        digest = h.hexdigest()
        _VERIFIED[key] = digest
    return digest


def status(entry: RemoteFile, root: Path | None = None) -> str:
    """``ok``, ``missing`` or ``corrupted`` (present with the wrong hash)."""
    path = (root or data_dir()) / entry.path
    if not path.is_file():
        return "missing"
    return "ok" if sha256_of(path) == entry.sha256 else "corrupted"


def _source_url(entry: RemoteFile) -> str:
    mirror = os.environ.get(ENV_MIRROR, "").strip()
    return f"{mirror.rstrip('/')}/{entry.path}" if mirror else entry.url


def ensure(entry: RemoteFile, *, allow_download: bool | None = None) -> Path:
    """A verified local path for ``entry``: present and intact, or downloaded now.

    A tampered or truncated file is fetched again when the network is allowed and the cache is
    writable; otherwise the one-line error names ``evobench data fetch <dataset>``.
    """
    root = data_dir()
    path = root / entry.path
    state = status(entry, root)
    if state == "ok":
        return path
    hint = f"run `evobench data fetch {entry.dataset}`"
    what = f"{entry.path} is {'missing from' if state == 'missing' else 'corrupted (SHA-256 mismatch) in'} the data cache {root}"
    if allow_download is None:
        allow_download = not offline()
    if not allow_download:
        raise EvobenchError(f"{what} and downloads are off ({ENV_OFFLINE}=1); {hint} with network access")
    if not writable(path.parent):
        raise EvobenchError(
            f"{what}, which is not writable; {hint} with {ENV_DIR} set to a writable folder"
        )
    _download(entry, path, hint)
    return path


def _download(entry: RemoteFile, path: Path, hint: str) -> None:
    """Download with pooch (temporary file, SHA-256 check, then rename: never a half file)."""
    import pooch

    pooch.get_logger().setLevel("WARNING")
    url = _source_url(entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()  # a corrupted copy; pooch would otherwise keep it on a failed download
    try:
        pooch.retrieve(url, known_hash=f"sha256:{entry.sha256}", fname=path.name,
                       path=path.parent, progressbar=False)
    except ValueError as exc:  # pooch's hash mismatch
        raise EvobenchError(
            f"downloaded {entry.path} from {url} but its SHA-256 does not match the registry "
            f"({first_line(exc)[:80]}); {hint} again later"
        ) from None
    except Exception as exc:  # noqa: BLE001 - requests/OS errors all mean "no file"
        raise EvobenchError(
            f"could not download {entry.path} from {url} ({type(exc).__name__}); check the "
            f"network, or put the file there by hand: {path} (that is {ENV_DIR}/{entry.path}) "
            f"with SHA-256 {entry.sha256}, from {entry.url}"
        ) from None
    st = path.stat()
    _VERIFIED[(str(path.resolve()), st.st_size, st.st_mtime_ns)] = entry.sha256


def fetch_all(entries, *, force: bool = False) -> list[tuple[RemoteFile, str]]:
    """Make every entry present and verified; returns (entry, what happened) pairs. Offline,
    a cache that already verifies is fine; only a needed download is refused."""
    entries = list(entries)
    states = [status(e) for e in entries]
    if offline() and (force or any(s != "ok" for s in states)):
        bad = sum(s != "ok" for s in states)
        raise EvobenchError(f"downloads are off ({ENV_OFFLINE}=1) and {bad or len(entries)} "
                            f"file(s) need one; unset {ENV_OFFLINE} to fetch them")
    done = []
    for entry, before in zip(entries, states):
        if force:
            path = data_dir() / entry.path
            if not writable(path.parent):
                raise EvobenchError(f"the data cache {data_dir()} is not writable; set {ENV_DIR}")
            _download(entry, path, f"run `evobench data fetch {entry.dataset}`")
            what = "re-downloaded"
        elif before != "ok":
            ensure(entry, allow_download=True)
            what = "downloaded" if before == "missing" else "re-downloaded"
        else:
            what = "present"
        done.append((entry, what))
    return done
