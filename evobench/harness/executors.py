"""Where cells run: local worker processes (``-j N``) or a Dask distributed cluster.

Both take an iterator of payloads and yield ``(payload, result)`` as cells finish, keeping only
a few payloads in flight so a large grid never holds every corrupted image in memory. Each cell
runs isolated (:mod:`evobench.harness.isolate`) with its hard timeout in either case, so the
results are the same; only the timings differ.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

from evobench.errors import EvobenchError, first_line
from evobench.harness import isolate
from evobench.harness.worker import CellPayload, CellResult


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _listener_for(on_event, cell):
    """``listener(kind, fields)`` for one cell, or None when nobody listens."""
    if on_event is None:
        return None
    return lambda kind, fields: on_event(cell, kind, fields)


def check_threads(threads) -> int | None:
    """``--threads-per-cell``: None (decided by the executor) or an integer >= 1 (also given
    as text, as on the command line); anything else is a one-line EvobenchError."""
    if threads is None:
        return None
    try:
        n = int(str(threads).strip()) if not isinstance(threads, bool | float) else None
    except ValueError:
        n = None
    if n is None or n < 1:
        raise EvobenchError(f"--threads-per-cell must be an integer >= 1, got {threads!r}")
    return n


class LocalExecutor:
    """``jobs`` cells at a time, each in its own fresh process on this machine, with
    ``threads`` torch/BLAS threads each (default: cores // jobs, at least 1)."""

    name = "local"
    on_event = None  # on_event(cell, kind, fields): "start" / "progress" of running cells

    def __init__(self, jobs: int = 1, threads: int | None = None):
        if jobs < 1:
            raise EvobenchError("--jobs must be >= 1")
        self.jobs = jobs
        self.threads = check_threads(threads)

    def threads_per_cell(self) -> int:
        if self.threads is not None:
            return self.threads
        return max(1, available_cores() // self.jobs)

    def run(self, payloads: Iterable[CellPayload],
            timeout: float | None) -> Iterator[tuple[CellPayload, CellResult]]:
        isolate.warm_up()
        pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="evobench-cell")
        pending: dict = {}
        source = iter(payloads)
        try:
            exhausted = False
            while True:
                while not exhausted and len(pending) < self.jobs:
                    payload = next(source, None)
                    if payload is None:
                        exhausted = True
                        break
                    listener = _listener_for(self.on_event, payload.cell)
                    pending[pool.submit(isolate.run_isolated, payload, timeout,
                                        listener)] = payload
                if not pending:
                    break
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    yield pending.pop(future), future.result()
        finally:
            if pending:  # interrupted: kill what still runs
                isolate.kill_all()
            pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        pass


_ADDRESS = re.compile(r"^(?:(tcp|tls|ws|wss)://)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})/?$")


def probe_scheduler(address: str, timeout: float = 5.0) -> None:
    """Check a scheduler address's form (``tcp://HOST:PORT``) and that something listens there,
    with a one-line error, before distributed's Client is built (a Client that fails in its
    constructor hangs for 10 s in its ``__del__``)."""
    match = _ADDRESS.match(str(address).strip())
    if not match:
        raise EvobenchError(f"--scheduler {address!r} is not a Dask scheduler address; use "
                            "tcp://HOST:PORT (e.g. tcp://127.0.0.1:8786)")
    host, port = match.group(2).strip("[]"), int(match.group(3))
    if not 0 < port < 65536:
        raise EvobenchError(f"--scheduler {address!r}: port {port} is out of range")
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        raise EvobenchError(f"cannot reach the Dask scheduler at {address}: "
                            f"{first_line(exc)}") from None


class DaskExecutor:
    """Cells as Dask tasks on an existing scheduler; each task runs its cell in a subprocess
    of the Dask worker (hard timeout there too). One thread per cell: a Dask worker already
    runs as many tasks as it has threads; ``threads`` overrides that."""

    name = "dask"
    on_event = None
    TOPIC = "evobench-cell-events"

    def __init__(self, address: str, threads: int | None = None, wait_s: float = 30.0,
                 say=None):
        self.threads = check_threads(threads)
        self.address, self.wait_s = address, wait_s
        self.say = say or (lambda line: __import__("click").echo(line, err=True))
        if not address:
            raise EvobenchError("--executor dask needs --scheduler ADDRESS (e.g. tcp://host:8786)")
        try:
            from distributed import Client
        except ImportError:
            raise EvobenchError("--executor dask needs dask[distributed]; pip install "
                                "'evobench[dask]'") from None
        probe_scheduler(address)  # a malformed or unreachable address never half-builds a Client
        try:
            self.client = Client(address, timeout="5s", set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise EvobenchError(f"cannot reach the Dask scheduler at {address}: "
                                f"{first_line(exc)}") from None
        self.slots = max(1, sum(self.client.nthreads().values()))

    def threads_per_cell(self) -> int:
        return 1 if self.threads is None else self.threads

    def run(self, payloads: Iterable[CellPayload],
            timeout: float | None) -> Iterator[tuple[CellPayload, CellResult]]:
        from distributed import as_completed

        source = iter(payloads)
        futures: dict = {}  # key -> (future, payload) of cells in flight

        cells = {}  # cell key -> cell, for the events Dask workers log
        on_event = self.on_event
        if on_event is not None:
            def handler(event):
                msg = event[1] if isinstance(event, tuple | list) else event
                cell = cells.get(msg.get("key")) if isinstance(msg, dict) else None
                if cell is not None:
                    on_event(cell, msg.get("kind", ""), msg.get("fields") or {})

            self.client.subscribe_topic(self.TOPIC, handler)

        def submit(payload):
            cells[payload.cell.key] = payload.cell
            future = self.client.submit(run_on_dask_worker, payload, timeout,
                                        self.TOPIC if on_event is not None else None,
                                        pure=False, key=f"evobench-cell-{payload.cell.key}")
            futures[future.key] = (future, payload)
            return future

        first = [submit(p) for p in (next(source, None) for _ in range(2 * self.slots))
                 if p is not None]
        queue = as_completed(first, loop=self.client.loop)
        stop = threading.Event()
        threading.Thread(target=self._watch_workers, args=(stop,), daemon=True,
                         name="evobench-dask-workers").start()
        try:
            for future in queue:
                payload = futures.pop(future.key)[1]
                try:
                    result = future.result()
                except Exception as exc:  # noqa: BLE001 - a lost worker is a cell error
                    from evobench.harness.worker import one_line

                    result = CellResult({"status": "error",
                                         "error": f"dask task failed: {one_line(exc)}"})
                nxt = next(source, None)
                if nxt is not None:
                    queue.add(submit(nxt))
                yield payload, result
        finally:
            stop.set()
            if futures:  # interrupted: nothing more should run for this client
                self.client.cancel([f for f, _ in futures.values()])
            if on_event is not None:
                self.client.unsubscribe_topic(self.TOPIC)

    def _watch_workers(self, stop: threading.Event) -> None:
        """While cells wait on a cluster without workers, say so: one line after ``wait_s``
        without any, and again every ``wait_s`` (a cluster's workers may join later, so the
        run keeps waiting; Ctrl-C stops it)."""
        since = time.monotonic()
        said = since
        while not stop.wait(min(1.0, self.wait_s / 4)):
            try:
                workers = len(self.client.nthreads())
            except Exception:  # noqa: BLE001 - a closing client: the run loop reports it
                return
            now = time.monotonic()
            if workers:
                since = said = now
            elif now - said >= self.wait_s:
                self.say(f"waiting for Dask workers at {self.address} (0 connected for "
                         f"{now - since:.0f} s); start some (dask worker {self.address}) or "
                         "press Ctrl-C")
                said = now

    def close(self) -> None:
        self.client.close()


def run_on_dask_worker(payload: CellPayload, timeout: float | None,
                       topic: str | None) -> CellResult:
    """A cell as a Dask task: in a subprocess of the worker, its start and progress logged as
    events under ``topic`` (the client subscribes to them)."""
    listener = None
    if topic:
        from distributed import get_worker

        worker, key = get_worker(), payload.cell.key

        def listener(kind, fields):
            worker.log_event(topic, {"key": key, "kind": kind, "fields": fields})

    return isolate.run_in_subprocess(payload, timeout, listener)
