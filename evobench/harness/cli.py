"""``evobench run``: expand a suite into cells, run what is not done yet, store and summarise.

Exit codes: 0 all cells ok (or skipped), 2 bad input (one ``error:`` line, nothing stored is
touched), 3 some cells failed or timed out (all rows are still stored), 4 the run folder could
not be written (disk full; one ``error:`` line, cells already stored are kept), 75 stopped by
``--stop-after`` or SIGTERM with running cells checkpointed (resume by rerunning), 130
interrupted (Ctrl-C).
"""

from __future__ import annotations

import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import click

from evobench.errors import EvobenchError


@click.command("run")
@click.option("--suite", "suite_name", default="denoise", show_default=True, metavar="NAME|FILE",
              help="A registered suite or a suite TOML file.")
@click.option("--profile", default=None, metavar="NAME",
              help="Profile of the suite: smoke, quick (default) or paper.")
@click.option("-m", "--method", "methods", multiple=True, metavar="SELECTOR",
              help="Method with parameters, e.g. 'tvae[S=64,epochs=5]' (repeatable); replaces "
                   "the suite's methods (adds to them with --with-suite-baselines).")
@click.option("--with-suite-baselines", "with_baselines", is_flag=True,
              help="Run the -m methods beside the suite profile's own methods, into one run "
                   "folder and one table (a new method next to its references).")
@click.option("-d", "--dataset", "datasets", multiple=True, metavar="SELECTOR",
              help="Dataset, e.g. 'set12[images=house,barbara]' or 'folder[path=DIR]' "
                   "(repeatable); replaces the suite's datasets.")
@click.option("--sigma", default=None, metavar="LIST",
              help="Noise levels on the 0-255 scale, e.g. 15,25,50.")
@click.option("--missing", default=None, metavar="LIST",
              help="Missing fractions for inpainting, e.g. 0.5,0.8.")
@click.option("-r", "--repetitions", type=int, default=None, help="Repetitions per cell.")
@click.option("--seed", type=int, default=0, show_default=True, help="Base seed.")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda[:N].")
@click.option("-j", "--jobs", default="auto", show_default=True, metavar="N|auto",
              help="Cells in parallel (local executor); threads per cell = cores // jobs. "
                   "auto: one cell per core, one thread each (one cell at a time with "
                   "--device cuda).")
@click.option("--threads-per-cell", default=None, metavar="N",
              help="Torch/BLAS threads per cell instead of cores // jobs (pin it where "
                   "timings must not depend on the machine, e.g. CI baselines).")
@click.option("--budget", default=None, metavar="DURATION",
              help="The same wall-clock fit budget for every learned method (tvae, gsvae, dip, "
                   "zsn2n, noise2self, self2self), e.g. 60s or 5m: each stops after the epoch "
                   "or iteration that crosses it, so a table compares methods at equal cost. "
                   "Recorded in every row (budget_s) and part of the cell's identity.")
@click.option("--timeout", default=None, metavar="DURATION",
              help="Hard wall-clock limit per cell, e.g. 90s, 10m, 2h, 1h30m (default: the "
                   "profile's, else none).")
@click.option("--out", default="results", show_default=True, type=click.Path(path_type=Path),
              help="Folder holding run folders.")
@click.option("--run-name", default=None,
              help="Run folder name (default: SUITE-PROFILE; with -m/-d/--sigma/--missing/-r "
                   "a name derived from that selection, so the same command resumes).")
@click.option("--dry-run", is_flag=True, help="Print the expanded grid with done/todo and exit.")
@click.option("--force", is_flag=True, help="Run cells again even if already done.")
@click.option("--executor", type=click.Choice(["local", "dask"]), default="local",
              show_default=True)
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Dask scheduler address for --executor dask (tcp://host:8786).")
@click.option("--save-images/--no-save-images", default=True, show_default=True,
              help="Store restored/corrupted/clean images in artifacts/<cell_key>.npz "
                   "(latent fields and active-unit histograms are always kept).")
@click.option("--quiet", is_flag=True, help="Print only the final table.")
@click.option("--checkpoint-every", default="10m", show_default=True, metavar="DURATION",
              help="Checkpoint long fits (tvae) this often, in wall time, under "
                   "RUN/checkpoints/; a rerun continues from them. 0 = off.")
@click.option("--keep-checkpoints", is_flag=True,
              help="Keep the checkpoints of finished cells (removed by default).")
@click.option("--stop-after", default=None, metavar="DURATION",
              help="After this long, checkpoint the running cells and exit with code 75 "
                   "(resume by rerunning), e.g. 3h50m before a 4 h job limit. SIGTERM does "
                   "the same.")
def run(**options):
    """Run a suite (or a selection of it) and store the results under OUT/RUN_NAME/."""
    previous = _ctrl_c_interrupts()
    try:
        _run(RunArgs(**options))
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _ctrl_c_interrupts():
    """Make Ctrl-C (SIGINT) interrupt the run whatever disposition was inherited: a process
    started in the background by a non-interactive shell (``cmd &`` in a script, CI steps) gets
    SIGINT ignored, and Python then keeps ``SIG_IGN``, so a SIGINT would never stop the run, its
    cells or its forkserver. Returns the disposition to restore, or None if nothing changed."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        return None
    signal.signal(signal.SIGINT, signal.default_int_handler)
    return signal.SIG_IGN


@dataclass
class RunArgs:
    """The options of ``evobench run`` as click parsed them, one field per option: a new option
    is one ``@click.option`` above and one field here."""

    suite_name: str
    profile: str | None
    methods: tuple[str, ...]
    with_baselines: bool
    datasets: tuple[str, ...]
    sigma: str | None
    missing: str | None
    repetitions: int | None
    seed: int
    device: str
    budget: str | None
    jobs: str
    threads_per_cell: str | None
    timeout: str | None
    out: Path
    run_name: str | None
    dry_run: bool
    force: bool
    executor: str
    scheduler: str | None
    save_images: bool
    quiet: bool
    checkpoint_every: str
    keep_checkpoints: bool
    stop_after: str | None


def _run(args: RunArgs) -> None:
    from evobench.harness import grid as grid_mod
    from evobench.registry import broken_plugins_line, get_registry

    registry = get_registry()
    if broken_plugins_line(registry):
        click.echo(broken_plugins_line(registry), err=True)
    overrides = _overrides(args)
    jobs = _jobs(args.jobs, overrides.device)
    grid = grid_mod.build_grid(grid_mod.load_suite(args.suite_name, registry), args.profile,
                               overrides, registry)
    options = _run_options(args, grid, overrides, jobs)
    for note in grid.notes:
        if not args.quiet:
            click.echo(f"note: {note}", err=True)
    if args.dry_run:
        _dry_run(grid, options, registry)
        return
    engine = _engine(args, options)
    result = _execute(grid, registry, options, engine)
    _summary(result, args.quiet)
    _exit(result)


def _overrides(args: RunArgs):
    """The selection options (-m, -d, --sigma, --missing, -r, --seed, --device), checked once,
    before any cell (and before --dry-run lists them)."""
    from evobench import validate
    from evobench.harness.executors import check_threads
    from evobench.harness.grid import Overrides
    from evobench.harness.selectors import split_list
    from evobench.specs import check_name

    device = validate.device(args.device)
    seed = validate.seed(args.seed)
    check_threads(args.threads_per_cell)  # before --dry-run, which starts no executor
    if args.run_name is not None:
        check_name("run", args.run_name)
    if args.with_baselines and not args.methods:
        raise EvobenchError("--with-suite-baselines adds methods to the suite's: give them with "
                            "-m, e.g. -m 'mine[strength=2]' --with-suite-baselines")
    if args.repetitions is not None and args.repetitions < 1:
        raise EvobenchError("--repetitions must be >= 1")
    overrides = Overrides(
        methods=list(args.methods) or None, datasets=list(args.datasets) or None,
        # an empty --sigma '' is refused by split_list, never read as "the suite's values"
        sigmas=split_list(args.sigma, "--sigma") if args.sigma is not None else None,
        missing=(split_list(args.missing, "--missing", example="0.5,0.8")
                 if args.missing is not None else None),
        repetitions=args.repetitions, seed=seed, device=device,
        with_baselines=args.with_baselines,
        budget_s=validate.duration(args.budget, "--budget"))
    if args.budget is not None and not overrides.budget_s:
        raise EvobenchError("--budget must be a positive duration such as 60s or 5m")
    if overrides.missing and not all(0 < m < 1 for m in overrides.missing):
        raise EvobenchError("--missing values are fractions between 0 and 1 (e.g. 0.5,0.8)")
    return overrides


def _run_options(args: RunArgs, grid, overrides, jobs: int):
    """The runner's options: where to store, how to run and checkpoint, when to stop."""
    from evobench.harness import runner
    from evobench.harness.stopper import Stopper
    from evobench.validate import duration

    run_name = args.run_name
    if run_name is None:
        run_name = runner.selection_run_id(grid, overrides)
    limit = duration(args.timeout, "--timeout") if args.timeout is not None else grid.timeout
    if args.timeout is not None and limit is None and grid.timeout and not args.quiet:
        click.echo(f"note: --timeout {args.timeout} turns off the profile's limit of "
                   f"{grid.timeout:g} s per cell; cells run without a time limit", err=True)
    return runner.RunOptions(
        out=args.out, run_name=run_name, jobs=jobs, timeout=limit, executor=args.executor,
        scheduler=args.scheduler, save_images=args.save_images, force=args.force,
        quiet=args.quiet,
        checkpoint_every=duration(args.checkpoint_every, "--checkpoint-every"),
        keep_checkpoints=args.keep_checkpoints,
        stop_after=duration(args.stop_after, "--stop-after"), stopper=Stopper())


def _engine(args: RunArgs, options):
    """The executor: local processes (``-j`` at a time) or a Dask cluster."""
    from evobench.harness.executors import DaskExecutor, LocalExecutor, available_cores

    threads = args.threads_per_cell  # checked by the executor
    if args.executor == "dask":
        engine = DaskExecutor(args.scheduler, threads)
        options.jobs = engine.slots  # cells in flight at once, recorded in the rows
        return engine
    if args.scheduler:
        raise EvobenchError("--scheduler is only used with --executor dask")
    engine = LocalExecutor(options.jobs, threads)
    if options.jobs * engine.threads_per_cell() > available_cores() and not args.quiet:
        click.echo(f"note: {options.jobs} jobs x {engine.threads_per_cell()} threads on "
                   f"{available_cores()} cores; timings will be inflated", err=True)
    return engine


def _execute(grid, registry, options, engine):
    """``runner.execute`` with SIGTERM as a stop (checkpoint, exit 75) and a full disk as exit
    code 4."""
    from evobench.harness import runner
    from evobench.harness.progress import Progress
    from evobench.harness.store import StoreWriteError

    stopper = options.stopper

    def _terminate(signum, frame):  # a batch system's stop: checkpoint, exit 75
        if stopper.requested:  # a second SIGTERM: stop now, like Ctrl-C
            raise KeyboardInterrupt
        stopper.request("SIGTERM")

    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return runner.execute(grid, registry, options, engine,
                              lambda n, cached, skipped: Progress(n, cached, skipped,
                                                                  quiet=options.quiet))
    except StoreWriteError as exc:  # disk full, ulimit -f: stored cells are kept
        click.echo(f"error: {exc}", err=True)
        sys.exit(4)
    finally:
        signal.signal(signal.SIGTERM, previous)
        engine.close()


def _exit(result) -> None:
    """Exit code 75 (stopped, resumable), 130 (interrupted) or 3 (cells failed); 0 otherwise."""
    if result.stopped and not result.interrupted:
        click.echo(f"stopped ({result.stopped}): {result.unfinished} cell(s) not finished; "
                   f"running fits were checkpointed in {result.store.root / 'checkpoints'}; "
                   "resume by rerunning the same command", err=True)
        sys.exit(75)
    if result.interrupted:
        click.echo(f"interrupted: finished cells are stored in {result.store.root}; run the same "
                   "command again to resume", err=True)
        sys.exit(130)
    if result.failed:
        click.echo(f"{result.failed} cell(s) failed or timed out; their rows are in "
                   f"{result.store.root / 'results.parquet'}", err=True)
        sys.exit(3)


def _jobs(value, device: str = "cpu") -> int:
    """``auto`` (one cell per core; one at a time on a GPU, which the cells would share) or a
    positive integer."""
    from evobench.harness.executors import available_cores

    text = str(value).strip().lower()
    if text == "auto":
        return 1 if str(device).startswith("cuda") else available_cores()
    try:
        jobs = int(text)
    except ValueError:
        raise EvobenchError(f"--jobs {value!r} is not a number or 'auto'") from None
    if jobs < 1:
        raise EvobenchError("--jobs must be >= 1 (or 'auto': one cell per core)")
    return jobs



def _summary(result, quiet: bool = False) -> None:
    import pandas as pd

    from evobench.harness.store import results_frame
    from evobench.reports.tables import render_summary

    frame = results_frame(result.records) if result.records else pd.DataFrame()
    if len(frame):
        try:  # averages over images; `evobench report` adds the per-image tables
            click.echo(render_summary(frame, fmt="text", per_image=False))
        except Exception as exc:  # noqa: BLE001 - the rows are stored; a table bug must not hide that
            click.echo(f"note: no summary table ({type(exc).__name__}: {exc}); the results are "
                       f"stored, see `evobench report {result.store.root}`", err=True)
    if quiet:  # only the table (failures and interruptions are still reported after it)
        return
    counts = result.counts
    click.echo(f"cells: {counts['ok']} run, {counts['cached']} cached, {counts['failed']} failed, "
               f"{counts['skipped']} skipped -> {result.store.root}", err=True)
    if len(frame):
        click.echo(f"per-image tables and figures: evobench report {result.store.root}", err=True)


def _dry_run(grid, options, registry) -> None:
    from evobench.harness import cost, runner
    from evobench.harness.grid import image_label
    from evobench.harness.store import RunStore
    from evobench.reports.names import display_names

    run_id = options.run_name or runner.default_run_id(grid)
    store = RunStore(options.out, run_id)
    from evobench.harness.claims import Claims

    done, todo, skip = runner.plan(grid, store, options.force,
                                   say=lambda line: click.echo(line, err=True))
    todo_keys = {c.key for c in todo}
    claims = Claims(store.root)  # reads only: who holds which pending cell
    held = 0
    shapes: dict = {}
    costs, unreadable = [], 0  # the estimated seconds of every cell to run
    click.echo(f"suite {grid.suite!r} profile {grid.profile!r} -> {store.root}")
    # methods as the report will name them (``tvae (epochs=20)``), not raw selectors
    names = display_names([c.method_label for c in grid.cells], [c.method for c in grid.cells])
    width = max(len(names[c.method_label]) for c in grid.cells)
    for cell in grid.cells:
        state = ("done" if cell.key in done else "todo" if cell.key in todo_keys else "skip")
        extra = f"  ({cell.skip_reason})" if state == "skip" else ""
        if state == "todo":
            holder = claims.holder(cell.key)
            if holder:
                state, extra, held = "held", f"  ({holder})", held + 1
            elif stale := claims.stale_note(cell.key):
                extra = f"  ({stale})"
        estimate = ""
        if state == "todo":
            seconds = cost.cell_seconds(cell, registry, shapes, options.timeout)
            costs.append(seconds)
            unreadable += seconds is None and cell.input_key in shapes \
                and shapes[cell.input_key] is None
            estimate = f"  ~{cost.cell_text(seconds)}"
        click.echo(f"{state:<4}  {cell.key[:12]}  {names[cell.method_label]:<{width}}  "
                   f"{image_label(cell):<22} {cell.deg_label:<32} rep{cell.rep}{estimate}{extra}")
    click.echo(f"{len(grid.cells)} cells: {len(done)} done, {len(todo)} todo"
               + (f" ({held} held by other runners)" if held else "") + f", {len(skip)} skip"
               + (f"; timeout {options.timeout:g}s per cell" if options.timeout else ""))
    click.echo(cost.total_line(costs, grid.cells[0].device if grid.cells else "cpu",
                               options.jobs, unreadable))
