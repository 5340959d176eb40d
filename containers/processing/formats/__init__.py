"""The label formats PrepareData reads, told apart by their content.

`inputs(paths, format)` lists what the job was given (a folder stands for the inputs in it, as a
Processing input downloads an S3 prefix); `read(input, context)` yields one `Record` or `Refusal` per record.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

from containers.processing.labelling import InputError

from . import coco, cvat, groundtruth, labelstudio, via, voc, yolo
from .base import Context, Item, Refusal, load_json

FORMATS = ("groundtruth", "coco", "voc", "yolo", "labelstudio", "cvat", "via")
AUTO = "auto"
LOOKED_FOR = (
    "a Ground Truth manifest (JSON lines with 'source-ref'), COCO JSON ('images' and 'annotations'), "
    "Label Studio JSON (tasks with 'data'), VIA JSON ('_via_img_metadata', or images with 'filename' and 'regions'), "
    "Pascal VOC XML (<annotation>), CVAT XML (<annotations>) or a YOLO folder (labels/ beside data.yaml or classes.txt)"
)

__all__ = ["AUTO", "FORMATS", "Context", "Input", "Item", "Refusal", "detect", "inputs", "read"]


@dataclass(frozen=True)
class Input:
    """One labels input: a file, or a YOLO dataset folder, and its format (detected or given)."""

    path: Path
    format: str

    def sha256(self) -> str:
        """The file's hash; a folder's is that of its `sha256sum`-style listing of every file but images (hash,
        two spaces, relative path, newline; in path order), so it changes when any label file in it does."""
        if self.path.is_file():
            return _file_sha256(self.path)
        labels = [p for p in sorted(self.path.rglob("*")) if p.is_file() and p.suffix not in yolo.IMAGE_SUFFIXES]
        listing = "".join(f"{_file_sha256(p)}  {p.relative_to(self.path).as_posix()}\n" for p in labels)
        return hashlib.sha256(listing.encode()).hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def inputs(paths: list[Path], label_format: str = AUTO) -> list[Input]:
    """The inputs named, in order. A YOLO dataset folder is one input; any other folder stands for the
    files under it (in path order; hidden files skipped), each detected on its own."""
    found: list[Input] = []
    for path in paths:
        if not path.exists():
            raise InputError(f"{path}: no such file or folder")
        if path.is_dir() and not yolo.looks_like(path):
            files = _files(path)
            if not files:
                raise InputError(f"{path}: the folder holds no labels file")
            found.extend(Input(file, detect(file) if label_format == AUTO else _checked(file, label_format)) for file in files)
        else:
            found.append(Input(path, detect(path) if label_format == AUTO else _checked(path, label_format)))
    return found


def _files(folder: Path) -> list[Path]:
    """The files under `folder`, except those inside YOLO datasets, which stand as one input each."""
    result: list[Path] = []
    for child in sorted(folder.iterdir()):
        if child.name.startswith("."):
            continue
        if child.is_dir():
            result.extend([child] if yolo.looks_like(child) else _files(child))
        elif child.is_file():
            result.append(child)
    return result


def _checked(path: Path, label_format: str) -> str:
    if label_format not in FORMATS:
        raise InputError(f"unknown label format {label_format!r}: one of {', '.join((AUTO, *FORMATS))}")
    if (label_format == "yolo") != path.is_dir():
        wanted = "a YOLO dataset folder" if label_format == "yolo" else f"a {label_format} file"
        raise InputError(f"{path}: --label-format {label_format} reads {wanted}")
    return label_format


def detect(path: Path) -> str:
    """The format of an input, from its content; an `InputError` naming what was looked for otherwise."""
    if path.is_dir():
        if yolo.looks_like(path):
            return "yolo"
        raise InputError(f"{path}: cannot tell the label format of this folder: looked for {LOOKED_FOR}")
    try:
        with open(path, "rb") as handle:
            head = handle.read(1 << 16)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not text and len(head) < 1 << 16:  # blank: JSON lines with no line, as an empty labelling job's manifest
        return "groundtruth"
    if text.startswith(b"<"):
        root = _root_tag(path)
        if root == "annotation":
            return "voc"
        if root == "annotations":
            return "cvat"
        raise InputError(f"{path}: an XML file with root <{root}>: looked for {LOOKED_FOR}")
    first = text.split(b"\n", 1)[0]
    try:
        line = json.loads(first)
    except ValueError:
        line = None
    if groundtruth.looks_like(line):
        return "groundtruth"
    if text.startswith((b"{", b"[")):
        document = load_json(path)
        for name, module in (("coco", coco), ("via", via), ("labelstudio", labelstudio)):
            if module.looks_like(document):
                return name
    raise InputError(f"{path}: cannot tell the label format: looked for {LOOKED_FOR}; name it with --label-format")


def _root_tag(path: Path) -> str:
    try:
        for _, element in ElementTree.iterparse(path, events=("start",)):
            return element.tag
    except ElementTree.ParseError as exc:
        raise InputError(f"{path}: not well-formed XML: {exc}") from None
    return ""


READERS = {
    "groundtruth": groundtruth.read,
    "coco": coco.read,
    "voc": voc.read,
    "yolo": yolo.read,
    "labelstudio": labelstudio.read,
    "cvat": cvat.read,
    "via": via.read,
}


def read(source: Input, context: Context) -> Iterator[Item]:
    """Every record of the input, as a `Record` or a `Refusal`."""
    return READERS[source.format](source.path, context)
