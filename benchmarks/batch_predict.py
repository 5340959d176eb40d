#!/usr/bin/env python3
"""Batch prediction here against the same photos sent one by one, and the handler's cost over the model.

    .venv/bin/python benchmarks/batch_predict.py [--size 512] [--copies 2] [--work DIR]

The model: EfficientDet-D0 trained one step from scratch on the bundled sample and exported as training
exports it (inference cost does not depend on training; benchmarks/inference_latency.py builds it). The
photos: the sample's JPEGs, --copies times. Three passes over the same photos, in one run:
- bare model: the SavedModel's serving signature on each photo's bytes, one at a time (no handler);
- one by one: each photo through the endpoint's handler (LocalEndpoint.invoke, what `cardamage predict
  --local` does per photo), one at a time;
- batch: `cardamage batch-predict --local`'s code (pipelines/batch.run_local) on every core, writing
  <name>.json and summary.csv.
Reported: photos per second of each, batch / one-by-one as a ratio, and the handler's overhead, (one by
one - bare) / bare, whose goal is 10% or less. On a GPU instance the model's share shrinks and the handler's
grows; the command for a SageMaker endpoint is `cardamage predict` against it, which this does not measure.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from inference_latency import SAMPLE, build_models  # noqa: E402

from containers.inference.local import SIGNATURE, LocalEndpoint  # noqa: E402
from pipelines import batch  # noqa: E402


def seconds(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="model input size (default: %(default)s, EfficientDet-D0's)")
    parser.add_argument("--copies", type=int, default=2, help="each sample photo this many times (default: %(default)s)")
    parser.add_argument("--work", type=Path, default=None, help="keep the model and outputs here (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="batch-bench-") as tmp:
        work = args.work or Path(tmp)
        model_dir, _ = build_models(work, args.size)
        photos = work / "photos"
        shutil.rmtree(photos, ignore_errors=True)
        photos.mkdir(parents=True)
        for copy in range(args.copies):
            for path in sorted((SAMPLE / "images").rglob("*.jpg")):
                shutil.copy2(path, photos / f"{copy}-{path.name}")
        files = sorted(photos.iterdir())
        bodies = [path.read_bytes() for path in files]
        endpoint = LocalEndpoint(model_dir)

        import tensorflow as tf

        signature = tf.saved_model.load(str(model_dir / "1")).signatures[SIGNATURE]

        def bare() -> None:
            for body in bodies:
                signature(input_tensor=tf.constant([body]))

        def one_by_one() -> None:
            for body in bodies:
                status, _, _ = endpoint.invoke(body, "image/jpeg")
                assert status == 200

        def in_batch() -> None:
            out = work / "answers"
            shutil.rmtree(out, ignore_errors=True)
            result = batch.run_local(endpoint.invoke, endpoint.classes, photos, out)
            assert not result.refused and len(result.outcomes) == len(files)

        for fn in (bare, one_by_one):  # warm-up: tracing, caches, thread pools
            fn()
        times = {
            "bare model, one at a time": seconds(bare),
            "handler, one by one": seconds(one_by_one),
            "batch-predict, every core": seconds(in_batch),
        }
        count = len(files)
        print(f"EfficientDet-D0 at {args.size}px, {count} photos (the sample's JPEGs x {args.copies}), {os.cpu_count()} CPU cores here")
        print(f"{'pass':28} {'seconds':>8} {'photos/s':>9}")
        for name, value in times.items():
            print(f"{name:28} {value:8.2f} {count / value:9.2f}")
        one, bulk, model = times["handler, one by one"], times["batch-predict, every core"], times["bare model, one at a time"]
        print(f"batch-predict / one by one: {one / bulk:.2f}x the throughput")
        print(f"handler overhead over the bare model call: {100 * (one - model) / model:+.1f}% (goal: 10% or less)")


if __name__ == "__main__":
    main()
