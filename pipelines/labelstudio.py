"""A review batch into a Label Studio project, and the project's finished annotations out, through Label Studio's
own Python SDK (label-studio-sdk, pinned to the version the pinned server ships with).

push: the project is found by its title, or created, with the batch's labelling config; tasks whose photo the
      project already holds (by content hash, whichever batch brought it) are not imported twice (counted); the
      rest are imported with the model's boxes as predictions, which a person corrects in the labelling screen.
pull: the project's JSON export of annotated tasks (Label Studio's "JSON" export type), the format PrepareData
      reads (containers/processing/formats/labelstudio.py), checked against the project's labelling config.

Both check what they send or receive with the SDK's own validator of a labelling config (LabelInterface) and
its request types, so a batch that Label Studio would refuse, or an export PrepareData could not use, is
reported with the task and the reason, not found out later.

Label Studio shows a task's `s3://` image once the project has an S3 source storage that covers it (Label
Studio docs, "Cloud storage": Amazon S3, with "Use pre-signed URLs"); docs/review-loop.md, "Label Studio", says how.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from pipelines.loopback import LOOPBACK_EXAMPLES, is_loopback

DEFAULT_PROJECT = "cardamage-review"
TIMEOUT = 120.0  # seconds per request: an import of a large batch takes a while on a small server


class LabelStudioError(Exception):
    """Label Studio refused a request, or answered what this project cannot use; the message says which."""


def check_url(url: str) -> None:
    """Refuse a URL the token must not be sent to: every request carries it in a header, readable on the way
    over plain http, so http is for a server on this machine only."""
    scheme = urlsplit(url).scheme.lower()
    if scheme == "https" or (scheme == "http" and is_loopback(url)):
        return
    if scheme == "http":
        raise LabelStudioError(
            f"refusing to send the Label Studio token over plain http to {url}: use https://, or http:// only for a server "
            f"on this machine ({LOOPBACK_EXAMPLES})"
        )
    raise LabelStudioError(f"{url!r} is not a Label Studio URL: expected https://HOST[:PORT], or http:// on this machine ({LOOPBACK_EXAMPLES})")


def connect(url: str, token: str) -> Any:
    """An SDK client. `token` is a legacy API token or a personal access token (Label Studio docs, "Access tokens");
    the SDK tells them apart and refreshes a personal access token itself."""
    from label_studio_sdk import LabelStudio

    check_url(url)
    return LabelStudio(base_url=url.rstrip("/"), api_key=token, timeout=TIMEOUT)


def task_problems(tasks: Sequence[dict], config: str) -> list[str]:
    """What Label Studio's SDK finds wrong in tasks to import: each task against its ImportApiRequest type, and
    each prediction against the labelling config (LabelInterface: names, labels, value fields, score range)."""
    from label_studio_sdk.label_interface import LabelInterface
    from label_studio_sdk.types import ImportApiRequest, PredictionRequest
    from pydantic import ValidationError

    interface = LabelInterface(config)
    problems = []
    for number, task in enumerate(tasks, 1):
        where = f"task {number} ({task.get('data', {}).get('image', 'no image')})"
        try:
            ImportApiRequest.model_validate({key: value for key, value in task.items() if key != "predictions"})
            for prediction in task.get("predictions", []):
                # The SDK's type asks for the task's id, which Label Studio assigns on import: a placeholder here.
                PredictionRequest.model_validate({**prediction, "task": 0})
        except ValidationError as exc:
            problems.append(f"{where}: {' '.join(str(exc).split())}")
            continue
        if not interface.validate_task({"data": task.get("data", {})}):
            problems.append(f"{where}: its data lacks what the labelling config shows ({', '.join(o.value_name for o in interface.objects)})")
        for prediction in task.get("predictions", []):
            problems += [f"{where}: {error}" for error in interface.validate_prediction(prediction, return_errors=True)]
    return problems


def annotation_problems(tasks: Sequence[dict], config: str) -> list[str]:
    """What Label Studio's SDK finds wrong in an export's annotations: each against the Annotation type and
    the labelling config. Cancelled (skipped) annotations are not read by PrepareData and not checked."""
    from label_studio_sdk.label_interface import LabelInterface
    from label_studio_sdk.types import Annotation
    from pydantic import ValidationError

    interface = LabelInterface(config)
    problems = []
    for task in tasks:
        where = f"task {task.get('id')} ({task.get('data', {}).get('image', 'no image')})"
        for annotation in task.get("annotations", []):
            if annotation.get("was_cancelled"):
                continue
            try:
                Annotation.model_validate(annotation)
            except ValidationError as exc:
                problems.append(f"{where}, annotation {annotation.get('id')}: {' '.join(str(exc).split())}")
                continue
            # validate_annotation answers only yes or no; the same check with its reasons is validate_prediction's
            # (LabelInterface applies one object check to both).
            errors = interface.validate_prediction(annotation, return_errors=True)
            problems += [f"{where}, annotation {annotation.get('id')}: {error}" for error in errors]
    return problems


@dataclass
class Pushed:
    project: int
    title: str
    created: bool
    imported: int
    already: list[str] = field(default_factory=list)  # image URLs the project held already, not imported again


def find_project(ls: Any, title: str) -> Any | None:
    """The project with exactly this title; two of them is an error (which one would be meant?)."""
    found = [project for project in ls.projects.list(title=title) if project.title == title]
    if len(found) > 1:
        raise LabelStudioError(f"{len(found)} Label Studio projects are titled {title!r} (ids {', '.join(str(p.id) for p in found)}): rename one")
    return found[0] if found else None


def push(ls: Any, title: str, config: str, tasks: Sequence[dict], description: str = "") -> Pushed:
    """Create or update the project, then import the tasks it does not hold yet (by image URL)."""
    from label_studio_sdk.core.api_error import ApiError

    problems = task_problems(tasks, config)
    if problems:
        raise LabelStudioError("the tasks do not fit the labelling config:\n  " + "\n  ".join(problems))
    try:
        project = find_project(ls, title)
        created = project is None
        if created:
            project = ls.projects.create(title=title, label_config=config, description=description)
        elif _normal(project.label_config) != _normal(config):
            ls.projects.update(id=project.id, label_config=config)
        held = {_photo(task.data.get("image")) for task in ls.tasks.list(project=project.id, fields="all") if task.data}
        new = [task for task in tasks if _photo(task["data"]["image"]) not in held]
        if new:
            ls.projects.import_tasks(id=project.id, request=new, return_task_ids=True)
    except ApiError as exc:
        raise LabelStudioError(_api_message(exc)) from None
    return Pushed(project.id, title, created, len(new), [task["data"]["image"] for task in tasks if _photo(task["data"]["image"]) in held])


def _photo(url: object) -> str:
    """A review photo's name is its content hash (pipelines/review.py, photo_key): the same photo in another
    batch's folder is the same photo."""
    return str(url).rsplit("/", 1)[-1]


@dataclass
class Pulled:
    project: int
    tasks: list[dict]  # the export: annotated tasks only
    annotations: int  # usable (not cancelled) annotations
    cancelled: int
    problems: list[str]


def pull(ls: Any, title: str) -> Pulled:
    """The project's annotated tasks as Label Studio exports them (JSON), checked against its labelling config."""
    from label_studio_sdk.core.api_error import ApiError

    try:
        project = find_project(ls, title)
        if project is None:
            raise LabelStudioError(f"no Label Studio project titled {title!r}: push a review batch to it first")
        config = ls.projects.get(id=project.id).label_config
        body = b"".join(ls.projects.exports.download_sync(id=project.id, export_type="JSON", download_all_tasks=False))
    except ApiError as exc:
        raise LabelStudioError(_api_message(exc)) from None
    try:
        tasks = json.loads(body)
    except ValueError as exc:
        raise LabelStudioError(f"project {project.id}'s JSON export is not JSON: {exc}") from None
    if not isinstance(tasks, list):
        raise LabelStudioError(f"project {project.id}'s JSON export is not a list of tasks")
    annotations = [a for task in tasks for a in task.get("annotations", [])]
    cancelled = sum(1 for a in annotations if a.get("was_cancelled"))
    return Pulled(project.id, tasks, len(annotations) - cancelled, cancelled, annotation_problems(tasks, config))


def _normal(config: str | None) -> str:
    return " ".join((config or "").split())


def _api_message(exc: Any) -> str:
    body = exc.body if isinstance(exc.body, str) else json.dumps(exc.body)
    hint = " (check the token: a legacy token needs legacy tokens enabled for the organization)" if exc.status_code == 401 else ""
    return f"Label Studio answered {exc.status_code}: {body[:500]}{hint}"
