"""Command-line options that used to be taken silently (issue 23 item 14): each is refused with
one line, or said in a note."""

from __future__ import annotations

import pytest

TINY = "skimage[images=camera,crop=32]"
BASE = ["run", "-d", TINY, "-m", "noisy", "--no-save-images", "--run-name", "base"]


def _one_error_line(result, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    line = result.output.strip()
    assert line.startswith("error: ") and "\n" not in line, result.output
    return line


@pytest.mark.parametrize(("option", "value", "example"), [
    ("--sigma", "", "15,25,50"), ("--sigma", " , ", "15,25,50"),
    ("--missing", "", "0.5,0.8"),
])
def test_empty_sigma_or_missing_is_refused_not_the_suites(invoke, tmp_path, option, value,
                                                          example):
    """``--sigma ''`` ran the suite's sigmas as if the option were not given."""
    args = [*BASE, "--suite", "inpaint"] if option == "--missing" else [*BASE, "--sigma", "25"]
    args = [a for a in args if a not in ("--sigma", "25")] if option == "--sigma" else args
    line = _one_error_line(invoke(*args, "--out", tmp_path, option, value, "--dry-run"))
    assert f"{option}: give at least one value (e.g. {example})" in line
    assert not (tmp_path / "base").exists()


def test_missing_errors_suggest_fractions_not_sigmas(invoke, tmp_path):
    line = _one_error_line(invoke(*BASE, "--suite", "inpaint", "--out", tmp_path,
                                  "--missing", "half", "--dry-run"))
    assert line == "error: --missing: 'half' is not a number (expected e.g. 0.5,0.8)"


@pytest.mark.parametrize("threads", ["0", "-1", "x"])
def test_dry_run_refuses_a_bad_threads_per_cell(invoke, tmp_path, threads):
    line = _one_error_line(invoke(*BASE, "--sigma", "25", "--out", tmp_path, "--dry-run",
                                  "--threads-per-cell", threads))
    assert "--threads-per-cell must be an integer >= 1" in line


def test_timeout_0_says_it_drops_the_profiles_limit(invoke, tmp_path):
    """``--timeout 0`` means no limit (documented); it now says so where a profile had one."""
    suite = tmp_path / "s.toml"
    suite.write_text(f'[profiles.quick]\ndatasets = ["{TINY}"]\n'
                     'degradations = ["gaussian[sigma=25]"]\nmethods = ["noisy"]\n'
                     'timeout = "10m"\n')
    out = invoke("run", "--suite", suite, "--out", tmp_path, "--dry-run", "--timeout", "0")
    assert out.exit_code == 0, out.output
    assert ("note: --timeout 0 turns off the profile's limit of 600 s per cell; cells run "
            "without a time limit") in out.output
    quiet = invoke("run", "--suite", suite, "--out", tmp_path, "--dry-run", "--timeout", "5m")
    assert "turns off" not in quiet.output


@pytest.mark.parametrize("hidden", ["-5", "5-", "64--64", "0"])
def test_negative_or_empty_widths_are_refused(invoke, tmp_path, hidden):
    """``tvae[hidden=-5]`` became hidden=(5,)."""
    line = _one_error_line(invoke(*BASE, "--sigma", "25", "-m", f"tvae[hidden={hidden}]",
                                  "--out", tmp_path, "--dry-run"))
    assert f"hidden={hidden!r}" in line or "every entry must be >= 1" in line
