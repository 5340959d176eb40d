"""The package's drift baselines, written beside evaluation.json and registered as its DriftCheckBaselines
(containers/monitoring/statistics.py computes and documents every statistic):
- data-baseline.json: the input statistics PrepareData measured on every photo it wrote, one document per
  instance in its `statistics/` output, merged;
- model-baseline.json: the output statistics of the challenger's answers on the validation photos, cut as the
  endpoint cuts them (its score threshold and maximum), so that they compare with what the endpoint answers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from containers.inference.inference import Options as Serving
from containers.inference.inference import detections_of
from containers.monitoring import statistics

from .errors import EvaluationError
from .model import Detections
from .validation import GroundTruth


@dataclass(frozen=True)
class DataBaseline:
    """The merged input statistics (None when there are none to merge), the files read, and why there is none."""

    document: dict | None
    files: tuple[str, ...] = ()
    reason: str = ""


def data_baseline(folder: Path | None) -> DataBaseline:
    """The merge of the statistics documents under `folder` (PrepareData's `statistics/`). No folder, or one
    holding no document (a PrepareData output from before the statistics, reused from the local step cache),
    gives no baseline and says why; a document that cannot be read raises EvaluationError naming its file."""
    if folder is None:
        return DataBaseline(None, reason="no --statistics folder was given")
    paths = sorted(folder.rglob("*.json"), key=lambda path: path.relative_to(folder).as_posix()) if folder.is_dir() else []
    if not paths:
        return DataBaseline(
            None,
            reason=f"{folder} holds no statistics documents (a PrepareData output from before them, reused from the step cache: "
            "pipeline.caching: false prepares the data again)",
        )
    documents = []
    for path in paths:
        try:
            document = statistics.check(json.loads(path.read_text(encoding="utf-8")), str(path))
        except (OSError, UnicodeDecodeError) as exc:
            raise EvaluationError(f"{path}: the statistics document cannot be read ({exc})") from None
        except ValueError as exc:  # StatisticsError, or not JSON
            raise EvaluationError(str(exc) if isinstance(exc, statistics.StatisticsError) else f"{path}: not JSON ({exc})") from None
        if document["kind"] != "input":
            raise EvaluationError(f"{path}: kind must be input (PrepareData's photo statistics), found {document['kind']!r}")
        documents.append(document)
    return DataBaseline(statistics.merge(documents), tuple(path.relative_to(folder).as_posix() for path in paths))


def endpoint_detections(found: Detections, width: int, height: int, serving: Serving, classes: Mapping[int, str]) -> list[dict]:
    """One image's detections as the endpoint answers them: the model's outputs through the handler's own
    `detections_of` (containers/inference/inference.py), which cuts at the score threshold and maximum and
    turns the normalised boxes into pixels of the `width` x `height` photo."""
    prediction = {
        "detection_scores": found.scores,
        "detection_boxes": found.boxes,
        "detection_classes": found.classes,
        "num_detections": len(found),
    }
    return detections_of(prediction, width, height, serving, classes)


def model_baseline(truths: Sequence[GroundTruth], found: Sequence[Detections], serving: Serving, classes: Mapping[int, str]) -> dict:
    """The output statistics of the model's answers on the validation photos, under the endpoint's settings,
    with an area statistic for every class of the label map (a class it never found counts as 0)."""
    rows = []
    for truth, detections in zip(truths, found, strict=True):
        answer = endpoint_detections(detections, truth.width, truth.height, serving, classes)
        rows.append(statistics.output_statistics(answer, truth.width, truth.height))
    return statistics.summarize(rows, "output", classes=list(classes.values()))
