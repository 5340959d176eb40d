#!/usr/bin/env python3
"""What the step cache saves: the whole local pipeline on the bundled sample, run twice in a new state folder.

    .venv/bin/python benchmarks/local_pipeline_cache.py [--repeats 1] [--keep DIR]

The first run does every step; the second, with nothing changed, takes PrepareData and Train from the cache
(as SageMaker does), evaluates again (the first run's model is now served: the champion), registers and deploys. Prints both times,
per step, and the ratio. The test suite checks that the steps are cached (tests/pipelines/local/
test_local_pipeline.py); how much time that saves depends on the machine, so it is measured here.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run(state: Path) -> tuple[float, dict[str, float], set[str]]:
    """(seconds, seconds per step, steps taken from the cache) of one `cardamage run --local`."""
    from pipelines.local.state import State

    started = time.perf_counter()
    env = {**os.environ, "COLUMNS": "200"}
    command = [sys.executable, "-m", "pipelines.cli", "run", "--state-dir", str(state)]
    subprocess.run(command, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    newest = State(state).executions(1)[0]["id"]
    steps = State(state).steps(newest)
    per_step = {s["name"]: (s["ended"] or 0) - (s["started"] or 0) for s in steps if s["started"]}
    return seconds, per_step, {s["name"] for s in steps if s["cached_from"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=1, help="how many (first, second) pairs, each in a new state folder")
    parser.add_argument("--keep", type=Path, help="keep the state folders under this folder")
    options = parser.parse_args()
    base = options.keep or Path(tempfile.mkdtemp(prefix="cache-bench-"))
    print(f"local pipeline on the bundled sample, {os.cpu_count()} CPU(s); state under {base}")
    for repeat in range(options.repeats):
        state = base / f"state-{repeat}"
        first, first_steps, _ = run(state)
        second, second_steps, cached = run(state)
        print(f"run {repeat + 1}: first {first:.1f} s, second {second:.1f} s, ratio {second / first:.3f} (cached: {', '.join(sorted(cached))})")
        for name in first_steps:
            print(f"  {name:<22} {first_steps[name]:7.1f} s -> {second_steps.get(name, 0.0):7.1f} s")


if __name__ == "__main__":
    main()
