"""Training jobs of one instance or several through the local engine's run_training, on data put in its local S3:
what the tests of multi-worker training share. A job runs in a thread, so that a test can act on its workers (by
their process ids) while they train."""

from __future__ import annotations

import re
import shutil
import threading
import time
from pathlib import Path

from containers.processing.labelling import Box
from containers.processing.prepare_data import Options, prepare
from containers.processing.records import ShardWriter, build_example, label_map_text
from containers.training.metrics import METRIC_DEFINITIONS
from pipelines.local.jobs import JobFailed, run_training
from pipelines.local.runner import IMAGES
from pipelines.local.storage import LocalS3
from tests.support import SAMPLE, SAMPLE_PREFIX, jpeg_bytes

DATA = "s3://local-data/prepared/"
TRAIN_PROGRAM = "containers/training/train.py"
# The local profile's input size and batch, every step logged, from random initialisation: short runs on a CPU.
SMALL = {"image_size": "256", "batch_size": "2", "log_every": "1", "fine_tune": "false"}


def prepare_sample(output: Path) -> Path:
    """The bundled sample through PrepareData, in two shards per split as the local profile writes them."""
    manifests = sorted((SAMPLE / "manifests").glob("*.manifest"))
    prepare(Options(manifests=manifests, images=SAMPLE / "images", images_prefix=SAMPLE_PREFIX, output=output, classes=["dent", "scratch"], shards=2))
    return output


def same_photo(output: Path, records: int, shards: int = 2) -> Path:
    """Training records that are all one photo with the same two boxes (dealt over `shards` files), a validation
    file of it, and the label map: every batch is alike, however the records are split."""
    photo = jpeg_bytes((320, 240), seed=7)
    boxes = [Box("dent", 32, 48, 160, 144, label=1), Box("scratch", 176, 24, 288, 108, label=2)]
    record = build_example(encoded=photo, key="car.jpg", width=320, height=240, boxes=boxes)
    for split, count, files in (("train", records, shards), ("validation", 1, 1)):
        with ShardWriter(output / split, [f"{split}-{i:05d}-of-{files:05d}.tfrecord" for i in range(files)]) as writer:
            for _ in range(count):
                writer.write(record)
    (output / "label_map.pbtxt").write_text(label_map_text([(1, "dent"), (2, "scratch")]))
    return output


def put_data(state: Path, prepared: Path) -> None:
    shutil.copytree(prepared, LocalS3(state / "s3").path(DATA), dirs_exist_ok=True)


def training_request(hyperparameters: dict[str, str], instances: int, checkpoints: str, tensorboard: str = "s3://local-artifacts/tb/") -> dict:
    """A CreateTrainingJob request as the pipeline's Train step makes one, on the data put in the local S3."""

    def channel(name: str, key: str = "") -> dict:
        return {"ChannelName": name, "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": DATA + (key or f"{name}/")}}}

    return {
        "AlgorithmSpecification": {"TrainingImage": IMAGES.training, "TrainingInputMode": "File", "MetricDefinitions": METRIC_DEFINITIONS},
        "HyperParameters": {**SMALL, **hyperparameters},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": instances, "VolumeSizeInGB": 30},
        "OutputDataConfig": {"S3OutputPath": "s3://local-artifacts/models"},
        "InputDataConfig": [channel("train"), channel("validation"), channel("label_map", "label_map.pbtxt")],
        "CheckpointConfig": {"S3Uri": checkpoints, "LocalPath": "/opt/ml/checkpoints"},
        "TensorBoardOutputConfig": {"S3OutputPath": tensorboard, "LocalPath": "/opt/ml/output/tensorboard"},
    }


class Job(threading.Thread):
    """run_training of one request in a thread; `lines` is what the engine echoed, `result` or `error` its end."""

    def __init__(self, state: Path, request: dict, name: str):
        super().__init__(daemon=True)
        self.state, self.request, self.name = state, request, name
        self.work = state / "runs" / name
        self.lines: list[str] = []
        self.result: dict | None = None
        self.error: JobFailed | None = None

    def run(self) -> None:
        try:
            self.result = run_training(self.request, self.name, IMAGES, LocalS3(self.state / "s3"), self.work, self.lines.append)
        except JobFailed as exc:
            self.error = exc

    def finish(self, seconds: float = 900) -> Job:
        self.start()
        return self.ended(seconds)

    def ended(self, seconds: float = 900) -> Job:
        self.join(seconds)
        assert not self.is_alive(), f"the job still runs after {seconds} s:\n" + "\n".join(self.lines[-40:])
        return self

    def log(self, host: str) -> str:
        """A worker's own log ("" until its program starts)."""
        path = self.work / f"{host}.log"
        return path.read_text() if path.is_file() else ""

    def wait_for(self, condition, what: str, seconds: float = 600) -> None:
        """Poll `condition` while the job runs (the check of a file the workers write, not a set time)."""
        deadline = time.monotonic() + seconds
        while not condition():
            assert self.is_alive() and time.monotonic() < deadline, f"{what}: not within {seconds} s\n" + "\n".join(self.lines[-40:])
            time.sleep(0.2)

    def checkpoint_saved(self, host: str = "algo-1") -> str | None:
        """The newest checkpoint a worker's checkpoint folder names (TensorFlow writes its state file last)."""
        state = self.work / host / "opt" / "ml" / "checkpoints" / "checkpoint"
        found = re.search(r'^model_checkpoint_path: "(ckpt-\d+)"', state.read_text(), re.M) if state.is_file() else None
        return found.group(1) if found else None

    def pid(self, host: str) -> int:
        """The process of a worker's training program (its arguments name its sandbox)."""
        sandbox = str(self.work / host) + "/"
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    arguments = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
                except OSError:
                    continue
                if any(a.endswith(TRAIN_PROGRAM) for a in arguments) and any(a.startswith(sandbox) for a in arguments):
                    return int(entry.name)
        raise AssertionError(f"no training program runs for {host} of {self.name}")


def steps_logged(log: str) -> list[tuple[int, float]]:
    """(step, loss) of every progress line of a worker's log."""
    return [(int(step), float(loss)) for step, loss in re.findall(r"^train step=(\d+)/\d+ loss=(\S+) ", log, re.M)]
