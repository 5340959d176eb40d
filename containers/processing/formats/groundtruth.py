"""SageMaker Ground Truth bounding-box output manifests (JSON lines), also what adjustment jobs write.

    {"source-ref": "s3://bucket/images/a.jpg",
     "<attribute>": {"image_size": [{"width", "height", "depth"}], "annotations": [{class_id, left, top, width, height}]},
     "<attribute>-metadata": {"class-map": {"0": "dent"}, "type": "groundtruth/object-detection", "creation-date": ...}}

AWS's documentation: "Bounding box job output" (Ground Truth output data). The label attribute is named
after the labelling job, so it is found by its metadata's type rather than by name.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

from containers.processing.labelling import InputError, RawBox, Record, RecordError, Source, image_key, image_size, is_int, number, short, utc_date

from .base import Context, Item, Refusal

FORMAT = "groundtruth"
OBJECT_DETECTION_TYPE = "groundtruth/object-detection"
BOX_FIELDS = ("left", "top", "width", "height")


def class_map(classes: Sequence[str]) -> dict[str, str]:
    """A bounding-box class-map for classes in label-map order: class_id (as text) -> class name."""
    return {str(index): name for index, name in enumerate(classes)}


def object_detection_attributes(record: dict) -> list[str]:
    """The keys of a manifest line whose `<key>-metadata` says it holds Ground Truth boxes."""
    found = []
    for key, value in record.items():
        if key.endswith("-metadata") and isinstance(value, dict) and value.get("type") == OBJECT_DETECTION_TYPE:
            found.append(key[: -len("-metadata")])
    return sorted(found)


def looks_like(first_line: object) -> bool:
    return isinstance(first_line, dict) and "source-ref" in first_line


def read_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes) of each non-blank line of a manifest, streamed."""
    with open(path, "rb") as handle:
        for number_, raw in enumerate(handle, start=1):
            if raw.strip():
                yield number_, raw


def read(path: Path, context: Context) -> Iterator[Item]:
    name = str(path)
    used = 0
    try:
        for line, raw in read_lines(path):
            source = Source(name, line)
            try:
                record = parse_line(raw, source, images_prefix=context.images_prefix, context=context)
            except RecordError as exc:
                yield Refusal(source, str(exc), _source_ref_of(raw))
                continue
            used += 1
            yield record
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if context.label_attribute and not used:
        raise InputError(
            f"{path}: no line has the label attribute {context.label_attribute!r} "
            f"(--label-attribute / data.label_attribute); see the quarantine list in the report for what the lines hold"
        )


def _source_ref_of(raw: bytes) -> str | None:
    try:
        value = json.loads(raw).get("source-ref")
    except Exception:
        return None
    return value if isinstance(value, str) else None


def parse_line(raw: bytes, source: Source, *, images_prefix: str, context: Context) -> Record:
    """Validate one manifest line; raises `RecordError` (unusable line) or `InputError` (stop the job)."""
    try:
        record = json.loads(raw)
    except UnicodeDecodeError:
        raise RecordError("not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise RecordError(f"not valid JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(record, dict):
        raise RecordError(f"not a JSON object but a {type(record).__name__}")
    if "source-ref" not in record:
        raise RecordError("missing 'source-ref' (the image's S3 URI)")
    key = image_key(record.get("source-ref"), images_prefix)

    candidates = object_detection_attributes(record)
    label_attribute = context.label_attribute
    if label_attribute is None:
        if not candidates:
            raise RecordError(f"no bounding-box label attribute (a key K with a 'K-metadata' of type {OBJECT_DETECTION_TYPE!r})")
        if len(candidates) > 1:
            raise InputError(
                f"{source}: several bounding-box label attributes {candidates}; choose one with "
                "--label-attribute (data.label_attribute in pipeline.yaml)"
            )
        attribute = candidates[0]
    else:
        attribute = label_attribute
        metadata = record.get(f"{attribute}-metadata")
        if attribute not in record and metadata is None:
            found = f"; this line has {candidates}" if candidates else ""
            raise RecordError(f"label attribute {attribute!r} not found{found}")
        if not isinstance(metadata, dict) or metadata.get("type") != OBJECT_DETECTION_TYPE:
            kind = metadata.get("type") if isinstance(metadata, dict) else None
            raise RecordError(f"'{attribute}-metadata' is not bounding-box metadata (type {kind!r}, expected {OBJECT_DETECTION_TYPE!r})")

    label = record.get(attribute)
    metadata = record[f"{attribute}-metadata"]
    if not isinstance(label, dict):
        raise RecordError(f"missing '{attribute}' (the boxes) or it is not an object")
    sizes = label.get("image_size")
    size = sizes[0] if isinstance(sizes, list) and sizes else None
    if not isinstance(size, dict):
        raise RecordError(f"'{attribute}.image_size' is missing or not a list holding one {{width, height}} object")
    width, height = image_size(size.get("width"), size.get("height"), f"'{attribute}.image_size'")
    class_map = metadata.get("class-map")
    if not isinstance(class_map, dict):
        raise RecordError(f"'{attribute}-metadata' has no 'class-map' object")
    annotations = label.get("annotations")
    if not isinstance(annotations, list):
        raise RecordError(f"'{attribute}.annotations' is missing or not a list")

    # The job's classes, used in this line or not, belong in a derived label map.
    for class_id, name in sorted(class_map.items()):
        if isinstance(class_id, str) and class_id.isdigit() and isinstance(name, str) and name:
            resolved = context.classes.resolve(name)
            if resolved == name:  # a name the class map renames takes a free id instead
                context.label_map.declare(int(class_id), name, source)
    boxes = tuple(_box(annotation, index, class_map) for index, annotation in enumerate(annotations))
    return Record(
        source=source,
        key=key,
        size=(width, height),
        boxes=boxes,
        format=FORMAT,
        creation_date=utc_date(metadata.get("creation-date")),
        label_attribute=attribute,
    )


def _box(annotation: object, index: int, class_map: dict) -> RawBox:
    where = f"annotation {index}"
    if not isinstance(annotation, dict):
        raise RecordError(f"{where} is not an object")
    missing = [field for field in ("class_id", *BOX_FIELDS) if field not in annotation]
    if missing:
        raise RecordError(f"{where} lacks {', '.join(repr(m) for m in missing)}")
    class_id = annotation["class_id"]
    if isinstance(class_id, str) and class_id.isdigit():
        class_id = int(class_id)
    if not is_int(class_id) or class_id < 0:
        raise RecordError(f"{where}: class_id must be a non-negative integer, got {short(annotation['class_id'])}")
    name = class_map.get(str(int(class_id)))
    if not isinstance(name, str) or not name:
        raise RecordError(f"{where}: unknown class_id {int(class_id)} (the class-map has {short(class_map)})")
    left, top, width, height = (number(annotation[field], f"{where}: {field}") for field in BOX_FIELDS)
    return RawBox(name, left, top, left + width, top + height)
