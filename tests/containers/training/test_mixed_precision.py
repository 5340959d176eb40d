"""Mixed precision runs the OD API's EfficientDet: float16 predictions are cast for its float32 losses, and the loss
is scaled. CI has no GPU, so the float16 path is forced on the CPU (slowly) in the trained pipeline's interrupted
run (tests/trained_pipeline.py), whose checkpoint the next run resumes in float32."""

from __future__ import annotations

import math
import re

import pytest

from containers.training.train import mixed_precision_wanted

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("trained-model")]


def test_auto_uses_mixed_precision_only_on_gpus():
    assert mixed_precision_wanted("auto", []) is False
    assert mixed_precision_wanted("true", []) is True
    assert mixed_precision_wanted("false", ["gpu"]) is False


def test_mixed_precision_steps_train_with_finite_losses_and_their_checkpoint_resumes_in_float32(trained_pipeline):
    mixed, resumed = trained_pipeline.logs
    assert re.search(r"^train: efficientdet-d0 at 256px, .*mixed precision on$", mixed, re.M), mixed[-2000:]
    assert re.search(r"^train: efficientdet-d0 at 256px, .*mixed precision off$", resumed, re.M), resumed[-2000:]
    losses = [float(v) for v in re.findall(r"train step=\d+/\d+ loss=(\S+)", mixed)]
    assert len(losses) >= 2 and all(math.isfinite(v) for v in losses), losses  # each step logged until the kill
    assert trained_pipeline.killed_after == "ckpt-2"  # written after two float16 steps
    assert "train: resuming from ckpt-2 at step 2" in resumed
    resumed_losses = [float(v) for v in re.findall(r"train step=\d+/\d+ loss=(\S+)", resumed)]
    assert resumed_losses and all(math.isfinite(v) for v in resumed_losses)
