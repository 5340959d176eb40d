"""Reading SageMaker Ground Truth bounding-box output manifests into validated, labelled images.

Pure functions over manifest lines: no image is opened here. A line that cannot be used raises
`LineError` with a reason a person can act on; the caller records it against the manifest and line.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

from containers.common.s3 import is_s3_uri

OBJECT_DETECTION_TYPE = "groundtruth/object-detection"
BOX_FIELDS = ("left", "top", "width", "height")
MAX_SIDE = 65_535  # the largest width or height a JPEG can declare; larger numbers are a corrupt line
MAX_COORDINATE = 1e7  # box values beyond this cannot describe any real image (and would overflow floats)


class LineError(ValueError):
    """A manifest line that cannot be used; the message is the reason recorded in the report."""


class ManifestError(Exception):
    """A problem with the manifests as a whole that stops the job (the message names the file and line)."""


@dataclass(frozen=True, order=True)
class Source:
    """Where a line came from: its manifest (as given) and its 1-based line number."""

    manifest: str
    line: int

    def __str__(self) -> str:
        return f"{self.manifest}:{self.line}"


@dataclass(frozen=True)
class Box:
    """One labelled box in pixels of the image as the annotator saw it, already clipped to it."""

    label: int  # label-map id, from 1
    name: str
    xmin: float
    ymin: float
    xmax: float
    ymax: float

    @property
    def width(self) -> float:
        return self.xmax - self.xmin

    @property
    def height(self) -> float:
        return self.ymax - self.ymin


@dataclass(frozen=True)
class LabelledImage:
    """A usable manifest line: which image, the size the annotator saw, and its boxes."""

    source: Source
    order: int  # position in the input (manifest order, then line): breaks ties when merging
    source_ref: str
    key: str  # the image's key relative to the images prefix; also its path relative to the images folder
    width: int
    height: int
    boxes: tuple[Box, ...]
    label_attribute: str
    creation_date: str
    clipped_boxes: int = 0

    @property
    def class_names(self) -> frozenset[str]:
        return frozenset(box.name for box in self.boxes)


class LabelMap:
    """Label-map ids (from 1) for class names.

    With configured classes the ids follow their order, and a name outside them makes the line unusable.
    Without, the ids follow the Ground Truth class-map (`class_id` + 1, since Ground Truth counts from 0
    and the OD API keeps 0 for background); manifests that disagree on a name's id stop the job, since
    no rule can tell which one is right.
    """

    def __init__(self, classes: Sequence[str] | None = None):
        self.fixed = classes is not None
        self._ids: dict[str, int] = {name: i + 1 for i, name in enumerate(classes or ())}
        self._first_seen: dict[str, Source] = {}

    def id_for(self, class_id: int, name: str, source: Source) -> int:
        if self.fixed:
            if name not in self._ids:
                raise LineError(f"class {name!r} (class_id {class_id}) is not one of the configured classes {list(self._ids)}")
            return self._ids[name]
        wanted = class_id + 1
        known = self._ids.get(name)
        if known is not None and known != wanted:
            raise ManifestError(
                f"{source}: class {name!r} has class_id {class_id}, but {self._first_seen[name]} gives it class_id {known - 1}; "
                "the manifests come from labelling jobs with different class orders: list the classes in "
                "pipeline.yaml (data.classes) or pass --classes to fix the label map"
            )
        holder = next((n for n, i in self._ids.items() if i == wanted and n != name), None)
        if holder is not None:
            raise ManifestError(
                f"{source}: class_id {class_id} is {name!r}, but {self._first_seen[holder]} names it {holder!r}; "
                "list the classes in pipeline.yaml (data.classes) or pass --classes to fix the label map"
            )
        if known is None:
            self._ids[name] = wanted
            self._first_seen[name] = source
        return wanted

    def items(self) -> list[tuple[int, str]]:
        """(id, name) pairs in id order."""
        return sorted((i, name) for name, i in self._ids.items())


def object_detection_attributes(record: dict) -> list[str]:
    """The keys of a manifest line whose `<key>-metadata` says it holds Ground Truth boxes."""
    found = []
    for key, value in record.items():
        if key.endswith("-metadata") and isinstance(value, dict) and value.get("type") == OBJECT_DETECTION_TYPE:
            found.append(key[: -len("-metadata")])
    return sorted(found)


def read_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes) of each non-blank line of a manifest, streamed."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if raw.strip():
                yield number, raw


def image_key(source_ref: object, images_prefix: str) -> str:
    """The key of `source_ref` relative to the images prefix, checked to stay inside it."""
    if not isinstance(source_ref, str) or not source_ref:
        raise LineError(f"'source-ref' must be a non-empty string, got {_short(source_ref)}")
    if not is_s3_uri(source_ref):
        raise LineError(f"'source-ref' {source_ref!r} is not an s3:// URI")
    prefix = images_prefix if images_prefix.endswith("/") else images_prefix + "/"
    if not source_ref.startswith(prefix):
        raise LineError(f"'source-ref' {source_ref!r} is not under the images prefix {prefix!r}")
    key = source_ref[len(prefix) :]
    parts = key.split("/")
    if not key or key.endswith("/") or any(part in ("", ".", "..") for part in parts) or "\x00" in key:
        raise LineError(f"'source-ref' {source_ref!r} does not name a file under the images prefix")
    return posixpath.normpath(key)


def parse_line(
    raw: bytes,
    source: Source,
    order: int,
    *,
    images_prefix: str,
    label_map: LabelMap,
    label_attribute: str | None = None,
) -> LabelledImage:
    """Validate one manifest line; raises `LineError` (unusable line) or `ManifestError` (stop the job)."""
    try:
        record = json.loads(raw)
    except UnicodeDecodeError:
        raise LineError("not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise LineError(f"not valid JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(record, dict):
        raise LineError(f"not a JSON object but a {type(record).__name__}")

    key = image_key(record.get("source-ref"), images_prefix) if "source-ref" in record else None
    if key is None:
        raise LineError("missing 'source-ref' (the image's S3 URI)")

    candidates = object_detection_attributes(record)
    if label_attribute is None:
        if not candidates:
            raise LineError(f"no bounding-box label attribute (a key K with a 'K-metadata' of type {OBJECT_DETECTION_TYPE!r})")
        if len(candidates) > 1:
            raise ManifestError(
                f"{source}: several bounding-box label attributes {candidates}; choose one with "
                "--label-attribute (data.label_attribute in pipeline.yaml)"
            )
        attribute = candidates[0]
    else:
        attribute = label_attribute
        metadata = record.get(f"{attribute}-metadata")
        if attribute not in record and metadata is None:
            found = f"; this line has {candidates}" if candidates else ""
            raise LineError(f"label attribute {attribute!r} not found{found}")
        if not isinstance(metadata, dict) or metadata.get("type") != OBJECT_DETECTION_TYPE:
            kind = metadata.get("type") if isinstance(metadata, dict) else None
            raise LineError(f"'{attribute}-metadata' is not bounding-box metadata (type {kind!r}, expected {OBJECT_DETECTION_TYPE!r})")

    label = record.get(attribute)
    metadata = record[f"{attribute}-metadata"]
    if not isinstance(label, dict):
        raise LineError(f"missing '{attribute}' (the boxes) or it is not an object")
    width, height = _image_size(label, attribute)
    class_map = metadata.get("class-map")
    if not isinstance(class_map, dict):
        raise LineError(f"'{attribute}-metadata' has no 'class-map' object")
    annotations = label.get("annotations")
    if not isinstance(annotations, list):
        raise LineError(f"'{attribute}.annotations' is missing or not a list")

    if not label_map.fixed:  # the job's classes, used in this line or not, belong in a derived label map
        for class_id, name in sorted(class_map.items()):
            if isinstance(class_id, str) and class_id.isdigit() and isinstance(name, str) and name:
                label_map.id_for(int(class_id), name, source)
    boxes, clipped = [], 0
    for index, annotation in enumerate(annotations):
        box, was_clipped = _box(annotation, index, width, height, class_map, label_map, source)
        boxes.append(box)
        clipped += was_clipped
    return LabelledImage(
        source=source,
        order=order,
        source_ref=record["source-ref"],
        key=key,
        width=width,
        height=height,
        boxes=tuple(boxes),
        label_attribute=attribute,
        creation_date=_utc_date(metadata.get("creation-date")),
        clipped_boxes=clipped,
    )


def _image_size(label: dict, attribute: str) -> tuple[int, int]:
    sizes = label.get("image_size")
    size = sizes[0] if isinstance(sizes, list) and sizes else None
    if not isinstance(size, dict):
        raise LineError(f"'{attribute}.image_size' is missing or not a list holding one {{width, height}} object")
    width, height = size.get("width"), size.get("height")
    if not (_is_int(width) and _is_int(height)) or not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise LineError(f"'{attribute}.image_size' needs integer width and height from 1 to {MAX_SIDE}, got {_short(size)}")
    return int(width), int(height)


def _box(annotation: object, index: int, width: int, height: int, class_map: dict, label_map: LabelMap, source: Source) -> tuple[Box, bool]:
    where = f"annotation {index}"
    if not isinstance(annotation, dict):
        raise LineError(f"{where} is not an object")
    missing = [field for field in ("class_id", *BOX_FIELDS) if field not in annotation]
    if missing:
        raise LineError(f"{where} lacks {', '.join(repr(m) for m in missing)}")
    class_id = annotation["class_id"]
    if isinstance(class_id, str) and class_id.isdigit():
        class_id = int(class_id)
    if not _is_int(class_id) or class_id < 0:
        raise LineError(f"{where}: class_id must be a non-negative integer, got {_short(annotation['class_id'])}")
    name = class_map.get(str(int(class_id)))
    if not isinstance(name, str) or not name:
        raise LineError(f"{where}: unknown class_id {int(class_id)} (the class-map has {_short(class_map)})")
    label = label_map.id_for(int(class_id), name, source)
    values = []
    for field in BOX_FIELDS:
        value = annotation[field]
        if value.__class__ not in (int, float) or not -MAX_COORDINATE <= value <= MAX_COORDINATE:  # bool, str, NaN, inf refused
            raise LineError(f"{where}: {field} must be a number within +-{MAX_COORDINATE:g} pixels, got {_short(value)}")
        values.append(value)
    x0, y0, box_width, box_height = values
    x1, y1 = x0 + box_width, y0 + box_height
    cx0, cy0, cx1, cy1 = max(0.0, x0), max(0.0, y0), min(float(width), x1), min(float(height), y1)
    if cx1 <= cx0 or cy1 <= cy0:
        raise LineError(
            f"{where}: degenerate box after clipping to the {width}x{height} image "
            f"(left {_number(x0)}, top {_number(y0)}, width {_number(box_width)}, height {_number(box_height)})"
        )
    clipped = (cx0, cy0, cx1, cy1) != (x0, y0, x1, y1)
    return Box(label, name, float(cx0), float(cy0), float(cx1), float(cy1)), clipped


def _utc_date(value: object) -> str:
    """A Ground Truth `creation-date` as a sortable UTC ISO string; "" when absent or unreadable."""
    return _utc_date_of(value) if isinstance(value, str) else ""


@lru_cache(maxsize=1024)  # the lines of a labelling job share a handful of dates
def _utc_date_of(value: str) -> str:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return ""
    if moment.tzinfo is None:  # Ground Truth writes UTC without an offset
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)  # ints may exceed a float's range


def _is_int(value: object) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, float) and value.is_integer())


def _short(value: object, limit: int = 80) -> str:
    text = json.dumps(value, sort_keys=True, default=repr)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def merge_key(image: LabelledImage) -> tuple[str, int]:
    """The merge rule's order: the newest labelling (Ground Truth `creation-date`) wins; at equal dates,
    the line that comes later in the input (later manifest, then later line) wins."""
    return (image.creation_date, image.order)
