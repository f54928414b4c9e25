"""Shared fixtures of the micro-benchmarks (``tox -e bench``; see docs/reports.md).

Kept generic so every benchmark file (core, TVAE engine, methods) can use them: a fixed 256 x 256
test image (House from ``EVOBENCH_DATA_DIR`` or the shared data folder, skipped when absent),
its noisy version drawn from a fixed seed, and a synthetic results store. The machine's load is
recorded next to each timing because shared runners make wall times noisy.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    """First run on a machine: there is no saved run to compare with, and pytest-benchmark then
    stops with a usage error (exit 4) under ``--benchmark-compare-fail``. Drop the gate for
    that run instead, so ``tox -e bench`` saves the first baseline and gates every later run."""
    session = getattr(config, "_benchmarksession", None)
    if session is None or not session.compare or session.compared_mapping:
        return
    if session.compare_fail:
        session.compare_fail = []
        print("pytest-benchmark: no saved run to compare with yet; this run is saved as the "
              "baseline and the --benchmark-compare-fail gate is skipped")


SIGMA = 25.0  # 0-255 scale, the literature's default noise level
SEED = 0


def data_dir() -> Path:
    """``EVOBENCH_DATA_DIR`` if set, else the shared test-data folder beside the checkout."""
    env = os.environ.get("EVOBENCH_DATA_DIR", "").strip()
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def house() -> np.ndarray:
    """Set12 House (02.png), float64 on [0, 1], 256 x 256; skips when the file is absent."""
    path = data_dir() / "set12" / "02.png"
    if not path.is_file():
        pytest.skip(f"House not found at {path}; set EVOBENCH_DATA_DIR or run 'evobench data fetch'")
    from skimage.io import imread

    image = imread(path).astype(np.float64) / 255.0
    assert image.shape == (256, 256), image.shape
    return image


@pytest.fixture(scope="session")
def image256() -> np.ndarray:
    """A 256 x 256 gray test image that is always available (scikit-image's camera, cropped),
    for benchmarks whose speed does not depend on the picture."""
    from skimage import data

    return data.camera()[128:384, 128:384].astype(np.float64) / 255.0


@pytest.fixture(scope="session")
def house_noisy(house) -> tuple[np.ndarray, float]:
    """House plus Gaussian noise (sigma 25 on the 0-255 scale, seed 0) and sigma on [0, 1]."""
    rng = np.random.default_rng(SEED)
    sigma = SIGMA / 255.0
    return house + sigma * rng.standard_normal(house.shape), sigma


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(SEED)


@pytest.fixture(scope="session")
def results_run(tmp_path_factory) -> Path:
    """A synthetic run of realistic size (12 images x 5 levels x 4 methods x 3 repetitions)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from synthetic_run import make_run

    return make_run(tmp_path_factory.mktemp("bench") / "run", seed=SEED,
                    images=tuple(f"{i:02d}" for i in range(1, 13)), reps=3, artifacts=False)


@pytest.fixture(autouse=True)
def _record_load(request):
    """Store the 1-minute load average with each benchmark, to judge a noisy timing later."""
    yield
    bench = request.node.funcargs.get("benchmark") if hasattr(request.node, "funcargs") else None
    if bench is not None and hasattr(os, "getloadavg"):
        bench.extra_info["loadavg_1m"] = round(os.getloadavg()[0], 2)
