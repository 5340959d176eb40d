"""COCO box metrics with pycocotools, in memory: the ground truth and detections as COCO dictionaries, the
evaluation, and the numbers the report keeps.

COCO conventions, kept here so the metrics mean what COCO's mean: image ids from 1 (in record order),
boxes in pixels as [x, y, width, height], `area` = width x height (which decides small/medium/large),
category ids = label-map ids. COCO reports -1 where a figure is undefined (no ground-truth object of that
size or class); those become None, except for the headline figures, which the quality gate compares with
a threshold and which therefore are always numbers.
"""

from __future__ import annotations

import contextlib
import copy
import io
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .bootstrap import ImageTable
from .model import Detections
from .validation import GroundTruth

# COCOeval.stats positions (bbox): AP@[.5:.95], AP@.5, AP@.75, AP small/medium/large, AR@1, AR@10, AR@100, ...
STATS = {"mAP": 0, "mAP_50": 1, "mAP_75": 2, "mAP_small": 3, "mAP_medium": 4, "mAP_large": 5, "recall": 8}
HEADLINE = ("mAP", "mAP_50", "mAP_75", "recall")
MAX_DETECTIONS = 100


@dataclass(frozen=True)
class ClassResult:
    """One class's figures (None: the validation set holds no box of the class) and its ground-truth boxes."""

    ap: float | None
    ap_50: float | None
    recall: float | None
    ground_truth_boxes: int


@dataclass(frozen=True)
class Curve:
    """A class's interpolated precision at COCO's 101 recall points, IoU 0.5, all areas, 100 detections."""

    label: int
    name: str
    recall: np.ndarray
    precision: np.ndarray
    ap_50: float


@dataclass(frozen=True)
class Metrics:
    overall: dict[str, float | None]
    per_class: dict[str, ClassResult]
    curves: list[Curve] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)  # COCOeval.summarize()'s lines
    # COCOeval's per-image results, which the bootstrap intervals resample (None: not measured per image).
    table: ImageTable | None = field(default=None, compare=False, repr=False)


def coco_ground_truth(images: Sequence[GroundTruth], classes: Mapping[int, str]) -> dict:
    """The ground truth as a COCO dataset dictionary: image `i` of `images` has id i + 1."""
    annotations = []
    for image_id, image in enumerate(images, start=1):
        for (xmin, ymin, xmax, ymax), label in zip(image.boxes, image.labels, strict=True):
            x, y = xmin * image.width, ymin * image.height
            w, h = (xmax - xmin) * image.width, (ymax - ymin) * image.height
            annotations.append(
                {"id": len(annotations) + 1, "image_id": image_id, "category_id": int(label), "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0}
            )
    return {
        "info": {"description": "validation set"},
        "images": [{"id": i, "file_name": image.key, "width": image.width, "height": image.height} for i, image in enumerate(images, start=1)],
        "annotations": annotations,
        "categories": [{"id": label, "name": name} for label, name in sorted(classes.items())],
    }


def coco_detections(images: Sequence[GroundTruth], detections: Sequence[Detections]) -> list[dict]:
    """The detections as a COCO results list (pixels [x, y, w, h]); `detections[i]` belongs to `images[i]`.
    The model's boxes are (ymin, xmin, ymax, xmax), normalised."""
    results = []
    for image_id, (image, found) in enumerate(zip(images, detections, strict=True), start=1):
        for (ymin, xmin, ymax, xmax), score, label in zip(found.boxes, found.scores, found.classes, strict=True):
            if score <= 0:
                continue
            x, y = float(xmin) * image.width, float(ymin) * image.height
            w, h = float(xmax - xmin) * image.width, float(ymax - ymin) * image.height
            results.append({"image_id": image_id, "category_id": int(label), "bbox": [x, y, w, h], "score": float(score)})
    return results


def ground_truth_counts(images: Sequence[GroundTruth], classes: Mapping[int, str]) -> dict[int, int]:
    """Ground-truth boxes per label-map id (every id of `classes`, 0 when absent)."""
    counts = Counter(label for image in images for label in image.labels)
    return {label: counts[label] for label in sorted(classes)}


def run_cocoeval(ground_truth: dict, detections: list[dict]):
    """Evaluate detections against the ground truth (COCO bbox); returns the finished `COCOeval` and the
    lines its summary printed. pycocotools prints progress to stdout: that is captured here, so that the
    caller logs the summary once instead."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO()
        truth.dataset = copy.deepcopy(ground_truth)
        truth.createIndex()
        if detections:
            results = truth.loadRes(copy.deepcopy(detections))  # loadRes adds fields to the dicts it is given
        else:  # loadRes cannot take an empty list
            results = COCO()
            results.dataset = {"images": list(truth.dataset["images"]), "categories": list(truth.dataset["categories"]), "annotations": []}
            results.createIndex()
        evaluation = COCOeval(truth, results, iouType="bbox")
        evaluation.evaluate()
        evaluation.accumulate()
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        evaluation.summarize()
    return evaluation, [line for line in printed.getvalue().splitlines() if line.strip()]


def metrics_from_cocoeval(
    evaluation, classes: Mapping[int, str], counts: Mapping[int, int], summary: Sequence[str] = (), table: ImageTable | None = None
) -> Metrics:
    """The report's figures from a finished `COCOeval`: its summary statistics, and per class the AP
    (IoU .5:.95), AP at IoU .5 and recall (IoU .5:.95) over all areas with 100 detections per image."""
    overall: dict[str, float | None] = {}
    for name, position in STATS.items():
        value = _defined(float(evaluation.stats[position]))
        overall[name] = 0.0 if value is None and name in HEADLINE else value
    params = evaluation.params
    precision, recall = evaluation.eval["precision"], evaluation.eval["recall"]  # [T, R, K, A, M] and [T, K, A, M]
    iou_50 = int(np.argmin(np.abs(np.asarray(params.iouThrs) - 0.5)))
    area_all = list(params.areaRngLbl).index("all")
    max_dets = list(params.maxDets).index(MAX_DETECTIONS)
    category_ids = list(params.catIds)
    per_class, curves = {}, []
    for label, name in classes.items():
        if label not in category_ids:
            per_class[name] = ClassResult(None, None, None, counts.get(label, 0))
            continue
        k = category_ids.index(label)
        class_precision = precision[:, :, k, area_all, max_dets]
        ap_50 = _mean_defined(class_precision[iou_50])
        per_class[name] = ClassResult(_mean_defined(class_precision), ap_50, _mean_defined(recall[:, k, area_all, max_dets]), counts.get(label, 0))
        if ap_50 is not None:
            curves.append(Curve(label, name, np.asarray(params.recThrs, dtype=np.float64), class_precision[iou_50].astype(np.float64), ap_50))
    return Metrics(overall, per_class, curves, list(summary), table)


def zero_metrics(classes: Mapping[int, str], counts: Mapping[int, int], table: ImageTable | None = None) -> Metrics:
    """The result when there is nothing to measure (no images, no ground-truth boxes or no detections):
    every figure 0, so that the quality gate reads a number and fails the model."""
    overall: dict[str, float | None] = dict.fromkeys(STATS, 0.0)
    per_class = {name: ClassResult(0.0, 0.0, 0.0, counts.get(label, 0)) for label, name in classes.items()}
    return Metrics(overall, per_class, table=table)


def compute_metrics(images: Sequence[GroundTruth], detections: Sequence[Detections], classes: Mapping[int, str]) -> Metrics:
    """COCO metrics of `detections` on `images`, or `zero_metrics` when nothing can be measured; with the
    per-image table the bootstrap resamples."""
    counts = ground_truth_counts(images, classes)
    results = coco_detections(images, detections)
    if not images or not sum(counts.values()):
        return zero_metrics(classes, counts, ImageTable.empty(classes, len(images)))
    ground_truth = coco_ground_truth(images, classes)
    if not results:  # every class with boxes has AP 0 in every resample that draws one: COCOeval says so per image
        evaluation, _ = run_cocoeval(ground_truth, results)
        return zero_metrics(classes, counts, ImageTable.from_cocoeval(evaluation, classes))
    evaluation, summary = run_cocoeval(ground_truth, results)
    return metrics_from_cocoeval(evaluation, classes, counts, summary, ImageTable.from_cocoeval(evaluation, classes))


def _defined(value: float) -> float | None:
    return None if value < 0 else value


def _mean_defined(values: np.ndarray) -> float | None:
    defined = values[values > -1]
    return float(np.mean(defined)) if defined.size else None
