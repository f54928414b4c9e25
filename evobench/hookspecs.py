"""The hooks a plugin may implement.

Every hook hands the plugin a ``register`` callback (the llm/tox style), so evobench validates
each spec and records which plugin provided it.
"""

from __future__ import annotations

import pluggy

PROJECT = "evobench"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def evobench_register_methods(register):
    """Call ``register(MethodSpec(...))`` for each restoration method."""


@hookspec
def evobench_register_datasets(register):
    """Call ``register(DatasetSpec(...))`` for each dataset."""


@hookspec
def evobench_register_degradations(register):
    """Call ``register(DegradationSpec(...))`` for each degradation."""


@hookspec
def evobench_register_metrics(register):
    """Call ``register(MetricSpec(...))`` for each metric."""


@hookspec
def evobench_register_suites(register):
    """Call ``register(SuiteSpec(...))`` for each suite."""


@hookspec
def evobench_register_figures(register):
    """Call ``register(FigureSpec(...))`` for each kind of figure drawn from stored results."""


@hookspec
def evobench_register_commands(cli):
    """Add click commands to the ``evobench`` group (``cli.add_command(...)``)."""
