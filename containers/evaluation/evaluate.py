#!/usr/bin/env python3
"""Evaluate: COCO box metrics of the exported detector on the validation records, and pictures of them.

Runs as the pipeline's Evaluate step (a SageMaker Processing job; paths default to SageMaker's
/opt/ml/processing/... layout) and, unchanged, on a laptop or in the local engine:

    python containers/evaluation/evaluate.py --model PATH --validation DIR --output DIR \\
        [--batch-size N] [--pictures N] [--picture-score-threshold F]

--model is a model.tar.gz, a folder holding one (a Processing input of the training job's artifact), or an
extracted model folder (`1/` SavedModel and `model.json`). --validation is a folder of OD API
TFRecords as PrepareData writes them. Writes OUTPUT/evaluation.json (the metrics in SageMaker's
model-quality shape; the quality gate reads metrics.mAP.value), OUTPUT/pr_curves.png and
OUTPUT/predictions.png. An empty validation set or a model that detects nothing gives mAP 0 with a
warning, exit status 0; exit status 1 with a one-line reason on stderr when an input is unusable.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

if __package__ in (None, ""):  # run as a script: make `containers` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from containers.common.arguments import fraction, non_negative, positive
from containers.evaluation.coco import MAX_DETECTIONS, Metrics, compute_metrics
from containers.evaluation.errors import EvaluationError
from containers.evaluation.model import SAVED_MODEL, Detections, Detector, locate_model, read_metadata
from containers.evaluation.pictures import Example, save_pr_curves_picture, save_predictions_picture
from containers.evaluation.report import evaluation_report, evaluation_warnings, unknown_labels
from containers.evaluation.validation import GroundTruth, Record, read_records, validation_files

PROCESSING = Path("/opt/ml/processing")
REPORT = "evaluation.json"
PR_CURVES = "pr_curves.png"
PREDICTIONS = "predictions.png"
T = TypeVar("T")
DetectFunction = Callable[[Sequence[bytes], Sequence[str]], list[Detections]]


@dataclass(frozen=True)
class Options:
    model: Path
    validation: Path
    output: Path
    batch_size: int = 8
    pictures: int = 6
    picture_score_threshold: float = 0.3
    progress: bool = False


@dataclass(frozen=True)
class Run:
    """What the model found on the validation set: per image its ground truth and detections (in record
    order), and the first images kept whole for the predictions picture."""

    truths: list[GroundTruth]
    detections: list[Detections]
    examples: list[Example]


def evaluate(options: Options, *, log: Callable[[str], None] = print) -> dict:
    """Evaluate the model on the validation set and write the report and pictures to `options.output`;
    returns the report. Raises `EvaluationError` when an input is unusable (nothing is written then)."""
    files = validation_files(options.validation)
    with tempfile.TemporaryDirectory(prefix="evaluate-") as work:
        model = locate_model(options.model, Path(work))
        classes, metadata = read_metadata(model.folder)
        detector = Detector(model.folder / SAVED_MODEL)
        log(f"evaluate: model {model.describe()} ({', '.join(classes.values())}); {len(files)} validation file(s) in {options.validation}")
        records = read_records(files, {name: label for label, name in classes.items()})
        run = run_detector(detector, _progress(records, "detecting", options.progress), options.batch_size, options.pictures)
    metrics = compute_metrics(run.truths, run.detections, classes)
    if metrics.summary:
        log("evaluate: COCO bbox evaluation:")
        for line in metrics.summary:
            log(f"  {line}")
    detections = sum(len(found) for found in run.detections)
    unknown_truth, unknown_detections = unknown_labels(run.truths, run.detections, classes)
    warnings = evaluation_warnings(
        validation=str(options.validation),
        files=len(files),
        metrics=metrics,
        images=len(run.truths),
        detections=detections,
        unknown_truth=unknown_truth,
        unknown_detections=unknown_detections,
    )
    options.output.mkdir(parents=True, exist_ok=True)
    save_pr_curves_picture(metrics.curves, options.output / PR_CURVES, note=_curves_note(metrics, warnings))
    save_predictions_picture(
        run.examples,
        classes,
        options.picture_score_threshold,
        options.output / PREDICTIONS,
        note=_predictions_note(options, run, detections, warnings),
    )
    report = evaluation_report(
        metrics,
        images=len(run.truths),
        detections=detections,
        warnings=warnings,
        model={
            "source": str(options.model),
            "packaging": model.packaging,
            "label_map": {str(k): v for k, v in classes.items()},
            "metadata": metadata,
        },
        validation={"path": str(options.validation), "files": [path.relative_to(options.validation).as_posix() for path in files]},
        settings=_settings(options),
        pictures={"pr_curves": PR_CURVES, "predictions": PREDICTIONS},
    )
    _write_json(options.output / REPORT, report)
    return report


def _settings(options: Options) -> dict:
    return {
        "iou_type": "bbox",
        "max_detections": MAX_DETECTIONS,
        "batch_size": options.batch_size,
        "pictures": options.pictures,
        "picture_score_threshold": options.picture_score_threshold,
    }


def run_detector(detect: DetectFunction, records: Iterable[Record], batch_size: int, pictures: int) -> Run:
    """Run `detect` on the records in batches of `batch_size` encoded images, keeping only the boxes (and
    the first `pictures` images, for the predictions picture), so that memory does not grow with images."""
    run = Run([], [], [])
    for batch in batched(records, batch_size):
        found = detect([record.encoded for record in batch], [record.truth.key for record in batch])
        for record, detections in zip(batch, found, strict=True):
            run.truths.append(record.truth)
            run.detections.append(detections)
            if len(run.examples) < pictures:
                run.examples.append(Example(record.truth, record.encoded, detections))
    return run


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of `size` items (the last one shorter)."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _curves_note(metrics: Metrics, warnings: Sequence[str]) -> str:
    if not metrics.curves:
        return warnings[0] if warnings else "no class has ground-truth boxes"
    missing = [name for name, result in metrics.per_class.items() if result.ap_50 is None]
    return f"no ground truth for {', '.join(missing)}" if missing else ""


def _predictions_note(options: Options, run: Run, detections: int, warnings: Sequence[str]) -> str:
    if options.pictures == 0:
        return "no pictures requested (--pictures 0)"
    if not run.examples:
        return warnings[0] if warnings else "no validation images"
    return "the model detected nothing" if detections == 0 else ""


def _write_json(path: Path, data: dict) -> None:
    """Write atomically: the pipeline reads this file as a PropertyFile, so it is whole or absent."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    partial.replace(path)


def _progress(items: Iterable[T], description: str, enabled: bool) -> Iterable[T]:
    """A progress bar (images done, rate) on a terminal; nothing in a job's log."""
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=description, unit="img", file=sys.stderr, leave=False)


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="evaluate.py", description="COCO box metrics and pictures of an exported detector on the validation TFRecords."
    )
    parser.add_argument(
        "--model",
        type=Path,
        default=PROCESSING / "input" / "model",
        help="model.tar.gz, a folder holding it, or a model folder with 1/ and model.json (default: %(default)s)",
    )
    parser.add_argument(
        "--validation", type=Path, default=PROCESSING / "input" / "validation", help="folder of validation *.tfrecord files (default: %(default)s)"
    )
    parser.add_argument("--output", type=Path, default=PROCESSING / "evaluation", help="output folder (default: %(default)s)")
    parser.add_argument("--batch-size", type=positive, default=8, help="images per model call (default: %(default)s)")
    parser.add_argument("--pictures", type=non_negative, default=6, help="validation images in predictions.png (default: %(default)s)")
    parser.add_argument(
        "--picture-score-threshold", type=fraction(), default=0.3, help="lowest score drawn in predictions.png, in [0, 1] (default: %(default)s)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    args = parser.parse_args(argv)
    return Options(
        model=args.model,
        validation=args.validation,
        output=args.output,
        batch_size=args.batch_size,
        pictures=args.pictures,
        picture_score_threshold=args.picture_score_threshold,
        progress=sys.stderr.isatty() and not args.no_progress,
    )


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    try:
        report = evaluate(options)
    except EvaluationError as exc:
        print(f"evaluate: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"evaluate: error: {exc.filename or options.output}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("evaluate: interrupted", file=sys.stderr)
        return 130
    _print_summary(options, report)
    return 0


def _print_summary(options: Options, report: dict) -> None:
    metrics = report["metrics"]
    per_class = ", ".join(f"{name} {_figure(figures['AP'])} ({figures['ground_truth_boxes']} boxes)" for name, figures in report["per_class"].items())
    print(
        f"evaluate: {report['images']} images, {report['ground_truth_boxes']} ground-truth boxes, {report['detections']} detections: "
        f"mAP {_figure(metrics['mAP']['value'])}, mAP@0.5 {_figure(metrics['mAP_50']['value'])}, "
        f"recall {_figure(metrics['recall']['value'])}; AP per class: {per_class}"
    )
    for warning in report["warnings"]:
        print(f"evaluate: warning: {warning}", file=sys.stderr)
    print(f"evaluate: outputs in {options.output} ({REPORT}, {PR_CURVES}, {PREDICTIONS})")


def _figure(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    sys.exit(main())
