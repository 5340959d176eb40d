"""The one trained model of the test session: the whole local pipeline on the bundled sample, run through the CLI
as a user runs it, with a spot interruption on the way.

The first run trains in mixed precision (float16, as `mixed_precision: auto` chooses on a GPU with tensor cores;
forced here on the CPU), logging every step and checkpointing after two; its training job is killed (SIGKILL: no
warning, no chance to save) as soon as that checkpoint is on disk, as a reclaimed spot instance stops one, and
the execution fails. The second run finds PrepareData in the step cache,
and its training job resumes from the checkpoint the engine kept in the checkpoint prefix (as SageMaker keeps it
in S3) in float32 (as on an instance without tensor cores: the checkpoint prefix does not depend on the instance
type), trains to the configured step, exports, and the rest of the pipeline evaluates, registers and deploys the
model. The end-to-end tests of training, mixed precision, evaluation, inference and the local pipeline all read
this run: one model, trained once. Every run takes the definition `cardamage run` renders, rendered once, as a
file (`--definition`), which saves rendering it each time (the CLI's own rendering: tests/pipelines/local/
test_staging.py).

Tests that use it carry `pytest.mark.xdist_group("trained-model")` so that, with `pytest -n 2 --dist loadgroup`,
they run in one worker, and the pipeline runs once.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from containers.common import archives
from pipelines.config import Config, load_config
from pipelines.local.state import State
from pipelines.local.storage import LocalS3
from tests.support import ROOT, step_named

TRAIN_PROGRAM = "containers/training/train.py"


@dataclass(frozen=True)
class Run:
    """One `cardamage run`: its execution, as the state folder records it, and what it printed."""

    execution: str
    status: str
    steps: list[dict]
    output: str
    returncode: int

    def step(self, name: str) -> dict:
        return next(step for step in self.steps if step["name"] == name)

    def properties(self, name: str) -> dict:
        return json.loads(self.step(name)["properties"] or "{}")


@dataclass(frozen=True)
class TrainedPipeline:
    config: Config
    state: Path
    interrupted: Run  # the run whose training job (mixed precision) was killed
    definition: Path  # the definition `cardamage run` renders here, for later runs
    first: Run  # the first run that succeeded: its training resumed from the interrupted one's checkpoint
    killed_after: str  # the checkpoint on disk when the job was killed (ckpt-N)
    model_dir: Path  # the first run's model.tar.gz, extracted
    logs: tuple[str, str]  # the training logs of the interrupted and the first run
    checkpoints: Path  # the training step's checkpoint prefix, in the local S3
    tensorboard: Path  # its TensorBoard output, in the local S3
    prepared: Path  # PrepareData's output
    evaluation: Path  # Evaluate's output
    steps: int  # the training steps the profile asks for
    sample_images: Path


def cardamage(*arguments: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """The CLI as a user runs it (a subprocess, in the repository)."""
    return subprocess.run(_command(arguments), cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=_env(), check=False)


def run_cli(state: Path, *arguments: str) -> Run:
    """`cardamage run` on `state`, and the execution it recorded."""
    return _recorded(state, cardamage("run", "--state-dir", str(state), *arguments))


def _command(arguments) -> list[str]:
    return [sys.executable, "-m", "pipelines.cli", *arguments]


def _env() -> dict[str, str]:
    return {**os.environ, "COLUMNS": "200"}


def _recorded(state: Path, process: subprocess.CompletedProcess) -> Run:
    newest = State(state).executions(1)[0]
    return Run(newest["id"], newest["status"], State(state).steps(newest["id"]), process.stdout + process.stderr, process.returncode)


# The interrupted run's training: float16 forced on the CPU, every step logged, a checkpoint after two steps.
INTERRUPTED_HYPERPARAMETERS = {"mixed_precision": "true", "log_every": "1", "checkpoint_every": "2"}


def train_pipeline(state: Path, work: Path) -> TrainedPipeline:
    from pipelines.local.runner import local_definition

    config = load_config(ROOT / "pipeline.yaml", profile="local")
    definition = local_definition(config)
    rendered = work / "definition.json"
    rendered.write_text(json.dumps(definition))
    train = step_named(definition, "Train")
    train["Arguments"]["HyperParameters"].update(INTERRUPTED_HYPERPARAMETERS)  # the checkpoint prefix stays the same
    mixed = work / "interrupted-definition.json"
    mixed.write_text(json.dumps(definition))
    interrupted, killed_after = _interrupted_run(state.resolve(), mixed)
    first = run_cli(state, "--definition", str(rendered))
    assert first.returncode == 0, first.output[-4000:]
    s3 = LocalS3(state / "s3")
    training = first.properties("Train")
    model_dir = work / "model"
    archives.extract_tar(s3.path(training["ModelArtifacts"]["S3ModelArtifacts"]), model_dir)
    logs = tuple(Path(run.step("Train")["log"]).read_text() for run in (interrupted, first))
    return TrainedPipeline(
        config=config,
        state=state,
        interrupted=interrupted,
        definition=rendered,
        first=first,
        killed_after=killed_after,
        model_dir=model_dir,
        logs=logs,  # type: ignore[arg-type]
        checkpoints=s3.path(training["CheckpointConfig"]["S3Uri"]),
        tensorboard=s3.path(training["TensorBoardOutputConfig"]["S3OutputPath"]),
        prepared=_output_folder(s3, first.properties("PrepareData")),
        evaluation=_output_folder(s3, first.properties("Evaluate")),
        steps=config.training.steps,
        sample_images=ROOT / "data" / "sample" / "images",
    )


def _output_folder(s3: LocalS3, processing: dict) -> Path:
    (output,) = processing["ProcessingOutputConfig"]["Outputs"]
    return s3.path(output["S3Output"]["S3Uri"])


def _interrupted_run(state: Path, definition: Path) -> tuple[Run, str]:
    """A run whose training job is killed once its first checkpoint is on disk: a checkpoint counts once
    TensorFlow's state file names it (written, atomically, after the index and data files)."""
    with open(state.parent / "interrupted-run.log", "w+") as output:
        command = _command(["run", "--state-dir", str(state), "--definition", str(definition)])
        run = subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, text=True, env=_env())
        killed_after = None
        deadline = time.monotonic() + 900
        while killed_after is None and run.poll() is None and time.monotonic() < deadline:
            killed_after = _first_checkpoint(state)
            if killed_after is None:
                time.sleep(0.2)  # polling the checkpoint folder, not waiting a set time
        job = _training_job(state)
        assert killed_after and job, f"no checkpoint, or no training job, before the run ended:\n{_tail(output)}"
        os.kill(job, signal.SIGKILL)
        run.wait(timeout=300)
        output.seek(0)
        interrupted = _recorded(state, subprocess.CompletedProcess(run.args, run.returncode, output.read(), ""))
    return interrupted, killed_after


def _first_checkpoint(state: Path) -> str | None:
    for path in state.glob("runs/*/Train/opt/ml/checkpoints/checkpoint"):
        found = re.search(r'^model_checkpoint_path: "(ckpt-\d+)"', path.read_text(), re.M)
        if found:
            return found.group(1)
    return None


def _training_job(state: Path) -> int | None:
    """The process of the training program the engine runs for `state` (its arguments name the job's sandbox)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            arguments = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if any(a.endswith(TRAIN_PROGRAM) for a in arguments) and any(a.startswith(str(state)) for a in arguments):
            return int(entry.name)
    return None


def _tail(output) -> str:
    output.seek(0)
    return output.read()[-3000:]
