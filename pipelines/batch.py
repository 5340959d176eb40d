"""Batch prediction: many photos through the endpoint's handler, one answer file per photo and a summary.

Locally, `run_local` sends every file of a folder through the same handler the endpoint runs (LocalEndpoint),
on all cores; on AWS, a SageMaker Batch Transform job does it (pipelines/aws.py `transform_job_request`) and
`summarise_transform_output` reads its `<name>.out` answers. Both write the same `summary.csv`:

    image, error, boxes, boxes_<class>..., top_score, area_share_<class>...

one row per input file. `area_share_<class>` is the sum of that class's box areas over the image's area, a
first measure of how much of the photo is damaged (overlapping boxes count twice; it is not clipped at 1).
A file the handler refuses is a row with its `error` and the run goes on: inputs = answers + refusals.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

SUMMARY = "summary.csv"
ANSWER_SUFFIX = ".json"  # <file name>.json beside the photo's relative path: unique, as Batch Transform's <name>.out
PICTURE_SUFFIX = ".png"
IMAGE_CONTENT_TYPE = "application/x-image"  # the handler reads JPEG and PNG under it (Pillow tells them apart)


@dataclass(frozen=True)
class Outcome:
    """One input file: its answer (width, height, detections) or why there is none."""

    image: str  # the file's path relative to the input
    width: int | None = None
    height: int | None = None
    detections: tuple[dict, ...] | None = None
    error: str | None = None

    @classmethod
    def from_answer(cls, image: str, answer: Mapping) -> Outcome:
        """The handler's answer for one image (`{"predictions": [{"image": {...}, "detections": [...]}]}`)."""
        (prediction,) = answer["predictions"]
        size = prediction["image"]
        return cls(image, int(size["width"]), int(size["height"]), tuple(prediction["detections"]))

    def document(self) -> dict:
        """What `<name>.json` holds."""
        return {"image": self.image, "width": self.width, "height": self.height, "detections": list(self.detections or ())}


def input_files(folder: Path) -> list[tuple[str, Path]]:
    """Every file under `folder` (relative name, path), in name order: each one is either answered or refused."""
    return [(path.relative_to(folder).as_posix(), path) for path in sorted(folder.rglob("*")) if path.is_file()]


def columns(classes: Sequence[str]) -> list[str]:
    return ["image", "error", "boxes", *(f"boxes_{name}" for name in classes), "top_score", *(f"area_share_{name}" for name in classes)]


def summary_row(outcome: Outcome, classes: Sequence[str]) -> dict[str, object]:
    row: dict[str, object] = dict.fromkeys(columns(classes), "")
    row["image"] = outcome.image
    if outcome.error is not None:
        row["error"] = outcome.error
        return row
    detections = outcome.detections or ()
    area = (outcome.width or 0) * (outcome.height or 0)
    row["boxes"] = len(detections)
    row["top_score"] = f"{max((d['score'] for d in detections), default=0.0):.4f}" if detections else ""
    for name in classes:
        mine = [d for d in detections if d["class"] == name]
        row[f"boxes_{name}"] = len(mine)
        covered = sum(max(0.0, d["box"]["xmax"] - d["box"]["xmin"]) * max(0.0, d["box"]["ymax"] - d["box"]["ymin"]) for d in mine)
        row[f"area_share_{name}"] = f"{covered / area:.4f}" if area else ""
    return row


def summary_text(outcomes: Iterable[Outcome], classes: Sequence[str]) -> str:
    """summary.csv: one row per input file, in input order."""
    stream = io.StringIO()
    writer = csv.DictWriter(stream, fieldnames=columns(classes), lineterminator="\n")
    writer.writeheader()
    for outcome in outcomes:
        writer.writerow(summary_row(outcome, classes))
    return stream.getvalue()


def class_names(classes: Mapping[int, str], outcomes: Iterable[Outcome] = ()) -> list[str]:
    """The model's classes in id order, then any other name an answer used (a model without model.json)."""
    names = [classes[key] for key in sorted(classes)]
    for outcome in outcomes:
        names += [d["class"] for d in outcome.detections or () if d["class"] not in names]
    return names


@dataclass(frozen=True)
class BatchResult:
    outcomes: list[Outcome]
    summary: Path

    @property
    def refused(self) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if outcome.error is not None]


Invoke = Callable[[bytes, str, str | None], tuple[int, bytes, str]]  # (body, content type, attributes) -> (status, body, type)


def predict_one(invoke: Invoke, name: str, path: Path, attributes: str | None) -> Outcome:
    try:
        body = path.read_bytes()
    except OSError as exc:
        return Outcome(name, error=f"cannot read the file: {exc.strerror or exc}")
    status, answer, _ = invoke(body, IMAGE_CONTENT_TYPE, attributes)
    if status != 200:
        try:
            message = json.loads(answer).get("error", "")
        except (ValueError, AttributeError):
            message = answer.decode("utf-8", "replace")
        return Outcome(name, error=f"{status}: {message}")
    return Outcome.from_answer(name, json.loads(answer))


def run_local(
    invoke: Invoke,
    classes: Mapping[int, str],
    source: Path,
    output: Path,
    *,
    attributes: str | None = None,
    pictures: bool = False,
    workers: int | None = None,
    progress: Callable[[Iterable, int], Iterable] = lambda items, total: items,
) -> BatchResult:
    """Every file under `source` through `invoke` (the endpoint's handler), `workers` at a time (default:
    every core), writing `<name>.json` (and `<name>.png` with `pictures`) under `output` and summary.csv."""
    from containers.common.pictures import save_detections_picture

    files = input_files(source)
    output.mkdir(parents=True, exist_ok=True)

    def one(item: tuple[str, Path]) -> Outcome:
        name, path = item
        outcome = predict_one(invoke, name, path, attributes)
        if outcome.error is None:
            target = output / f"{name}{ANSWER_SUFFIX}"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(outcome.document(), indent=2) + "\n")
            if pictures:
                save_detections_picture(path.read_bytes(), list(outcome.detections or ()), output / f"{name}{PICTURE_SUFFIX}")
        return outcome

    with ThreadPoolExecutor(max_workers=max(1, workers or os.cpu_count() or 1)) as pool:
        outcomes = list(progress(pool.map(one, files), len(files)))
    summary = output / SUMMARY
    summary.write_text(summary_text(outcomes, class_names(classes, outcomes)))
    return BatchResult(outcomes, summary)
