"""Label Studio's JSON export: a list of tasks, each with its image and its annotations.

    [{"id": 7, "data": {"image": "s3://bucket/images/a.jpg"},
      "annotations": [{"id": 12, "was_cancelled": false, "updated_at": "...", "result": [
        {"type": "rectanglelabels", "original_width": 640, "original_height": 480,
         "value": {"x": 10.5, "y": 20, "width": 30, "height": 15, "rotation": 0, "rectanglelabels": ["dent"]}}]}]}]

Values are percent of the original size (Label Studio docs, "Export annotations": JSON). Cancelled
(skipped) annotations are ignored; of several, the newest (`updated_at`, then `created_at`, then id) wins,
and the report says which. A task nobody annotated is not an image without damage: it is refused. A
rotated rectangle is refused (the detector trains on upright boxes). Results of other types (choices,
text, ...) are ignored and counted in the report's note. Image URLs map to keys under the images folder:
`s3://` URIs under the images prefix as Ground Truth's, `/data/upload/...` (files uploaded to Label
Studio, found under its media folder) as `upload/...`, `/data/local-files/?d=PATH` as PATH.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from containers.processing.labelling import (
    InputError,
    RawBox,
    Record,
    RecordError,
    Source,
    image_key,
    image_size,
    number,
    relative_key,
    short,
    utc_date,
)

from .base import Context, Item, Refusal, load_json

FORMAT = "labelstudio"
BOX_TYPES = ("rectanglelabels", "rectangle")


def looks_like(document: object) -> bool:
    tasks = document if isinstance(document, list) else [document]
    return bool(tasks) and all(isinstance(task, dict) and "data" in task for task in tasks[:10])


def read(path: Path, context: Context, document: object = None) -> Iterator[Item]:
    document = load_json(path) if document is None else document
    tasks = document if isinstance(document, list) else [document]
    if not all(isinstance(task, dict) for task in tasks):
        raise InputError(f"{path}: a Label Studio export is a list of task objects")
    for position, task in enumerate(tasks, start=1):
        source = Source(str(path), position, f"task id {short(task.get('id'))}")
        url = None
        try:
            url = _image_url(task)
            yield _record(source, task, url, context)
        except RecordError as exc:
            yield Refusal(source, str(exc), url if isinstance(url, str) and url.startswith("s3://") else None)


def _image_url(task: dict) -> str:
    data = task.get("data")
    if not isinstance(data, dict):
        raise RecordError(f"'data' must be an object, got {short(data)}")
    if isinstance(data.get("image"), str):
        return data["image"]
    urls = [value for value in data.values() if isinstance(value, str) and (value.startswith(("s3://", "/data/", "http")))]
    if len(urls) != 1:
        raise RecordError(f"cannot tell the image: 'data' has no 'image' and {len(urls)} URL values: {short(data)}")
    return urls[0]


def image_key_of(url: str, images_prefix: str) -> str:
    """The key under the images folder of a Label Studio image URL."""
    if url.startswith("s3://"):
        return image_key(url, images_prefix, "the image URL")
    parts = urlsplit(url)
    if parts.path in ("/data/local-files/", "/data/local-files"):
        paths = parse_qs(parts.query).get("d")
        if not paths:
            raise RecordError(f"the local-files URL {url!r} has no ?d=PATH")
        return relative_key(paths[0], "the local-files path")
    if parts.path.startswith("/data/upload/") and not parts.scheme:
        return relative_key(unquote(parts.path[len("/data/") :]), "the uploaded file")
    raise RecordError(f"the image URL {url!r} is not an s3:// URI, an uploaded file (/data/upload/...) or a local file (/data/local-files/?d=...)")


def _record(source: Source, task: dict, url: str, context: Context) -> Record:
    key = image_key_of(url, context.images_prefix)
    annotations = task.get("annotations")
    if not isinstance(annotations, list):
        raise RecordError("the task has no 'annotations' list (exported before anyone annotated it?)")
    usable = [a for a in annotations if isinstance(a, dict) and not a.get("was_cancelled")]
    if not usable:
        what = "every annotation was cancelled" if annotations else "nobody annotated this task"
        raise RecordError(f"{what}: an unlabelled image is not an image without damage")
    chosen = max(usable, key=_newness)
    note = ""
    if len(annotations) > 1:
        cancelled = len(annotations) - len(usable)
        others = [str(a.get("id")) for a in usable if a is not chosen]
        note = f"{len(annotations)} annotations: used annotation {chosen.get('id')} (the newest)"
        note += f"; not used: {', '.join(others)}" if others else ""
        note += f"; {cancelled} cancelled" if cancelled else ""
    result = chosen.get("result")
    if not isinstance(result, list):
        raise RecordError(f"annotation {chosen.get('id')}: 'result' must be a list")
    size = None
    boxes = []
    ignored = 0
    for index, item in enumerate(result):
        where = f"annotation {chosen.get('id')} result {index}"
        if not isinstance(item, dict):
            raise RecordError(f"{where} is not an object")
        if item.get("type") not in BOX_TYPES:
            ignored += 1
            continue
        this = image_size(item.get("original_width"), item.get("original_height"), f"{where}: original_width and original_height")
        if size is not None and this != size:
            raise RecordError(f"{where}: original size {this[0]}x{this[1]} differs from {size[0]}x{size[1]} of an earlier result")
        size = this
        value = item.get("value")
        if not isinstance(value, dict):
            raise RecordError(f"{where}: 'value' must be an object")
        rotation = number(value.get("rotation", 0), f"{where}: rotation")
        if rotation % 360:
            raise RecordError(f"{where} is rotated by {rotation:g} degrees; the detector trains on upright boxes only")
        x, y, w, h = (number(value.get(field), f"{where}: {field}") for field in ("x", "y", "width", "height"))
        names = value.get("rectanglelabels", value.get("labels"))
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
            raise RecordError(f"{where}: 'rectanglelabels' must list the box's class, got {short(names)}")
        for name in names:
            boxes.append(RawBox(name, x * this[0] / 100, y * this[1] / 100, (x + w) * this[0] / 100, (y + h) * this[1] / 100))
    if ignored:
        note += ("; " if note else "") + f"{ignored} result(s) that are not rectangles ignored"
    return Record(
        source=source,
        key=key,
        size=size,
        boxes=tuple(boxes),
        format=FORMAT,
        creation_date=utc_date(chosen.get("updated_at")) or utc_date(chosen.get("created_at")),
        note=note,
    )


def _newness(annotation: dict) -> tuple[str, str, int]:
    identifier = annotation.get("id")
    return (
        utc_date(annotation.get("updated_at")),
        utc_date(annotation.get("created_at")),
        identifier if isinstance(identifier, int) and not isinstance(identifier, bool) else -1,
    )
