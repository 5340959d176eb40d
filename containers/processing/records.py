"""Writing what the TensorFlow Object Detection API reads: `tf.train.Example`s in TFRecord shards, and
the label map.

The feature keys are the OD API's standard ones (`object_detection/core/standard_fields.py`,
TfExampleFields), read by its `TfExampleDecoder`. Boxes are normalised to [0, 1] by the image size;
class labels are label-map ids (from 1). Examples are serialised deterministically: protobuf's default
map order varies from process to process, which would make re-runs differ byte for byte.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import sys
import threading
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

from .manifest import Box


_IMPORT: threading.Thread | None = None


def start_tensorflow_import() -> None:
    """Import TensorFlow in the background (8 s on a small machine) while the images are checked."""
    global _IMPORT
    if _IMPORT is None and "tensorflow" not in sys.modules:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        _IMPORT = threading.Thread(target=importlib.import_module, args=("tensorflow",), name="import-tensorflow", daemon=True)
        _IMPORT.start()


def _tf():
    if _IMPORT is not None:
        _IMPORT.join()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf  # noqa: PLC0415 - imported on first use: the checks don't need it

    return tf


def build_example(*, encoded: bytes, key: str, width: int, height: int, boxes: Sequence[Box], image_format: str = "jpeg") -> bytes:
    """One serialized OD API `tf.train.Example` for an image and its boxes (pixels of a width x height image)."""
    tf = _tf()
    feature = tf.train.Feature
    bytes_list, float_list, int64_list = tf.train.BytesList, tf.train.FloatList, tf.train.Int64List

    def b(*values: bytes):
        return feature(bytes_list=bytes_list(value=list(values)))

    def f(values: list[float]):
        return feature(float_list=float_list(value=values))

    def i(*values: int):
        return feature(int64_list=int64_list(value=list(values)))

    features = {
        "image/encoded": b(encoded),
        "image/format": b(image_format.encode()),
        "image/height": i(height),
        "image/width": i(width),
        "image/filename": b(key.encode()),
        "image/source_id": b(key.encode()),
        "image/key/sha256": b(hashlib.sha256(encoded).hexdigest().encode()),
        "image/object/bbox/xmin": f([box.xmin / width for box in boxes]),
        "image/object/bbox/ymin": f([box.ymin / height for box in boxes]),
        "image/object/bbox/xmax": f([box.xmax / width for box in boxes]),
        "image/object/bbox/ymax": f([box.ymax / height for box in boxes]),
        "image/object/class/text": b(*(box.name.encode() for box in boxes)),
        "image/object/class/label": i(*(box.label for box in boxes)),
    }
    example = tf.train.Example(features=tf.train.Features(feature=features))
    return example.SerializeToString(deterministic=True)


class ShardWriter:
    """Writes a split's records round-robin across its shard files, in the order they are given."""

    def __init__(self, folder: Path, names: Sequence[str]):
        folder.mkdir(parents=True, exist_ok=True)
        self.paths = [folder / name for name in names]
        self._stack = ExitStack()
        self._writers = []
        self._count = 0

    def __enter__(self) -> ShardWriter:
        tf = _tf()
        for path in self.paths:
            self._writers.append(self._stack.enter_context(tf.io.TFRecordWriter(str(path))))
        return self

    def write(self, record: bytes) -> None:
        self._writers[self._count % len(self._writers)].write(record)
        self._count += 1

    def __exit__(self, *exc_info) -> None:
        self._stack.close()


def label_map_text(items: Sequence[tuple[int, str]]) -> str:
    """The label map in the OD API's text format (`StringIntLabelMap`), ids from 1."""
    blocks = []
    for label, name in items:
        if label < 1:
            raise ValueError(f"label-map id {label} for {name!r}: ids start at 1 (0 is the background)")
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        blocks.append(f'item {{\n  id: {label}\n  name: "{quoted}"\n  display_name: "{quoted}"\n}}\n')
    return "".join(blocks)
