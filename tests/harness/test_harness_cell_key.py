"""A cell's key changes with every field of its identity, and only with those.

docs/harness.md promises that the key holds everything that changes the numbers (the method's
version, the device, the seeds, the metrics, the degradation's and dataset's parameters, the
image, the repetition, the method's parameters and a fit budget): a field left out would let a
resumed run reuse results that belong to another cell (for instance the old version's)."""

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evobench.harness.grid import Cell
from evobench.harness.seeds import digest

BASE = dict(suite="s", profile="p", dataset="set12", dataset_params={"crop": 64},
            image="house", image_name="House", color="gray", degradation="gaussian",
            deg_params={"sigma": 25.0}, task="denoise", method="tvae", method_label="tvae",
            method_params={"preset": "quick", "epochs": 10}, method_version="1.0", rep=0,
            base_seed=0, device="cpu", metrics=("psnr", "ssim"), budget_s=None)

# each identity field, with changed values (a different value, a changed or added entry)
CHANGES = {
    "method_version": ["1.1", "2.0", ""],
    "device": ["cuda", "cuda:1"],
    "base_seed": [1, 12345],
    "metrics": [("psnr",), ("psnr", "ssim", "lpips")],
    "deg_params": [{"sigma": 15.0}, {"sigma": 25.0, "clip": True}, {}],
    "degradation": ["poisson"],
    "dataset_params": [{"crop": 128}, {"crop": 64, "limit": 1}, {}],
    "dataset": ["bsd68"],
    "image": ["barbara"],
    "rep": [1, 7],
    "method": ["bm3d"],
    "method_params": [{"preset": "quick", "epochs": 11}, {"preset": "quick"},
                      {"preset": "quick", "epochs": 10, "H": 32}],
    "budget_s": [60.0, 0.5],
}


def _cell(**changes) -> Cell:
    return Cell(**(BASE | changes))


def test_every_identity_field_is_covered_here():
    """A field added to the identity must be added to CHANGES (and so to this test)."""
    assert set(_cell(budget_s=1.0).identity()) == set(CHANGES)


@pytest.mark.parametrize("field,value",
                         [(f, v) for f, values in CHANGES.items() for v in values])
def test_changing_an_identity_field_changes_the_key(field, value):
    base, other = _cell(), _cell(**{field: value})
    assert other.key != base.key, field
    assert dataclasses.replace(base, **{field: value}).key == other.key


@pytest.mark.parametrize("field,value", [("suite", "other"), ("profile", "full"),
                                         ("method_label", "tvae-fast"),
                                         ("image_name", "house!")])
def test_labels_and_the_suite_do_not_change_the_key(field, value):
    assert _cell(**{field: value}).key == _cell().key


def test_metrics_order_does_not_change_the_key_and_no_budget_keeps_the_old_key():
    assert _cell(metrics=("ssim", "psnr")).key == _cell().key
    ident = _cell().identity()
    assert "budget_s" not in ident and _cell().key == digest(ident)


_values = st.one_of(st.integers(-3, 3), st.floats(-2, 2, allow_nan=False), st.text(max_size=3),
                    st.booleans())


@settings(max_examples=150, deadline=None)
@given(field=st.sampled_from(["method_params", "deg_params", "dataset_params"]),
       name=st.text(min_size=1, max_size=4), value=_values)
def test_any_change_of_a_parameter_dict_changes_the_key(field, name, value):
    params = dict(BASE[field])
    if params.get(name, object()) == value and type(params.get(name)) is type(value):
        return  # not a change
    params[name] = value
    assert _cell(**{field: params}).key != _cell().key, (field, name, value)


@settings(max_examples=100, deadline=None)
@given(rep=st.integers(0, 50), seed=st.integers(0, 2**31), version=st.text(max_size=6))
def test_keys_differ_whenever_rep_seed_or_version_differ(rep, seed, version):
    a = _cell(rep=rep, base_seed=seed, method_version=version)
    b = _cell()
    same = (rep, seed, version) == (b.rep, b.base_seed, b.method_version)
    assert (a.key == b.key) == same
