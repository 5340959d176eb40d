"""Reading the validation set: OD API `tf.train.Example`s in TFRecord files, as PrepareData writes them
(`containers/processing/records.py`).

Records are streamed, one at a time: a validation set of thousands of photos need not fit in memory, only
its boxes do. Ground-truth boxes stay normalised, as stored; `coco.py` turns them into pixels.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import EvaluationError, brief

RECORD_PATTERN = "*.tfrecord"


@dataclass(frozen=True)
class GroundTruth:
    """One validation image: its size and labelled boxes, normalised (xmin, ymin, xmax, ymax), label-map ids."""

    key: str
    width: int
    height: int
    boxes: tuple[tuple[float, float, float, float], ...]
    labels: tuple[int, ...]


@dataclass(frozen=True)
class Record:
    """A validation image as the model takes it (encoded bytes) with its ground truth."""

    truth: GroundTruth
    encoded: bytes


def validation_files(folder: Path) -> list[Path]:
    """The TFRecord files of the validation set, in a fixed order (their path under `folder`), so that image
    ids are the same on every run. An empty list is a valid (if useless) validation set; a missing folder is
    a mistake in the arguments."""
    if not folder.exists():
        raise EvaluationError(f"{folder}: the validation folder does not exist (pass --validation)")
    if not folder.is_dir():
        raise EvaluationError(f"{folder}: --validation must be a folder of {RECORD_PATTERN} files")
    found = [path for path in folder.rglob(RECORD_PATTERN) if path.is_file()]
    return sorted(found, key=lambda path: path.relative_to(folder).as_posix())


def read_records(files: Iterable[Path], label_ids: Mapping[str, int]) -> Iterator[Record]:
    """Every record of `files`, in order. `label_ids` (class name -> id) resolves records that carry class
    names but no ids. Raises `EvaluationError` naming the file (and record) that cannot be read."""
    import tensorflow as tf

    for path in files:
        dataset = tf.data.TFRecordDataset(str(path)).as_numpy_iterator()
        index = 0
        while True:
            try:
                raw = next(dataset)
            except StopIteration:
                break
            except tf.errors.OpError as exc:
                raise EvaluationError(f"{path}: unreadable TFRecord after {index} record(s) ({brief(exc.message)})") from None
            index += 1
            yield Record(*parse_example(raw, label_ids, f"{path}: record {index}"))


def parse_example(raw: bytes, label_ids: Mapping[str, int], where: str) -> tuple[GroundTruth, bytes]:
    """The ground truth and encoded image of one serialized OD API `tf.train.Example`; `where` names it in
    errors. Image size comes from the record, or from the image header when the record lacks it (the OD
    API's own decoder does not need it either)."""
    from google.protobuf.message import DecodeError
    from tensorflow.core.example import example_pb2

    try:
        features = example_pb2.Example.FromString(raw).features.feature
    except DecodeError:
        raise EvaluationError(f"{where}: not a tf.train.Example") from None

    def values(name: str, kind: str) -> list:
        return list(getattr(features[name], kind).value) if name in features else []

    encoded = values("image/encoded", "bytes_list")
    if len(encoded) != 1:
        raise EvaluationError(f"{where}: no image/encoded image")
    key = (values("image/source_id", "bytes_list") or values("image/filename", "bytes_list") or [where.encode()])[0].decode(errors="replace")
    width, height = values("image/width", "int64_list"), values("image/height", "int64_list")
    size = (int(width[0]), int(height[0])) if width and height else _image_size(encoded[0], f"{where} ({key})")
    if size[0] < 1 or size[1] < 1:
        raise EvaluationError(f"{where} ({key}): image size {size[0]}x{size[1]} is not positive")
    corners = [values(f"image/object/bbox/{name}", "float_list") for name in ("xmin", "ymin", "xmax", "ymax")]
    if len({len(c) for c in corners}) != 1:
        raise EvaluationError(f"{where} ({key}): the box coordinate lists differ in length ({', '.join(str(len(c)) for c in corners)})")
    boxes = tuple(zip(*corners, strict=True))
    labels = _labels(values("image/object/class/label", "int64_list"), values("image/object/class/text", "bytes_list"), len(boxes), label_ids)
    if labels is None:
        raise EvaluationError(f"{where} ({key}): {len(boxes)} box(es) but no matching image/object/class/label ids or known class/text names")
    return GroundTruth(key, size[0], size[1], boxes, labels), encoded[0]


def _labels(ids: list[int], texts: list[bytes], count: int, label_ids: Mapping[str, int]) -> tuple[int, ...] | None:
    """The boxes' label-map ids: the stored ids, else the stored class names looked up in the label map."""
    if len(ids) == count:
        return tuple(int(i) for i in ids)
    names = [text.decode(errors="replace") for text in texts]
    if len(names) == count and all(name in label_ids for name in names):
        return tuple(label_ids[name] for name in names)
    return None


def _image_size(encoded: bytes, where: str) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(encoded)) as image:
            return image.size
    except (UnidentifiedImageError, OSError):
        raise EvaluationError(f"{where}: no image/width and image/height, and the image cannot be read") from None
