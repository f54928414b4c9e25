"""Two-sided gates (``psnr:±0.05``: a rise beyond rounding is a finding too, e.g. a bug that
clips the estimate and so raises PSNR) and an SSIM drop on its own (synthetic runs tie SSIM to
PSNR, so here SSIM is changed alone in the stored table)."""

import pandas as pd
import pytest

from evobench.errors import EvobenchError
from evobench.reports.compare import compare_frames, parse_fail_on, render
from evobench.reports.load import read_results
from evobench.reports.merge import write_table

SMALL = {"images": ("01",), "sigmas": (25.0,), "missing": (0.5,), "reps": 1,
         "methods": ("bm3d", "tvae"), "artifacts": False}
COLS = {"psnr", "ssim", "time_total_s", "x_active_mean"}


def _compare(base, cand, gates):
    b, c = read_results(base), read_results(cand)
    return compare_frames(b, c, parse_fail_on(gates, set(b.columns)))


@pytest.mark.parametrize("spelling", ["psnr:±0.05", "psnr:+-0.05", "psnr:+/-0.05",
                                      "psnr: ± 0.05"])
def test_parse_two_sided(spelling):
    (gate,) = parse_fail_on(spelling, COLS)
    assert gate.two_sided and gate.amount == 0.05 and gate.higher_better
    assert str(gate) == "psnr:±0.05"
    (rel,) = parse_fail_on("x_active_mean:±10%", COLS)  # no known direction needed
    assert rel.two_sided and rel.relative and str(rel) == "x_active_mean:±10%"
    (one,) = parse_fail_on("psnr:-0.05", COLS)
    assert not one.two_sided


def test_a_malformed_two_sided_gate_says_how_to_write_it():
    with pytest.raises(EvobenchError, match=r"COLUMN:\[\+\|-\|±\]AMOUNT"):
        parse_fail_on("psnr:±-0.05", COLS)


def test_a_rise_beyond_a_two_sided_gate_is_a_finding(make):
    a = make("a", **SMALL)
    up = make("up", psnr_shift={"tvae": +0.2}, **SMALL)
    slightly = make("slightly", psnr_shift={"tvae": +0.03}, **SMALL)
    down = make("down", psnr_shift={"tvae": -0.2}, **SMALL)
    # one-sided: a rise passes
    assert not _compare(a, up, "psnr:-0.05").failed
    comp = _compare(a, up, "psnr:±0.05")
    assert comp.failed and set(comp.regressions["verdict"]) == {"changed"}
    assert set(comp.regressions["method"]) == {"tvae[S=64]"} and len(comp.regressions) == 2
    assert comp.regressions["reasons"].str.contains(r"psnr \+0.2 \(a rise beyond psnr:±0.05\)").all()
    text = render(comp)
    assert "REGRESSION: 2 of 3 cells" in text and "gates: psnr:±0.05" in text
    # within rounding: no finding; a drop still regresses
    assert not _compare(a, slightly, "psnr:±0.05").failed
    comp = _compare(a, down, "psnr:±0.05")
    assert comp.failed and set(comp.regressions["verdict"]) == {"regressed"}


def test_cli_two_sided_gate_exit_code(make, invoke):
    a = make("a", **SMALL)
    up = make("up", psnr_shift={"tvae": +0.2}, **SMALL)
    assert invoke("compare", a, up, "--fail-on", "psnr:-0.05").exit_code == 0
    result = invoke("compare", a, up, "--fail-on", "psnr:±0.05")
    assert result.exit_code == 1 and "a rise beyond psnr:±0.05" in result.output


def test_an_ssim_drop_alone_fails_the_ssim_gate(make, tmp_path):
    a = make("a", **SMALL)
    df = pd.read_parquet(a / "results.parquet")
    is_bm3d = df["method"] == "bm3d"
    df.loc[is_bm3d, "ssim"] -= 0.01  # PSNR unchanged
    (tmp_path / "ssim").mkdir()
    write_table(df, tmp_path / "ssim/results.parquet")
    comp = _compare(a, tmp_path / "ssim", "psnr:-0.05,ssim:-0.002")
    reg = comp.regressions
    assert comp.failed and len(reg) == is_bm3d.sum() and set(reg["method"]) == {"bm3d"}
    assert reg["reasons"].str.fullmatch(r"ssim -0.01").all(), reg["reasons"].tolist()
    # within the SSIM gate, or with no SSIM gate: no regression
    assert not _compare(a, tmp_path / "ssim", "psnr:-0.05,ssim:-0.02").failed
    assert not _compare(a, tmp_path / "ssim", "psnr:-0.05").failed
