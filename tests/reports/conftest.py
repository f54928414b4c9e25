"""Synthetic, schema-exact run folders shared by the report tests (no method is ever run)."""

from __future__ import annotations

import pytest
from synthetic_run import make_run


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory):
    """A complete run (denoise + inpaint, 4 methods, 2 images, 2 reps, artifacts, traces)."""
    return make_run(tmp_path_factory.mktemp("runs") / "base")


@pytest.fixture(scope="session")
def small_run(tmp_path_factory):
    """The same grid cut to two noise levels and two missing fractions (fast figure tests)."""
    return make_run(tmp_path_factory.mktemp("runs") / "small", sigmas=(15.0, 25.0),
                    missing=(0.5, 0.8))


@pytest.fixture
def make(tmp_path):
    """Write another synthetic run under tmp_path: ``make("name", **make_run_kwargs)``."""

    def _make(name, **kwargs):
        return make_run(tmp_path / name, **kwargs)

    return _make
