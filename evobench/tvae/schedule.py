"""How training's work is spread over CPU threads, with the same numbers as in line, bit for bit.

Two guarantees make the thread count change no number:
- every epoch's (and estimate's) arithmetic runs at one intra-op thread (``one_thread_math``):
  full reductions and some BLAS kernels depend on the intra-op thread count, at one they do
  not. Parallelism comes from independent single-threaded streams run in threads instead;
- only the E-step's search draws from the generator, and work is shared only where rows are
  independent, so who ran which part changes no number.

``EStepStream`` runs an epoch's E-steps. The E-step of chunk i uses the parameters as they were
before the M-step of chunk i-1 (the training module's snapshot decoder, refreshed at the same
point of the schedule either way). With the overlap (>= 2 torch threads on CPU) that E-step's
search runs in a worker thread while chunk i-1's M-step runs in the caller's (two single-threaded
streams use two cores better than small two-thread ops); otherwise in line.

``map_chunks`` spreads per-chunk work (estimates, free energies) over worker threads.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import torch

SELECT_ROWS = 128  # patches per piece of an E-step's selection (either thread takes pieces)


_OUTER_THREADS: list[int] = []


@contextmanager
def one_thread_math():
    """Run torch's intra-op arithmetic at one thread inside the block (restored after).

    Results of full reductions (two-pass sums over per-thread partials) and of some BLAS
    kernels depend on the intra-op thread count; at one thread they do not. Parallelism comes
    from running independent, single-threaded streams in threads instead (see EStepStream).
    Nested use is fine; ``worker_threads()`` reports the count the outermost caller had.
    """
    before = torch.get_num_threads()
    _OUTER_THREADS.append(_OUTER_THREADS[-1] if _OUTER_THREADS else before)
    torch.set_num_threads(1)
    try:
        yield
    finally:
        _OUTER_THREADS.pop()
        torch.set_num_threads(before)


def worker_threads() -> int:
    """The torch thread count the caller asked for (outside any one_thread_math block)."""
    return _OUTER_THREADS[-1] if _OUTER_THREADS else torch.get_num_threads()


class _SharedRows:
    """A row-wise job cut into pieces of rows that whichever thread is free takes: the worker
    publishes it, both threads ``work`` on it. Rows are independent, so who ran which piece
    changes no number. A failure on either side ends the job for both (no thread hangs)."""

    def __init__(self):
        self._published = threading.Event()
        self._finished = threading.Event()
        self._lock = threading.Lock()
        self._pieces: list[tuple[int, int]] = []
        self._error: BaseException | None = None

    def publish(self, fn, n_rows: int, piece: int) -> None:
        """Offer ``fn(a, b)`` for rows a..b-1 in pieces of ``piece`` rows."""
        self._fn = fn
        self._pieces = [(a, min(n_rows, a + piece)) for a in range(0, n_rows, piece)]
        self._out: list = [None] * len(self._pieces)
        self._next, self._left = 0, len(self._pieces)
        if not self._pieces:
            self._finished.set()
        self._published.set()

    def abort(self, error: BaseException) -> None:
        """End the job with ``error`` (a failed search or piece): no thread waits for pieces
        any more, and ``results`` re-raises it."""
        with self._lock:
            self._error = error
        self._finished.set()
        self._published.set()

    def work(self) -> None:
        """Wait until the job is published, then run pieces until none is left."""
        self._published.wait()
        try:  # anything raised here (an interrupt too) may have left a piece taken but undone
            while True:
                with self._lock:
                    if self._error is not None or self._next >= len(self._pieces):
                        return
                    k, self._next = self._next, self._next + 1
                out = self._fn(*self._pieces[k])
                with self._lock:
                    self._out[k] = out
                    self._left -= 1
                    if self._left == 0:
                        self._finished.set()
        except BaseException as e:
            self.abort(e)
            raise

    def results(self) -> list:
        """Every piece's result, in row order, once all are done (re-raises a failure)."""
        self._finished.wait()
        if self._error is not None:
            raise self._error
        return self._out


class EStepStream:
    """The E-steps of an epoch's ``chunks`` (index tensors), taken in order with ``take(i)``
inside a ``with`` block, in which all of torch's arithmetic runs at one intra-op thread
(``one_thread_math``: the caller's M-steps too).

    An E-step is ``search(idx)`` (all its generator draws and decoder passes, on the snapshot
    parameters), then ``select(found, a, b)`` for its rows a..b-1 (row by row: a tuple of
    tensors, concatenated over pieces of SELECT_ROWS rows). ``refresh()`` copies the current
    parameters into the snapshot; ``prepare(idx, new)`` is work on the E-step's result that
    does not depend on the parameters (the M-step's plan).

    In line, ``take(i)`` runs chunk i's E-step, then refreshes. With ``overlap`` chunk i+1's
    search is started in the worker thread right after the
    refresh at ``take(i)``, so it runs while the caller does chunk i's M-step; both orders give
    the same numbers. Whichever thread is free shares the rest, which changes no number either:
    the selection's pieces are taken by the caller too once its M-step is done, and the worker
    also runs ``prepare`` unless it was the slower of the two streams on the previous chunk
    (then ``take`` returns None for it and the caller prepares).
    """

    def __init__(self, chunks, search, select, prepare, refresh, overlap: bool):
        self.chunks, self.search, self.select = chunks, search, select
        self.prepare, self.refresh, self.overlap = prepare, refresh, overlap
        self._pool = None

    def __enter__(self) -> EStepStream:
        self._one_thread = one_thread_math()
        self._one_thread.__enter__()
        if self.overlap:
            self._pool = ThreadPoolExecutor(1)
            self._share = _SharedRows()
            self._pending = self._pool.submit(self._estep, 0, self._share, True)
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self._pool is not None:
                self._pool.shutdown()
                self._pool = None
        finally:
            self._one_thread.__exit__(None, None, None)

    def take(self, i: int) -> tuple[list, object]:
        """Chunk i's E-step: the selection's tensors and the prepared work (or None)."""
        if self._pool is None:
            out = self._estep(i, _SharedRows(), False)
            self.refresh()
            return out
        worker_first = self._pending.done()
        self._share.work()  # help with the selection of chunk i
        out = self._pending.result()
        if i + 1 < len(self.chunks):
            self.refresh()
            self._share = _SharedRows()
            self._pending = self._pool.submit(self._estep, i + 1, self._share, worker_first)
        return out

    @torch.no_grad()  # grad mode is per thread: the worker's too
    def _estep(self, i: int, share: _SharedRows, prepare_too: bool) -> tuple[list, object]:
        idx = self.chunks[i]
        try:
            found = self.search(idx)
        except BaseException as e:
            share.abort(e)
            raise
        share.publish(torch.no_grad()(lambda a, b: self.select(found, a, b)), len(idx),
                      SELECT_ROWS)
        share.work()
        new = [torch.cat(parts) for parts in zip(*share.results())]
        return new, (self.prepare(idx, new) if prepare_too else None)


def map_chunks(fn, chunks, workers: int) -> list:
    """``fn(idx)`` for ``chunks`` in order, at one intra-op thread each; chunks are spread over
    ``workers`` threads (results do not depend on it)."""
    with torch.no_grad(), one_thread_math():
        if workers < 2 or len(chunks) < 2:
            return [fn(idx) for idx in chunks]
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(torch.no_grad()(fn), chunks))
