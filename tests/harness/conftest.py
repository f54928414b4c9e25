import pytest


@pytest.fixture
def fakes(evobench_plugin):
    import harness_fakes

    evobench_plugin(harness_fakes, "harness-fakes")
    return harness_fakes


@pytest.fixture
def invoke():
    """Run the real ``evobench`` CLI in-process; returns click's Result."""
    from click.testing import CliRunner

    from evobench.cli import cli

    def run(*args):
        return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)

    return run
