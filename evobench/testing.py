"""pytest helpers for plugin authors (loaded automatically as the ``evobench`` pytest plugin).

``evobench_plugin`` registers a temporary plugin in the process-wide registry and removes it
afterwards::

    def test_my_method(evobench_plugin):
        evobench_plugin(my_plugin_module)
        out = run_method("mymethod", image, task="denoise", sigma=0.1)
"""

from __future__ import annotations

import pytest


@pytest.fixture
def evobench_plugin():
    from evobench.registry import get_registry

    registry = get_registry()
    added: list[str] = []

    def register(plugin, name: str | None = None) -> str:
        added.append(registry.add_plugin(plugin, name))
        registry.collect()
        return added[-1]

    yield register
    for name in added:
        registry.remove_plugin(name)
    registry.collect()
