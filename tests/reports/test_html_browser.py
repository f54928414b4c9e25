"""The HTML report in a real browser: headless Chromium renders ``index.html`` at 1280 px, every
embedded figure must decode, the page must read summary first (headline table above the first
figure, which is on the first screen, above the detail tables), figure captions must be sentences,
not file names, the Runs table must show the load, and a screenshot is taken. Skipped where no
Chromium is installed (Debian/Ubuntu: ``apt-get install chromium``)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome",
                                             "google-chrome-stable") if shutil.which(n)), None)

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on PATH; install it "
                                "(apt-get install chromium) to check the HTML report in a browser")

# Runs after the page (and its data: images) loaded; writes what it found into the DOM, which
# --dump-dom then prints.
PROBE = """<script>
window.addEventListener("load", () => {
  const top = sel => {
    const el = document.querySelector(sel);
    return el ? el.getBoundingClientRect().top + window.scrollY : null;
  };
  const imgs = Array.from(document.images);
  const out = {
    images: imgs.length,
    decoded: imgs.filter(i => i.complete && i.naturalWidth > 0 && i.naturalHeight > 0).length,
    widths: imgs.map(i => i.naturalWidth),
    tables: document.querySelectorAll("table.results").length,
    runs_rows: document.querySelectorAll("table.runs tbody tr").length,
    bold: document.querySelectorAll("table.results strong").length,
    overflow: document.documentElement.scrollWidth > window.innerWidth + 1,
    captions: Array.from(document.querySelectorAll("table.results caption")).map(c => c.textContent),
    // where a reader meets each part: page coordinates of the tops
    headline_top: top(".headline table.results"),
    figure_top: top("figure img"),
    detail_top: top(".details table.results"),
    figcaptions: Array.from(document.querySelectorAll("figcaption")).map(c => c.textContent),
    alts: imgs.map(i => i.alt),
    runs_head: Array.from(document.querySelectorAll("table.runs th")).map(c => c.textContent),
    runs_cells: Array.from(document.querySelectorAll("table.runs tbody td")).map(c => c.textContent),
    context: Array.from(document.querySelectorAll(".headline .context")).map(c => c.textContent),
  };
  const pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def _chromium(*args, timeout=120):
    # --no-sandbox: CI containers run as root; a throw-away profile keeps runs independent
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--disable-dev-shm-usage", "--no-first-run", "--virtual-time-budget=10000", *args]
    env = dict(os.environ, HOME=os.environ.get("TMPDIR", "/tmp"))
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def test_report_renders_in_chromium(small_run, invoke, tmp_path):
    out = tmp_path / "rep"
    result = invoke("report", small_run, "--out", out)
    assert result.exit_code == 0, result.output
    html = (out / "index.html").read_text()
    n_png = len(list((out / "figures").glob("*.png")))
    assert n_png >= 5
    probe_page = tmp_path / "probe.html"
    probe_page.write_text(html.replace("</body>", PROBE + "\n</body>"))
    profile = tmp_path / "profile"
    dom = _chromium(f"--user-data-dir={profile}", "--window-size=1280,900", "--dump-dom",
                    probe_page.as_uri())
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom.stdout, re.S)
    assert found, (dom.returncode, dom.stderr[-2000:])
    probe = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert probe["images"] == n_png and probe["decoded"] == n_png, probe
    assert min(probe["widths"]) > 300  # real figures, not broken-image icons
    assert probe["tables"] == html.count('<table class="results">') > 0
    assert probe["runs_rows"] == 1 and probe["bold"] > 0
    assert any(c.startswith("PSNR (dB) of the final image: denoise on set12") for c in probe["captions"])
    assert not probe["overflow"]  # nothing wider than the window: no horizontal scrolling
    # summary first, as a person scrolls: headline table, then figures, then the details
    assert probe["headline_top"] is not None and probe["detail_top"] is not None, probe
    assert probe["headline_top"] < probe["figure_top"] < probe["detail_top"], probe
    assert probe["figure_top"] < 1200  # the first figure is on the first screen at 1280 px
    assert any(c.startswith("Budget:") for c in probe["context"]), probe["context"]
    assert any(c.startswith("Machine: synthetic, 2 cores") and "load 1.0" in c
               for c in probe["context"]), probe["context"]
    stems = {p.stem for p in (out / "figures").glob("*.png")}
    assert len(probe["figcaptions"]) == n_png
    for text in probe["figcaptions"] + probe["alts"]:  # sentences, not file names
        assert text not in stems and len(text.split()) > 12 and text.endswith("."), text
    assert "over the 2 repetitions" in probe["figcaptions"][0]  # the run's own counts
    assert probe["runs_head"][-1].startswith("load")
    assert probe["runs_cells"][-1] == "1.0"  # the synthetic cells' load average
    shot = tmp_path / "report.png"
    taken = _chromium(f"--user-data-dir={profile}", "--window-size=1280,1600",
                      f"--screenshot={shot}", (out / "index.html").as_uri())
    assert taken.returncode == 0 and shot.is_file(), taken.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size == (1280, 1600)
        colours = im.convert("L").getextrema()
    assert colours[0] < 60 and colours[1] > 200  # text on a light page, not a blank frame
