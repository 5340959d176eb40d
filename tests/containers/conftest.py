"""The model trained once per test session for the end-to-end tests of training, evaluation and inference.

Tests that use it carry `pytest.mark.xdist_group("trained-model")` so that, with `pytest -n 2 --dist
loadgroup`, they run in one worker and the model is trained once.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from containers.processing.prepare_data import Options, prepare
from tests.support import ROOT, SAMPLE, SAMPLE_PREFIX

TRAIN = ROOT / "containers" / "training" / "train.py"
STEPS = 6


@dataclass(frozen=True)
class TrainedModel:
    prepared: Path
    checkpoints: Path
    tensorboard: Path
    model_dir: Path
    logs: tuple[str, str]
    killed_after: str | None
    steps: int
    sample_images: Path


@pytest.fixture(scope="session")
def prepared_sample(tmp_path_factory) -> Path:
    """The bundled sample, prepared as the pipeline's first step prepares it."""
    prepared = tmp_path_factory.mktemp("sample") / "prepared"
    prepare(
        Options(
            manifests=sorted((SAMPLE / "manifests").glob("*.manifest")),
            images=SAMPLE / "images",
            images_prefix=SAMPLE_PREFIX,
            output=prepared,
            classes=["dent", "scratch"],
            workers=1,
        )
    )
    return prepared


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory, prepared_sample) -> TrainedModel:
    work = tmp_path_factory.mktemp("trained")
    prepared = prepared_sample
    checkpoints, tensorboard, model_dir = work / "checkpoints", work / "tensorboard", work / "model"
    command = [
        sys.executable,
        str(TRAIN),
        "--train", str(prepared / "train"),
        "--validation", str(prepared / "validation"),
        "--label-map", str(prepared / "label_map.pbtxt"),
        "--pretrained", str(work / "no-pretrained-checkpoint"),
        "--hyperparameters", str(work / "no-hyperparameters.json"),
        "--model-dir", str(model_dir),
        "--checkpoints", str(checkpoints),
        "--tensorboard-dir", str(tensorboard),
        "--failure-file", str(work / "failure"),
        "--set", "image_size=256",
        "--set", "batch_size=2",
        "--set", f"num_steps={STEPS}",
        "--set", "checkpoint_every=2",
        "--set", "log_every=1",
    ]  # fmt: skip
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}

    # The first job is killed as soon as its first checkpoint after step 0 is on disk, as a spot
    # interruption would stop it: no warning, no chance to save.
    first_log = work / "first.log"
    killed_after = None
    with open(first_log, "w") as log:
        job = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 600
        while job.poll() is None and time.monotonic() < deadline:
            # A checkpoint counts once TensorFlow's state file names it (written, atomically, after the
            # index and data files); a kill before that leaves nothing to resume from, which is correct
            # behaviour but not the case this fixture is for.
            state = checkpoints / "checkpoint"
            found = re.search(r'^model_checkpoint_path: "(ckpt-\d+)"', state.read_text(), re.M) if state.is_file() else None
            if found:
                killed_after = found.group(1)
                job.send_signal(signal.SIGKILL)
                break
            time.sleep(0.2)
        job.wait(timeout=60)
    second = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900, check=False)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    return TrainedModel(
        prepared=prepared,
        checkpoints=checkpoints,
        tensorboard=tensorboard,
        model_dir=model_dir,
        logs=(first_log.read_text(), second.stdout + second.stderr),
        killed_after=killed_after,
        steps=STEPS,
        sample_images=SAMPLE / "images",
    )
