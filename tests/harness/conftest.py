import pytest


@pytest.fixture
def fakes(evobench_plugin):
    import harness_fakes

    evobench_plugin(harness_fakes, "harness-fakes")
    return harness_fakes
