"""A stand-in for the exported detector, for fast tests of the code around it (evaluation, inference).

It has the interface of the SavedModel that training exports (the OD API's exporter with input type
`encoded_image_string_tensor`): the `serving_default` signature takes `input_tensor`, a [N] tf.string of
encoded JPEG/PNG images, and returns
- `detection_boxes`   [N, 100, 4] float32, normalised ymin, xmin, ymax, xmax;
- `detection_scores`  [N, 100] float32, best first;
- `detection_classes` [N, 100] float32, label-map ids (from 1);
- `num_detections`    [N] float32, how many of the 100 rows are real.
It decodes each image (so a broken one fails as it would in the real model) and returns the same
detections, given at construction, for every image. A model folder laid out as training writes it
(`1/` SavedModel, `model.json` naming the classes) comes from `write_model_dir`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

MAX_DETECTIONS = 100


def save_fake_detector(path: Path, detections: Sequence[tuple[int, float, float, float, float, float]]) -> Path:
    """Save a SavedModel at `path` answering every image with `detections`:
    (class_id, score, ymin, xmin, ymax, xmax) rows, normalised boxes."""
    import tensorflow as tf

    rows = sorted(detections, key=lambda d: -d[1])[:MAX_DETECTIONS]
    count = len(rows)
    padding = MAX_DETECTIONS - count
    boxes = tf.constant([list(r[2:]) for r in rows] + [[0.0] * 4] * padding, tf.float32)
    scores = tf.constant([r[1] for r in rows] + [0.0] * padding, tf.float32)
    classes = tf.constant([float(r[0]) for r in rows] + [1.0] * padding, tf.float32)

    class FakeDetector(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec(shape=[None], dtype=tf.string)])
        def __call__(self, input_tensor):
            # Decode every image, as the real graph does, so broken input fails the same way.
            shapes = tf.map_fn(
                lambda data: tf.shape(tf.io.decode_image(data, channels=3, expand_animations=False)), input_tensor, fn_output_signature=tf.int32
            )
            n = tf.shape(shapes)[0]
            return {
                "detection_boxes": tf.tile(boxes[tf.newaxis], [n, 1, 1]),
                "detection_scores": tf.tile(scores[tf.newaxis], [n, 1]),
                "detection_classes": tf.tile(classes[tf.newaxis], [n, 1]),
                "num_detections": tf.fill([n], tf.constant(float(count))),
            }

    module = FakeDetector()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.__call__})
    return path


def write_model_dir(folder: Path, detections, classes: Sequence[str] = ("dent", "scratch")) -> Path:
    """A model folder as training writes it: `1/` (the SavedModel) and `model.json`, naming `classes` by ids
    from 1 as training does (`"classes": {"1": "dent", ...}`)."""
    folder.mkdir(parents=True, exist_ok=True)
    save_fake_detector(folder / "1", detections)
    (folder / "model.json").write_text(json.dumps({"classes": {str(i): name for i, name in enumerate(classes, 1)}}, indent=2) + "\n")
    return folder


def write_model_archive(folder: Path, detections, classes: Sequence[str] = ("dent", "scratch")) -> Path:
    """`folder`/model.tar.gz holding a model folder (write_model_dir) at its root, as SageMaker packs a training job's model."""
    import tarfile

    model = write_model_dir(folder / "model", detections, classes)
    archive = folder / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(model.iterdir()):
            tar.add(path, arcname=path.name)
    return archive
