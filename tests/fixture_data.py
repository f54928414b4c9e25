"""Helpers for tests that touch dataset files (the fixtures themselves live in conftest.py)."""

import os
from pathlib import Path

REAL_DATA_HINT = ("needs the real Set12/BSD68/Castle files: run `evobench data fetch all` "
                  "(network) and set EVOBENCH_DATA_DIR to that cache")

# Shapes of the stand-in files: small, but House (02) and Barbara (09) differ, as the real ones do.
FIXTURE_SHAPES = {"set12/02.png": (40, 40), "set12/09.png": (48, 48), "castle.jpg": (36, 24, 3)}


def real_data_dir() -> Path | None:
    """The folder with the real dataset files, or None (then the test calling it should skip)."""
    env = os.environ.get("EVOBENCH_DATA_DIR", "").strip()
    return Path(env) if env and (Path(env) / "set12" / "02.png").is_file() else None
