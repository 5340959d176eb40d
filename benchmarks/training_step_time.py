#!/usr/bin/env python3
"""Training step time of EfficientDet-D0 through the training program, on this machine's CPU or GPUs.

    .venv/bin/python benchmarks/training_step_time.py [--sizes 256 512] [--batch-size 2] [--steps 12]
        [--precision float32 mixed] [--prepared DIR]

Trains from scratch on the bundled sample (prepared first unless --prepared is given) for --steps steps
at each input size and precision, and reports the median step time after the first two steps (the first
includes graph tracing) and the images per second it implies. Each configuration runs in a fresh process,
as a training job does. `mixed` on a CPU runs float16 in software: it is there to compare on GPUs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHILD = """
import json, sys
from pathlib import Path
from containers.training.hyperparameters import parse_hyperparameters
from containers.training.train import Paths, train, write_pipeline_config
prepared, work, size, batch, steps, precision = Path(sys.argv[1]), Path(sys.argv[2]), *sys.argv[3:]
hp = parse_hyperparameters({"image_size": size, "batch_size": batch, "num_steps": steps, "log_every": "1",
                            "checkpoint_every": "100000", "mixed_precision": "true" if precision == "mixed" else "false"})
paths = Paths(prepared / "train", prepared / "validation", prepared / "label_map.pbtxt", None, work / "model", work / "ckpt", work / "tb")
write_pipeline_config(hp, paths)
lines = []
train(hp, paths, log=lines.append)
print(json.dumps(lines))
"""


def prepare_sample(work: Path) -> Path:
    from containers.processing.prepare_data import Options, prepare

    output = work / "prepared"
    sample = ROOT / "data" / "sample"
    prepare(
        Options(
            manifests=sorted((sample / "manifests").glob("*.manifest")),
            images=sample / "images",
            images_prefix="s3://example-bucket/car-damage/",
            output=output,
            classes=["dent", "scratch"],
        )
    )
    return output


def measure(prepared: Path, size: int, batch: int, steps: int, precision: str) -> tuple[float, str]:
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    with tempfile.TemporaryDirectory(prefix="step-time-") as work:
        result = subprocess.run(
            [sys.executable, "-c", CHILD, str(prepared), work, str(size), str(batch), str(steps), precision],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            check=False,
        )
    if result.returncode != 0:
        raise SystemExit(f"{size}px {precision}: training failed:\n{result.stderr[-3000:]}")
    lines = json.loads(result.stdout.strip().splitlines()[-1])
    times = [float(t) for t in re.findall(r"step_time=([0-9.]+)s", "\n".join(lines))]
    return statistics.median(times[2:]), lines[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--precision", nargs="+", choices=["float32", "mixed"], default=["float32"])
    parser.add_argument("--prepared", type=Path, default=None, help="prepared data (default: prepare the bundled sample)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="step-time-data-") as tmp:
        prepared = args.prepared or prepare_sample(Path(tmp))
        print(f"EfficientDet-D0 training, batch {args.batch_size}, median of steps 3-{args.steps}")
        print(f"{'size':>6} {'precision':>10} {'s/step':>8} {'images/s':>9}  device")
        for size in args.sizes:
            for precision in args.precision:
                seconds, header = measure(prepared, size, args.batch_size, args.steps, precision)
                device = header.split(", ", 2)[-1] if header.startswith("train:") else header
                print(f"{size:>6} {precision:>10} {seconds:8.3f} {args.batch_size / seconds:9.2f}  {device}")


if __name__ == "__main__":
    main()
