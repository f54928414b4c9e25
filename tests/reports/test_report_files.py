"""What ``report`` and ``figures`` write and delete: only inside their own folder (issue 23
item 3), and only files whose content evobench's own record says it wrote (item 4)."""

from __future__ import annotations

import hashlib

from evobench.reports.figures import FIGURE_LIST, make_figures
from evobench.reports.load import load_runs


def test_a_listed_file_evobench_did_not_write_is_kept(small_run, tmp_path):
    """A name in .evobench-figures is deleted only while its content has the recorded hash: a
    user's file (listed with no hash, a wrong hash, or edited since evobench wrote it) stays."""
    data = load_runs(small_run)
    first, _ = make_figures(data, tmp_path, formats=["png", "svg"])
    svgs = sorted(p for p in first if p.suffix == ".svg")
    edited = svgs[0]
    edited.write_text("<svg>my own edit</svg>")
    (tmp_path / "mine.png").write_bytes(b"the user's figure")
    (tmp_path / "thesis.tex").write_text("\\documentclass{article}")
    listing = tmp_path / FIGURE_LIST
    listing.write_text(listing.read_text() + "thesis.tex\n"
                       + f"{hashlib.sha256(b'other').hexdigest()}  mine.png\n")
    second, _ = make_figures(data, tmp_path, formats=["png"])
    left = {p.name for p in tmp_path.iterdir()} - {FIGURE_LIST}
    assert left == {p.name for p in second} | {edited.name, "mine.png", "thesis.tex"}
    assert (tmp_path / "mine.png").read_bytes() == b"the user's figure"
    assert not any((tmp_path / p.name).exists() for p in svgs[1:])  # its own stale files go


def test_figures_are_never_written_through_a_link_out_of_the_folder(small_run, tmp_path,
                                                                    invoke):
    """A report folder whose figures/ is a symlink to elsewhere is refused in one line; nothing
    is written there."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("x")
    rep = tmp_path / "rep"
    rep.mkdir()
    (rep / "figures").symlink_to(elsewhere, target_is_directory=True)
    res = invoke("report", small_run, "--out", rep)
    assert res.exit_code == 2
    assert "outside" in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert {p.name for p in elsewhere.iterdir()} == {"keep.txt"}


# -- issue 23 item 10: OS errors are one line with exit 4; long names are shortened ----------
def test_over_long_figure_names_are_shortened_stably(tmp_path):
    from matplotlib.figure import Figure

    from evobench.reports.figures import save

    fig = Figure()
    a = save(fig, tmp_path, "training_curves_" + "x" * 300, ["png", "svg"])
    b = save(fig, tmp_path, "training_curves_" + "x" * 299 + "y", ["png"])
    again = save(fig, tmp_path, "training_curves_" + "x" * 300, ["png"])
    assert all(p.is_file() and len(p.name.encode()) < 255 for p in a + b)
    assert again[0] == a[0] and b[0] != a[0]
    assert save(fig, tmp_path, "short", ["png"])[0].name == "short.png"


def test_figures_of_a_run_with_an_over_long_image_id(tmp_path, invoke):
    from synthetic_run import make_run

    run = make_run(tmp_path / "run", images=("i" * 250,), sigmas=(25.0,), missing=(),
                   methods=("noisy", "tvae"), reps=1)
    res = invoke("figures", run, "--out", tmp_path / "f", "--image", "i" * 250)
    assert res.exit_code == 0, res.output
    assert any("i" * 100 in p.name for p in (tmp_path / "f").iterdir())


def test_a_full_disk_in_report_and_figures_is_one_line_exit_4(small_run, tmp_path, invoke,
                                                                monkeypatch):
    import errno

    from matplotlib.figure import Figure

    def full(self, fname, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(fname))

    monkeypatch.setattr(Figure, "savefig", full)
    for args in (["figures", small_run, "--out", tmp_path / "f"],
                 ["report", small_run, "--out", tmp_path / "r"]):
        res = invoke(*args)
        assert res.exit_code == 4, res.output
        line = res.output.strip()
        assert line.startswith("error: No space left on device [ENOSPC]") and "\n" not in line
        assert "free some space" in line


def test_ulimit_f_in_report_is_one_line_exit_4(small_run, tmp_path):
    """The probe as found: ``ulimit -f`` small enough that the figures do not fit."""
    import resource
    import subprocess
    import sys

    limit = 4 * 1024

    def cap():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = subprocess.run([sys.executable, "-m", "evobench", "report", str(small_run),
                           "--out", str(tmp_path / "r")], capture_output=True, text=True,
                          preexec_fn=cap, timeout=300)
    assert proc.returncode == 4, proc.stderr
    assert "Traceback" not in proc.stderr and "[EFBIG]" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
