"""YOLO (Ultralytics / Darknet) datasets: a folder with `labels/**/*.txt` and `data.yaml` or `classes.txt`.

Each label file holds one box per line, `class cx cy w h`, as fractions of the image's width and height
(Ultralytics docs, "Object detection datasets"). The label file `labels/<dir>/<stem>.txt` belongs to the
image `<dir>/<stem>.<ext>` under the images folder (the extension is the one found there). YOLO records no
image size: the image's own (as displayed, EXIF orientation applied) is used. A segmentation line
(`class x1 y1 x2 y2 ...`) counts as its enclosing box. An empty label file is a background image; an image
under the dataset's `images/` without a label file is reported, never taken for background.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import yaml

from containers.processing.labelling import InputError, RawBox, Record, RecordError, Source, number_text, relative_key, short

from .base import Context, Item, Refusal

FORMAT = "yolo"
CLASS_FILES = ("data.yaml", "data.yml", "classes.txt", "obj.names")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".JPG", ".JPEG", ".PNG")


def looks_like(folder: Path) -> bool:
    return folder.is_dir() and (folder / "labels").is_dir() and any((folder / name).is_file() for name in CLASS_FILES)


def class_names(folder: Path) -> list[str]:
    """The class names in index order, from data.yaml (`names`, a list or an {index: name} map) or a
    one-name-per-line classes.txt / obj.names."""
    for name in CLASS_FILES:
        path = folder / name
        if not path.is_file():
            continue
        if path.suffix in (".yaml", ".yml"):
            try:
                document = yaml.safe_load(path.read_text(encoding="utf-8"))
            except (yaml.YAMLError, UnicodeDecodeError) as exc:
                raise InputError(f"{path}: not readable YAML: {exc}") from None
            names = document.get("names") if isinstance(document, dict) else None
            if isinstance(names, dict) and all(isinstance(k, int) for k in names) and sorted(names) == list(range(len(names))):
                names = [names[i] for i in range(len(names))]
            if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
                raise InputError(f"{path}: 'names' must list the class names (a list, or a map from 0, 1, ... to names), got {short(names)}")
            return names
        try:
            names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        except UnicodeDecodeError:
            raise InputError(f"{path}: not UTF-8 text") from None
        if not names:
            raise InputError(f"{path}: lists no class names")
        return names
    raise InputError(f"{folder}: a YOLO dataset needs data.yaml (with 'names') or classes.txt beside labels/")


def read(path: Path, context: Context) -> Iterator[Item]:
    names = class_names(path)
    labels = path / "labels"
    files = sorted(p for p in labels.rglob("*.txt") if p.is_file() and not p.name.startswith("."))
    labelled = set()
    position = 0
    for file in files:
        position += 1
        relative = file.relative_to(labels)
        source = Source(str(path), position, f"label file labels/{relative.as_posix()}")
        labelled.add(relative.with_suffix("").as_posix())
        try:
            yield _record(source, file, relative, names, context)
        except RecordError as exc:
            yield Refusal(source, str(exc))
    images = path / "images"
    if images.is_dir():
        for image in sorted(p for p in images.rglob("*") if p.suffix in IMAGE_SUFFIXES and p.is_file()):
            relative = image.relative_to(images)
            if relative.with_suffix("").as_posix() in labelled:
                continue
            position += 1
            label = f"labels/{relative.with_suffix('.txt').as_posix()}"
            yield Refusal(
                Source(str(path), position, f"image images/{relative.as_posix()}"),
                f"no label file {label}: write an empty one if the image has no damage (a missing file is taken for a forgotten one)",
            )


def _record(source: Source, file: Path, relative: Path, names: list[str], context: Context) -> Record:
    key = relative_key(_image_for(relative, context), "the image")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise RecordError("not UTF-8 text") from None
    boxes = []
    for number_, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"line {number_}"
        if len(fields) < 5 or (len(fields) > 5 and len(fields) % 2 == 0):
            raise RecordError(f"{where}: expected 'class cx cy w h' (or 'class x1 y1 x2 y2 ...' for a polygon), got {line.strip()[:60]!r}")
        if not fields[0].isdigit() or int(fields[0]) >= len(names):
            raise RecordError(f"{where}: class {fields[0]!r} is not an index of the {len(names)} class names {names}")
        values = [number_text(value, f"{where}: value {i + 1}") for i, value in enumerate(fields[1:])]
        name = names[int(fields[0])]
        if len(values) == 4:
            cx, cy, w, h = values
            boxes.append(RawBox(name, cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
        else:
            xs, ys = values[0::2], values[1::2]
            boxes.append(RawBox(name, min(xs), min(ys), max(xs), max(ys)))
    return Record(source=source, key=key, size=None, boxes=tuple(boxes), format=FORMAT, relative=True)


def _image_for(relative: Path, context: Context) -> str:
    """The key of the image a label file belongs to: its stem with the extension found under the images folder."""
    stem = relative.with_suffix("").as_posix()
    if context.images is None:
        raise RecordError(f"YOLO labels do not say the image's extension: give the images folder to find {stem}.*")
    for suffix in IMAGE_SUFFIXES:
        if (context.images / f"{stem}{suffix}").is_file():
            return f"{stem}{suffix}"
    raise RecordError(f"no image {stem}.jpg (or .jpeg, .png, ...) in the images folder for this label file")
