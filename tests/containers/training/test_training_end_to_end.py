"""Training for real on the bundled sample: EfficientDet-D0 at 256 for the local profile's steps, on the CPU,
as the local pipeline's Train step (tests/trained_pipeline.py).

The first run's training job is killed (SIGKILL) after its first checkpoint, as a spot interruption would stop
it; the next run's job must resume from that checkpoint, which the engine kept in the checkpoint prefix, and
finish at the configured step count, then export. Assertions are on real outputs, never on a mAP value: a
from-scratch model after ten steps detects nothing useful.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from containers.inference import image as serving
from containers.inference import libraries
from containers.training.metrics import METRIC_DEFINITIONS

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("trained-model")]


def test_a_stopped_job_resumes_from_its_checkpoint_and_ends_at_the_configured_step(trained_pipeline):
    first, second = trained_pipeline.logs
    assert "train: no pretrained checkpoint: training from random initialisation" in first
    interrupted = trained_pipeline.interrupted
    assert (interrupted.returncode, interrupted.status, interrupted.step("Train")["status"]) == (1, "Failed", "Failed")
    # The engine gave the second job what the first left in the checkpoint prefix: the state file, index and data.
    restored = re.search(r"restored (\d+) checkpoint file\(s\) from s3://\S+/checkpoints/", trained_pipeline.first.output)
    assert restored and int(restored.group(1)) >= 3 and "restored" not in interrupted.output
    resumed = re.search(r"train: resuming from ckpt-(\d+) at step (\d+)", second)
    assert resumed, second[-2000:]
    assert f"ckpt-{resumed.group(1)}" == trained_pipeline.killed_after
    restored = int(resumed.group(2))
    assert 1 <= restored < trained_pipeline.steps
    steps_logged = [int(s) for s in re.findall(r"train step=(\d+)/\d+ ", second)]
    assert steps_logged[0] == restored + 1 and steps_logged[-1] == trained_pipeline.steps
    assert f"train: done at step {trained_pipeline.steps}" in second
    assert (trained_pipeline.checkpoints / f"ckpt-{trained_pipeline.steps}.index").is_file()


def test_the_log_feeds_every_metric_definition(trained_pipeline):
    log = trained_pipeline.logs[1]
    for definition in METRIC_DEFINITIONS:
        values = re.findall(definition["Regex"], log)
        assert values, definition["Name"]
        assert all(np.isfinite(float(v)) for v in values), (definition["Name"], values)


def test_tensorboard_gets_the_losses_and_the_learning_rate(trained_pipeline):
    import tensorflow as tf

    tags = set()
    for path in trained_pipeline.tensorboard.glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            tags.update(value.tag for value in event.summary.value)
    assert {"Loss/total_loss", "Loss/classification_loss", "learning_rate", "steps_per_sec"} <= tags


def test_the_artifact_describes_itself(trained_pipeline):
    model = trained_pipeline.model_dir
    assert (model / "1" / "saved_model.pb").is_file() and (model / "1" / "variables").is_dir()
    # No requirements.txt: the container would pip install at every start. code/lib holds the handler's
    # libraries for the serving image's Python, unpacked from the pinned wheels; the handler reads ../model.json.
    assert sorted(path.name for path in (model / "code").iterdir()) == ["inference.py", "lib"]
    lib = model / "code" / "lib"
    assert (lib / "numpy" / "__init__.py").is_file() and (lib / "PIL" / "Image.py").is_file()
    assert {p.name.split("-")[0] for p in lib.glob("*.dist-info")} == {"numpy", "pillow"}
    assert any(lib.glob(f"numpy/_core/*.cpython-{serving.SERVING_PYTHON.replace('.', '')}-x86_64-linux-gnu.so"))
    assert (model / "label_map.pbtxt").is_file()
    metadata = json.loads((model / "model.json").read_text())
    assert metadata["model"] == "efficientdet-d0" and metadata["input_size"] == 256
    assert metadata["trained_steps"] == trained_pipeline.steps and metadata["classes"] == {"1": "dent", "2": "scratch"}
    assert metadata["handler_libraries"] == [f"{p.name}=={p.version}" for p in libraries.read_pins().values()]
    text = (model / "pipeline.config").read_text()
    assert "num_classes: 2" in text and "min_dimension: 256" in text and f"total_steps: {trained_pipeline.steps}" in text


def test_the_saved_model_detects_on_encoded_images(trained_pipeline, served_model):
    """The exported SavedModel's serving signature as TF Serving calls it (loaded once, by the local endpoint)."""
    import tensorflow as tf

    detect = served_model.endpoint().signature
    images = sorted((trained_pipeline.sample_images).rglob("*.jpg"))[:2]
    out = detect(input_tensor=tf.constant([p.read_bytes() for p in images]))
    assert out["detection_boxes"].shape == (2, 100, 4)
    assert out["detection_scores"].shape == (2, 100) and out["num_detections"].shape == (2,)
    scores = out["detection_scores"].numpy()
    assert np.all((scores >= 0) & (scores <= 1)) and np.all(np.diff(scores, axis=1) <= 1e-6)
    classes = out["detection_classes"].numpy()
    assert set(np.unique(classes)) <= {1.0, 2.0}
    boxes = out["detection_boxes"].numpy()
    assert np.all((boxes >= -1e-3) & (boxes <= 1 + 1e-3))
