"""Pascal VOC XML: one file per image (what LabelImg, CVAT and Roboflow export as "Pascal VOC").

    <annotation><filename>a.jpg</filename><size><width/><height/></size>
      <object><name>dent</name><difficult>0</difficult><truncated>0</truncated>
        <bndbox><xmin/><ymin/><xmax/><ymax/></bndbox></object></annotation>

The corners are 1-based pixel indices, both inclusive (the VOC development kit's convention): pixel
column `xmin` is the box's first, `xmax` its last, so in the 0-based continuous coordinates the records
use the box spans [xmin - 1, xmax]. `difficult` and `truncated` boxes are kept and counted in the report.
A `size` of 0 (some tools write it when they did not read the image) means unknown: the file's is used.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

from containers.processing.labelling import RawBox, Record, RecordError, Source, image_size, number_text, relative_key

from .base import Context, Item, Refusal, integer_text, load_xml, text_of

FORMAT = "voc"
FLAGS = ("difficult", "truncated")


def looks_like(root: ElementTree.Element) -> bool:
    return root.tag == "annotation"


def read(path: Path, context: Context, root: ElementTree.Element | None = None) -> Iterator[Item]:
    root = load_xml(path) if root is None else root
    filename = text_of(root, "filename")
    source = Source(str(path), 1, f"file {path.name}")
    if root.tag != "annotation":
        yield Refusal(source, f"the root element is <{root.tag}>, not <annotation>")
        return
    try:
        yield _record(source, root, filename)
    except RecordError as exc:
        yield Refusal(source, str(exc))


def _record(source: Source, root: ElementTree.Element, filename: str | None) -> Record:
    if filename is None:
        path = text_of(root, "path")
        filename = path.replace("\\", "/").rsplit("/", 1)[-1] if path else None
    key = relative_key(filename, "<filename>")
    size_element = root.find("size")
    size = None
    if size_element is not None:
        width, height = text_of(size_element, "width"), text_of(size_element, "height")
        if width not in (None, "0") or height not in (None, "0"):
            size = image_size(integer_text(width), integer_text(height), "<size>")
    boxes = []
    for index, element in enumerate(root.findall("object")):
        where = f"object {index}"
        name = text_of(element, "name")
        if not name:
            raise RecordError(f"{where} has no <name>")
        bndbox = element.find("bndbox")
        if bndbox is None:
            raise RecordError(f"{where} ({name}) has no <bndbox>")
        xmin, ymin, xmax, ymax = (number_text(text_of(bndbox, tag), f"{where}: <{tag}>") for tag in ("xmin", "ymin", "xmax", "ymax"))
        flags = frozenset(flag for flag in FLAGS if text_of(element, flag) in ("1", "true", "True"))
        boxes.append(RawBox(name, xmin - 1, ymin - 1, xmax, ymax, flags))
    return Record(source=source, key=key, size=size, boxes=tuple(boxes), format=FORMAT)
