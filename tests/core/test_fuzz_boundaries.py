"""Fuzzing the input boundaries (issue 9): randomised bad input to the selector parser, the
suite loader (and the grid it expands to), ``run_method``'s input checks and the results
loader; and (issue 23) the results store under interleaved writers and ``report``/``figures``
on hostile results rows. Whatever comes in, the only exception that may come out is ``EvobenchError`` with a
one-line message."""

from __future__ import annotations

import io
import json
import math
import tomllib
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

from evobench.errors import EvobenchError  # noqa: E402

FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


def _only_one_line_evobench_errors(fn, *args, **kwargs):
    """Call ``fn``; success or an EvobenchError with a one-line, non-empty message."""
    try:
        return fn(*args, **kwargs)
    except EvobenchError as exc:
        message = str(exc)
        assert message.strip() and "\n" not in message, repr(message)
        return None


# -- building blocks --------------------------------------------------------------------------
NAMES = ["noisy", "tv", "nlm", "tvae", "gsvae", "bm3d", "wavelet", "biharmonic", "skimage",
         "set12", "folder", "gaussian", "inpaint", "inpaint_noise", "psnr", "ssim", "tvea", ""]
PARAMS = ["S", "H", "epochs", "sigma", "missing", "per", "crop", "images", "limit", "path",
          "weight", "patch_size", "lr_min", "preset", "strength", "color", "follow_links", "x"]
VALUES = ["nan", "inf", "-inf", "-1", "0", "1e400", "25", "0.5", "camera", "../..", "true",
          "", "9" * 30, "1,2", "a=b", "[", "]", "house,barbara"]

value = st.one_of(st.sampled_from(VALUES), st.text(max_size=8))
selector_text = st.one_of(
    st.text(max_size=40),
    st.builds(lambda n, ps: n + ("[" + ",".join(f"{k}={v}" for k, v in ps) + "]" if ps else ""),
              st.sampled_from(NAMES),
              st.lists(st.tuples(st.sampled_from(PARAMS), value), max_size=4)),
)
scalar = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                   st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=10),
                   selector_text)
toml_value = st.recursive(scalar.filter(lambda v: v is not None),
                          lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                  st.dictionaries(st.text(max_size=8), inner,
                                                                  max_size=4)),
                          max_leaves=12)
BLOCK_KEYS = ["datasets", "degradations", "methods", "metrics", "repetitions", "timeout",
              "dataset", "x"]
block = st.dictionaries(st.sampled_from(BLOCK_KEYS),
                        st.one_of(st.lists(selector_text, max_size=3), toml_value), max_size=6)
profile_name = st.one_of(st.sampled_from(["quick", "smoke", "x/../../escaped", "..", "a b"]),
                         st.text(max_size=10))
suite_data = st.dictionaries(
    st.sampled_from(["name", "summary", "default_profile", "profiles", "extra"]),
    st.one_of(toml_value, st.dictionaries(profile_name, st.one_of(block, st.lists(block,
                                                                                  max_size=2),
                                                                  toml_value), max_size=3)),
    max_size=4)


# -- the selector parser ----------------------------------------------------------------------
@FUZZ
@given(text=st.one_of(selector_text, st.binary(max_size=10), st.integers(), st.none()))
def test_selector_parser(text):
    from evobench.harness.selectors import parse_selector, split_list

    _only_one_line_evobench_errors(parse_selector, text, "method")
    if isinstance(text, str):
        _only_one_line_evobench_errors(split_list, text, "--sigma")


# -- the suite loader and grid ----------------------------------------------------------------
@FUZZ
@given(data=suite_data, seed=st.one_of(st.integers(-5, 2**64), st.sampled_from([0, 2**63 - 1])),
       device=st.sampled_from(["cpu", "cuda:x", "cuda:-1", "tpu", ""]))
def test_suite_loader_and_grid(data, seed, device):
    from evobench.harness.grid import Overrides, build_grid, suite_from_data
    from evobench.registry import get_registry

    suite = _only_one_line_evobench_errors(suite_from_data, data, "fuzz.toml")
    if suite is not None:
        _only_one_line_evobench_errors(build_grid, suite, None,
                                       Overrides(seed=seed, device=device), get_registry())


@FUZZ
@given(text=st.one_of(st.text(max_size=200), st.binary(max_size=200).map(
    lambda b: b.decode("latin-1"))))
def test_suite_files_of_random_text(tmp_path_factory, text):
    from evobench.harness.grid import load_suite
    from evobench.registry import get_registry

    path = tmp_path_factory.mktemp("suite") / "fuzz.toml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    _only_one_line_evobench_errors(load_suite, str(path), get_registry())


@FUZZ
@given(data=suite_data)
def test_suite_files_written_as_toml(tmp_path_factory, data):
    """Structures that survive a TOML round trip, read back through the file loader."""
    from evobench.harness.grid import load_suite
    from evobench.registry import get_registry

    text = _to_toml(data)
    if text is None:
        return
    path = tmp_path_factory.mktemp("suite") / "fuzz.toml"
    path.write_text(text)
    _only_one_line_evobench_errors(load_suite, str(path), get_registry())


def _to_toml(data) -> str | None:
    """A tiny TOML writer (inline tables) for the fuzz structures; None when not expressible."""
    def val(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int):
            return str(v) if -(2**63) <= v < 2**63 else None
        if isinstance(v, float):
            return "nan" if v != v else ("inf" if v == float("inf") else
                                         "-inf" if v == float("-inf") else repr(v))
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            items = [val(x) for x in v]
            return None if None in items else "[" + ", ".join(items) + "]"
        if isinstance(v, dict):
            items = [(json.dumps(k), val(x)) for k, x in v.items()]
            if any(x is None for _, x in items):
                return None
            return "{" + ", ".join(f"{k} = {x}" for k, x in items) + "}"
        return None

    lines = []
    for key, v in data.items():
        text = val(v)
        if text is None:
            return None
        lines.append(f"{key} = {text}")
    out = "\n".join(lines) + "\n"
    try:
        tomllib.loads(out)
    except tomllib.TOMLDecodeError:
        return None
    return out


# -- run_method's input checks ----------------------------------------------------------------
dtypes = st.sampled_from([np.float64, np.float32, np.float16, np.uint8, np.uint16, np.int32,
                          np.int64, np.bool_, np.complex64])
shapes = st.one_of(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6),
                   st.sampled_from([(8, 8), (8, 8, 3), (8, 8, 4), (0, 8), (16, 16)]))


def _filled(dt, shape, fill) -> np.ndarray:
    """An array of ``shape`` and type ``dt`` filled from ``fill``. NaN, inf or 1e6 cast to an
    integer type is whatever NumPy makes of it (the checks must cope with any value), without
    its overflow / invalid-cast RuntimeWarning."""
    if dt is np.bool_:
        return np.full(shape, bool(fill))
    with np.errstate(over="ignore", invalid="ignore"):
        return np.full(shape, fill).astype(dt, copy=False)


arrays = st.builds(_filled, dtypes, shapes,
                   st.one_of(st.floats(-1e6, 1e6), st.sampled_from([0.5, np.nan, np.inf, 255])))
sigmas = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True),
                   st.sampled_from([0, -1, "x", 1e300]), st.integers(-3, 3))


@FUZZ
@given(image=st.one_of(arrays, st.lists(st.floats(), max_size=4), st.text(max_size=4)),
       task=st.sampled_from(["denoise", "inpaint", "deblur", ""]),
       sigma=sigmas, device=st.sampled_from(["cpu", "cuda", "cuda:0", "cuda:x", "gpu", 3]),
       mask=st.one_of(st.none(), arrays, st.just("mask")),
       method=st.sampled_from(["noisy", "tv", "wavelet", "biharmonic", "nosuch"]),
       params=st.dictionaries(st.sampled_from(["weight", "weight_factor", "max_num_iter",
                                               "wavelet", "mode", "bogus"]),
                              st.sampled_from(VALUES + [1, -1.0, float("nan")]), max_size=2))
def test_run_method_input_checks(image, task, sigma, device, mask, method, params):
    import warnings

    from evobench.api import run_method

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = _only_one_line_evobench_errors(run_method, method, image, task=task, sigma=sigma,
                                             mask=mask, device=device, **params)
    if out is not None:  # what got through is an image on a sane scale
        assert np.isfinite(out.image).all()


# -- the results loader -----------------------------------------------------------------------
columns = st.sampled_from(["run_id", "cell_key", "method", "status", "psnr", "ssim", "rep",
                           "dataset", "image", "dataset_params", "method_label", "x_y", ""])
cell = st.one_of(st.none(), st.integers(-(2**62), 2**62), st.floats(), st.text(max_size=6),
                 st.booleans())


@FUZZ
@given(frame=st.dictionaries(columns, st.lists(cell, min_size=3, max_size=3), max_size=8),
       manifest=st.one_of(st.text(max_size=30), toml_value.map(json.dumps)),
       damage=st.one_of(st.none(), st.integers(0, 2000)), schema=st.sampled_from(
           [None, b"1", b"2", b"x", b"99999999999999999999"]))
def test_results_loader(tmp_path_factory, frame, manifest, damage, schema):
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from evobench.reports.load import load_runs

    run = tmp_path_factory.mktemp("run")
    try:
        table = pa.Table.from_pandas(pd.DataFrame(frame), preserve_index=False)
    except (pa.ArrowException, ValueError, TypeError, OverflowError):
        return  # not storable as Parquet at all: not a results file anyone could have
    if schema is not None:
        table = table.replace_schema_metadata({b"evobench_schema": schema})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    data = sink.getvalue()
    if damage is not None:
        data = data[:damage] + b"\x00garbage" + data[damage + 8:]
    (run / "results.parquet").write_bytes(data)
    (run / "manifest.json").write_text(manifest)
    (run / "traces.parquet").write_bytes(data if damage else b"")
    _only_one_line_evobench_errors(load_runs, [str(run)])


@FUZZ
@given(path=st.one_of(st.text(max_size=20), st.sampled_from(["", ".", "..", "/", "/etc/passwd"])))
def test_results_loader_paths(path):
    from evobench.reports.load import load_runs

    if "\x00" in path or Path(path).expanduser().resolve() == Path("/"):
        return
    _only_one_line_evobench_errors(load_runs, [path])



# -- the results store under concurrent writers (issue 23) ------------------------------------
STORE_FUZZ = settings(FUZZ, max_examples=25)


@st.composite
def writers_and_schedule(draw):
    """2-4 writers with disjoint random cells (different selections into one run folder) and a
    random interleaving of their steps: start (the tables' stamp), one write per cell, finish
    (the tables)."""
    n = draw(st.integers(2, 4))
    pool = [f"c{i}" for i in range(10)]
    keys = draw(st.permutations(pool))
    sizes = [draw(st.integers(0, 3)) for _ in range(n)]
    cells, at = [], 0
    for size in sizes:
        cells.append(keys[at:at + size])
        at += size
    order = draw(st.permutations([w for w in range(n) for _ in range(len(cells[w]) + 2)]))
    return cells, order


@STORE_FUZZ
@given(plan=writers_and_schedule(), psnr=st.floats(allow_nan=True, allow_infinity=True))
def test_results_store_under_interleaved_writers(tmp_path_factory, plan, psnr):
    """No row of a writer is lost while a writer that overlapped it (started before it finished)
    ends later, none is duplicated, and the store reloads; a writer that starts after another
    finished (a sequential rerun of another selection) replaces the table, by design."""
    from evobench.harness.store import RunStore
    from evobench.reports.load import read_results

    cells, order = plan
    store = RunStore(tmp_path_factory.mktemp("out"), "run")
    store.cells_dir.mkdir(parents=True)
    stamps, records, steps, clock = {}, {w: [] for w in range(len(cells))}, {}, 0
    started, finished = {}, {}
    for w in order:
        step = steps.get(w, 0)
        steps[w] = step + 1
        clock += 1
        if step == 0:
            stamps[w], started[w] = store.tables_stamp(), clock
        elif step <= len(cells[w]):
            row = {"cell_key": cells[w][step - 1], "status": "ok", "method": f"m{w}",
                   "dataset": "d", "image": "i", "task": "denoise", "psnr": psnr}
            records[w].append(store.write_cell(row, [], None))
        else:
            store.write_tables(records[w], since=stamps[w])
            finished[w] = clock
    df = read_results(store.root)  # the store reloads
    keys = list(df["cell_key"])
    assert len(keys) == len(set(keys)), "a duplicated row"
    last = max(finished, key=finished.get)
    for w, done in finished.items():
        replaced = any(started[v] > done for v in finished)  # a later, sequential writer
        if w == last or not replaced:
            assert set(cells[w]) <= set(keys), (w, cells, order, keys)
    for key, method in zip(df["cell_key"], df["method"]):
        assert store.load_cell(key)["row"]["method"] == method  # the cell file's own row


# -- report and figures on hostile results (issue 23) -----------------------------------------
REPORT_FUZZ = settings(FUZZ, max_examples=8)  # each runs report and figures: ~0.5 s
LABELS = ["noisy", "tv", "=1+1", "+cmd|' /C calc'!A0", "-2", "@SUM(A1)", "", " ", "a/b", "..",
          "x" * 300, "é\u202e\u0000", "<script>", "tvae[S=64,H=16]"]
label = st.one_of(st.sampled_from(LABELS), st.text(max_size=12))
number = st.one_of(st.floats(0, 40), st.floats(0, 40), st.sampled_from([math.nan, math.inf,
                                                                       -math.inf, -1.0, 1e308]),
                   st.none())
results_row = st.fixed_dictionaries({  # mostly plausible rows, so the figures get drawn
    "cell_key": st.text(max_size=8), "dataset": label, "image": label,
    "task": st.sampled_from(["denoise"] * 4 + ["inpaint", "", "x"]), "method": label,
    "method_label": label,
    "status": st.sampled_from(["ok"] * 4 + ["error", "timeout", "skipped", ""]),
    "psnr": number, "ssim": number, "time_total_s": number, "p_deg_sigma": number,
    "p_deg_missing": number, "degradation": st.sampled_from(["gaussian"] * 3 + ["", "=x"]),
    "rep": st.integers(-1, 2), "epoch": st.integers(0, 3), "psnr_input": number,
    "artifact": st.sampled_from(["", "artifacts/none.npz", "../x"]),
})


ABSURD = dict(cell_key="a", method="tv", method_label="tv", psnr=20.0, ssim=0.5, rep=0,
              time_total_s=0.1, dataset="d", task="denoise", image="i", status="ok",
              degradation="gaussian", artifact="", p_deg_sigma=1e308)


@REPORT_FUZZ
@example(rows=[ABSURD, {**ABSURD, "cell_key": "b", "p_deg_sigma": 25.0, "psnr": -math.inf}],
         drop=[])  # found by this test: matplotlib failed at savefig, outside a kind's guard
@given(rows=st.lists(results_row, min_size=1, max_size=4),
       drop=st.lists(st.sampled_from(["psnr", "task", "method_label", "status", "image",
                                      "p_deg_sigma", "time_total_s", "degradation"]),
                     max_size=2))
def test_report_and_figures_on_hostile_rows(tmp_path_factory, rows, drop):
    """``evobench report`` and ``figures`` on hostile values and labels: they succeed, and
    where a required column is missing they give one ``error:`` line naming it (exit 2);
    never a traceback."""
    import pandas as pd
    import pyarrow as pa
    from click.testing import CliRunner

    from evobench.cli import cli
    from evobench.schema import REQUIRED_COLUMNS

    run = tmp_path_factory.mktemp("run")
    frame = pd.DataFrame(rows).drop(columns=list(set(drop)))
    try:
        frame.to_parquet(run / "results.parquet", index=False)
    except (pa.ArrowException, ValueError, TypeError, OverflowError):
        return
    out = tmp_path_factory.mktemp("rep")
    lacking = [c for c in REQUIRED_COLUMNS if c in drop]
    for args in (["report", str(run), "--out", str(out / "r")],
                 ["figures", str(run), "--out", str(out / "f"), "--format", "png,svg"]):
        result = CliRunner().invoke(cli, args, catch_exceptions=False)
        assert "Traceback" not in result.output
        if not lacking:
            assert result.exit_code == 0, result.output
            continue
        line = result.output.strip()
        assert result.exit_code == 2 and line.startswith("error: ") and "\n" not in line, \
            result.output
        assert f"lacks the column(s) {', '.join(lacking)}" in line
