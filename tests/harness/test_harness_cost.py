"""``evobench run --dry-run`` estimates each cell's cost from its method's cost model and
prints the total in CPU-hours (issue 24 item 11)."""

from __future__ import annotations

import re

import pytest

from evobench.harness import cost


def test_dry_run_prints_each_cells_estimate_and_the_total(invoke, tmp_path, fakes):
    args = ["run", "--suite", "denoise", "--profile", "smoke",
            "-d", "skimage[images=camera,crop=64]",
            "-m", "noisy", "-m", "bm3d", "-m", "zsn2n[iterations=100]", "-m", "gsvae[epochs=1]",
            "-m", "fake-ok", "--sigma", "25", "--out", tmp_path, "--dry-run", "-j", "2"]
    out = invoke(*args)
    assert out.exit_code == 0, out.output
    todo = [line for line in out.output.splitlines() if line.startswith("todo")]
    lines = {name: next(line for line in todo if f"  {name}" in line)
             for name in ("noisy", "bm3d", "zsn2n", "gsvae", "fake-ok")}
    assert lines["fake-ok"].endswith("~?")  # no cost model: unknown, never guessed
    # methods by their display names, as the report will show them, never raw selectors
    assert "  zsn2n (iterations=100)  " in lines["zsn2n"] and "[" not in lines["zsn2n"][:50]
    assert "  gsvae (epochs=1)  " in lines["gsvae"] and "gsvae[" not in out.output
    # zsn2n: 100 iterations on 64 x 64 pixels at its measured rate, plus its start-up
    from evobench_zeroshot.cost import OVERHEAD_S, RATE
    expected = cost.CELL_START_S + OVERHEAD_S + RATE["zsn2n"] * 100 * 64 * 64 / 128 ** 2
    assert f"~{cost.cell_text(expected)}" in lines["zsn2n"]
    # gsvae: one epoch over the 57 x 57 patches of 8 x 8, plus its start-up
    from evobench_gsvae import cost as gsvae_cost
    expected = cost.CELL_START_S + gsvae_cost.OVERHEAD_S + gsvae_cost.RATE * 57 * 57 / 1000
    assert f"~{cost.cell_text(expected)}" in lines["gsvae"]
    total = re.search(r"estimated cost: ([\d.e-]+) CPU-hours for 4 cell\(s\) to run",
                      out.output)
    assert total and float(total.group(1)) > 0
    assert "1 cell(s) unknown" in out.output and "unmeasured" not in out.output
    # --device cuda (refused on a machine without CUDA, so the line is checked as such)
    assert "unmeasured on cuda" in cost.total_line([3600.0, None], "cuda:0", 1)


def test_the_estimate_is_capped_by_the_budget_and_scales_with_the_image():
    from evobench_tvae.cost import cost as tvae_cost

    small = tvae_cost((64, 64), {"preset": "quick"})
    large = tvae_cost((256, 256), {"preset": "quick"})
    assert 10 < (large - 2) / (small - 2) < 20  # patches grow ~17x
    assert tvae_cost((256, 256), {"preset": "house-25+"}) > 100 * large  # 500 epochs, S=200
    assert tvae_cost((256, 256), {"preset": "quick", "epochs": 40}) > 1.9 * (large - 2)


def test_gsvae_and_biharmonic_have_cost_models(invoke, tmp_path):
    """Both were "?" before: gsvae's default epochs depend on the task, which the harness
    hands to a model that takes it; biharmonic scales with the pixels and channels."""
    from evobench_gsvae import cost as gsvae_cost
    from evobench_gsvae.method import DEFAULT_EPOCHS
    from evobench_skimage.cost import biharmonic

    assert gsvae_cost.DEFAULT_EPOCHS == DEFAULT_EPOCHS  # the model follows the method
    denoise = gsvae_cost.cost((256, 256), {"epochs": None}, task="denoise")
    inpaint = gsvae_cost.cost((256, 256), {"epochs": None}, task="inpaint")
    ratio = (inpaint - gsvae_cost.OVERHEAD_S) / (denoise - gsvae_cost.OVERHEAD_S)
    assert ratio == pytest.approx(25 / 12)
    wide = gsvae_cost.cost((256, 256), {"epochs": 12, "H": 128, "hidden": "256-256"})
    assert wide - gsvae_cost.OVERHEAD_S == pytest.approx(4 * (denoise - gsvae_cost.OVERHEAD_S))
    assert biharmonic((256, 256, 3), {}) == 3 * biharmonic((256, 256), {}) > 0.5
    out = invoke("run", "--suite", "inpaint", "--profile", "smoke", "-m", "gsvae",
                 "-m", "biharmonic", "-d", "skimage[images=camera,crop=64]", "--missing", "0.5",
                 "--out", tmp_path, "--dry-run")
    assert out.exit_code == 0, out.output
    todo = [line for line in out.output.splitlines() if line.startswith("todo")]
    assert len(todo) == 4 and not any(line.endswith("~?") for line in todo), out.output
    # the harness passed the task: 25 epochs, inpainting's default, not denoising's 12
    line = next(line for line in todo if "  gsvae  " in line)
    seconds = cost.CELL_START_S + gsvae_cost.cost((64, 64), {}, task="inpaint")
    assert line.endswith(f"~{cost.cell_text(seconds)}"), line


def test_the_paper_suites_dry_runs_print_a_total(invoke, tmp_path, monkeypatch):
    for suite in ("denoise", "inpaint", "paper"):
        out = invoke("run", "--suite", suite, "--profile", "paper", "--out", tmp_path,
                     "--dry-run")
        assert out.exit_code == 0, out.output
        assert re.search(r"estimated cost: [\d.e-]+ CPU-hours", out.output), out.output


def test_cells_whose_image_is_not_fetched_are_counted_and_said(invoke, tmp_path, monkeypatch):
    monkeypatch.setenv("EVOBENCH_DATA_DIR", str(tmp_path / "empty"))
    out = invoke("run", "--suite", "denoise", "--profile", "paper", "--out", tmp_path,
                 "--dry-run")
    assert out.exit_code == 0, out.output
    assert "because their image is not here (fetch it first: evobench data fetch)" in out.output


def test_the_total_line_counts_each_kind_of_unknown_cell():
    """Cells without a cost model and cells whose image is not here are counted apart; the
    wall time divides the known CPU time over the jobs."""
    line = cost.total_line([3600.0, 3600.0, None, None, None], "cpu", 2, unreadable=1)
    assert line.startswith("estimated cost: 2 CPU-hours for 2 cell(s) to run "
                           "(about 1:00:00 wall at -j 2); 2 cell(s) unknown (?")
    assert "; 1 cell(s) unknown because their image is not here" in line


def test_a_dry_run_on_cuda_says_the_rates_are_a_cpus(invoke, tmp_path, monkeypatch):
    """The dry run passes the cells' device to the total: on cuda the CPU rates are an upper
    bound, said so (a machine with CUDA is stood in for, the run being a dry one)."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    out = invoke("run", "--suite", "denoise", "--profile", "smoke",
                 "-d", "skimage[images=camera,crop=64]", "-m", "bm3d", "--sigma", "25",
                 "--device", "cuda", "--out", tmp_path, "--dry-run")
    assert out.exit_code == 0, out.output
    assert "unmeasured on cuda" in out.output
