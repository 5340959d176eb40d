"""Test helpers: the repository's paths and a builder of small Ground Truth datasets on disk."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data" / "car-damage"
SAMPLE = ROOT / "data" / "sample"
SAMPLE_PREFIX = "s3://example-bucket/car-damage/"
PREFIX = "s3://test-bucket/labelled/images/"
ATTRIBUTE = "car-damage"
CLASS_MAP = {"0": "dent", "1": "scratch"}


def jpeg_bytes(size=(64, 48), seed=0, mode="RGB", quality=90, exif_orientation=None, fmt="JPEG") -> bytes:
    """A small image of random blocks (distinct per seed, so content hashes differ)."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, size=(max(1, size[1] // 8), max(1, size[0] // 8), 3), dtype=np.uint8)
    image = Image.fromarray(blocks, "RGB").resize(size, Image.NEAREST)
    if mode != "RGB":
        image = image.convert(mode)
    out = io.BytesIO()
    kwargs = {}
    if fmt == "JPEG":
        kwargs["quality"] = quality
    if exif_orientation:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        kwargs["exif"] = exif.tobytes()
    image.save(out, format=fmt, **kwargs)
    return out.getvalue()


class Dataset:
    """Writes images under a folder standing for an S3 prefix, and Ground Truth manifests naming them."""

    def __init__(self, root: Path, prefix: str = PREFIX):
        self.root = root
        self.images = root / "images"
        self.manifests = root / "manifests"
        self.prefix = prefix
        self.images.mkdir(parents=True, exist_ok=True)
        self.manifests.mkdir(parents=True, exist_ok=True)
        self._seed = 0

    def image(self, key: str, size=(64, 48), data: bytes | None = None, **kwargs) -> str:
        """Write an image file at `key` (random content unless `data` is given); returns the key."""
        path = self.images / key
        path.parent.mkdir(parents=True, exist_ok=True)
        if data is None:
            self._seed += 1
            data = jpeg_bytes(size, seed=kwargs.pop("seed", self._seed), **kwargs)
        path.write_bytes(data)
        return key

    def line(
        self,
        key: str,
        boxes=((0, 4, 4, 20, 16),),
        size=(64, 48),
        attribute: str = ATTRIBUTE,
        class_map=None,
        created: str = "2024-01-01T00:00:00.000000",
    ) -> dict:
        """A Ground Truth bounding-box output line; boxes are (class_id, left, top, width, height)."""
        annotations = [{"class_id": c, "left": x, "top": y, "width": w, "height": h} for c, x, y, w, h in boxes]
        return {
            "source-ref": self.prefix + key,
            attribute: {"image_size": [{"width": size[0], "height": size[1], "depth": 3}], "annotations": annotations},
            f"{attribute}-metadata": {
                "objects": [{"confidence": 1.0} for _ in annotations],
                "class-map": dict(CLASS_MAP if class_map is None else class_map),
                "type": "groundtruth/object-detection",
                "human-annotated": "yes",
                "creation-date": created,
                "job-name": f"labeling-job/{attribute}",
            },
        }

    def manifest(self, name: str, lines) -> Path:
        """Write a manifest; each line is a dict (as JSON) or a str/bytes written as it is."""
        path = self.manifests / name
        with open(path, "wb") as out:
            for line in lines:
                text = json.dumps(line) if isinstance(line, dict) else line
                out.write((text.encode() if isinstance(text, str) else text) + b"\n")
        return path

    def labelled(self, key: str, boxes=((0, 4, 4, 20, 16),), size=(64, 48), **image_kwargs) -> dict:
        """An image and its manifest line in one call."""
        self.image(key, size=size, **image_kwargs)
        return self.line(key, boxes=boxes, size=size)


def records(output: Path, split: str) -> list[dict]:
    """Every record of a split, parsed with TensorFlow's own Example proto."""
    import tensorflow as tf

    result = []
    for path in sorted((output / split).glob("*.tfrecord")):
        for raw in tf.data.TFRecordDataset(str(path)):
            features = tf.train.Example.FromString(raw.numpy()).features.feature
            result.append(
                {
                    "key": features["image/source_id"].bytes_list.value[0].decode(),
                    "size": (features["image/width"].int64_list.value[0], features["image/height"].int64_list.value[0]),
                    "boxes": list(
                        zip(
                            features["image/object/class/label"].int64_list.value,
                            features["image/object/bbox/xmin"].float_list.value,
                            features["image/object/bbox/ymin"].float_list.value,
                            features["image/object/bbox/xmax"].float_list.value,
                            features["image/object/bbox/ymax"].float_list.value,
                            strict=True,
                        )
                    ),
                    "names": [v.decode() for v in features["image/object/class/text"].bytes_list.value],
                    "encoded": features["image/encoded"].bytes_list.value[0],
                }
            )
    return result


def all_records(output: Path) -> dict[str, dict]:
    return {record["key"]: record | {"split": split} for split in ("train", "validation") for record in records(output, split)}


def json_containers(value):
    """Every object and list in a JSON document, outermost first: where a fuzz test changes or drops a field."""
    if isinstance(value, dict):
        yield value
        for child in value.values():
            yield from json_containers(child)
    elif isinstance(value, list):
        yield value
        for child in value:
            yield from json_containers(child)


def all_steps(steps: list[dict]):
    """Every step of a definition's `Steps`, those in condition branches too (every job sits in the branch of the
    gate's floor, CheckGateSettings)."""
    for step in steps:
        yield step
        if step["Type"] == "Condition":
            yield from all_steps(step["Arguments"]["IfSteps"])
            yield from all_steps(step["Arguments"]["ElseSteps"])


def step_named(definition: dict, name: str) -> dict:
    return next(step for step in all_steps(definition["Steps"]) if step["Name"] == name)
