"""The accuracy in service: the served package's COCO mAP on photos the endpoint answered that came back labelled.

A review batch (pipelines/review.py) names each photo it sends out after the captured photo's hash
(captures.captured_digits), and the copy a person labels is that photo turned upright by its EXIF orientation, with
no metadata (review.private_copy). The endpoint turns a photo upright the same way before the model sees it
(containers/inference/inference.py, prepare_image) and answers in pixels of that view. So the labels' boxes and the
captured answer's boxes are in the same pixels: the answer is scored as it was given, with no new inference. A
labelling made for another size (the photo as stored, when its EXIF turns it) is refused by PrepareData's own rule
(labelling.resolve), with the reason.

Labels are read as PrepareData reads them: every file of the folder, in any format it reads
(containers/processing/formats), one labelling per photo by its merge rule (ledger.choose: the newest usable one).
Only photos named after a captured photo are scored; the other records of the folder (the training data's labels)
are counted, not scored. A photo answered more than once counts once, with its newest answer. The figures are
Evaluate's (containers/evaluation/coco.py compute_metrics): mAP@[.5:.95] and mAP@.5, over the classes that have a
labelled box.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import numpy as np

from containers.common.pictures import pixel_box
from containers.evaluation.coco import compute_metrics
from containers.evaluation.model import Detections
from containers.evaluation.validation import GroundTruth
from containers.monitoring.captures import captured_digits
from containers.processing import formats
from containers.processing.formats import Context, Refusal
from containers.processing.images import ImageProblem, Stamp
from containers.processing.labelling import Classes, InputError, LabelMap, Record, Source
from containers.processing.ledger import Ledger, choose, where

ANY_S3 = "s3://"  # the images prefix labels are read under: photos are matched by name, wherever they were staged


class LabelsError(Exception):
    """A labels input that cannot be read as a whole; the message names the file."""


@dataclass(frozen=True)
class Answer:
    """The newest captured answer to one photo: where it is, when, its detections, the size the answer is for,
    and the photo's own size upright."""

    capture: str
    time: datetime | None
    order: int  # its position among the records read: the later of two answers at the same time wins
    detections: tuple[dict, ...]
    size: tuple[int, int]
    upright: tuple[int, int]

    def newer_than(self, other: Answer) -> bool:
        """A time that cannot be read counts as older than any other."""
        return _newness(self) > _newness(other)


def _newness(answer: Answer) -> tuple[float, int]:
    return (answer.time.timestamp() if answer.time else float("-inf"), answer.order)


@dataclass
class Labels:
    """What a labels folder holds for the monitor: the labellings of each review photo (by the captured digits its
    name holds, with their position for the merge rule), the records refused, and how many name other photos."""

    folder: str
    inputs: list[str]
    labelled: dict[str, list[tuple[Record, int]]] = field(default_factory=dict)
    refused: list[dict] = field(default_factory=list)
    others: int = 0


def read_labels(folder: Path, label_attribute: str | None = None) -> Labels:
    """Every labels file under `folder`, read by PrepareData's readers. Raises LabelsError for an input that
    cannot be read at all (its format cannot be told, it is not well-formed), naming it."""
    folder = Path(folder)
    if not any(path.is_file() and not path.name.startswith(".") for path in folder.rglob("*")):
        return Labels(str(folder), [])  # nothing labelled yet: not an error
    try:
        sources = formats.inputs([folder])
    except InputError as exc:
        raise LabelsError(str(exc)) from None
    labels = Labels(str(folder), [str(source.path) for source in sources])
    context = Context(ANY_S3, label_attribute=label_attribute)
    order = 0
    for source in sources:
        try:
            for item in formats.read(source, context):
                order += 1
                if isinstance(item, Refusal):
                    if captured_digits(item.source_ref or ""):
                        labels.refused.append({"record": str(item.source), "reason": item.reason})
                    else:
                        labels.others += 1
                    continue
                digits = captured_digits(item.key)
                if digits is None:
                    labels.others += 1
                    continue
                labels.labelled.setdefault(digits, []).append((replace(item, key=digits), order))
        except InputError as exc:
            raise LabelsError(str(exc)) from None
    return labels


def service_quality(labels: Labels, answers: Mapping[str, Answer], model_classes: Sequence[str], package: str | None) -> dict | None:
    """monitor.json's `quality`: Evaluate's mAP of the captured answers against the labels of the photos they
    answered, or None when no labelled photo has an answer. `model_classes`: the served model's classes (its
    model baseline's), so that a labelled class it does not know is dropped as PrepareData drops it; without
    them every labelled class counts."""
    matched = {digits: answers[digits] for digits in sorted(labels.labelled) if digits in answers}
    if not matched:
        return None
    answered = sorted({str(d.get("class", "")) for answer in matched.values() for d in answer.detections})
    configured = [*model_classes, *(name for name in answered if name not in model_classes)] if model_classes else None
    classes = Classes(configured, {} if configured else {name: name for name in answered})
    label_map = LabelMap(configured)
    stamps: dict[str, Stamp | ImageProblem] = {}
    for digits, answer in matched.items():
        if answer.size != answer.upright:
            stamps[digits] = ImageProblem(
                f"the answer ({answer.capture}) is for a {answer.size[0]}x{answer.size[1]} image but the photo is "
                f"{answer.upright[0]}x{answer.upright[1]} upright: its boxes would not fit the labels"
            )
        else:  # the review copy: the photo upright, so no EXIF orientation of its own
            stamps[digits] = Stamp(digits, 0, 0, answer.upright[0], answer.upright[1], 1)
    ledger = Ledger(list(labels.inputs))
    chosen = choose([version for digits in matched for version in labels.labelled[digits]], stamps, ledger, ANY_S3, classes, label_map)
    truths, found, dropped = [], [], Counter()
    for image, _ in chosen:
        answer = matched[image.key]
        width, height = image.width, image.height
        boxes = tuple((box.xmin / width, box.ymin / height, box.xmax / width, box.ymax / height) for box in image.boxes)
        truths.append(GroundTruth(image.key, width, height, boxes, tuple(box.label for box in image.boxes)))
        found.append(_detections(answer, label_map, image.source))
        dropped.update(image.dropped)
    names = {label: name for label, name in label_map.items()}
    metrics = compute_metrics(truths, found, names) if truths else None
    boxes = sum(len(truth.boxes) for truth in truths)
    return {
        "images": len(truths),
        "boxes": boxes,
        # With no labelled box mAP is undefined: Evaluate reports 0 for its gate, the monitor reports nothing.
        "map": metrics.overall["mAP"] if metrics and boxes else None,
        "map50": metrics.overall["mAP_50"] if metrics and boxes else None,
        "labels": labels.folder,
        "unmatched": len(labels.labelled) - len(matched),
        "package": package,
        "refused": [*labels.refused, *({"record": where(entry), "reason": entry["reason"]} for entry in ledger.quarantined)],
        "dropped": dict(sorted(dropped.items())),  # labelled boxes of classes the model does not have, by class
    }


def describe(service: Mapping | None) -> str:
    """monitor.json's `quality` in words, for the log and the report."""
    if not service:
        return "no labelled photo has an answer in the window"
    if service["map"] is None:
        figure = "no figure (no labelled box)" if service["images"] else "no figure (no labelling could be used)"
    else:
        figure = f"mAP {service['map']:.4f}, mAP@0.5 {service['map50']:.4f}"
    return (
        f"{figure} on {service['images']} labelled photo(s) with {service['boxes']} box(es), as the endpoint answered them; "
        f"{service['unmatched']} labelled photo(s) without an answer in the window; {len(service['refused'])} labelling(s) refused"
    )


def _detections(answer: Answer, label_map: LabelMap, source: Source) -> Detections:
    """The captured answer as Evaluate's Detections: normalised (ymin, xmin, ymax, xmax), scores, label-map ids."""
    width, height = answer.size
    rows = [(pixel_box(d, width, height), float(d.get("score", 0.0)), str(d.get("class", ""))) for d in answer.detections]
    boxes = [(ymin / height, xmin / width, ymax / height, xmax / width) for (xmin, ymin, xmax, ymax), _, _ in rows]
    return Detections(
        np.array(boxes, dtype=np.float64).reshape(-1, 4),
        np.array([score for _, score, _ in rows], dtype=np.float64),
        np.array([label_map.id_of(name, source) for _, _, name in rows], dtype=np.int64),
    )
