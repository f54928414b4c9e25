"""Resume semantics per stored status (docs/harness.md, "Cell keys, caching and resume"): a
rerun reuses only cells stored with ``status=ok``; every other stored status (``error``,
``timeout``, ``stopped``, a worker that died, ``skipped`` by an earlier run, anything unknown)
runs again, and ``--force`` reruns everything. Tested on :func:`evobench.harness.runner.plan`
for each status, so one status treated as done fails its own case."""

import pytest

from evobench.harness.grid import Cell, Grid
from evobench.harness.runner import plan
from evobench.harness.store import RunStore


def _cell(image: str, skip_reason: str = "") -> Cell:
    return Cell(suite="s", profile="p", dataset="skimage", dataset_params={}, image=image,
                image_name=image, color="gray", degradation="gaussian",
                deg_params={"sigma": 25.0}, task="denoise", method="fake-ok",
                method_label="fake-ok", method_params={}, method_version="1", rep=0,
                base_seed=0, device="cpu", metrics=("psnr",), skip_reason=skip_reason)


def _store(tmp_path, cell: Cell, status: str | None) -> RunStore:
    store = RunStore(tmp_path, "run")
    store.check_writable()
    row = {"cell_key": cell.key, "psnr": 30.0}
    if status is not None:
        row["status"] = status
    store.write_cell(row, [], None)
    return store


def _grid(*cells: Cell) -> Grid:
    return Grid(cells=list(cells), notes=[], config={}, timeout=None, suite="s", profile="p")


def test_a_stored_ok_cell_is_done_and_reused(tmp_path):
    cell = _cell("camera")
    store = _store(tmp_path, cell, "ok")
    done, todo, skip = plan(_grid(cell), store, force=False)
    assert list(done) == [cell.key] and done[cell.key]["row"]["status"] == "ok"
    assert todo == [] and skip == []


# a worker that died is stored as "error" ("worker process died ..."); "died" is also listed
# in case a row ever says so, and an unknown or missing status must not count as done either
@pytest.mark.parametrize("status", ["error", "timeout", "stopped", "died", "skipped",
                                    "running", "", None])
def test_every_other_stored_status_runs_again(tmp_path, status):
    cell = _cell("camera")
    store = _store(tmp_path, cell, status)
    assert store.load_cells()[cell.key]["row"].get("status") == status  # stored as given
    done, todo, skip = plan(_grid(cell), store, force=False)
    assert done == {} and todo == [cell] and skip == [], status


@pytest.mark.parametrize("status", ["ok", "error", "timeout", "stopped"])
def test_force_reruns_every_status(tmp_path, status):
    cell = _cell("camera")
    store = _store(tmp_path, cell, status)
    done, todo, skip = plan(_grid(cell), store, force=True)
    assert done == {} and todo == [cell] and skip == []


def test_a_skipped_cell_is_reexamined_and_new_cells_run(tmp_path):
    stored, new, skipped = _cell("camera"), _cell("coins"), _cell("moon", "needs a GPU")
    store = _store(tmp_path, stored, "ok")
    _store(tmp_path, skipped, "ok")  # even a stored ok does not bypass the skip check
    done, todo, skip = plan(_grid(stored, new, skipped), store, force=False)
    assert list(done) == [stored.key] and todo == [new] and skip == [skipped]
