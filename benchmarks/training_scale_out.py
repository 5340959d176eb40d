#!/usr/bin/env python3
"""Training throughput of one worker and of two (MultiWorkerMirroredStrategy), on this machine's CPU.

    .venv/bin/python benchmarks/training_scale_out.py [--steps 12] [--batch-size 4] [--size 256] [--prepared DIR]

Trains EfficientDet-D0 from scratch on the bundled sample (prepared first unless --prepared is given) for the same
steps at the same global batch, first as one worker, then as two workers on 127.0.0.1 (algo-1 and algo-2, as the
local engine runs TrainingInstanceCount=2: SageMaker's resource config and the addresses it picks), and prints
steps and images per second of each (from the median step time after the first two steps: the first includes
tracing) and the ratio of two workers to one. Here both workers share this machine's cores, so the ratio shows
what the all-reduce between the workers costs, not a speed-up.

The speed-up is measured on AWS, where each worker is an instance of its own. Start two executions at the same
global batch, one that divides across every GPU (an ml.p3.16xlarge has 8 V100s, so 16 replicas on two):

    cardamage start --param TrainingInstanceCount=1 --param TrainingInstanceType=ml.p3.16xlarge --param BatchSize=64
    cardamage start --param TrainingInstanceCount=2 --param TrainingInstanceType=ml.p3.16xlarge --param BatchSize=64

and compare their Train jobs' `train:images_per_sec` and `train:step_time` metrics (METRIC_DEFINITIONS in
containers/training/metrics.py, which SageMaker reads from the job's log into CloudWatch): on the training job's
page in the SageMaker console, or the last values with `aws sagemaker describe-training-job --training-job-name
NAME --query FinalMetricDataList`. TensorBoard's `steps_per_sec` (the job's TensorBoard output) has every step's.
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

from benchmarks.training_step_time import prepare_sample  # noqa: E402
from containers.inference.libraries import SERVING_WHEELS_ENV  # noqa: E402
from containers.training.distributed import ADDRESSES_ENV  # noqa: E402
from pipelines.local.jobs import free_ports, local_wheels  # noqa: E402

PROGRAM = ROOT / "containers" / "training" / "train.py"


def run_workers(prepared: Path, work: Path, workers: int, settings: list[str]) -> str:
    """The training program as `workers` processes at once; returns the chief's log."""
    hosts = [f"algo-{i + 1}" for i in range(workers)]
    addresses = json.dumps({host: f"127.0.0.1:{port}" for host, port in zip(hosts, free_ports(workers), strict=True)})
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2", ADDRESSES_ENV: addresses, SERVING_WHEELS_ENV: str(local_wheels())}
    env.pop("TF_CONFIG", None)
    processes = []
    for host in hosts:
        own = work / f"{workers}-workers" / host
        own.mkdir(parents=True)
        (own / "resourceconfig.json").write_text(json.dumps({"current_host": host, "hosts": hosts}))
        command = [sys.executable, str(PROGRAM), "--train", str(prepared / "train"), "--validation", str(prepared / "validation")]
        command += ["--label-map", str(prepared / "label_map.pbtxt"), "--pretrained", str(own / "none"), "--model-dir", str(own / "model")]
        command += ["--checkpoints", str(own / "checkpoints"), "--tensorboard-dir", str(own / "tensorboard"), "--failure-file", str(own / "failure")]
        command += ["--resource-config", str(own / "resourceconfig.json"), *settings]
        processes.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT))
    logs = [process.communicate()[0] for process in processes]
    for host, process, log in zip(hosts, processes, logs, strict=True):
        if process.returncode != 0:
            raise SystemExit(f"{workers} worker(s): {host} failed:\n{log[-3000:]}")
    return logs[0]


def median_step_time(log: str) -> float:
    times = [float(t) for t in re.findall(r"^train step=\d+/\d+ .* step_time=([0-9.]+)s", log, re.M)]
    return statistics.median(times[2:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=4, help="the global batch (two workers take half each)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--prepared", type=Path, default=None, help="prepared data with 2 training files at least (default: the sample)")
    args = parser.parse_args()
    settings = [f"--set={name}={value}" for name, value in (("image_size", args.size), ("batch_size", args.batch_size), ("num_steps", args.steps))]
    settings += ["--set=log_every=1", f"--set=checkpoint_every={args.steps}", "--set=fine_tune=false"]
    with tempfile.TemporaryDirectory(prefix="scale-out-") as tmp:
        prepared = args.prepared or prepare_sample(Path(tmp))
        seconds = {workers: median_step_time(run_workers(prepared, Path(tmp), workers, settings)) for workers in (1, 2)}
    print(f"EfficientDet-D0 at {args.size}px, global batch {args.batch_size}, median of steps 3-{args.steps}, {os.cpu_count()} CPU core(s)")
    print(f"{'workers':>8} {'per replica':>12} {'s/step':>8} {'steps/s':>8} {'images/s':>9}")
    for workers, time in seconds.items():
        print(f"{workers:>8} {args.batch_size // workers:>12} {time:8.3f} {1 / time:8.3f} {args.batch_size / time:9.2f}")
    print(f"two workers / one: {seconds[1] / seconds[2]:.2f} x the steps per second (both share this machine's cores)")


if __name__ == "__main__":
    main()
