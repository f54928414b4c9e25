"""Test-wide set-up: datasets come from ../shared/data (an already-filled cache), never the network."""

import os
from pathlib import Path

import pytest

_shared = Path(__file__).resolve().parents[1].parent / "shared" / "data"
if "EVOBENCH_DATA_DIR" not in os.environ and _shared.is_dir():
    os.environ["EVOBENCH_DATA_DIR"] = str(_shared)
os.environ.setdefault("EVOBENCH_OFFLINE", "1")


@pytest.fixture
def invoke():
    """Run the real ``evobench`` root command in-process (user errors map to exit code 2);
    returns click's Result."""
    from click.testing import CliRunner

    from evobench.cli import cli

    def run(*args):
        return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)

    return run
