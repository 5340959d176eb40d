#!/usr/bin/env python3
"""What Evaluate's bootstrap intervals cost: 1000 resamples of the challenger and the champion (paired), on the
bundled sample's validation photos and on a few hundred synthetic ones, beside one COCOeval of the same set.

    .venv/bin/python benchmarks/evaluation_bootstrap.py [--images 300] [--resamples 1000] [--repeats 3]

The ground truth: the sample's validation records, as PrepareData writes them (the sample is prepared first),
and --images synthetic images with 0 to 3 boxes each. The detections: no model runs (the cost does not depend
on where the boxes come from), two stand-in detectors answer as EfficientDet does, 100 boxes per photo: most
of the true boxes found, slightly shifted, with scores from 0.3 to 0.95, and the rest low-scoring boxes
anywhere. Timed (best of --repeats): COCOeval once on each set (evaluate, accumulate, summarize: what a naive
bootstrap would run per resample), and Evaluate's intervals: drawing the resamples and both models' figures
on them (containers/evaluation/bootstrap.py), after the one COCOeval per model that Evaluate runs anyway.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402
from timing import best  # noqa: E402

CLASSES = {1: "dent", 2: "scratch"}
PER_IMAGE = 100  # EfficientDet's answers per photo


def sample_truths(work: Path) -> list:
    from training_step_time import prepare_sample  # this folder, beside this script

    from containers.evaluation.validation import read_records, validation_files

    prepared = prepare_sample(work)
    names = {name: label for label, name in CLASSES.items()}
    return [record.truth for record in read_records(validation_files(prepared / "validation"), names)]


def synthetic_truths(images: int, rng: np.random.Generator) -> list:
    from containers.evaluation.validation import GroundTruth

    truths = []
    for index in range(images):
        boxes, labels = [], []
        for _ in range(rng.integers(0, 4)):
            x, y = rng.uniform(0, 0.6, 2)
            w, h = rng.uniform(0.05, 0.4, 2)
            boxes.append((x, y, x + w, y + h))
            labels.append(int(rng.integers(1, 3)))
        truths.append(GroundTruth(f"synthetic-{index}.jpg", 640, 480, tuple(boxes), tuple(labels)))
    return truths


def stand_in(truths: list, rng: np.random.Generator, found: float) -> list:
    """A detector's answers: `found` of the true boxes, shifted a little, then low-scoring boxes up to 100."""
    from containers.evaluation.model import Detections

    answers = []
    for truth in truths:
        rows = []
        for (xmin, ymin, xmax, ymax), label in zip(truth.boxes, truth.labels, strict=True):
            if rng.random() < found:
                dx, dy = rng.normal(0, 0.02, 2)
                rows.append((label, rng.uniform(0.3, 0.95), (ymin + dy, xmin + dx, ymax + dy, xmax + dx)))
        while len(rows) < PER_IMAGE:
            x, y = rng.uniform(0, 0.8, 2)
            size = rng.uniform(0.05, 0.2)
            rows.append((int(rng.integers(1, 3)), rng.uniform(0.001, 0.3), (y, x, y + size, x + size)))
        answers.append(
            Detections(
                boxes=np.array([box for _, _, box in rows], dtype=np.float64),
                scores=np.array([score for _, score, _ in rows], dtype=np.float64),
                classes=np.array([label for label, _, _ in rows], dtype=np.int64),
            )
        )
    return answers


def measure(name: str, truths: list, args: argparse.Namespace, rng: np.random.Generator) -> None:
    from containers.evaluation.bootstrap import Settings, draw, percentile_interval
    from containers.evaluation.coco import compute_metrics

    challenger, champion = stand_in(truths, rng, 0.7), stand_in(truths, rng, 0.75)
    once = best(args.repeats, lambda: compute_metrics(truths, challenger, CLASSES))
    tables = compute_metrics(truths, challenger, CLASSES).table, compute_metrics(truths, champion, CLASSES).table
    settings = Settings(args.resamples)
    lead = []

    def intervals() -> None:
        counts = draw(len(truths), settings)
        figures = [table.figures(counts) for table in tables]
        lead[:] = [percentile_interval(figures[1]["mAP"] - figures[0]["mAP"])]

    took = best(args.repeats, intervals)
    low, high = lead[0]
    print(
        f"{name}: {len(truths)} images, {sum(len(t.boxes) for t in truths)} boxes, {PER_IMAGE} detections per image per model: "
        f"COCOeval once {once:.2f} s; {args.resamples} paired resamples of both models {took:.2f} s "
        f"({took / args.resamples * 1000:.1f} ms per resample; COCOeval per resample would take ~{2 * once * args.resamples:.0f} s); "
        f"lead interval [{low:.3f}, {high:.3f}]"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=300, help="synthetic images (default: %(default)s)")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each measurement; the best counts (default: %(default)s)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="bootstrap-bench-") as work:
        measure("the sample's validation set", sample_truths(Path(work)), args, rng)
    measure("synthetic", synthetic_truths(args.images, rng), args, rng)


if __name__ == "__main__":
    main()
