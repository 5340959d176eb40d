"""CVAT for images 1.1 XML (CVAT's own export format).

    <annotations><version>1.1</version><meta>...</meta>
      <image id="0" name="a.jpg" width="640" height="480">
        <box label="dent" xtl="1.5" ytl="2" xbr="30" ybr="40" occluded="0" rotation="0"/>
        <polygon label="scratch" points="x1,y1;x2,y2;..."/>
      </image></annotations>

Boxes are in pixels (top-left, bottom-right). A polygon counts as its enclosing box. A rotated box, or a
shape that has no box (polyline, points, ellipse, mask, skeleton), makes the image unusable: training on
it without that damage would teach the model the damage is not there. `occluded` boxes are kept and
counted. Video `<track>`s are refused, one record each. Tags (image-level labels) are ignored.
Format: CVAT documentation, "CVAT for image" export format.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

from containers.processing.labelling import RawBox, Record, RecordError, Source, image_size, number_text, relative_key, utc_date

from .base import Context, Item, Refusal, integer_text, load_xml, text_of

FORMAT = "cvat"
UNSUPPORTED = ("polyline", "points", "ellipse", "mask", "skeleton", "cuboid")


def looks_like(root: ElementTree.Element) -> bool:
    return root.tag == "annotations"


def read(path: Path, context: Context, root: ElementTree.Element | None = None) -> Iterator[Item]:
    root = load_xml(path) if root is None else root
    meta = root.find("meta")
    dumped = text_of(meta, "dumped") if meta is not None else None
    date = utc_date(dumped)
    name = str(path)
    position = 0
    for element in root:
        if element.tag not in ("image", "track"):
            continue
        position += 1
        label = f"image id {element.get('id', '?')} ({element.get('name', '?')})" if element.tag == "image" else f"track id {element.get('id', '?')}"
        source = Source(name, position, label)
        if element.tag == "track":
            yield Refusal(source, "a video track: only images (CVAT for images) are read")
            continue
        try:
            yield _record(source, element, date)
        except RecordError as exc:
            yield Refusal(source, str(exc))


def _record(source: Source, image: ElementTree.Element, date: str) -> Record:
    key = relative_key(image.get("name"), "the image's name")
    size = None
    if image.get("width") is not None or image.get("height") is not None:
        size = image_size(integer_text(image.get("width")), integer_text(image.get("height")), "the image's width and height")
    boxes = []
    for index, shape in enumerate(image):
        where = f"shape {index} (<{shape.tag}>)"
        if shape.tag == "tag":
            continue
        name = shape.get("label")
        if shape.tag in UNSUPPORTED:
            raise RecordError(f"{where}: a {shape.tag} has no box; draw boxes, or polygons, for damage")
        if shape.tag not in ("box", "polygon"):
            raise RecordError(f"{where}: an unknown shape")
        if not name:
            raise RecordError(f"{where} has no label")
        flags = frozenset({"occluded"}) if shape.get("occluded") == "1" else frozenset()
        if shape.tag == "box":
            rotation = number_text(shape.get("rotation", "0"), f"{where}: rotation")
            if rotation % 360:
                raise RecordError(f"{where} ({name}) is rotated by {rotation:g} degrees; the detector trains on upright boxes only")
            xtl, ytl, xbr, ybr = (number_text(shape.get(field), f"{where}: {field}") for field in ("xtl", "ytl", "xbr", "ybr"))
            boxes.append(RawBox(name, xtl, ytl, xbr, ybr, flags))
        else:
            xs, ys = _points(shape.get("points"), where)
            boxes.append(RawBox(name, min(xs), min(ys), max(xs), max(ys), flags))
    return Record(source=source, key=key, size=size, boxes=tuple(boxes), format=FORMAT, creation_date=date)


def _points(text: str | None, where: str) -> tuple[list[float], list[float]]:
    if not text:
        raise RecordError(f"{where} has no points")
    xs, ys = [], []
    for pair in text.split(";"):
        parts = pair.split(",")
        if len(parts) != 2:
            raise RecordError(f"{where}: points must be 'x,y;x,y;...', got {text[:60]!r}")
        xs.append(number_text(parts[0], f"{where}: a point's x"))
        ys.append(number_text(parts[1], f"{where}: a point's y"))
    return xs, ys
