"""Run the engine's tests single-threaded: the machine is shared, and two intra-op threads
competing with other jobs for two cores make tiny per-batch ops wait on each other."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
