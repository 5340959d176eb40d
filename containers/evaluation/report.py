"""`evaluation.json`: the metrics in SageMaker's model-quality shape (`{"metrics": {name: {"value": v}}}`,
which the Model Registry shows and the pipeline's quality gate reads with JsonGet at `metrics.mAP.value`),
the per-class figures, the counts behind them, and warnings a person should read before trusting them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from .coco import HEADLINE, STATS, Metrics
from .model import Detections
from .validation import RECORD_PATTERN, GroundTruth

DIGITS = 6
METRIC_ORDER = (*HEADLINE, *(name for name in STATS if name not in HEADLINE))


def unknown_labels(truths: Sequence[GroundTruth], found: Sequence[Detections], classes: Mapping[int, str]) -> tuple[Counter, Counter]:
    """Ground-truth and detected class ids that the label map lacks: COCO leaves them out, silently."""
    truth = Counter(label for image in truths for label in image.labels if label not in classes)
    detected = Counter(int(label) for detections in found for label in detections.classes if int(label) not in classes)
    return truth, detected


def evaluation_warnings(
    *,
    validation: str,
    files: int,
    metrics: Metrics,
    images: int,
    detections: int,
    unknown_truth: Mapping[int, int],
    unknown_detections: Mapping[int, int],
) -> list[str]:
    """What makes the figures less than they seem, most serious first: nothing to measure, classes that
    cannot be measured, boxes that were left out."""
    boxes = sum(result.ground_truth_boxes for result in metrics.per_class.values())
    warnings = []
    if files == 0:
        warnings.append(f"no validation records: {validation} holds no {RECORD_PATTERN} files; mAP is reported as 0")
    elif images == 0:
        warnings.append(f"the validation records ({files} file(s) in {validation}) hold no images; mAP is reported as 0")
    elif boxes == 0:
        warnings.append(f"the {images} validation image(s) hold no ground-truth boxes: mAP is undefined and reported as 0")
    elif detections == 0:
        warnings.append(f"the model detected nothing in {images} validation image(s): mAP is 0")
    if images and boxes:
        for name, result in metrics.per_class.items():
            if result.ground_truth_boxes == 0:
                outcome = "its AP is null and left out of mAP" if result.ap is None else "its figures are 0"
                warnings.append(f"validation holds no box of class {name!r}: it cannot be measured, {outcome}")
    if unknown_truth:
        warnings.append(
            f"{sum(unknown_truth.values())} ground-truth box(es) have label ids not in the label map ({_ids(unknown_truth)}): not evaluated"
        )
    if unknown_detections:
        warnings.append(
            f"{sum(unknown_detections.values())} detection(s) have class ids not in the label map ({_ids(unknown_detections)}): not evaluated"
        )
    return warnings


def evaluation_report(
    metrics: Metrics,
    *,
    images: int,
    detections: int,
    warnings: Sequence[str],
    model: Mapping,
    validation: Mapping,
    settings: Mapping,
    pictures: Mapping[str, str],
) -> dict:
    """The whole `evaluation.json`. `metrics.mAP.value` is always a number: the quality gate compares it."""
    values = {name: {"value": _round(metrics.overall[name])} for name in METRIC_ORDER}
    if not isinstance(values["mAP"]["value"], float):
        values["mAP"]["value"] = 0.0
    per_class = {}
    for name, result in metrics.per_class.items():
        values[f"AP/{name}"] = {"value": _round(result.ap)}
        values[f"AP_50/{name}"] = {"value": _round(result.ap_50)}
        values[f"recall/{name}"] = {"value": _round(result.recall)}
        per_class[name] = {
            "AP": _round(result.ap),
            "AP_50": _round(result.ap_50),
            "recall": _round(result.recall),
            "ground_truth_boxes": result.ground_truth_boxes,
        }
    return {
        "metrics": values,
        "per_class": per_class,
        "images": images,
        "ground_truth_boxes": sum(result.ground_truth_boxes for result in metrics.per_class.values()),
        "detections": detections,
        "warnings": list(warnings),
        "model": dict(model),
        "validation": dict(validation),
        "settings": dict(settings),
        "pictures": dict(pictures),
        "coco_summary": list(metrics.summary),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), DIGITS)


def _ids(counts: Mapping[int, int]) -> str:
    return ", ".join(f"{label}: {count}" for label, count in sorted(counts.items()))
