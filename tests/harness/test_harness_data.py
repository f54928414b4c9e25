"""The dataset cache: verification, tampering, offline errors and real downloads from a local
HTTP server (no internet). The files are small stand-ins the tests make (``fixture_cache`` in
tests/conftest.py); only the first test reads the real Set12/BSD68/Castle, and skips without them."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading

import numpy as np
import pytest
from evobench_standard import datasets as ds
from fixture_data import FIXTURE_SHAPES, REAL_DATA_HINT, real_data_dir

from evobench import data
from evobench.errors import EvobenchError


def test_shared_folder_is_an_already_filled_cache(monkeypatch):
    shared = real_data_dir()
    if shared is None:
        pytest.skip(REAL_DATA_HINT)
    monkeypatch.setenv("EVOBENCH_DATA_DIR", str(shared))
    files = [e for entries in ds.remote_files().values() for e in entries]
    assert len(files) == 12 + 68 + 1
    assert all(data.status(e) == "ok" for e in files)
    house = ds.load_set12("02")
    assert house.shape == (256, 256) and house.dtype == np.float64
    # the published house.png's pixel statistics (docs/tvae-method.md section 7)
    assert round(house.min() * 255) == 16 and round(house.max() * 255) == 239
    assert abs(house.mean() * 255 - 137.99) < 0.01
    castle = ds.load_castle("castle")
    assert castle.shape == (481, 321, 3) and 0 <= castle.min() and castle.max() <= 1


@pytest.fixture
def cache(fixture_cache):
    """A writable cache holding copies of (stand-ins of) House and Castle."""
    return fixture_cache[0]


@pytest.fixture
def pristine(fixture_cache):
    """The untouched stand-in files, laid out as the cache."""
    return fixture_cache[1]


def _tamper(path):
    raw = bytearray(path.read_bytes())
    raw[100] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_tampered_file_offline_names_the_fetch_command(cache, pristine, monkeypatch):
    monkeypatch.setenv("EVOBENCH_OFFLINE", "1")
    _tamper(cache / "set12" / "02.png")
    with pytest.raises(EvobenchError, match=r"corrupted .*evobench data fetch set12"):
        ds.load_set12("02")
    (cache / "castle.jpg").write_bytes((pristine / "castle.jpg").read_bytes()[:300])  # truncated
    with pytest.raises(EvobenchError, match="evobench data fetch castle"):
        ds.load_castle("castle")


def test_missing_file_offline(cache, monkeypatch):
    monkeypatch.setenv("EVOBENCH_OFFLINE", "1")
    with pytest.raises(EvobenchError, match=r"set12/09.png is missing .*evobench data fetch set12"):
        ds.load_set12("09")


def test_read_only_cache_is_never_written(fixture_cache, tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    (ro / "set12").mkdir(parents=True)
    shutil.copy(fixture_cache[1] / "set12" / "02.png", ro / "set12" / "02.png")
    _tamper(ro / "set12" / "02.png")
    before = (ro / "set12" / "02.png").read_bytes()
    for folder in (ro / "set12", ro):
        folder.chmod(0o555)
    try:
        monkeypatch.setenv("EVOBENCH_DATA_DIR", str(ro))
        monkeypatch.delenv("EVOBENCH_OFFLINE", raising=False)
        with pytest.raises(EvobenchError, match=r"not writable.*evobench data fetch set12"):
            ds.load_set12("02")
        assert (ro / "set12" / "02.png").read_bytes() == before
        assert not data.writable(ro)  # read-only bits are honoured even for root
    finally:
        for folder in (ro, ro / "set12"):
            folder.chmod(0o755)


@pytest.fixture
def mirror(pristine, tmp_path, monkeypatch):
    """A real HTTP server on 127.0.0.1 serving a copy of the stand-in files."""
    root = tmp_path / "www"
    shutil.copytree(pristine, root, ignore=shutil.ignore_patterns("bsd68"))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))

    class Quiet(handler.func):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.delenv("EVOBENCH_OFFLINE", raising=False)
    monkeypatch.setenv("EVOBENCH_DATA_MIRROR", f"http://127.0.0.1:{server.server_address[1]}")
    yield root
    server.shutdown()
    server.server_close()


def test_download_and_refetch_of_a_tampered_file(cache, pristine, mirror):
    house = cache / "set12" / "02.png"
    _tamper(house)
    img = ds.load_set12("02")  # detected, downloaded again, verified
    assert house.read_bytes() == (pristine / "set12" / "02.png").read_bytes()
    assert img.shape == FIXTURE_SHAPES["set12/02.png"]
    img = ds.load_set12("09")  # missing: downloaded
    assert (cache / "set12" / "09.png").read_bytes() == (pristine / "set12" / "09.png").read_bytes()
    assert img.shape == FIXTURE_SHAPES["set12/09.png"]


def test_download_with_wrong_content_keeps_nothing(cache, mirror):
    _tamper(mirror / "set12" / "05.png")  # the server now sends bytes with the wrong hash
    with pytest.raises(EvobenchError, match="SHA-256 does not match.*evobench data fetch set12"):
        ds.load_set12("05")
    assert not (cache / "set12" / "05.png").exists()
    assert not list((cache / "set12").glob("*05*"))  # no partial file left behind


def test_unreachable_server_message(cache, monkeypatch):
    monkeypatch.delenv("EVOBENCH_OFFLINE", raising=False)
    monkeypatch.setenv("EVOBENCH_DATA_MIRROR", "http://127.0.0.1:9")  # discard port: refused
    with pytest.raises(EvobenchError, match=r"could not download set12/03.png .*put the file "
                                            r"there by hand: .*set12/03.png .*SHA-256 [0-9a-f]{64}"
                                            r", from https://raw.githubusercontent.com/.*/Set12/03"
                                            r".png$") as err:
        ds.load_set12("03")
    assert "evobench data fetch" not in str(err.value)  # the command that just failed


def test_data_cli_fetch_and_list(cache, mirror, invoke):
    result = invoke("data", "fetch", "set12")
    assert result.exit_code == 0, result.output
    assert "set12: 11 downloaded, 1 present" in result.output
    assert sorted(p.name for p in (cache / "set12").iterdir()) == [f"{i:02d}.png"
                                                                    for i in range(1, 13)]
    listing = invoke("data", "list")
    assert listing.exit_code == 0
    lines = {line.split()[0]: line for line in listing.output.splitlines()[2:]}
    assert "cached, verified" in lines["set12"]
    assert "68/68 missing: evobench data fetch bsd68" in lines["bsd68"]
    assert "embedded" in lines["skimage"]


def test_data_cli_errors(pristine, invoke, monkeypatch, tmp_path):
    monkeypatch.setenv("EVOBENCH_OFFLINE", "1")
    monkeypatch.setenv("EVOBENCH_DATA_DIR", str(pristine))
    result = invoke("data", "fetch", "set12", "castle")  # a full cache verifies: fine
    assert result.exit_code == 0 and "set12: 12 present" in result.output
    monkeypatch.setenv("EVOBENCH_DATA_DIR", str(tmp_path))
    result = invoke("data", "fetch", "set12")
    assert result.exit_code == 2
    assert result.output.startswith("error: downloads are off (EVOBENCH_OFFLINE=1) and 12 file")
    result = invoke("data", "fetch", "sett12")
    assert result.exit_code == 2 and "did you mean 'set12'" in result.output
    result = invoke("data", "fetch", "skimage")
    assert result.exit_code == 2 and "needs no download" in result.output


def test_data_cli_force_refetch(cache, pristine, mirror, invoke):
    castle = cache / "castle.jpg"
    old_mtime = castle.stat().st_mtime_ns
    result = invoke("data", "fetch", "castle", "--force")
    assert result.exit_code == 0 and "castle: 1 re-downloaded" in result.output
    assert castle.stat().st_mtime_ns != old_mtime
    assert castle.read_bytes() == (pristine / "castle.jpg").read_bytes()
