"""Test-wide set-up: datasets come from ../shared/data (an already-filled cache), never the network."""

import os
from pathlib import Path

_shared = Path(__file__).resolve().parents[1].parent / "shared" / "data"
if "EVOBENCH_DATA_DIR" not in os.environ and _shared.is_dir():
    os.environ["EVOBENCH_DATA_DIR"] = str(_shared)
os.environ.setdefault("EVOBENCH_OFFLINE", "1")
