"""What a running method may use besides its input: one explicit :class:`MethodContext` per call.

A method receives ``run(call, ctx, **params)``: the checked input and this context. Everything
the harness offers a method flows through it, never through process-global state:

- ``ctx.progress(epoch=k, epochs=N, loss=..., estimate=image)``: live progress. Outside the
  harness nobody listens and the call costs an attribute look-up; inside a cell the worker's sink
  forwards plain scalars to the parent process (at most four events a second, the final step
  always). An ``estimate`` image is scored by the context's ``scorer`` (the worker holds the
  clean image; the method never does) before it is forwarded.
- ``ctx.budget_s``: the wall-clock budget of the fit (``evobench run --budget``): a method stops
  after the iteration or epoch that crosses it. Wall, not CPU, time: it is what a user waits for,
  it counts GPU work (CPU time does not), and a method that keeps a second thread busy (tvae's
  E-step beside its M-step) is not charged twice for the same second.
- ``ctx.checkpointer(ident, kind)``: the fit's :class:`evobench.checkpoint.Checkpointer` (periodic
  saves into ``checkpoint_dir`` if set, resume, stop at an epoch boundary).
- ``ctx.stop_requested()``: a stop request (``--stop-after``, SIGTERM, or the run's stop file,
  which works across machines under Dask when the run folder is shared).
- ``ctx.say(text)``: a one-line message for the progress output ("resumed at epoch 173").

A notebook or a test calls ``evobench.api.run_method(...)`` and gets a default context: no
progress, no checkpoints, no budget, never a stop.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evobench.checkpoint import Checkpointer
from evobench.errors import EvobenchError

DEFAULT_EVERY_S = 600.0  # checkpoints every 10 minutes of wall time
MIN_PROGRESS_INTERVAL_S = 0.25


@dataclass
class MethodContext:
    """The context of one method call (see the module docstring).

    Set by the caller: ``budget_s`` (None: the method's own schedule), ``checkpoint_dir`` (None:
    no checkpoints), ``checkpoint_every_s``, ``cell_key`` (what a checkpoint must belong to),
    ``stop_file``, ``sink`` (receives progress events), ``scorer`` (image -> metrics, for
    progress estimates) and ``notify`` (one-line messages). Set by the method's checkpointer and
    read back by the harness: ``resumes``, ``resumed_at``, ``checkpoints``, ``checkpointing``.
    """

    budget_s: float | None = None
    checkpoint_dir: Path | None = None
    checkpoint_every_s: float = DEFAULT_EVERY_S
    cell_key: str = ""
    stop_file: Path | None = None
    sink: Callable[[dict], None] | None = None
    scorer: Callable[[Any], dict] | None = None
    notify: Callable[[str], None] | None = None
    resumes: int = 0
    resumed_at: int | None = None
    checkpoints: int = 0
    checkpointing: bool = False  # a fit that writes checkpoints can stop cleanly on request
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _last_event: float = field(default=0.0, repr=False)

    def __post_init__(self):
        if self.budget_s is not None:
            budget = float(self.budget_s)
            if not (math.isfinite(budget) and budget > 0):
                raise EvobenchError(f"the budget must be a positive number of seconds, got "
                                    f"{self.budget_s!r}")
            self.budget_s = budget
        if self.checkpoint_dir is not None:
            self.checkpoint_dir = Path(self.checkpoint_dir)
        if self.stop_file is not None:
            self.stop_file = Path(self.stop_file)

    # -- stopping ---------------------------------------------------------------------------
    def request_stop(self, *_signal_args) -> None:
        """Ask the fit to checkpoint and stop at its next epoch boundary (signal-safe: usable
        as a signal handler)."""
        self._stop.set()

    def stop_requested(self) -> bool:
        return self._stop.is_set() or (self.stop_file is not None and self.stop_file.exists())

    def clear_stop(self) -> None:
        self._stop.clear()

    # -- messages and progress --------------------------------------------------------------
    def say(self, message: str) -> None:
        """A one-line message to whoever watches the call (stderr when nobody does)."""
        if self.notify is not None:
            try:
                self.notify(message)
                return
            except Exception:  # noqa: BLE001 - a broken pipe must not end the fit
                pass
        print(f"evobench: {message}", file=sys.stderr, flush=True)

    def progress(self, **fields) -> None:
        """Send ``fields`` (``epoch``, ``epochs``, ``unit``, ``psnr``, ``loss``, ...) to the
        sink; ``estimate=image`` is scored first. Never raises: progress must not break a
        run."""
        if self.sink is None:
            return
        now = time.monotonic()
        final = fields.get("epoch") is not None and fields.get("epoch") == fields.get("epochs")
        estimate = fields.pop("estimate", None)
        if now - self._last_event < MIN_PROGRESS_INTERVAL_S and not final and estimate is None:
            return
        self._last_event = now
        if estimate is not None and self.scorer is not None:
            try:
                fields.update(self.scorer(estimate))
            except Exception:  # noqa: BLE001
                pass
        event = {}
        for key, value in fields.items():
            if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
                value = value.item()
            if isinstance(value, bool | int | str) or (isinstance(value, float)
                                                       and math.isfinite(value)):
                event[str(key)] = value
        try:
            self.sink(event)
        except Exception:  # noqa: BLE001 - a closed pipe or lost scheduler: keep computing
            pass

    # -- checkpoints --------------------------------------------------------------------------
    def checkpointer(self, ident: dict, kind: str, *, path=None, every_s=None):
        """The fit's :class:`evobench.checkpoint.Checkpointer`: it writes into ``path`` (default:
        the context's ``checkpoint_dir``; None: nothing is written) and still ends the fit on a
        stop request. ``ident`` (with ``kind``) is everything the fit's result depends on.
        ``every_s`` None: the context's interval; 0: no periodic checkpoints."""
        path = self.checkpoint_dir if path is None else Path(path)
        every = self.checkpoint_every_s if every_s is None else every_s
        try:
            every = float(every)
        except (TypeError, ValueError):
            every = float("nan")
        if not (math.isfinite(every) and every >= 0):
            raise EvobenchError(f"checkpoint_every must be >= 0 seconds (0 = off), got {every_s}")
        return Checkpointer(None if every == 0 else path, every, ident, self, kind)
