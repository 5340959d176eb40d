"""What a label-format reader gets and gives back.

A reader is a function `read(path, context)` that yields, for every record of its input, either a
`Record` or a `Refusal` with the reason it cannot be used; problems with the input as a whole raise
`InputError`. Readers never open images: `context.images` is only listed (YOLO finds an image's extension).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

from containers.processing.labelling import Classes, InputError, LabelMap, Record, RecordError, Source


@dataclass(frozen=True)
class Refusal:
    """A record that cannot be used, with the reason and, when known, the image it names."""

    source: Source
    reason: str
    source_ref: str | None = None


@dataclass
class Context:
    """What readers need besides the file: the prefix keys are relative to, the images folder (listed, not
    read), and the choices the job was given."""

    images_prefix: str
    images: Path | None = None
    label_attribute: str | None = None
    via_attribute: str | None = None
    classes: Classes | None = None
    label_map: LabelMap | None = None

    def __post_init__(self) -> None:
        self.classes = self.classes or Classes()
        self.label_map = self.label_map or LabelMap(self.classes.configured)


Item = Record | Refusal
Reader = Callable[[Path, Context], Iterator[Item]]


def attempt(source: Source, build: Callable[[], Record], source_ref: str | None = None) -> Item:
    """`build()`'s record, or its refusal when it raises `RecordError`."""
    try:
        return build()
    except RecordError as exc:
        return Refusal(source, str(exc), source_ref)


def load_json(path: Path) -> object:
    try:
        with open(path, "rb") as handle:
            return json.load(handle)
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None


def load_xml(path: Path) -> ElementTree.Element:
    # The standard library's parser resolves no external entities, and the expat it bundles (2.4.1 and
    # later) refuses entity-expansion bombs (Python docs, "XML vulnerabilities").
    try:
        return ElementTree.parse(path).getroot()
    except ElementTree.ParseError as exc:
        line, column = exc.position
        raise InputError(f"{path}: not well-formed XML at line {line} column {column}: {exc}") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None


def text_of(element: ElementTree.Element | None, tag: str) -> str | None:
    """The stripped text of `element`'s first child `tag`, or None."""
    if element is None:
        return None
    child = element.find(tag)
    return child.text.strip() if child is not None and child.text is not None else None


def integer_text(text: str | None) -> object:
    """An XML attribute or element holding a size: the int it writes ("640", "640.0"), else the text itself,
    for `image_size` to refuse with what it got."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() else value
