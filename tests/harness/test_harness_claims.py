"""Cooperating runners (issue 9): two ``evobench run`` processes on one run folder split the
grid through claim files and never compute a cell twice; a dead runner's claims are taken
over."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from waiting import wait_for

HERE = Path(__file__).resolve().parent
START_S = 180  # forkserver start-up (torch) on a loaded machine
GRID = ["-d", "skimage[images=camera,coins,crop=32]", "--sigma", "10,20,30", "-m", "fake-logged",
        "-j", "1", "--no-save-images", "--run-name", "shared"]


def _runner(out: Path, env: dict) -> subprocess.Popen:
    code = (f"import sys; sys.path.insert(0, {str(HERE)!r}); import harness_fakes; "
            "from evobench.registry import get_registry; "
            "get_registry().add_plugin(harness_fakes, 'harness-fakes'); "
            f"from evobench.cli import main; main(['run', *{GRID!r}, '--out', {str(out)!r}])")
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _claims(run: Path) -> list[dict]:
    out = []
    for path in (run / "claims").glob("*.lock"):
        try:
            out.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return out


@pytest.fixture
def env(tmp_path):
    gate = tmp_path / "gate"
    return {**os.environ, "EVOBENCH_FAKE_GATE": str(gate),
            "EVOBENCH_FAKE_LOG": str(tmp_path / "log.txt"), "PYTHONPATH": str(HERE)}


def _stop(*procs):
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=30)


def test_two_concurrent_runners_split_the_grid(tmp_path, env, fakes):
    out, run = tmp_path / "R", tmp_path / "R" / "shared"
    a = _runner(out, env)
    try:
        # A claims its first cell, which waits at the gate; B then has to take other cells
        wait_for(lambda: len(_claims(run)) >= 1, START_S, "runner A's first claim", [a])
        b = _runner(out, env)
        try:
            wait_for(lambda: len({c["pid"] for c in _claims(run)}) == 2, START_S,
                      "runner B's first claim", [a, b])
            (tmp_path / "gate").touch()
            a_out, a_err = a.communicate(timeout=300)
            b_out, b_err = b.communicate(timeout=300)
        finally:
            _stop(b)
    finally:
        _stop(a)
    assert a.returncode == 0 and b.returncode == 0, (a_err, b_err)
    lines = (tmp_path / "log.txt").read_text().split()
    seeds, runners = lines[0::2], lines[1::2]
    assert len(seeds) == 6 and len(set(seeds)) == 6, "a cell was computed twice"
    assert set(runners) == {str(a.pid), str(b.pid)}, "the runners did not split the grid"
    ran = [int(re.search(r"cells: (\d+) run, (\d+) cached", e).group(1)) for e in (a_err, b_err)]
    assert sum(ran) == 6 and min(ran) >= 1, (a_err, b_err)  # the summaries agree with the log
    df = pd.read_parquet(run / "results.parquet")
    assert len(df) == 6 and set(df.status) == {"ok"}
    assert not list((run / "claims").glob("*.lock")), "claims left behind"


def test_claims_of_a_killed_runner_are_taken_over(tmp_path, env, fakes):
    out, run = tmp_path / "R", tmp_path / "R" / "shared"
    a = _runner(out, env)
    try:
        wait_for(lambda: len(_claims(run)) >= 1, START_S, "runner A's first claim", [a])
        os.kill(a.pid, signal.SIGKILL)
        a.wait(timeout=30)
    finally:
        _stop(a)
    assert _claims(run) and _claims(run)[0]["pid"] == a.pid  # the dead runner's claim remains
    (tmp_path / "gate").touch()
    started = time.monotonic()
    b = _runner(out, {**env, "EVOBENCH_CLAIM_LEASE_S": "3600"})  # no waiting for the lease
    try:
        _, b_err = b.communicate(timeout=300)
    finally:
        _stop(b)
    assert b.returncode == 0, b_err
    assert time.monotonic() - started < 300
    df = pd.read_parquet(run / "results.parquet")
    assert len(df) == 6 and set(df.status) == {"ok"}
    assert not list((run / "claims").glob("*.lock"))


def test_leases_other_hosts_and_expiry(tmp_path, monkeypatch):
    from evobench.harness.claims import Claims

    mine, other = Claims(tmp_path, lease_s=60), Claims(tmp_path, lease_s=60)
    assert mine.try_claim("k1") and not other.try_claim("k1")  # held by a live owner
    lock = tmp_path / "claims" / "k1.lock"
    info = json.loads(lock.read_text())
    assert info["pid"] == os.getpid() and info["host"] == mine.host
    # a claim from another machine is honoured until its lease expires ...
    lock.write_text(json.dumps({**info, "host": "elsewhere", "owner": "x",
                                "pid": 1, "expires": time.time() + 30}))
    assert not other.try_claim("k1")
    # ... and taken over after it
    lock.write_text(json.dumps({**info, "host": "elsewhere", "owner": "x",
                                "pid": 1, "expires": time.time() - 1}))
    assert other.try_claim("k1")
    assert json.loads(lock.read_text())["owner"] == other.token
    # renewing extends only one's own lease; releasing removes only one's own claim
    before = json.loads(lock.read_text())["expires"]
    time.sleep(0.01)
    other.renew()
    assert json.loads(lock.read_text())["expires"] > before
    mine.release("k1")
    assert lock.exists()
    other.release("k1")
    assert not lock.exists()
    # an unreadable claim is respected for a lease, then broken
    lock.write_text("{half")
    assert not mine.try_claim("k1")
    old = time.time() - 120
    os.utime(lock, (old, old))
    assert mine.try_claim("k1")


def test_a_fresh_claim_is_not_broken_by_a_late_taker(tmp_path):
    """Two runners find the same stale claim; the one that comes second must not remove the
    fresh claim the first one made meanwhile."""
    from evobench.harness.claims import Claims

    first, second = Claims(tmp_path, lease_s=60), Claims(tmp_path, lease_s=60)
    lock = tmp_path / "claims" / "k.lock"
    lock.parent.mkdir(parents=True)
    stale = {"owner": "dead", "host": "elsewhere", "pid": 1, "expires": time.time() - 1}
    lock.write_text(json.dumps(stale))
    seen = Claims.read(lock)
    assert first.try_claim("k")  # breaks the stale claim, makes its own
    assert not second._break(lock, seen)  # second acts on what it saw before: refused
    assert Claims.read(lock)["owner"] == first.token


def test_claims_without_hard_links_and_write_errors(tmp_path, monkeypatch):
    import errno

    from evobench.harness import claims as claims_mod
    from evobench.harness.claims import Claims
    from evobench.harness.store import StoreWriteError

    def no_link(src, dst):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(claims_mod.os, "link", no_link)  # e.g. a network file system
    first, second = Claims(tmp_path, lease_s=60), Claims(tmp_path, lease_s=60)
    assert first.try_claim("k") and not second.try_claim("k")
    assert Claims.read(tmp_path / "claims" / "k.lock")["owner"] == first.token
    monkeypatch.undo()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Claims, "_write_tmp", full)
    with pytest.raises(StoreWriteError, match="No space left on device"):
        second.try_claim("other")


# -- issue 23 item 7: concurrent runners with different selections keep each other's rows ----
def _selection_runner(out: Path, env: dict, args: list[str]) -> subprocess.Popen:
    code = (f"import sys; sys.path.insert(0, {str(HERE)!r}); import harness_fakes; "
            "from evobench.registry import get_registry; "
            "get_registry().add_plugin(harness_fakes, 'harness-fakes'); "
            f"from evobench.cli import main; main(['run', *{args!r}, '--out', {str(out)!r}])")
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_concurrent_runs_of_different_selections_lose_no_row(tmp_path, env, fakes):
    """Runner A (fake-logged, held at a gate) and runner B (noisy) share one run folder; B
    finishes while A runs, then A finishes: results.parquet holds both runners' cells."""
    common = ["-d", "skimage[images=camera,crop=32]", "--sigma", "10,20", "-j", "1",
              "--no-save-images", "--quiet", "--run-name", "shared"]
    out, run = tmp_path / "R", tmp_path / "R" / "shared"
    a = _selection_runner(out, env, [*common, "-m", "fake-logged"])
    try:
        wait_for(lambda: len(_claims(run)) >= 1, START_S, "runner A's first claim", [a])
        b = _selection_runner(out, env, [*common, "-m", "noisy"])
        try:
            _, b_err = b.communicate(timeout=START_S + 120)
        finally:
            _stop(b)
        assert b.returncode == 0, b_err
        assert set(pd.read_parquet(run / "results.parquet").method) == {"noisy"}
        (tmp_path / "gate").touch()
        _, a_err = a.communicate(timeout=300)
    finally:
        _stop(a)
    assert a.returncode == 0, a_err
    df = pd.read_parquet(run / "results.parquet")
    assert sorted(df.method) == ["fake-logged"] * 2 + ["noisy"] * 2
    assert set(df.status) == {"ok"}
    # a later run of one selection alone shows that selection only, as before
    c = _selection_runner(out, env, [*common, "-m", "noisy"])
    _, c_err = c.communicate(timeout=START_S + 120)
    assert c.returncode == 0, c_err
    assert set(pd.read_parquet(run / "results.parquet").method) == {"noisy"}


def _store_writer(root: str, tag: str, n: int, barrier) -> None:
    from evobench.harness.store import RunStore

    store = RunStore(Path(root).parent, Path(root).name)
    since = store.tables_stamp()
    barrier.wait(timeout=60)  # every writer started before any wrote its tables
    records = [store.write_cell({"cell_key": f"{tag}-{i}", "method": tag, "status": "ok"},
                                [{"epoch": 1}], None) for i in range(n)]
    store.write_tables(records, since=since)


def test_the_store_under_many_concurrent_writers_loses_no_row(tmp_path):
    """Fuzz: six processes write their own cells and tables into one run folder at once; the
    last table written holds every process's cells (rows and traces). Twice: the second round
    starts after the first ended, so its tables hold its own cells only."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    root = tmp_path / "R" / "shared"
    for rounds in range(2):
        barrier = ctx.Barrier(6)
        procs = [ctx.Process(target=_store_writer, args=(str(root), f"w{rounds}{k}", 5, barrier))
                 for k in range(6)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=120)
        assert [p.exitcode for p in procs] == [0] * 6
        df = pd.read_parquet(root / "results.parquet")
        # every concurrent writer's cells; a later round (not concurrent) replaces the tables
        assert len(df) == 30 and df.cell_key.is_unique
        assert set(df.method) == {f"w{rounds}{k}" for k in range(6)}
        assert set(pd.read_parquet(root / "traces.parquet").cell_key) == set(df.cell_key)


# -- issue 23 item 8: every lease is bounded, and a held cell says who holds it ----------------
def test_a_claim_expiring_beyond_its_lease_is_stale_and_said(tmp_path):
    from evobench.harness.claims import Claims

    notes: list[str] = []
    mine = Claims(tmp_path, lease_s=60, note=notes.append)
    lock = tmp_path / "claims" / "k.lock"
    lock.parent.mkdir(parents=True)
    other = {"owner": "x", "host": "elsewhere", "pid": 1, "lease_s": 60}
    lock.write_text(json.dumps({**other, "expires": time.time() + 30}))  # within its lease
    assert not mine.try_claim("k") and not notes
    assert "claimed by elsewhere PID 1" in mine.holder("k")
    for bad in ({"expires": time.time() + 365 * 86400},  # a clock a year ahead
                {"expires": time.time() + 10 * 86400, "lease_s": 1e12},  # at most a day
                {"expires": float("nan")}):
        lock.write_text(json.dumps({**other, **bad}))
        assert mine.holder("k") is None and mine.stale_note("k")
        notes.clear()
        assert mine.try_claim("k")
        mine.release("k")
        assert bad.get("expires") != bad.get("expires") or "ahead" in notes[0]
        # the note names the host whose clock runs ahead
        assert bad.get("expires") != bad.get("expires") or "a clock ahead on elsewhere" in notes[0]
    # a claim that does not say its host or PID: "?" stands in for each
    lock.write_text(json.dumps({"owner": "x", "lease_s": 60, "expires": time.time() + 30}))
    assert mine.holder("k").startswith("claimed by ? PID ?; its lease ends in ")


def _cli(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evobench", *args], capture_output=True,
                          text=True, timeout=timeout)


def test_a_future_claim_neither_hangs_the_run_nor_hides_in_dry_run(tmp_path):
    """A claim from another host whose expiry lies a year ahead: --dry-run shows the cell as
    claimed, with why it will be taken over; the run takes it over, says so, and finishes
    (before, it waited forever, silently)."""
    args = ["run", "-d", "skimage[images=camera,crop=32]", "--sigma", "25", "-m", "noisy",
            "--no-save-images", "--out", str(tmp_path), "--run-name", "r"]
    assert _cli(args, START_S).returncode == 0
    run = tmp_path / "r"
    (cell,) = (run / "cells").glob("*.json")
    key = cell.stem
    cell.unlink()  # the cell is to do again ...
    (run / "claims").mkdir(exist_ok=True)
    lock = run / "claims" / f"{key}.lock"
    claim = {"owner": "x", "host": "elsewhere", "pid": 1, "lease_s": 120}
    lock.write_text(json.dumps({**claim, "expires": time.time() + 60}))  # ... held for now
    dry = _cli([*args, "--dry-run"], 120)
    assert f"held  {key[:12]}" in dry.stdout and "claimed by elsewhere PID 1" in dry.stdout
    assert "1 todo (1 held by other runners)" in dry.stdout
    lock.write_text(json.dumps({**claim, "expires": time.time() + 365 * 86400}))
    dry = _cli([*args, "--dry-run"], 120)
    assert f"todo  {key[:12]}" in dry.stdout and "stale claim, taken over" in dry.stdout
    done = _cli(args, START_S)
    assert done.returncode == 0, done.stderr
    assert "taking over the claim" in done.stderr and "ahead" in done.stderr
    assert len(pd.read_parquet(run / "results.parquet")) == 1


def test_a_rewrite_that_keeps_inode_size_and_mtime_still_changes_the_stamp(tmp_path):
    """Another runner's tables written within one clock tick, in place and at the same size,
    leave inode, size and mtime as they were: the stamp reads the content, so the rows of
    that runner are still kept."""
    from evobench.harness.store import RunStore

    store = RunStore(tmp_path, "r")
    store.write_tables([store.write_cell({"cell_key": "a", "method": "m", "status": "ok"},
                                         [], None)])
    path = tmp_path / "r" / "results.parquet"
    before, st = store.tables_stamp(), path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    with open(path, "r+b") as f:  # the same inode and size
        f.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the same mtime
    now = path.stat()
    assert (now.st_ino, now.st_size, now.st_mtime_ns) == (st.st_ino, st.st_size, st.st_mtime_ns)
    assert store.tables_stamp() != before
