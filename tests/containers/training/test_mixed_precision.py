"""Mixed precision runs the OD API's EfficientDet: float16 predictions are cast for its float32 losses, and
the loss is scaled. CI has no GPU, so the float16 path is forced on the CPU (slowly) for two steps."""

from __future__ import annotations

import math
import re

import pytest

from containers.training.hyperparameters import parse_hyperparameters
from containers.training.train import Paths, mixed_precision_wanted, train, write_pipeline_config

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("trained-model")]  # one heavy TensorFlow group: not beside the pipeline run


def test_auto_uses_mixed_precision_only_on_gpus():
    assert mixed_precision_wanted("auto", []) is False
    assert mixed_precision_wanted("true", []) is True
    assert mixed_precision_wanted("false", ["gpu"]) is False


def test_two_mixed_precision_steps_train_with_finite_losses(tmp_path, prepared_sample):
    hp = parse_hyperparameters({"image_size": "256", "batch_size": "1", "num_steps": "2", "log_every": "1", "mixed_precision": "true"})
    paths = Paths(
        train=prepared_sample / "train",
        validation=prepared_sample / "validation",
        label_map=prepared_sample / "label_map.pbtxt",
        pretrained=None,
        model_dir=tmp_path / "model",
        checkpoints=tmp_path / "checkpoints",
        tensorboard=tmp_path / "tensorboard",
    )
    write_pipeline_config(hp, paths)
    lines: list[str] = []
    try:
        assert train(hp, paths, log=lines.append) == 2
    finally:
        import tensorflow as tf

        tf.keras.mixed_precision.set_global_policy("float32")
    assert "mixed precision on" in lines[0]
    losses = [float(v) for v in re.findall(r"train step=\d+/2 loss=(\S+)", "\n".join(lines))]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    assert (paths.checkpoints / "ckpt-2.index").is_file()
