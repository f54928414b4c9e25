"""Progress of a run: a rich bar with done / cached / failed counts and ETA on a terminal,
plain one-line-per-cell output otherwise (CI logs), nothing but the summary with ``--quiet``."""

from __future__ import annotations

import sys
import time

import click


class Progress:
    def __init__(self, total: int, cached: int, skipped: int, *, quiet: bool = False,
                 tty: bool | None = None):
        self.total = total
        self.counts = {"ok": 0, "cached": cached, "failed": 0, "skipped": skipped}
        self.quiet = quiet
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.started = time.monotonic()
        self.finished = 0
        self._bar = None
        self._task = None

    def __enter__(self):
        if self.tty and not self.quiet and self.total:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("[bold]cells"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[counts]}"), TimeElapsedColumn(), TextColumn("ETA"),
                TimeRemainingColumn(), console=Console(stderr=True), transient=False)
            self._bar.__enter__()
            self._task = self._bar.add_task("cells", total=self.total, counts=self._counts())
        elif not self.quiet and self.total:
            click.echo(f"running {self.total} cell(s); {self.counts['cached']} already done, "
                       f"{self.counts['skipped']} skipped", err=True)
        return self

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.__exit__(*exc)
        return False

    def _counts(self) -> str:
        c = self.counts
        return f"done {c['ok']}  cached {c['cached']}  failed {c['failed']}  skipped {c['skipped']}"

    def eta(self) -> float | None:
        if not self.finished:
            return None
        rate = (time.monotonic() - self.started) / self.finished
        return rate * (self.total - self.finished)

    def update(self, label: str, row: dict) -> None:
        status = row.get("status", "error")
        self.finished += 1
        self.counts["ok" if status == "ok" else "failed"] += 1
        if self._bar is not None:
            self._bar.update(self._task, advance=1, counts=self._counts())
            if status != "ok":
                self._bar.console.print(f"[red]{status}[/red] {label}: {row.get('error', '')}")
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
                   + (f", eta {eta:.0f}s)" if eta is not None else ")"), err=True)
