"""Promotion between release stages (pipeline.yaml `deployment.stages`, e.g. [staging, production]).

`cardamage promote` takes the package a stage's endpoint serves, sends it a smoke set of images (the first
photos of the validation records the package was evaluated on, which Register records in its metadata, or a
folder given), checks every answer, and only then deploys the same package to the next stage's endpoint,
by the deployment rule (containers/deploy/deploy.py `decide`: never over a newer or better package unless
forced with a reason). The backends (local, AWS) send the requests and deploy; the checks live here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from containers.deploy.deploy import DeployResult
from steps.register import METADATA_VALIDATION

SMOKE_IMAGES = 5  # photos sent to the stage by default
VALIDATION_METADATA = METADATA_VALIDATION  # the package's metadata key: its prepared validation records' prefix
IMAGE_CONTENT_TYPE = "application/x-image"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


class PromotionError(ValueError):
    """Promotion cannot start: no stages, nothing served, no smoke images; the message says what to do."""


@dataclass(frozen=True)
class SmokeImage:
    name: str
    data: bytes


@dataclass(frozen=True)
class SmokeAnswer:
    """What the stage's endpoint answered for one smoke image, and what is wrong with it (None: nothing)."""

    image: str
    problem: str | None
    detections: int = 0


@dataclass(frozen=True)
class Promotion:
    version: int
    package_arn: str
    source: str  # stage -> endpoint, for messages
    target: str
    answers: tuple[SmokeAnswer, ...]
    deployment: DeployResult | None  # None: the smoke test failed, nothing was deployed

    @property
    def passed(self) -> bool:
        return all(answer.problem is None for answer in self.answers)


def next_stage(stages: dict[str, str], source: str | None) -> tuple[str, str]:
    """(source stage, target stage): `source` (default: the first) and the one after it."""
    names = list(stages)
    if len(names) < 2:
        raise PromotionError("promote needs release stages: set deployment.stages in pipeline.yaml, e.g. [staging, production]")
    source = source or names[0]
    if source not in stages:
        raise PromotionError(f"no stage {source!r}; the stages are {', '.join(names)}")
    if source == names[-1]:
        raise PromotionError(f"{source} is the last stage: there is nothing to promote it to")
    return source, names[names.index(source) + 1]


def check_answer(status: int, body: bytes, classes: Sequence[str] | None) -> tuple[str | None, int]:
    """(what is wrong with one endpoint answer or None, its number of detections). A sound answer is a 200 with
    one prediction whose detections each have a known class, a score in [0, 1] and a box inside the image."""
    text = body.decode("utf-8", "replace")
    if status != 200:
        return f"HTTP {status}: {text[:300]}", 0
    try:
        (prediction,) = json.loads(text)["predictions"]
        width, height = prediction["image"]["width"], prediction["image"]["height"]
        detections = prediction["detections"]
    except (ValueError, KeyError, TypeError):
        return f"not the endpoint's answer format: {text[:300]}", 0
    for index, found in enumerate(detections):
        problem = _detection_problem(found, width, height, classes)
        if problem:
            return f"detection {index + 1}: {problem}", len(detections)
    return None, len(detections)


def _detection_problem(found: object, width: int, height: int, classes: Sequence[str] | None) -> str | None:
    if not isinstance(found, dict):
        return f"not an object: {found!r}"
    if classes and found.get("class") not in classes:
        return f"class {found.get('class')!r} is none of {', '.join(classes)}"
    score = found.get("score")
    if not isinstance(score, int | float) or not 0.0 <= score <= 1.0:
        return f"score {score!r} is not in [0, 1]"
    box = found.get("box") or {}
    try:
        inside = 0 <= box["xmin"] <= box["xmax"] <= width and 0 <= box["ymin"] <= box["ymax"] <= height
    except (KeyError, TypeError):
        return f"box {box!r} lacks xmin, ymin, xmax, ymax"
    return None if inside else f"box {box} is outside the {width}x{height} image"


def smoke(images: Sequence[SmokeImage], invoke: Callable[[bytes], tuple[int, bytes]], classes: Sequence[str] | None) -> tuple[SmokeAnswer, ...]:
    """Send every image through `invoke` (one request: body -> (status, answer body)) and check each answer."""
    answers = []
    for image in images:
        try:
            status, body = invoke(image.data)
        except Exception as exc:  # a request that did not even get an answer fails the smoke test, with its reason
            answers.append(SmokeAnswer(image.name, f"no answer: {exc}"))
            continue
        problem, count = check_answer(status, body, classes)
        answers.append(SmokeAnswer(image.name, problem, count))
    return tuple(answers)


def folder_images(folder: Path, count: int) -> list[SmokeImage]:
    """The first `count` photos (JPEG or PNG, by name) of a folder."""
    if not folder.is_dir():
        raise PromotionError(f"--images {folder}: no such folder")
    paths = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)[:count]
    if not paths:
        raise PromotionError(f"--images {folder}: no .jpg, .jpeg or .png files")
    return [SmokeImage(p.relative_to(folder).as_posix(), p.read_bytes()) for p in paths]


def record_images(folder: Path, count: int, source: str | None = None) -> list[SmokeImage]:
    """The first `count` photos of the validation TFRecords in `folder` (as PrepareData writes them); `source`
    names where they were copied from (the package's ValidationData prefix), for messages. Prepared data
    expires (infrastructure.artifact_expiration_days, infra/storage.py), so a package outlives its records."""
    from containers.evaluation.errors import EvaluationError
    from containers.evaluation.validation import read_records, validation_files

    files = validation_files(folder) if folder.is_dir() else []
    if not files:
        raise PromotionError(
            f"no validation records at {source or folder}: they expired with their execution's prepared data (deleted "
            "after infrastructure.artifact_expiration_days days, pipeline.yaml), or the execution held none out; "
            "pass --images DIR with a few photos instead"
        )
    try:
        images = []
        for record in read_records(files, {}):
            images.append(SmokeImage(record.truth.key, record.encoded))
            if len(images) == count:
                break
    except EvaluationError as exc:
        raise PromotionError(f"the package's validation records: {exc}") from None
    if not images:
        raise PromotionError(f"the package's validation records ({source or folder}) hold no images: pass --images DIR")
    return images
