"""COCO instances JSON (what Roboflow, CVAT, Label Studio and most tools export as "COCO").

    {"images": [{"id", "file_name", "width", "height"}], "annotations": [{"id", "image_id", "category_id",
     "bbox": [x, y, w, h], "iscrowd"}], "categories": [{"id", "name"}], "info": {"date_created"}}

One record per image; an image without annotations is a background example. Category id 0 is a class
like any other. Crowd annotations (`iscrowd` 1: one box around many objects) are not trained on: they
are counted in the report. Annotations naming an image id the file does not list make one refused record
per missing id, so they are accounted for too. Format: cocodataset.org "Data format".
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from containers.processing.labelling import (
    CROWD,
    InputError,
    RawBox,
    Record,
    RecordError,
    Source,
    image_size,
    is_int,
    number,
    relative_key,
    short,
    utc_date,
)

from .base import Context, Item, Refusal, load_json

FORMAT = "coco"


def looks_like(document: object) -> bool:
    return isinstance(document, dict) and "images" in document and "annotations" in document


def read(path: Path, context: Context, document: object = None) -> Iterator[Item]:
    document = load_json(path) if document is None else document
    if not looks_like(document):
        raise InputError(f"{path}: not COCO instances JSON: expected an object with 'images' and 'annotations' lists")
    images, annotations = document.get("images"), document.get("annotations")
    if not isinstance(images, list) or not isinstance(annotations, list):
        raise InputError(f"{path}: 'images' and 'annotations' must be lists")
    categories = _categories(path, document.get("categories"))
    info = document.get("info")
    date = utc_date(info.get("date_created")) if isinstance(info, dict) else ""
    name = str(path)

    by_image: dict[object, list[tuple[int, object]]] = {}
    for index, annotation in enumerate(annotations):
        image_id = annotation.get("image_id") if isinstance(annotation, dict) else None
        by_image.setdefault(_hashable(image_id), []).append((index, annotation))
    listed = set()
    for position, image in enumerate(images, start=1):
        image_id = image.get("id") if isinstance(image, dict) else None
        file_name = image.get("file_name") if isinstance(image, dict) else None
        source = Source(name, position, f"image id {short(image_id)} ({file_name if isinstance(file_name, str) else '?'})")
        if _hashable(image_id) in listed:
            yield Refusal(source, f"image id {short(image_id)} is listed more than once in 'images'")
            continue
        listed.add(_hashable(image_id))
        mine = by_image.get(_hashable(image_id), []) if image_id is not None else []
        try:
            yield _record(source, image, mine, categories, date)
        except RecordError as exc:
            yield Refusal(source, str(exc))
    missing = [image_id for image_id in by_image if image_id not in listed]
    for offset, image_id in enumerate(missing, start=len(images) + 1):
        count = len(by_image[image_id])
        first = by_image[image_id][0][0]
        source = Source(name, offset, f"annotations of image id {short(image_id)}")
        reason = f"{count} annotation(s) (the first is annotations[{first}]) name image id {short(image_id)}, which 'images' does not list"
        yield Refusal(source, reason)


def _hashable(value: object) -> object:
    return value if isinstance(value, (int, str, float, type(None))) and not isinstance(value, bool) else repr(value)


def _categories(path: Path, categories: object) -> dict[object, str]:
    if not isinstance(categories, list):
        raise InputError(f"{path}: 'categories' must be a list of {{id, name}} objects")
    found: dict[object, str] = {}
    for index, category in enumerate(categories):
        if not isinstance(category, dict) or not is_int(category.get("id")) or not isinstance(category.get("name"), str):
            raise InputError(f"{path}: categories[{index}] must be an object with an integer 'id' and a string 'name', got {short(category)}")
        found[int(category["id"])] = category["name"]
    return found


def _record(source: Source, image: object, annotations: list[tuple[int, object]], categories: dict, date: str) -> Record:
    if not isinstance(image, dict):
        raise RecordError(f"the image entry is not an object: {short(image)}")
    if not (is_int(image.get("id")) or isinstance(image.get("id"), str)):
        raise RecordError(f"the image has no integer or string 'id': {short(image)}")
    key = relative_key(image.get("file_name"), "'file_name'")
    size = None
    if image.get("width") is not None or image.get("height") is not None:
        size = image_size(image.get("width"), image.get("height"), "the image's width and height")
    boxes = []
    for index, annotation in annotations:
        where = f"annotations[{index}]"
        if not isinstance(annotation, dict):
            raise RecordError(f"{where} is not an object")
        category = annotation.get("category_id")
        if not is_int(category) or int(category) not in categories:
            raise RecordError(f"{where}: category_id {short(category)} is not one of the categories {sorted(categories)}")
        bbox = annotation.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4:
            raise RecordError(f"{where}: 'bbox' must be a list [x, y, width, height], got {short(bbox)}")
        x, y, width, height = (number(value, f"{where}: bbox {field}") for value, field in zip(bbox, ("x", "y", "width", "height"), strict=True))
        crowd = annotation.get("iscrowd", 0)
        if crowd not in (0, 1, None):
            raise RecordError(f"{where}: 'iscrowd' must be 0 or 1, got {short(crowd)}")
        boxes.append(RawBox(categories[int(category)], x, y, x + width, y + height, frozenset({CROWD}) if crowd == 1 else frozenset()))
    return Record(source=source, key=key, size=size, boxes=tuple(boxes), format=FORMAT, creation_date=date)
