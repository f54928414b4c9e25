"""The ``report``, ``figures``, ``compare`` and ``merge`` commands.

Thin click wrappers: parsing and messages live here, the work in the modules beside it, so the
same functions serve scripts and the command line. Bad input raises ``EvobenchError`` (exit 2);
``compare`` exits 1 on a regression.
"""

from __future__ import annotations

from pathlib import Path

import click

from evobench.errors import EvobenchError

TABLE_FORMATS = {"md": "markdown", "markdown": "markdown", "csv": "csv", "latex": "latex",
                 "tex": "latex", "html": "html", "txt": "text", "text": "text"}
SUFFIX = {"markdown": "md", "csv": "csv", "latex": "tex", "text": "txt"}


def _split(text: str) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def _table_formats(text: str) -> list[str]:
    out = []
    for f in _split(text):
        if f.lower() not in TABLE_FORMATS:
            raise EvobenchError(f"unknown report format {f!r}; use md, csv, latex or html")
        out.append(TABLE_FORMATS[f.lower()])
    if not out:
        raise EvobenchError("--format is empty; use e.g. md,csv,latex,html")
    return list(dict.fromkeys(out))


def default_out(runs) -> Path:
    """``reports/<run_id>``: the run folder's name, or several joined by '+'; each run's
    report has its own folder, so reporting one run never overwrites or mixes with another's."""
    from evobench.reports.load import run_folder

    names = list(dict.fromkeys(run_folder(r).name for r in runs))
    name = "+".join(names) if len(names) <= 3 else "+".join(names[:3]) + f"+{len(names) - 3}-more"
    return Path("reports") / name


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@click.option("--out", "-o", default=None, type=click.Path(),
              help="Folder for the tables, figures and index.html  [default: reports/RUN_ID]")
@click.option("--format", "formats", default="md,csv,latex,html", show_default=True,
              help="Comma-separated: md, csv, latex, html (text also possible).")
@click.option("--metrics", default="psnr,ssim,time_total_s", show_default=True,
              help="Result columns to tabulate.")
@click.option("--per-image/--no-per-image", default=True, show_default=True,
              help="Add one table per image besides the average over images.")
@click.option("--figures/--no-figures", "with_figures", default=True, show_default=True,
              help="Also draw the figures (PNG) and embed them in the HTML page.")
@click.option("--image", default=None, help="Image id for the per-image figures.")
def report(runs, out, formats, metrics, per_image, with_figures, image):
    """Write comparison tables (and figures) for RUN... (results/<run_id> folders)."""
    from evobench.files import within
    from evobench.reports.figures import make_figures
    from evobench.reports.html import render_html
    from evobench.reports.load import load_runs
    from evobench.reports.tables import render_summary

    fmts = _table_formats(formats)
    metric_list = _split(metrics)
    data = load_runs(runs)
    out = Path(out) if out else default_out(runs)
    out.mkdir(parents=True, exist_ok=True)
    written, notes, figure_files, captions = [], [], [], {}
    if with_figures:
        figure_files, notes = make_figures(data, within(out, "figures"), formats=["png"],
                                           image=image, captions=captions)
        written += figure_files
    for fmt in fmts:
        text = render_summary(data.results, fmt, metrics=metric_list, per_image=per_image)
        if fmt == "html":
            path = within(out, "index.html")
            page = render_html(data.results, data.manifests, text, figure_files, notes,
                               captions=captions, metric=metric_list[0] if metric_list else "psnr")
            path.write_text(page, encoding="utf-8")
        else:
            path = within(out, f"summary.{SUFFIX[fmt]}")
            path.write_text(text, encoding="utf-8")
        written.append(path)
    for note in notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"wrote {len(written)} files to {out}/: "
               + ", ".join(str(p.relative_to(out)) for p in written))


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@click.option("--out", "-o", default=None, type=click.Path(),
              help="Folder for the figure files  [default: reports/RUN_ID/figures]")
@click.option("--format", "formats", default="png", show_default=True,
              help="Comma-separated: png, pdf, svg.")
@click.option("--image", default=None, help="Image id for training curves, fields and panels.")
def figures(runs, out, formats, image):
    """Regenerate the paper figures of RUN... from the stored results."""
    from evobench.reports.figures import make_figures
    from evobench.reports.load import load_runs

    data = load_runs(runs)
    out = Path(out) if out else default_out(runs) / "figures"
    files, notes = make_figures(data, out, formats=_split(formats) or [""], image=image)
    for note in notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"wrote {len(files)} figure files to {out}/")


@click.command()
@click.argument("baseline", type=click.Path())
@click.argument("candidate", type=click.Path())
@click.option("--fail-on", default="psnr:-0.05,ssim:-0.002,cpu_s:+50%", show_default=True,
              help="Gates COLUMN:[+|-|±]AMOUNT[%], comma-separated (± or +-: a change either "
                   "way beyond AMOUNT fails). Time gates are noisy: CPU "
                   "time (cpu_s) varies far less than wall time (time_total_s) between "
                   "identical runs.")
@click.option("--show", default="auto", show_default=True,
              type=click.Choice(["auto", "all", "changed", "regressions"]),
              help="Which cells the diff table lists (auto: all up to 40 cells, else changed).")
@click.option("--format", "fmt", default="text", show_default=True,
              type=click.Choice(["text", "markdown"]), help="Diff table format.")
@click.option("--time-floor", default=0.1, show_default=True, type=float,
              help="Relative time gates (time_*, cpu_s) ignore changes smaller than this "
                   "many seconds.")
@click.option("--output", type=click.Path(), default=None,
              help="Also write the diff to this file (e.g. a CI job summary).")
@click.pass_context
def compare(ctx, baseline, candidate, fail_on, show, fmt, time_floor, output):
    """Compare CANDIDATE with BASELINE cell by cell; exit 1 on a regression beyond --fail-on.

    Missing or failed cells in the candidate are regressions; new cells are listed.
    """
    from evobench.reports.compare import (
        compare_frames,
        environment_warnings,
        parse_fail_on,
        render,
    )
    from evobench.reports.load import read_manifest, read_results

    base = read_results(baseline)
    cand = read_results(candidate)
    thresholds = parse_fail_on(fail_on, set(base.columns) | set(cand.columns))
    comp = compare_frames(base, cand, thresholds, time_floor_s=time_floor)
    for line in environment_warnings(base, cand, read_manifest(baseline),
                                     read_manifest(candidate), comp):
        click.echo(f"warning: {line}", err=True)
    text = render(comp, fmt=fmt, show=show)
    click.echo(text, nl=False)
    if output:
        Path(output).write_text(text, encoding="utf-8")
    if comp.failed:
        ctx.exit(1)


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@click.option("--out", "-o", "out", required=True, type=click.Path(),
              help="New run folder for the merged results.")
@click.option("--force", is_flag=True, help="Write into OUT even if it is not empty.")
def merge(runs, out, force):
    """Merge RUN... into OUT; a cell present in several runs keeps the last one given."""
    from evobench.reports.merge import merge_runs

    folder = merge_runs(runs, out, force=force)
    import pandas as pd

    n = len(pd.read_parquet(folder / "results.parquet", columns=["cell_key"]))
    click.echo(f"merged {len(runs)} runs into {folder} ({n} cells)")
