"""Progress output: plain lines off a terminal, a rich bar with counts on one, silence when quiet."""

from __future__ import annotations

from evobench.harness.progress import Progress


def _feed(progress):
    with progress:
        progress.update("tv skimage/camera", {"status": "ok", "psnr": 28.123, "time_total_s": 1.0})
        progress.update("x skimage/camera", {"status": "timeout", "error": "killed after 3 s",
                                             "time_total_s": 3.0})
    return progress


def test_plain_lines(capsys):
    p = _feed(Progress(2, cached=5, skipped=1, tty=False))
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "running 2 cell(s); 5 already done, 1 skipped"
    assert err[1].startswith("[1/2] ok      tv skimage/camera  psnr=28.12  (1.0s, eta ")
    assert err[2].startswith("[2/2] timeout x skimage/camera  killed after 3 s  (3.0s, eta 0s)")
    assert p.counts == {"ok": 1, "cached": 5, "failed": 1, "skipped": 1}


def test_rich_bar_and_quiet(capsys):
    _feed(Progress(2, cached=5, skipped=0, tty=True))
    err = capsys.readouterr().err
    assert "done 1  cached 5  failed 1  skipped 0" in err and "2/2" in err
    assert "timeout x skimage/camera: killed after 3 s" in err
    _feed(Progress(2, cached=0, skipped=0, quiet=True, tty=False))
    assert capsys.readouterr().err == ""
