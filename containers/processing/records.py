"""Writing what the TensorFlow Object Detection API reads: `tf.train.Example`s in TFRecord files, and the
label map.

The feature keys are the OD API's standard ones (`object_detection/core/standard_fields.py`,
TfExampleFields), read by its `TfExampleDecoder`. Boxes are normalised to [0, 1] by the image size;
class labels are label-map ids (from 1).

The bytes are produced here, without TensorFlow: importing it costs 8 s on a small machine and half a
gigabyte of memory, and building an Example through its Python API costs more per image than checking the
image does. The encoding is small and fixed, and the tests hold it to TensorFlow's own, byte for byte:
- `tf.train.Example` is the protobuf message Example{Features features = 1}, Features{map<string,
  Feature> feature = 1}, Feature{oneof: BytesList bytes_list = 1, FloatList float_list = 2, Int64List
  int64_list = 3}, with packed repeated scalars. Map entries are written in the key order of
  `SerializeToString(deterministic=True)` (the default order varies from process to process).
- A TFRecord file is a sequence of: length (uint64, little-endian), masked CRC-32C of the length, the
  data, masked CRC-32C of the data.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

import google_crc32c

from .labelling import Box

_KEYS = {field: bytes([field << 3 | 2]) for field in (1, 2, 3)}  # length-delimited fields 1-3
_ONE_BYTE = [bytes([value]) for value in range(0x80)]


def _varint(value: int) -> bytes:
    if 0 <= value < 0x80:
        return _ONE_BYTE[value]
    value &= 0xFFFFFFFFFFFFFFFF  # negative int64s are ten-byte two's complement
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# A message under construction: its parts, joined once at the end (an image is copied once, not once per
# level of nesting), and their total length.
Parts = tuple[list[bytes], int]


def _field(number: int, parts: Parts) -> Parts:
    chunks, length = parts
    header = _KEYS[number] + _varint(length)
    return [header, *chunks], len(header) + length


def _bytes_field(number: int, payload: bytes) -> Parts:
    header = _KEYS[number] + _varint(len(payload))
    return [header, payload], len(header) + len(payload)


def bytes_feature(values: Iterable[bytes]) -> Parts:
    chunks, length = [], 0
    for value in values:
        header = _KEYS[1] + _varint(len(value))
        chunks += (header, value)
        length += len(header) + len(value)
    return _field(1, (chunks, length))


def float_feature(values: Sequence[float]) -> Parts:
    return _field(2, _bytes_field(1, struct.pack(f"<{len(values)}f", *values)) if values else ([], 0))


def int64_feature(values: Sequence[int]) -> Parts:
    return _field(3, _bytes_field(1, b"".join([_varint(value) for value in values])) if values else ([], 0))


@lru_cache(maxsize=4096)
def _map_key(key: str) -> bytes:
    encoded = key.encode()
    return _KEYS[1] + _varint(len(encoded)) + encoded


def _map_order(key: str) -> list[int]:
    # protobuf's runtime (upb) sorts map keys bytewise, a key before those it is a prefix of coming last.
    return [*key.encode(), 256]


@lru_cache(maxsize=256)
def _sorted_keys(keys: frozenset[str]) -> tuple[str, ...]:
    return tuple(sorted(keys, key=_map_order))


def serialize_example(features: dict[str, Parts]) -> bytes:
    """A serialized `tf.train.Example` from encoded features (the *_feature functions), in the key order of
    `SerializeToString(deterministic=True)`."""
    chunks, length = [], 0
    for key in _sorted_keys(frozenset(features)):
        key_field = _map_key(key)
        value_chunks, value_length = _field(2, features[key])
        entry_chunks, entry_length = _field(1, ([key_field, *value_chunks], len(key_field) + value_length))
        chunks += entry_chunks
        length += entry_length
    example_chunks, _ = _field(1, (chunks, length))
    return b"".join(example_chunks)


def build_example(
    *, encoded: bytes, key: str, width: int, height: int, boxes: Sequence[Box], image_format: str = "jpeg", sha256: str | None = None
) -> bytes:
    """One serialized OD API `tf.train.Example` for an image and its boxes (pixels of a width x height image).
    `sha256` is that of `encoded`, when the caller already knows it."""
    return serialize_example(
        {
            "image/encoded": bytes_feature([encoded]),
            "image/format": bytes_feature([image_format.encode()]),
            "image/height": int64_feature([height]),
            "image/width": int64_feature([width]),
            "image/filename": bytes_feature([key.encode()]),
            "image/source_id": bytes_feature([key.encode()]),
            "image/key/sha256": bytes_feature([(sha256 or hashlib.sha256(encoded).hexdigest()).encode()]),
            "image/object/bbox/xmin": float_feature([box.xmin / width for box in boxes]),
            "image/object/bbox/ymin": float_feature([box.ymin / height for box in boxes]),
            "image/object/bbox/xmax": float_feature([box.xmax / width for box in boxes]),
            "image/object/bbox/ymax": float_feature([box.ymax / height for box in boxes]),
            "image/object/class/text": bytes_feature(box.name.encode() for box in boxes),
            "image/object/class/label": int64_feature([box.label for box in boxes]),
        }
    )


def _masked_crc(data: bytes) -> bytes:
    crc = google_crc32c.value(data)
    return struct.pack("<I", (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


def tfrecord(data: bytes) -> bytes:
    """One record in TFRecord framing."""
    length = struct.pack("<Q", len(data))
    return length + _masked_crc(length) + data + _masked_crc(data)


class ShardWriter:
    """Writes a split's records round-robin across its shard files, in the order they are given."""

    def __init__(self, folder: Path, names: Sequence[str]):
        folder.mkdir(parents=True, exist_ok=True)
        self.paths = [folder / name for name in names]
        self._files = []
        self._count = 0

    def __enter__(self) -> ShardWriter:
        self._files = [open(path, "wb") for path in self.paths]  # noqa: SIM115 - closed in __exit__
        return self

    def write(self, record: bytes) -> None:
        self._files[self._count % len(self._files)].write(tfrecord(record))
        self._count += 1

    def __exit__(self, *exc_info) -> None:
        for handle in self._files:
            handle.close()


def label_map_text(items: Sequence[tuple[int, str]]) -> str:
    """The label map in the OD API's text format (`StringIntLabelMap`), ids from 1."""
    blocks = []
    for label, name in items:
        if label < 1:
            raise ValueError(f"label-map id {label} for {name!r}: ids start at 1 (0 is the background)")
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        blocks.append(f'item {{\n  id: {label}\n  name: "{quoted}"\n  display_name: "{quoted}"\n}}\n')
    return "".join(blocks)
