"""Test-wide set-up: no test needs the network or files beside the checkout.

Dataset tests use :func:`fixture_cache`, a small stand-in for Set12/BSD68/Castle that the tests
make themselves (tiny images, their SHA-256 registered in place of ``files.toml``'s). The real
files are only read by the few tests that check them, which skip with a reason when they are
absent; ``EVOBENCH_DATA_DIR`` (or, in this team's CI, a sibling ``../shared/data``) enables them.
"""

import os
from pathlib import Path

import pytest

_shared = Path(__file__).resolve().parents[1].parent / "shared" / "data"
if "EVOBENCH_DATA_DIR" not in os.environ and _shared.is_dir():
    os.environ["EVOBENCH_DATA_DIR"] = str(_shared)
os.environ.setdefault("EVOBENCH_OFFLINE", "1")

from fixture_data import FIXTURE_SHAPES  # noqa: E402 - after the environment set-up


@pytest.fixture(autouse=True)
def _restore_environment():
    """Every test leaves ``os.environ`` (and torch's thread count) as it found them: code run
    in-process, such as ``limit_threads`` (OMP_NUM_THREADS, MKL_NUM_THREADS, ...) or the
    forkserver set-up (EVOBENCH_PARENT_PID), must not change the rest of the session."""
    import sys

    before = dict(os.environ)
    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else None
    yield
    if dict(os.environ) != before:
        for name in set(os.environ) - set(before):
            del os.environ[name]
        os.environ.update(before)
    if threads is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session", autouse=True)
def _no_user_cache(tmp_path_factory):
    """Without a data folder, point the cache at an empty temporary one: a test run never
    reads or writes the user's own cache (~/.cache/evobench)."""
    if not os.environ.get("EVOBENCH_DATA_DIR", "").strip():
        os.environ["EVOBENCH_DATA_DIR"] = str(tmp_path_factory.mktemp("empty-cache"))
        yield
        del os.environ["EVOBENCH_DATA_DIR"]
    else:
        yield


@pytest.fixture(scope="session")
def fixture_files(tmp_path_factory):
    """A pristine stand-in cache (every file of files.toml, tiny and synthetic) and the
    ``dataset -> RemoteFile`` table with the stand-ins' hashes."""
    import numpy as np
    from evobench_standard import datasets as ds
    from PIL import Image

    from evobench.data import RemoteFile, sha256_of

    root = tmp_path_factory.mktemp("fixture-data")
    rng = np.random.default_rng(0)
    table = {}
    for name, entries in ds.remote_files().items():
        out = []
        for entry in entries:
            path = root / entry.path
            path.parent.mkdir(parents=True, exist_ok=True)
            shape = FIXTURE_SHAPES.get(entry.path, (16, 16))
            pixels = rng.integers(0, 256, shape, dtype=np.uint8)
            Image.fromarray(pixels).save(path, **({"quality": 95} if path.suffix == ".jpg"
                                                  else {}))
            out.append(RemoteFile(entry.dataset, entry.path, sha256_of(path), entry.url))
        table[name] = tuple(out)
    return root, table


@pytest.fixture
def fixture_cache(fixture_files, tmp_path, monkeypatch):
    """A writable cache holding copies of the stand-ins of House (set12/02) and Castle, with
    the stand-ins' hashes registered; returns ``(cache folder, pristine folder)``."""
    import shutil

    from evobench_standard import datasets as ds

    pristine, table = fixture_files
    cache = tmp_path / "cache"
    (cache / "set12").mkdir(parents=True)
    shutil.copy(pristine / "set12" / "02.png", cache / "set12" / "02.png")
    shutil.copy(pristine / "castle.jpg", cache / "castle.jpg")
    monkeypatch.setattr(ds, "remote_files", lambda: table)
    monkeypatch.setenv("EVOBENCH_DATA_DIR", str(cache))
    return cache, pristine


@pytest.fixture
def invoke():
    """Run the real ``evobench`` root command in-process (user errors map to exit code 2);
    returns click's Result."""
    from click.testing import CliRunner

    from evobench.cli import cli

    def run(*args):
        return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)

    return run
