"""Running the per-image work on every core.

Worker processes rather than threads: decoding releases the GIL, but parsing headers, building Examples
and the rest are Python, and threads serialise on it. On two cores, two threads took 0.76 ms per image
and two processes 0.45 ms (benchmarks/prepare_data_throughput.py, marginal cost per image; measured before
the photo statistics, which add about 2.8 ms of one core per image, shards.py). Workers are
spawned, not forked, so they start clean whatever the parent has loaded; only file paths and small
records cross between processes, never image bytes.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from itertools import islice
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Workers:
    """A pool of `count` worker processes, or the calling process itself when `count` is 1."""

    def __init__(self, count: int):
        self.count = count
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> Workers:
        if self.count > 1:
            self._pool = ProcessPoolExecutor(max_workers=self.count, mp_context=multiprocessing.get_context("spawn"))
        return self

    def __exit__(self, *exc_info) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def map_batches(self, fn: Callable[[Sequence[T]], list[R]], items: Iterable[T], chunk: int = 32) -> Iterator[tuple[T, R]]:
        """(item, result) for every item in input order; `fn` takes a batch of items and returns their results.
        At most four batches per worker are in flight, so results never pile up faster than they are used."""
        iterator = iter(items)
        if self._pool is None:
            while batch := list(islice(iterator, chunk)):
                yield from zip(batch, fn(batch), strict=True)
            return
        pending: deque[tuple[list[T], Future]] = deque()
        while True:
            batch = list(islice(iterator, chunk))
            if batch:
                pending.append((batch, self._pool.submit(fn, batch)))
            if pending and (not batch or len(pending) >= 4 * self.count):
                done, future = pending.popleft()
                yield from zip(done, future.result(), strict=True)
            if not batch and not pending:
                return

    def run_each(self, fn: Callable[..., R], calls: Sequence[tuple]) -> Iterator[R]:
        """`fn(*args)` for each argument tuple, all running at once on the workers; results in call order."""
        if self._pool is None:
            for args in calls:
                yield fn(*args)
            return
        futures = [self._pool.submit(fn, *args) for args in calls]
        for future in futures:
            yield future.result()
