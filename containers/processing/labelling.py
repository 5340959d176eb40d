"""What every label format reads into, and the rules that turn it into boxes the records hold.

A reader (containers/processing/formats/) turns each record of its input (a Ground Truth line, a COCO
image, a VOC file, ...) into a `Record`: which image, the size the annotator saw when the format says,
and its boxes with the class names as the source spells them. It checks types and values; geometry
(clipping to the image, scaling YOLO's fractions, checking the size against the file) needs the image's
header and happens in `resolve`, once the file has been read. A record that cannot be used raises
`RecordError` with a reason a person can act on; the caller records it against the input and record.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache

MAX_SIDE = 65_535  # the largest width or height a JPEG can declare; larger numbers are a corrupt record
MAX_COORDINATE = 1e7  # box values beyond this cannot describe any real image (and would overflow floats)
TRANSPOSED_ORIENTATIONS = frozenset({5, 6, 7, 8})  # EXIF orientations that swap width and height
CROWD = "crowd"  # the flag of a COCO iscrowd box


class RecordError(ValueError):
    """A record that cannot be used; the message is the reason recorded in the report."""


class InputError(Exception):
    """A problem with an input as a whole that stops the job (the message names the file and, where it can,
    the line or record)."""


# The names the Ground Truth code and its tests grew up with.
LineError = RecordError
ManifestError = InputError


@dataclass(frozen=True, order=True)
class Source:
    """Where a record came from: its input (as given), its 1-based position there, and for formats
    without lines a description of the record (COCO image id and file name, Label Studio task id, ...)."""

    manifest: str
    line: int
    record: str = ""

    def __str__(self) -> str:
        return f"{self.manifest}:{self.line}" if not self.record else f"{self.manifest} ({self.record})"

    def entry(self) -> dict:
        """How the report names this record."""
        return {"manifest": self.manifest, "record": self.record} if self.record else {"manifest": self.manifest, "line": self.line}


@dataclass(frozen=True)
class RawBox:
    """A box as its source gives it: corners in pixels, or in fractions of the image when the record is
    `relative` (YOLO); the class as the source names it; flags such as difficult, truncated, occluded."""

    name: str
    xmin: float
    ymin: float
    xmax: float
    ymax: float
    flags: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Record:
    """One labelled image as a reader found it, before its image has been read."""

    source: Source
    key: str  # the image's key relative to the images prefix; also its path relative to the images folder
    size: tuple[int, int] | None  # the width and height the annotator saw, when the format records it
    boxes: tuple[RawBox, ...]
    format: str
    relative: bool = False
    creation_date: str = ""  # sortable UTC ISO date of the labelling, "" when the format has none
    label_attribute: str = ""  # Ground Truth only
    note: str = ""  # a choice the reader made that the report states (e.g. which of several annotations)


@dataclass(frozen=True)
class Box(RawBox):
    """One labelled box in pixels of the image as the annotator saw it, already clipped to it, with the id of
    its class in the label map (the raw box it came from, resolved)."""

    label: int = field(kw_only=True)  # label-map id, from 1

    @property
    def width(self) -> float:
        return self.xmax - self.xmin

    @property
    def height(self) -> float:
        return self.ymax - self.ymin


@dataclass(frozen=True)
class LabelledImage:
    """A usable record: which image, the size the annotator saw, and its boxes."""

    source: Source
    order: int  # position in the input (input order, then record): breaks ties when merging
    source_ref: str
    key: str
    width: int
    height: int
    boxes: tuple[Box, ...]
    label_attribute: str
    creation_date: str
    clipped_boxes: int = 0
    dropped: tuple[str, ...] = ()  # source class names of boxes dropped for a class outside data.classes
    crowd: int = 0  # COCO crowd boxes (one box around many objects), not trained on
    format: str = "groundtruth"

    @property
    def class_names(self) -> frozenset[str]:
        return frozenset(box.name for box in self.boxes)


def normalise_class(name: str) -> str:
    """How class names are compared: case and whitespace do not count ("Minor  Dent" is "minor dent")."""
    return " ".join(name.split()).casefold()


@dataclass
class Classes:
    """Source class names onto the configured classes (data.classes), through data.class_map.

    With configured classes, a name that is neither one of them nor mapped onto one gives None: its box is
    dropped and counted. Without, every name is kept, renamed when the map says so."""

    configured: Sequence[str] | None = None
    mapping: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        canonical = {normalise_class(name): name for name in self.configured or ()}
        self._names: dict[str, str] = dict(canonical)
        for source, target in self.mapping.items():
            if self.configured is not None and normalise_class(target) not in canonical:
                raise InputError(f"class map {source}={target}: {target!r} is not one of the classes {list(self.configured)}")
            self._names[normalise_class(source)] = canonical.get(normalise_class(target), target)

    def resolve(self, name: str) -> str | None:
        found = self._names.get(normalise_class(name))
        if found is not None:
            return found
        return None if self.configured is not None else name


class LabelMap:
    """Label-map ids (from 1) for class names.

    With configured classes the ids follow their order. Without, Ground Truth class-maps give the ids
    (`class_id` + 1, since Ground Truth counts from 0 and the OD API keeps 0 for background) and a name
    first seen in another format takes the next free id; inputs that disagree on a name's id stop the job,
    since no rule can tell which one is right.
    """

    def __init__(self, classes: Sequence[str] | None = None):
        self.fixed = classes is not None
        self._ids: dict[str, int] = {name: i + 1 for i, name in enumerate(classes or ())}
        self._first_seen: dict[str, Source] = {}

    def declare(self, class_id: int, name: str, source: Source) -> None:
        """A Ground Truth class-map entry: `name` has `class_id` (ignored when the classes are configured)."""
        if self.fixed:
            return
        wanted = class_id + 1
        known = self._ids.get(name)
        if known is not None and known != wanted:
            raise InputError(
                f"{source}: class {name!r} has class_id {class_id}, but {self._first_seen[name]} gives it class_id {known - 1}; "
                "the manifests come from labelling jobs with different class orders: list the classes in "
                "pipeline.yaml (data.classes) or pass --classes to fix the label map"
            )
        holder = next((n for n, i in self._ids.items() if i == wanted and n != name), None)
        if holder is not None:
            raise InputError(
                f"{source}: class_id {class_id} is {name!r}, but {self._first_seen[holder]} names it {holder!r}; "
                "list the classes in pipeline.yaml (data.classes) or pass --classes to fix the label map"
            )
        if known is None:
            self._ids[name] = wanted
            self._first_seen[name] = source

    def id_of(self, name: str, source: Source) -> int:
        """The id of a (resolved) class name; a new name takes the next free id when the classes are not fixed."""
        known = self._ids.get(name)
        if known is not None:
            return known
        if self.fixed:  # Classes.resolve never returns such a name
            raise RecordError(f"class {name!r} is not one of the configured classes {list(self._ids)}")
        self._ids[name] = max(self._ids.values(), default=0) + 1
        self._first_seen[name] = source
        return self._ids[name]

    def items(self) -> list[tuple[int, str]]:
        """(id, name) pairs in id order."""
        return sorted((i, name) for name, i in self._ids.items())


def relative_key(value: object, what: str) -> str:
    """A file name from a label file as a key under the images folder: relative, inside it, normalised."""
    if not isinstance(value, str) or not value.strip():
        raise RecordError(f"{what} must be a non-empty string, got {short(value)}")
    key = value.replace("\\", "/")
    while key.startswith("./"):
        key = key[2:]
    parts = key.split("/")
    if key.startswith("/") or key.endswith("/") or any(part in ("", ".", "..") for part in parts) or "\x00" in key:
        raise RecordError(f"{what} {value!r} does not name a file inside the images folder")
    return posixpath.normpath(key)


def image_key(source_ref: object, images_prefix: str, what: str = "'source-ref'") -> str:
    """The key of an S3 URI relative to the images prefix, checked to stay inside it."""
    from containers.common.s3 import is_s3_uri

    if not isinstance(source_ref, str) or not source_ref:
        raise RecordError(f"{what} must be a non-empty string, got {short(source_ref)}")
    if not is_s3_uri(source_ref):
        raise RecordError(f"{what} {source_ref!r} is not an s3:// URI")
    prefix = images_prefix if images_prefix.endswith("/") else images_prefix + "/"
    if not source_ref.startswith(prefix):
        raise RecordError(f"{what} {source_ref!r} is not under the images prefix {prefix!r}")
    key = source_ref[len(prefix) :]
    parts = key.split("/")
    if not key or key.endswith("/") or any(part in ("", ".", "..") for part in parts) or "\x00" in key:
        raise RecordError(f"{what} {source_ref!r} does not name a file under the images prefix")
    return posixpath.normpath(key)


def source_ref(images_prefix: str, key: str) -> str:
    return (images_prefix if images_prefix.endswith("/") else images_prefix + "/") + key


def number(value: object, what: str) -> float:
    """A finite coordinate: int or float (bool, str, NaN, inf refused)."""
    if value.__class__ not in (int, float) or not -MAX_COORDINATE <= value <= MAX_COORDINATE:
        raise RecordError(f"{what} must be a number within +-{MAX_COORDINATE:g}, got {short(value)}")
    return float(value)


def number_text(value: object, what: str) -> float:
    """A coordinate written as text (XML attributes and elements, YOLO lines)."""
    if not isinstance(value, str):
        raise RecordError(f"{what} is missing")
    try:
        parsed = float(value.strip())
    except ValueError:
        raise RecordError(f"{what} must be a number, got {short(value)}") from None
    return number(parsed, what)


def image_size(width: object, height: object, what: str) -> tuple[int, int]:
    if not (is_int(width) and is_int(height)) or not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise RecordError(f"{what} needs integer width and height from 1 to {MAX_SIDE}, got {short({'width': width, 'height': height})}")
    return int(width), int(height)


def is_int(value: object) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, float) and value.is_integer())


def short(value: object, limit: int = 80) -> str:
    text = json.dumps(value, sort_keys=True, default=repr)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def utc_date(value: object) -> str:
    """A labelling date as a sortable UTC ISO string; "" when absent or unreadable."""
    return _utc_date_of(value) if isinstance(value, str) else ""


@lru_cache(maxsize=1024)  # the records of a labelling job share a handful of dates
def _utc_date_of(value: str) -> str:
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return ""
    if moment.tzinfo is None:  # Ground Truth writes UTC without an offset
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


def _number(value: float) -> str:
    return f"{value:g}"


def displayed_size(width: int, height: int, orientation: int) -> tuple[int, int]:
    """The size a browser shows a stored image at: EXIF orientations 5-8 swap width and height."""
    return (height, width) if orientation in TRANSPOSED_ORIENTATIONS else (width, height)


def resolve(
    record: Record, order: int, stored: tuple[int, int], orientation: int, images_prefix: str, classes: Classes, label_map: LabelMap
) -> LabelledImage:
    """The record's boxes in pixels of the view the annotator saw, clipped to it, with label-map ids.

    `stored` is the file's width and height as stored, `orientation` its EXIF orientation. A record with no
    size of its own (YOLO, VIA) takes the size the file is displayed at; one whose size fits neither the
    stored nor the displayed size was labelled on another version of the image and is refused."""
    shown = displayed_size(*stored, orientation)
    if record.size is None:
        width, height = shown
    elif record.size in (stored, shown):
        width, height = record.size
    else:
        view = f" (shown as {shown[0]}x{shown[1]} by its EXIF orientation {orientation})" if shown != stored else ""
        raise RecordError(
            f"image is {stored[0]}x{stored[1]}{view} but the labels' image size is {record.size[0]}x{record.size[1]}: "
            "the boxes were drawn on a different version of this image"
        )
    boxes, dropped, clipped, crowd = [], [], 0, 0
    for index, raw in enumerate(record.boxes):
        if CROWD in raw.flags:
            crowd += 1
            continue
        name = classes.resolve(raw.name)
        if name is None:
            dropped.append(raw.name)
            continue
        x0, y0, x1, y1 = raw.xmin, raw.ymin, raw.xmax, raw.ymax
        if record.relative:
            x0, y0, x1, y1 = x0 * width, y0 * height, x1 * width, y1 * height
        cx0, cy0, cx1, cy1 = max(0.0, x0), max(0.0, y0), min(float(width), x1), min(float(height), y1)
        if cx1 <= cx0 or cy1 <= cy0:
            raise RecordError(
                f"box {index} ({raw.name}): degenerate box after clipping to the {width}x{height} image "
                f"(left {_number(x0)}, top {_number(y0)}, width {_number(x1 - x0)}, height {_number(y1 - y0)})"
            )
        clipped += (cx0, cy0, cx1, cy1) != (x0, y0, x1, y1)
        boxes.append(Box(name, cx0, cy0, cx1, cy1, raw.flags, label=label_map.id_of(name, record.source)))
    return LabelledImage(
        source=record.source,
        order=order,
        source_ref=source_ref(images_prefix, record.key),
        key=record.key,
        width=width,
        height=height,
        boxes=tuple(boxes),
        label_attribute=record.label_attribute,
        creation_date=record.creation_date,
        clipped_boxes=clipped,
        dropped=tuple(dropped),
        crowd=crowd,
        format=record.format,
    )


def newest_first(versions: Sequence[tuple[Record, int]]) -> list[tuple[Record, int]]:
    """The merge rule: the labellings of one image, `(record, position in the input)`, newest first.

    When every labelling carries a date (Ground Truth `creation-date`, a Label Studio annotation's
    `updated_at`, CVAT's `dumped`, COCO's `info.date_created`), the newest date wins and equal dates go to the
    later record. When any lacks one, dates cannot be compared with it, and the record later in the input
    wins: in a dataset snapshot the inputs are in upload order, so that is the newest upload."""
    if all(record.creation_date for record, _ in versions):
        return sorted(versions, key=lambda version: (version[0].creation_date, version[1]), reverse=True)
    return sorted(versions, key=lambda version: version[1], reverse=True)
