"""VGG Image Annotator (VIA) 2 JSON: a saved project or its "Export annotations (as json)".

    {"a.jpg12345": {"filename": "a.jpg", "size": 12345, "regions": [
        {"shape_attributes": {"name": "rect", "x": 10, "y": 20, "width": 30, "height": 15},
         "region_attributes": {"damage": "dent"}}], "file_attributes": {}}}

A project wraps that under `_via_img_metadata` and declares the attributes under `_via_attributes`. The
same entries saved as a JSON list (`[{"filename": ..., "regions": ...}, ...]`, what code that loads an export
with `list(json.load(f).values())` writes back) are read alike, each named by its index. The
class is the value of a region attribute: `--via-attribute NAME`, else the only one the file uses. A
`rect` is the box; a `polygon` counts as its enclosing box; other shapes (circle, ellipse, point,
polyline) make the image unusable. `size` is the file's size in bytes, not its dimensions, so the image's
own size is used. Format: VIA 2 source, `via_img_metadata` (robots.ox.ac.uk/~vgg/software/via).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from containers.processing.labelling import InputError, RawBox, Record, RecordError, Source, number, relative_key, short

from .base import Context, Item, Refusal, load_json

FORMAT = "via"
UNSUPPORTED = ("circle", "ellipse", "point", "polyline")


def looks_like(document: object) -> bool:
    if isinstance(document, dict) and "_via_img_metadata" in document:
        return True
    entries = list(document.values()) if isinstance(document, dict) else document if isinstance(document, list) else []
    return bool(entries) and all(isinstance(v, dict) and "filename" in v and "regions" in v for v in entries[:10])


def _entries(path: Path, document: object) -> list[tuple[str, object]]:
    """(what names the entry, the entry) of each image: by key in the object forms, by position in a list."""
    metadata = document.get("_via_img_metadata", document) if isinstance(document, dict) else document
    if isinstance(metadata, dict):
        return [(f"key {identifier}", entry) for identifier, entry in metadata.items()]
    if isinstance(metadata, list):
        return [(f"index {index}", entry) for index, entry in enumerate(metadata)]  # a JSON list counts from 0
    raise InputError(f"{path}: not VIA JSON: expected an object or a list of images (or a project with '_via_img_metadata')")


def read(path: Path, context: Context, document: object = None) -> Iterator[Item]:
    document = load_json(path) if document is None else document
    entries = _entries(path, document)
    attribute = context.via_attribute or _only_attribute(path, document, [entry for _, entry in entries])
    for position, (identifier, entry) in enumerate(entries, start=1):
        filename = entry.get("filename") if isinstance(entry, dict) else None
        source = Source(str(path), position, identifier)
        try:
            yield _record(source, entry, attribute)
        except RecordError as exc:
            yield Refusal(source, str(exc) if filename is None else f"{exc} ({filename})")


def _only_attribute(path: Path, document: object, entries: list[object]) -> str:
    attributes = document.get("_via_attributes") if isinstance(document, dict) else None
    declared = attributes.get("region") if isinstance(attributes, dict) else None
    names = {name for name in declared if isinstance(name, str)} if isinstance(declared, dict) else set()
    if not names:
        for entry in entries:
            for region in _regions(entry.get("regions")) if isinstance(entry, dict) else []:
                attributes = region.get("region_attributes") if isinstance(region, dict) else None
                if isinstance(attributes, dict):
                    names.update(name for name in attributes if isinstance(name, str))
    if len(names) == 1:
        return next(iter(names))
    if not names:
        raise InputError(f"{path}: no region attribute names the class (VIA regions need an attribute such as 'damage')")
    raise InputError(f"{path}: the regions have several attributes {sorted(names)}; name the class attribute with --via-attribute")


def _record(source: Source, entry: object, attribute: str) -> Record:
    if not isinstance(entry, dict):
        raise RecordError(f"the image entry is not an object: {short(entry)}")
    key = relative_key(entry.get("filename"), "'filename'")
    regions = entry.get("regions")
    if not isinstance(regions, list | dict):
        raise RecordError(f"'regions' must be a list, got {short(regions)}")
    regions = _regions(regions)
    boxes = []
    for index, region in enumerate(regions):
        where = f"region {index}"
        if not isinstance(region, dict) or not isinstance(region.get("shape_attributes"), dict):
            raise RecordError(f"{where} has no 'shape_attributes' object")
        shape = region["shape_attributes"]
        name = _class(region.get("region_attributes"), attribute, where)
        kind = shape.get("name")
        if kind == "rect":
            x, y, w, h = (number(shape.get(field), f"{where}: {field}") for field in ("x", "y", "width", "height"))
            boxes.append(RawBox(name, x, y, x + w, y + h))
        elif kind == "polygon":
            xs, ys = shape.get("all_points_x"), shape.get("all_points_y")
            if not isinstance(xs, list) or not isinstance(ys, list) or not xs or len(xs) != len(ys):
                raise RecordError(f"{where}: a polygon needs all_points_x and all_points_y of the same, non-zero length")
            xs = [number(x, f"{where}: all_points_x") for x in xs]
            ys = [number(y, f"{where}: all_points_y") for y in ys]
            boxes.append(RawBox(name, min(xs), min(ys), max(xs), max(ys)))
        elif kind in UNSUPPORTED:
            raise RecordError(f"{where}: a {kind} has no box; draw rectangles, or polygons, for damage")
        else:
            raise RecordError(f"{where}: unknown shape {short(kind)}")
    return Record(source=source, key=key, size=None, boxes=tuple(boxes), format=FORMAT)


def _regions(regions: object) -> list:
    """The regions of an entry: a list (VIA 2), or VIA 1's object keyed "0", "1", ..."""
    if isinstance(regions, dict):
        return list(regions.values())
    return regions if isinstance(regions, list) else []


def _class(attributes: object, attribute: str, where: str) -> str:
    value = attributes.get(attribute) if isinstance(attributes, dict) else None
    if isinstance(value, dict):  # a checkbox attribute: {option: true, ...}
        chosen = [option for option, on in value.items() if on is True]
        if len(chosen) != 1:
            raise RecordError(f"{where}: the checkbox attribute {attribute!r} must have exactly one option ticked, got {short(value)}")
        value = chosen[0]
    if not isinstance(value, str) or not value.strip():
        raise RecordError(f"{where}: no class in the region attribute {attribute!r} (it has {short(attributes)})")
    return value.strip()
