"""The method plugins register light specs: no heavy import, precise capabilities."""

from __future__ import annotations

import subprocess
import sys

import pytest

from evobench.api import get_registry

PLUGINS = ["evobench_tvae", "evobench_bm3d", "evobench_gsvae", "evobench_skimage",
           "evobench_zeroshot"]


@pytest.mark.parametrize("module", PLUGINS)
def test_plugin_import_is_light(module):
    code = (
        "import sys; import " + module + "; "
        "heavy = [m for m in ('torch', 'bm3d', 'skimage', 'scipy') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "", f"{module} imports {out.stdout.strip()} at import time"


def test_tvae_plugin_reads_the_engine_presets_and_choices_without_torch():
    """The plugin takes its preset names and choices from the engine's torch-free config and
    presets (no copy to keep in sync): importing them, or the engine package, loads no torch."""
    code = (
        "import sys, evobench_tvae; assert 'torch' not in sys.modules; "
        "import evobench.tvae; assert 'torch' not in sys.modules; "
        "from evobench.tvae import config, presets; "
        "choices = {p.name: p.choices for p in evobench_tvae.SPEC.params}; "
        "assert choices['preset'] == tuple(presets.PRESETS), choices['preset']; "
        "assert choices['selection'] is config.SELECTIONS; "
        "assert choices['mutation'] is config.MUTATIONS; "
        "assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


EXPECTED = {
    "noisy": ({"denoise", "inpaint"}, {"cpu"}),
    "nlm": ({"denoise"}, {"cpu"}),
    "tv": ({"denoise"}, {"cpu"}),
    "wavelet": ({"denoise"}, {"cpu"}),
    "biharmonic": ({"inpaint"}, {"cpu"}),
    "bm3d": ({"denoise"}, {"cpu"}),
    "gsvae": ({"denoise", "inpaint"}, {"cpu", "cuda"}),
    "tvae": ({"denoise", "inpaint"}, {"cpu", "cuda"}),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_registered_capabilities(name):
    spec = get_registry().method(name)
    tasks, devices = EXPECTED[name]
    assert set(spec.tasks) == tasks
    assert set(spec.devices) == devices
    assert set(spec.colors) == {"gray", "rgb"}
    assert spec.version and spec.version != "0"
    assert spec.summary


def test_bm3d_spec_declares_licence_and_requirement():
    spec = get_registry().method("bm3d")
    assert "non-commercial" in spec.licence and "not vendored" in spec.licence
    assert spec.requires == ("bm3d",)
    assert spec.needs_sigma
    assert {p.name: p.choices for p in spec.params}["profile"] == ("np", "lc", "vn", "high")


def test_report_facts_live_on_the_specs():
    """What reports must know about a method is on its spec, not in the core: noisy is the
    reference (never marked best, drawn gray); tvae, gsvae and bm3d take the first styles."""
    registry = get_registry()
    facts = {name: (registry.method(name).reference, registry.method(name).rank)
             for name in EXPECTED}
    assert facts == {"noisy": (True, None), "tvae": (False, 1), "gsvae": (False, 2),
                     "bm3d": (False, 3), "nlm": (False, None), "tv": (False, None),
                     "wavelet": (False, None), "biharmonic": (False, None)}
