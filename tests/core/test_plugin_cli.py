"""The CLI side of plugins, run as a user would: subprocesses with extra distributions on the path.

Covers a third-party plugin installed as its own distribution, a plugin that fails to import
(skipped, reported, the CLI still works), blocking, strict mode, and that listing imports no
heavy implementation modules.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "evobench-hello-plugin"


def evobench(*args, extra_path=None, env=None, check=True):
    full_env = dict(os.environ)
    if extra_path:
        full_env["PYTHONPATH"] = os.pathsep.join([str(extra_path), full_env.get("PYTHONPATH", "")])
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, "-m", "evobench", *args], capture_output=True,
                          text=True, env=full_env, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"evobench {args} exited {proc.returncode}:\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory):
    """The example plugin installed as a separate distribution into its own folder."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(EXAMPLE)],
        check=True, capture_output=True, timeout=300,
    )
    return target


@pytest.fixture(scope="module")
def broken_dist(tmp_path_factory):
    """A distribution whose evobench entry point raises at import time."""
    site = tmp_path_factory.mktemp("broken")
    (site / "evobench_broken_plugin.py").write_text("raise ImportError('needs libfoo 9')\n")
    info = site / "evobench_broken-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: evobench-broken\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[evobench]\nbroken = evobench_broken_plugin\n")
    return site


@pytest.fixture(scope="module")
def impostor_dist(tmp_path_factory):
    """A third-party distribution that registers the built-in name ``bm3d`` (and loads first:
    its entry point ``aaa`` sorts before every built-in one), registers ``tv`` from a second
    entry point, and has an entry point named like the built-in plugin ``bm3d``."""
    site = tmp_path_factory.mktemp("impostor")
    (site / "evobench_impostor_plugin.py").write_text(textwrap.dedent("""
        from evobench.api import MethodSpec, hookimpl

        @hookimpl
        def evobench_register_methods(register):
            register(MethodSpec(name="mine", factory="x:y", tasks=frozenset({"denoise"})))
            register(MethodSpec(name="bm3d", factory="x:y", tasks=frozenset({"denoise"})))
    """))
    (site / "evobench_twin_plugin.py").write_text(textwrap.dedent("""
        from evobench.api import MethodSpec, hookimpl

        @hookimpl
        def evobench_register_methods(register):
            register(MethodSpec(name="mine", factory="x:y", tasks=frozenset({"denoise"})))
    """))
    info = site / "evobench_impostor-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: evobench-impostor\n"
                                   "Version: 1.0\n")
    (info / "entry_points.txt").write_text("[evobench]\naaa = evobench_impostor_plugin\n"
                                           "bm3d = evobench_impostor_plugin\n"
                                           "zzz = evobench_twin_plugin\n")
    return site


def test_built_in_names_cannot_be_taken_over(impostor_dist):
    """Issue 23 item 2: a plugin loading first silently replaced the built-in bm3d."""
    plugins = {p["name"]: p for p in json.loads(
        evobench("plugins", "--json", extra_path=impostor_dist).stdout)}
    assert plugins["aaa"]["status"] == "failed"
    assert plugins["aaa"]["errors"] == [
        "method 'bm3d' belongs to evobench's own plugin 'bm3d'; plugin 'aaa' cannot replace it "
        "and is left out: rename its method"]
    assert plugins["bm3d"]["status"] == "ok" and plugins["bm3d"]["distribution"] == "evobench"
    twin = plugins["bm3d (evobench-impostor)"]
    assert twin["status"] == "failed" and "rename the entry point" in twin["errors"][0]
    # 'aaa' is left out entirely, so 'mine' is zzz's alone
    assert plugins["zzz"]["status"] == "ok"
    methods = {m["name"]: m for m in json.loads(
        evobench("list", "methods", "--json", extra_path=impostor_dist).stdout)}
    assert methods["bm3d"]["plugin"] == "bm3d" and methods["mine"]["plugin"] == "zzz"
    proc = evobench("plugins", extra_path=impostor_dist)
    assert "aaa  [failed]" in proc.stdout


def test_external_plugin_appears_everywhere(installed_example):
    plugins = json.loads(evobench("plugins", "--json", extra_path=installed_example).stdout)
    hello = next(p for p in plugins if p["name"] == "hello")
    assert hello["distribution"] == "evobench-hello"
    assert hello["version"] == "0.2.0"
    assert hello["status"] == "ok"
    assert hello["provides"] == {"methods": ["median"], "metrics": ["mae"],
                                 "figures": ["psnr-gain"]}
    methods = json.loads(evobench("list", "methods", "--json", extra_path=installed_example).stdout)
    median = next(m for m in methods if m["name"] == "median")
    assert median["params"][0]["name"] == "size" and median["params"][0]["default"] == 3
    assert evobench("hello", extra_path=installed_example).stdout.strip() == "hello from evobench-hello"
    assert "hello" in evobench("--help", extra_path=installed_example).stdout


def test_external_plugin_method_runs_through_the_api(installed_example):
    code = textwrap.dedent("""
        import numpy as np
        from evobench.api import run_method
        rng = np.random.default_rng(0)
        clean = np.tile(np.linspace(0, 1, 32), (32, 1))
        noisy = clean + 0.1 * rng.standard_normal(clean.shape)
        out = run_method("median", noisy, task="denoise", sigma=0.1, size=3)
        err = lambda x: float(np.mean((x - clean) ** 2))
        print(err(noisy) / err(out.image))
    """)
    env = dict(os.environ, PYTHONPATH=f"{installed_example}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          check=True, timeout=120)
    assert float(proc.stdout) > 3.0  # the median filter cuts the MSE of the noisy input > 3x


def test_method_runs_beside_the_suite_baselines_as_docs_say(installed_example, tmp_path):
    """docs/plugins.md "Your method beside a suite's built-ins", run as written (issue 24
    item 8): one run folder and one table holding the plugin's method and the suite's."""
    import shlex

    import pandas as pd

    text = (ROOT / "docs" / "plugins.md").read_text()
    block = text.split("### Your method beside a suite's built-ins", 1)[1]
    block = block.split("```bash", 1)[1].split("```", 1)[0]
    run_line, report_line = [shlex.split(line)[1:] for line in block.strip().splitlines()]
    out = tmp_path / "results"
    proc = evobench(*run_line, "--out", out, "-j", "2", "--no-save-images",
                    extra_path=installed_example)
    table = proc.stdout.split("SSIM")[0]  # the PSNR table
    assert "median (size=5)" in table and "BM3D" in table.upper() and "noisy" in table
    rows = pd.read_parquet(out / "median-vs-baselines" / "results.parquet")
    assert {"median", "bm3d", "tvae", "noisy"} <= set(rows.method)
    assert report_line[0] == "report"
    evobench("report", out / "median-vs-baselines", "--out", tmp_path / "report",
             extra_path=installed_example)
    alone = evobench("run", "--suite", "denoise", "--profile", "smoke", "--with-suite-baselines",
                     "--dry-run", extra_path=installed_example, check=False)
    assert alone.returncode == 2 and "give them with -m" in alone.stderr


def test_broken_plugin_is_reported_and_skipped(broken_dist):
    proc = evobench("plugins", "--json", extra_path=broken_dist)
    plugins = {p["name"]: p for p in json.loads(proc.stdout)}
    assert plugins["broken"]["status"] == "failed"
    assert "needs libfoo 9" in plugins["broken"]["errors"][0]
    assert all(p["status"] == "ok" for n, p in plugins.items() if n != "broken")
    assert evobench("--help", extra_path=broken_dist).returncode == 0
    assert evobench("list", "methods", extra_path=broken_dist).returncode == 0


def test_strict_mode_fails_loudly(broken_dist):
    proc = evobench("--strict-plugins", "plugins", extra_path=broken_dist, check=False)
    assert proc.returncode != 0
    assert "needs libfoo 9" in proc.stderr
    proc = evobench("plugins", extra_path=broken_dist, env={"EVOBENCH_STRICT_PLUGINS": "1"},
                    check=False)
    assert proc.returncode != 0


def test_blocking_by_option_and_environment(broken_dist):
    by_option = json.loads(evobench("--disable-plugin", "broken", "plugins", "--json",
                                    extra_path=broken_dist).stdout)
    by_env = json.loads(evobench("plugins", "--json", extra_path=broken_dist,
                                 env={"EVOBENCH_DISABLE_PLUGINS": "broken"}).stdout)
    for listing in (by_option, by_env):
        assert {p["name"]: p["status"] for p in listing}["broken"] == "blocked"


def test_listing_imports_no_heavy_module():
    code = textwrap.dedent("""
        import sys
        from click.testing import CliRunner
        from evobench.cli import cli
        for args in (["--help"], ["plugins"], ["list", "methods"], ["list", "datasets"],
                     ["list", "suites"]):
            result = CliRunner().invoke(cli, args)
            assert result.exit_code == 0, (args, result.output)
        heavy = sorted(m for m in ("torch", "bm3d", "skimage", "pandas", "matplotlib")
                       if m in sys.modules)
        print(",".join(heavy))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_unknown_list_kind_is_a_usage_error():
    proc = evobench("list", "method", check=False)
    assert proc.returncode == 2
    assert "Invalid value" in proc.stderr


def test_licence_lines_name_what_they_cover_and_counts_read_well(invoke):
    out = invoke("plugins").output
    standard = out.split("standard  [")[1].split("\n\n")[0] if "\n\n" in out else out
    assert "licence: set12, bsd68: research test images, no licence stated" in standard
    assert "licence: castle: research test image, no licence stated" in standard
    assert "licence: bm3d: free for non-commercial use only" in out
    heads = {line.split()[0]: line for line in invoke("list", "datasets").output.splitlines()
             if line and not line.startswith(" ")}
    assert heads["castle"].startswith("castle  rgb, 1 image  (") and "images" not in heads["castle"]
    assert heads["set12"].startswith("set12  gray, 12 images")
    assert heads["folder"].startswith("folder  gray, your images")


def test_external_plugin_adds_a_metric_and_a_figure_kind(installed_example, tmp_path):
    """A metric and a figure kind are one registration each (the example plugin's ``mae`` and
    ``psnr-gain``): a run scores the metric, a report tabulates it with its spec's label and
    decimals, compare gates it in its spec's direction, and the figure kind is drawn."""
    import re

    import pandas as pd

    from evobench.schema import parquet_bytes

    suite = tmp_path / "mae.toml"
    suite.write_text('[profiles.quick]\ndatasets = ["skimage[images=camera,crop=32]"]\n'
                     'degradations = ["gaussian[sigma=25]"]\nmethods = ["noisy", "median"]\n'
                     'metrics = ["psnr", "mae"]\n')
    evobench("run", "--suite", str(suite), "--out", str(tmp_path), "--run-name", "base",
             "--quiet", "-j", "1", extra_path=installed_example)
    base = tmp_path / "base"
    df = pd.read_parquet(base / "results.parquet")
    assert df["mae"].between(0, 1).all() and df["mae_input"].notna().all()
    assert df["metric_variant"].str.contains("mae: float64").all()
    evobench("report", str(base), "--metrics", "psnr,mae", "--format", "md", "--out",
             str(tmp_path / "report"), extra_path=installed_example)
    md = (tmp_path / "report" / "summary.md").read_text()
    table = md[md.index("#### MAE: denoise on skimage"):]
    assert re.search(r"\| median +\| 0\.\d{4} ", table), table[:400]
    assert (tmp_path / "report" / "figures" / "psnr_gain.png").is_file()

    def candidate(name: str, shift: float):
        folder = tmp_path / name
        folder.mkdir()
        worse = df.assign(mae=df["mae"] + shift)
        (folder / "results.parquet").write_bytes(parquet_bytes(worse))
        return folder

    gate = ("--fail-on", "mae:0.005")  # no sign: the direction is the spec's (lower is better)
    worse = evobench("compare", str(base), str(candidate("worse", 0.01)), *gate,
                     extra_path=installed_example, check=False)
    assert worse.returncode == 1 and "mae +0.01" in worse.stdout, worse.stdout + worse.stderr
    better = evobench("compare", str(base), str(candidate("better", -0.01)), *gate,
                      extra_path=installed_example, check=False)
    assert better.returncode == 0, better.stdout + better.stderr
