"""The benchmarks' one way to time a piece of work: the best of several runs, so that a run slowed by the rest
of the machine does not count."""

from __future__ import annotations

import time
from collections.abc import Callable


def best(repeats: int, run: Callable[[], object]) -> float:
    """The shortest of `repeats` runs of `run`, in seconds."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)
