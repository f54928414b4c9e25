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
