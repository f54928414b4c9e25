"""Progress of a run: on a terminal a live display (a bar with done / cached / failed counts,
elapsed time and ETA, and one line per running cell with its elapsed time and, for learned
methods, epoch k/N and the latest PSNR or objective); plain lines otherwise (CI logs): one per
finished cell plus a ``running:`` line at most every 30 s; nothing but the table with ``--quiet``.

Running cells are known from the executor's events (``event(cell, "start"|"progress", fields)``),
which arrive from executor threads (local) or Dask's event loop, hence the lock.

The ETA is recomputed at every refresh, so it never freezes. It comes from the measured rate of
the finished cells of this run (cached ones never count): a cell with a cost estimate (its
method's cost model, as ``--dry-run`` prints it) is expected to take that estimate times the
measured ratio of wall time to estimated time, its method's ratio once one of its cells
finished, else the ratio over all finished cells (drawn towards 1 by PRIOR_S while few seconds
were measured), else 1 (the bare estimate, so the first ETA is the dry run's and not "0:01").
Scaling every cell by one measured rate keeps the ETA stable while cells of a slow method are
still ahead: the issue saw 0:01, 0:24, 2:03, 4:35, 1:15 when only per-method means were known. A
cell without an estimate takes as long as the finished cells of its method took (else the mean
over all finished cells). A running cell with epoch k of N needs ``elapsed * (N - k) / k`` more
(with an estimate, weighted k/N against the estimate's remainder, as the first epochs carry
start-up costs); one without epochs needs its expected time minus its elapsed time, but at least
a fifth of its elapsed time, so the ETA grows while a cell runs past its estimate. The total is
spread over the parallel slots.
"""

from __future__ import annotations

import sys
import threading
import time

import click

HEARTBEAT_S = 30.0
# the ratio over all finished cells starts as 1 (the bare estimates) with this many estimated
# seconds of weight, so a few sub-second cells, dominated by fixed costs, cannot scale the
# estimates of the slow cells still ahead by a large factor
PRIOR_S = 5.0


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(max(0.0, seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}"


def _cell_text(cell) -> str:
    """``method image degradation`` (rep when > 0) of a cell."""
    from evobench.harness.grid import image_label

    rep = f" rep{cell.rep}" if getattr(cell, "rep", 0) else ""
    return f"{cell.method_label} {image_label(cell)} {cell.deg_label}{rep}"


def _live_text(fields: dict) -> str:
    """``epoch 7/20  PSNR 27.31`` (or the objective when no PSNR is reported; ``iteration
    300/2000`` when the method counts iterations: ``unit``)."""
    parts = []
    if "epoch" in fields:
        unit = fields.get("unit", "epoch")
        parts.append(f"{unit} {fields['epoch']}" + (f"/{fields['epochs']}" if "epochs" in fields
                                                    else ""))
    if "psnr" in fields:
        parts.append(f"PSNR {fields['psnr']:.2f}")
    elif "free_energy" in fields:
        parts.append(f"F {fields['free_energy']:.4g}")
    elif "loss" in fields:
        parts.append(f"loss {fields['loss']:.4g}")
    return "  ".join(parts)


class Progress:
    def __init__(self, total: int, cached: int, skipped: int, *, quiet: bool = False,
                 tty: bool | None = None, slots: int = 1):
        self.total = total
        self.counts = {"ok": 0, "cached": cached, "failed": 0, "skipped": skipped}
        self.quiet = quiet
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.slots = max(1, int(slots))
        self.started = time.monotonic()
        self.finished = 0
        self._lock = threading.RLock()
        self._pending: dict[str, str] = {}  # cell key -> method, cells not started yet
        self._running: dict[str, dict] = {}  # cell key -> {cell, method, t0, fields}
        self._durations: dict[str, list[float]] = {}  # method -> wall seconds of finished cells
        self._estimates: dict[str, float] = {}  # cell key -> estimated seconds (cost models)
        self._measured: dict[str, list[float]] = {}  # method -> [wall s, estimated s] finished
        self._live = None
        self._console = None
        self._last_beat = time.monotonic()

    # -- the plan and the events ---------------------------------------------------------------
    def expect(self, cells, slots: int | None = None, estimates: dict | None = None) -> None:
        """The cells still to run (their methods feed the ETA), how many run at once and the
        cells' estimated seconds (cell key -> seconds; cells without one are left out)."""
        with self._lock:
            self._pending = {c.key: c.method for c in cells}
            self._estimates = {k: float(v) for k, v in (estimates or {}).items()
                               if v is not None and v > 0}
            if slots:
                self.slots = max(1, int(slots))

    def event(self, cell, kind: str, fields: dict) -> None:
        """``start`` (the cell's process began) or ``progress`` (what the method reported)."""
        with self._lock:
            entry = self._running.get(cell.key)
            if entry is None:
                self._pending.pop(cell.key, None)
                entry = self._running[cell.key] = {"cell": cell, "method": cell.method,
                                                   "t0": time.monotonic(), "fields": {}}
            if kind == "progress":
                entry["fields"].update(fields)
        self._heartbeat()

    def running(self) -> list[tuple[str, float, str]]:
        """``(cell text, elapsed seconds, live text)`` of every running cell, oldest first."""
        now = time.monotonic()
        with self._lock:
            return [(_cell_text(e["cell"]), now - e["t0"], _live_text(e["fields"]))
                    for e in sorted(self._running.values(), key=lambda e: e["t0"])]

    # -- ETA -----------------------------------------------------------------------------------
    def _ratios(self) -> tuple[dict[str, float], float | None]:
        """Measured wall time per estimated second: per method, and over all finished cells."""
        per = {m: w / e for m, (w, e) in self._measured.items() if e > 0}
        wall = sum(w for w, _ in self._measured.values())
        est = sum(e for _, e in self._measured.values())
        return per, ((wall + PRIOR_S) / (est + PRIOR_S) if est > 0 else None)

    def eta(self) -> float | None:
        """Seconds until the last cell finishes, or None while nothing hints at it."""
        now = time.monotonic()
        with self._lock:
            means = {m: sum(d) / len(d) for m, d in self._durations.items() if d}
            every = [x for d in self._durations.values() for x in d]
            per, overall = self._ratios()

            def scaled(key, method):  # the cell's estimate at the measured rate, or None
                estimate = self._estimates.get(key)
                if estimate is None:
                    return None
                ratio = per.get(method, overall)
                return estimate * (1.0 if ratio is None else ratio)

            projected = []  # (remaining, total) of running cells
            for key, entry in self._running.items():
                elapsed = now - entry["t0"]
                f = entry["fields"]
                estimate = own = scaled(key, entry["method"])
                if estimate is None:
                    estimate = means.get(entry["method"])
                if f.get("epoch") and f.get("epochs"):
                    k, n = max(1, int(f["epoch"])), int(f["epochs"])
                    remaining = elapsed * max(0, n - k) / k
                    if own is not None and n > 0:  # early epochs carry start-up costs: lean
                        done = min(1.0, k / n)  # on the estimate until the epochs tell more
                        remaining = done * remaining + (1 - done) * max(own - elapsed,
                                                                        0.2 * elapsed)
                elif estimate is not None:
                    remaining = max(estimate - elapsed, 0.2 * elapsed)
                else:
                    remaining = elapsed  # nothing known yet: assume it is half-way
                projected.append((remaining, elapsed + remaining))
            fallback = (sum(every) / len(every) if every else
                        sum(t for _, t in projected) / len(projected) if projected else None)
            pending = [(scaled(key, m), m) for key, m in self._pending.items()]
            unknown = [m for e, m in pending if e is None]
            if unknown and fallback is None and not means and \
                    all(e is None for e, _ in pending):
                return None
            work = sum(e for e, _ in pending if e is not None) + \
                sum(means.get(m, fallback or 0.0) for m in unknown)
            running_left = [r for r, _ in projected]
        if not pending and not running_left:
            return 0.0 if self.finished else None
        return max(max(running_left, default=0.0),
                   (work + sum(running_left)) / self.slots)

    # -- display -------------------------------------------------------------------------------
    def _counts(self) -> str:
        """``2/4 ran (1 ok, 1 failed); 5 cached, 1 skipped``: the cells of this run that
        finished (of those to run), how they ended, then the cells that were not run at all
        (cached from earlier runs, skipped), each count next to its word so none reads as
        another's."""
        c = self.counts
        text = f"{self.finished}/{self.total} ran ({c['ok']} ok, {c['failed']} failed)"
        rest = [f"{c[k]} {k}" for k in ("cached", "skipped") if c[k]]
        return text + ("; " + ", ".join(rest) if rest else "")

    def _render(self):
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        head = Table.grid(padding=(0, 1))
        for _ in range(4):
            head.add_column(no_wrap=True)
        head.add_row(Text("cells", style="bold"),
                     ProgressBar(total=max(self.total, 1), completed=self.finished, width=12),
                     Text(self._counts()),
                     Text(f"{_clock(time.monotonic() - self.started)} ETA "
                          f"{_clock(self.eta())}", style="cyan"))
        rows = self.running()
        if not rows:
            return head
        table = Table.grid(padding=(0, 2))
        table.add_column(style="yellow", no_wrap=True)
        table.add_column(justify="right", no_wrap=True)
        table.add_column(style="green", no_wrap=True)
        table.add_column(no_wrap=True, overflow="ellipsis")
        for text, elapsed, live in rows:
            table.add_row(Text("  running"), Text(_clock(elapsed)), Text(live), Text(text))
        return Group(head, table)

    def __enter__(self):
        if self.tty and not self.quiet and self.total:
            from rich.console import Console
            from rich.live import Live

            self._console = Console(stderr=True)
            self._live = Live(console=self._console, get_renderable=self._render,
                              refresh_per_second=4, transient=False)
            self._live.__enter__()
        elif not self.quiet and self.total:
            click.echo(f"running {self.total} cell(s); {self.counts['cached']} already done, "
                       f"{self.counts['skipped']} skipped", err=True)
        return self

    def __exit__(self, *exc):
        if self._live is not None:
            self._live.__exit__(*exc)
        return False

    def _heartbeat(self, force: bool = False) -> None:
        """Off a terminal: one ``running:`` line at most every HEARTBEAT_S seconds."""
        if self.quiet or self.tty or not self.total:
            return
        now = time.monotonic()
        if not force and now - self._last_beat < HEARTBEAT_S:
            return
        rows = self.running()
        if not rows:
            return
        self._last_beat = now
        cells = "; ".join(f"{t} {_clock(e)}" + (f" {live}" if live else "")
                          for t, e, live in rows)
        click.echo(f"running: {cells}  (eta {_clock(self.eta())})", err=True)

    def update(self, label: str, row: dict, cell=None) -> None:
        """A cell finished with ``row``."""
        status = row.get("status", "error")
        with self._lock:
            self.finished += 1
            self.counts["ok" if status == "ok" else "failed"] += 1
            entry = self._running.pop(cell.key, None) if cell is not None else None
            if cell is not None:
                self._pending.pop(cell.key, None)
            if status == "ok":
                method = cell.method if cell is not None else label.split()[0]
                wall = (time.monotonic() - entry["t0"]) if entry else row.get("time_total_s")
                if wall is not None:
                    self._durations.setdefault(method, []).append(float(wall))
                    estimate = self._estimates.get(cell.key) if cell is not None else None
                    if estimate is not None:
                        measured = self._measured.setdefault(method, [0.0, 0.0])
                        measured[0] += float(wall)
                        measured[1] += estimate
        if self._live is not None:
            if status != "ok":
                from rich.markup import escape

                self._live.console.print(f"[red]{status}[/red] "
                                         f"{escape(label)}: {escape(str(row.get('error', '')))}")
            self._live.refresh()
            return
        if self.quiet:
            return
        eta = self.eta()
        detail = (f"psnr={row['psnr']:.2f}" if isinstance(row.get("psnr"), float) else
                  row.get("error", ""))
        if row.get("resumed_at_epoch") is not None:
            detail += f"  resumed at epoch {row['resumed_at_epoch']}"
        click.echo(f"[{self.finished}/{self.total}] {status:<7} {label}  {detail}  "
                   f"({row.get('time_total_s', 0.0):.1f}s"
                   + (f", eta {_clock(eta)})" if eta is not None else ")"), err=True)
        self._heartbeat()
