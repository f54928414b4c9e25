"""Tests restore the environment they change (tests/conftest.py's autouse fixture).

The first test changes it the way in-process code does: ``limit_threads`` (a worker's thread
pins: OMP_NUM_THREADS, MKL_NUM_THREADS, ..., torch's thread count) and the variables the
checkpoint and forkserver code sets (PYTHONHASHSEED, EVOBENCH_PARENT_PID), to values nothing
else uses. The second finds none of them, whichever order the two run in (alone, it passes
trivially; after the first, it fails if the environment leaked)."""

import os

from evobench.harness.worker import THREAD_ENV, limit_threads

MARKS = {**{name: "3" for name in THREAD_ENV}, "PYTHONHASHSEED": "12345",
         "EVOBENCH_PARENT_PID": "1", "EVOBENCH_ENV_PROBE": "set by a test"}


def test_a_change_the_environment_in_process():
    import torch

    limits = limit_threads(3)
    os.environ.update({k: v for k, v in MARKS.items() if k not in THREAD_ENV})
    try:
        assert all(os.environ[k] == v for k, v in MARKS.items())
        assert torch.get_num_threads() == 3
    finally:
        limits.restore_original_limits()  # threadpoolctl's own state; the env is the fixture's


def test_b_no_later_test_sees_those_changes():
    import torch

    leaked = {k: v for k, v in MARKS.items() if os.environ.get(k) == v}
    assert leaked == {}, f"environment leaked from an earlier test: {leaked}"
    assert torch.get_num_threads() != 3 or os.cpu_count() == 3
