"""Local jobs that really fail or are stopped: real programs run as the engine's subprocesses.

The project's own programs where they fail in seconds (PrepareData on labels it quarantines, train.py on a
hyperparameter it refuses before importing TensorFlow), through the definition `cardamage run` renders; a
small stand-in where a job must run on, write checkpoints or wait for a signal (job_programs.py): the engine,
the job runner and their checkpoint syncing are the real ones. Ctrl-C is a real SIGINT to a process that runs
the engine, and the job's processes are looked up by pid afterwards.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.config import load_config
from pipelines.local.engine import Engine, ExecutionFailed, Reporter
from pipelines.local.jobs import run_program
from pipelines.local.runner import local_definition
from pipelines.local.state import State
from pipelines.local.storage import LocalS3
from tests.pipelines.local.job_programs import ENTRYPOINT, HERE, stand_in_images
from tests.support import ROOT, Dataset, step_named

CONFIG = ROOT / "pipeline.yaml"
CHECKPOINTS = "s3://local-artifacts/checkpoints/demo"
STAND_IN_ERROR = "job_programs: error: the last error line of the log"


def cli(*arguments: str):
    return CliRunner().invoke(app, [*arguments, "--config", str(CONFIG)])


@pytest.fixture(scope="module")
def rendered() -> dict:
    """The definition `cardamage run` renders from pipeline.yaml (seconds of SageMaker SDK work: once)."""
    return local_definition(load_config(CONFIG, profile="local"))


def only_execution(state_dir: Path) -> tuple[dict, dict[str, dict]]:
    state = State(state_dir)
    (execution,) = state.executions()
    return execution, {step["name"]: step for step in state.steps(execution["id"])}


def test_a_processing_program_that_exits_non_zero_fails_its_step_with_its_last_error_line(rendered, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # paths are printed relative to the working folder
    data = Dataset(tmp_path / "data")
    lines = []
    for key in ("a.jpg", "b.jpg"):
        data.image(key)  # 64x48, labelled as 300x200: PrepareData quarantines both, then has nothing to write
        lines.append({**data.line(key, size=(300, 200)), "source-ref": str(data.images / key)})
    definition = tmp_path / "definition.json"
    definition.write_text(json.dumps(rendered))

    result = cli("run", "--manifest", str(data.manifest("unusable.manifest", lines)), "--definition", str(definition), "--state-dir", "state")

    assert result.exit_code == 1, result.output
    execution, steps = only_execution(tmp_path / "state")
    ran = [name for name, step in steps.items() if step["status"] != "NotRun"]
    assert (execution["status"], ran) == ("Failed", ["CheckGateSettings", "PrepareData"])  # nothing after it started
    prepare = steps["PrepareData"]
    log = Path(prepare["log"])
    assert prepare["status"] == "Failed" and prepare["failure"].startswith("prepare_data: error: no usable image")
    assert prepare["failure"] == log.read_text().splitlines()[-1]  # the program's last error line, from its log
    assert execution["failure"] == f"PrepareData failed: {prepare['failure']}"
    shown = f"state/runs/{execution['id']}/PrepareData/algo-1.log"
    assert log == tmp_path / shown
    assert f"error: execution {execution['id']} failed: PrepareData failed: {prepare['failure']}; log: {shown}\n" in result.stderr
    assert "✖ PrepareData failed: prepare_data: error: no usable image" in result.stdout and "▶ Train" not in result.stdout

    detail = cli("executions", "--local", "--state-dir", "state", "--execution", execution["id"])
    assert detail.exit_code == 0, detail.output
    row = next(line for line in detail.stdout.splitlines() if line.startswith("PrepareData "))
    assert row.split()[1] == "Failed" and shown in row and "prepare_data: error: no usable image" in row


def test_a_training_program_that_fails_gives_its_failure_file_as_the_reason(rendered, tmp_path, monkeypatch):
    """train.py writes its reason to /opt/ml/output/failure, which SageMaker shows as the job's FailureReason;
    its last log line says the same with a `train: error:` prefix, so the reason shown tells which was read."""
    monkeypatch.chdir(tmp_path)
    edited = copy.deepcopy(rendered)
    train = step_named(edited, "Train")
    train["Arguments"]["HyperParameters"]["checkpoint_every"] = "0"  # no parameter sets it, so no parameter check catches it
    definition = tmp_path / "definition.json"
    definition.write_text(json.dumps(edited))

    result = cli("run", "--definition", str(definition), "--state-dir", "state")  # on the bundled sample

    assert result.exit_code == 1, result.output
    execution, steps = only_execution(tmp_path / "state")
    assert execution["status"] == "Failed" and steps["PrepareData"]["status"] == "Succeeded"
    failed = steps["Train"]
    log = Path(failed["log"])
    written = (log.parent / "opt" / "ml" / "output" / "failure").read_text().strip()
    assert "'checkpoint_every'" in written and log.read_text().splitlines()[-1] == f"train: error: {written}"
    assert (failed["status"], failed["failure"]) == ("Failed", written)
    assert f"Train failed: {written}; log: state/runs/{execution['id']}/Train/training.log\n" in result.stderr


def training_definition(hyperparameters: dict[str, str], checkpoints: bool = True) -> dict:
    """One Training step for the stand-in program, with a checkpoint location as the pipeline's Train has."""
    arguments = {
        "AlgorithmSpecification": {"TrainingImage": "t", "TrainingInputMode": "File"},
        "HyperParameters": hyperparameters,
        "OutputDataConfig": {"S3OutputPath": "s3://local-artifacts/models"},
        "InputDataConfig": [],
    }
    if checkpoints:
        arguments["CheckpointConfig"] = {"S3Uri": CHECKPOINTS, "LocalPath": "/opt/ml/checkpoints"}
    return {"Version": "2020-12-01", "Parameters": [], "Steps": [{"Name": "Train", "Type": "Training", "Arguments": arguments}]}


def refuse(event: dict) -> dict:
    raise AssertionError(f"no Lambda step here: {event}")


def stand_in_engine(state_dir: Path) -> tuple[Engine, list[str]]:
    """The engine with the stand-in training program; returns it and the job lines it passes on."""
    lines: list[str] = []
    reporter = Reporter(say=lambda line: None, job_line=lambda step, line: lines.append(line))
    return Engine(state_dir, stand_in_images(), refuse, reporter), lines


def checkpoint_names(state_dir: Path) -> list[str]:
    folder = LocalS3(state_dir / "s3").path(CHECKPOINTS)
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        ("x" * 3000, "x" * 1024),  # SageMaker's FailureReason is the file's first 1024 characters
        ("  \n", STAND_IN_ERROR),  # an empty file says nothing: the log's last error line does
        (None, STAND_IN_ERROR),  # no file
    ],
    ids=["long file", "empty file", "no file"],
)
def test_the_failure_reason_is_the_failure_files_start_else_the_last_error_line(tmp_path, failure, reason):
    engine, _ = stand_in_engine(tmp_path / "state")
    hyperparameters = {"crash_at": "1", **({"failure": failure} if failure is not None else {})}
    with pytest.raises(ExecutionFailed) as info:
        engine.run(training_definition(hyperparameters, checkpoints=False), "demo")
    (step,) = engine.state.steps(info.value.execution)
    assert (step["status"], step["failure"]) == ("Failed", reason)


def test_checkpoints_of_a_failed_job_are_kept_and_restored_by_the_next_run(tmp_path):
    """As SageMaker syncs the checkpoint folder with the checkpoint S3 URI (deletions too) and copies what is
    there into a new job at its start, a run after a failed one resumes where it stopped."""
    state_dir = tmp_path / "state"
    engine, lines = stand_in_engine(state_dir)
    definition = training_definition({"num_steps": "5", "keep": "2", "crash_at": "3"})

    with pytest.raises(ExecutionFailed, match=f"^Train failed: {STAND_IN_ERROR}$"):
        engine.run(definition, "demo")
    assert checkpoint_names(state_dir) == ["ckpt-2", "ckpt-3"]  # ckpt-1 was deleted by the job, so in S3 too

    lines.clear()
    result = engine.run(definition, "demo")
    assert result.status == "Succeeded"
    assert lines[:2] == [f"restored 2 checkpoint file(s) from {CHECKPOINTS}", "job_programs: starting at step 3"]
    assert lines[-1] == "job_programs: done at step 5"
    assert checkpoint_names(state_dir) == ["ckpt-4", "ckpt-5"]


def test_a_failing_echo_is_raised_once_the_program_ends_and_the_log_is_whole(tmp_path):
    """The job's output is read in a thread of its own: what goes wrong there reaches the caller."""

    def echo(line: str) -> None:
        raise RuntimeError("the console is gone")

    with pytest.raises(RuntimeError, match="the console is gone"):
        run_program([sys.executable, "-c", "for i in range(3): print(i)"], dict(os.environ), tmp_path / "job.log", echo)
    assert (tmp_path / "job.log").read_text() == "0\n1\n2\n"


def test_a_program_killed_by_a_signal_says_so_not_its_last_line(tmp_path):
    """As a reclaimed spot instance or the OOM killer ends a job: its last line is not why it ended."""
    from pipelines.local.jobs import JobFailed

    code = "import os, signal; print('train step=1/10 loss=2.0'); print('error: a note'); os.kill(os.getpid(), signal.SIGKILL)"
    with pytest.raises(JobFailed) as failed:
        run_program([sys.executable, "-c", code], dict(os.environ), tmp_path / "job.log", lambda line: None)
    assert str(failed.value) == "the program was killed by SIGKILL; its last error line: error: a note"
    with pytest.raises(JobFailed) as failed:
        terminated = "import os, signal; print('step'); os.kill(os.getpid(), signal.SIGTERM)"
        run_program([sys.executable, "-c", terminated], dict(os.environ), tmp_path / "2.log", lambda line: None)
    assert str(failed.value) == "the program was killed by SIGTERM"


def alive(pid: int) -> bool:
    """Whether the process runs (a zombie, ended but not yet reaped by its parent, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_for(condition, seconds: float, what: str, process: subprocess.Popen | None = None, output: Path | None = None):
    """Poll `condition` until it holds; fail with `what` (and the process's output) after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        if process is not None and process.poll() is not None:
            break
        time.sleep(0.1)
    if not condition():
        pytest.fail(f"{what} (within {seconds} s)\n" + (output.read_text()[-3000:] if output and output.exists() else ""))


def _ctrl_c_as_in_a_terminal() -> None:
    """In the child, before it starts: SIGINT's default action. A process started in the background by a shell
    without job control (`nohup make test &`, some CI runners) inherits SIGINT ignored, and so would the command
    under test; Python then never raises KeyboardInterrupt. In a terminal, Ctrl-C reaches it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextlib.contextmanager
def started(command: list[str], output: Path):
    """A process running `command` (output to a file), as from a terminal; stopped if a test leaves it running."""
    with open(output, "w") as out:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "COLUMNS": "200"},
            preexec_fn=_ctrl_c_as_in_a_terminal,  # noqa: PLW1509 - it only sets a signal's disposition: no lock a thread could hold
        )
    try:
        yield process
    finally:
        if process.poll() is None:  # Ctrl-C first: the engine then stops its job's processes too
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=150)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def kill_leftovers(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_ctrl_c_on_cardamage_run_stops_the_jobs_processes_and_records_the_execution_as_stopped(tmp_path):
    """The job's program and the child it started (which ignores SIGINT) are both gone; exit status 130."""
    pids_file = tmp_path / "pids"
    entrypoint = [*ENTRYPOINT, "wait", "--pids", str(pids_file)]
    definition = {
        "Version": "2020-12-01",
        "Parameters": [{"Name": "InputManifestUri", "Type": "String"}, {"Name": "ImagesS3Prefix", "Type": "String"}],
        "Steps": [
            {
                "Name": "Wait",
                "Type": "Processing",
                "Arguments": {
                    "AppSpecification": {"ImageUri": "p", "ContainerEntrypoint": entrypoint},
                    "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 30}},
                    "ProcessingInputs": [],
                    "ProcessingOutputConfig": {"Outputs": []},
                },
            }
        ],
    }
    path = tmp_path / "definition.json"
    path.write_text(json.dumps(definition))
    state_dir, output = tmp_path / "state", tmp_path / "run.out"
    command = [sys.executable, "-m", "pipelines.cli", "run", "--definition", str(path), "--state-dir", str(state_dir), "--config", str(CONFIG)]
    pids: list[int] = []
    try:
        with started(command, output) as run:
            wait_for(pids_file.exists, 120, "the job did not start", run, output)
            pids = [int(pid) for pid in pids_file.read_text().split()]
            assert all(alive(pid) for pid in pids)
            run.send_signal(signal.SIGINT)
            assert run.wait(timeout=60) == 130, output.read_text()
        wait_for(lambda: not any(alive(pid) for pid in pids), 30, f"of the job's processes {pids}, some outlived Ctrl-C")
    finally:
        kill_leftovers(pids)
    printed = output.read_text()
    assert "Wait | stopping the job (SIGINT, up to 10 s; Ctrl-C again kills it now)" in printed and "stopped by Ctrl-C" in printed
    execution, steps = only_execution(state_dir)
    assert (execution["status"], execution["failure"]) == ("Stopped", "stopped by Ctrl-C")
    assert steps["Wait"]["status"] == "Stopped"


@contextlib.contextmanager
def training_that_holds(tmp_path: Path, hyperparameters: dict[str, str]):
    """The engine (job_programs.py engine) in a process of its own, on a training job that holds at its step
    `hold_at`; yields the engine's process, its output file and the job's pid once the job holds."""
    ready, output, definition = tmp_path / "ready", tmp_path / "engine.out", tmp_path / "definition.json"
    definition.write_text(json.dumps(training_definition({**hyperparameters, "ready": str(ready)})))
    command = [sys.executable, str(HERE), "engine", "--state-dir", str(tmp_path / "state"), "--definition", str(definition)]
    pids: list[int] = []
    try:
        with started(command, output) as engine:
            wait_for(ready.exists, 60, "the training job did not reach its hold_at step", engine, output)
            pids.append(int(ready.read_text()))
            yield engine, output, pids[0]
    finally:
        kill_leftovers(pids)


def test_ctrl_c_stops_a_training_job_as_sagemaker_does_so_its_checkpoint_is_saved_and_resumed(tmp_path):
    """SIGTERM, which train.py (like this stand-in) answers by saving a checkpoint; the next run resumes from it."""
    state_dir = tmp_path / "state"
    with training_that_holds(tmp_path, {"num_steps": "5", "every": "100", "hold_at": "2"}) as (engine, output, job):
        engine.send_signal(signal.SIGINT)
        assert engine.wait(timeout=60) == 130, output.read_text()
        assert not alive(job)
    assert checkpoint_names(state_dir) == ["ckpt-2"]  # saved on SIGTERM: the job saves no other (every 100 steps)
    execution, steps = only_execution(state_dir)
    assert execution["status"] == "Stopped" and steps["Train"]["status"] == "Stopped"
    # What the job said while it stopped is in its log.
    assert Path(steps["Train"]["log"]).read_text().splitlines()[-1] == "job_programs: stopped by SIGTERM at step 2; checkpoint saved"

    runner, lines = stand_in_engine(state_dir)
    assert runner.run(training_definition({"num_steps": "5", "every": "100"}), "demo").status == "Succeeded"
    assert lines[:2] == [f"restored 1 checkpoint file(s) from {CHECKPOINTS}", "job_programs: starting at step 2"]


def test_a_second_ctrl_c_kills_a_training_job_that_takes_its_time_to_stop(tmp_path):
    """SageMaker gives a stopped training job 120 s after SIGTERM; a second Ctrl-C does not wait for them."""
    with training_that_holds(tmp_path, {"num_steps": "5", "hold_at": "1", "ignore_sigterm": "yes"}) as (engine, output, job):
        engine.send_signal(signal.SIGINT)
        wait_for((tmp_path / "ready.sigterm").exists, 30, "the training job got no SIGTERM", engine, output)
        assert "Train | stopping the job (SIGTERM, up to 120 s; Ctrl-C again kills it now)" in output.read_text()
        engine.send_signal(signal.SIGINT)
        assert engine.wait(timeout=30) == 130, output.read_text()
        assert not alive(job)
    assert checkpoint_names(tmp_path / "state") == ["ckpt-1"]  # what the job had saved is kept
    execution, _ = only_execution(tmp_path / "state")
    assert execution["status"] == "Stopped"


def newest_training_log(state_dir: Path) -> str:
    logs = sorted(state_dir.glob("runs/*/Train/training.log"))  # execution ids start with their time
    return logs[-1].read_text() if logs else ""


@pytest.mark.slow
@pytest.mark.xdist_group("trained-model")  # real TensorFlow training: with the suite's other heavy runs, on one worker
def test_ctrl_c_during_real_training_saves_a_checkpoint_that_the_next_run_resumes_from(rendered, tmp_path):
    """train.py itself, through `cardamage run` on the bundled sample: Ctrl-C after its first step makes the
    engine send SIGTERM, train.py saves a checkpoint at the step it reached, and the next run restores it and
    resumes from it (each run is stopped once that is seen: no model is trained to the end)."""
    definition, state_dir = tmp_path / "definition.json", tmp_path / "state"
    definition.write_text(json.dumps(rendered))
    command = [sys.executable, "-m", "pipelines.cli", "run", "--definition", str(definition), "--state-dir", str(state_dir), "--config", str(CONFIG)]

    with started(command, tmp_path / "first.out") as run:
        wait_for(lambda: re.search(r"^train step=1/", newest_training_log(state_dir), re.M), 900, "no training step", run, tmp_path / "first.out")
        run.send_signal(signal.SIGINT)
        assert run.wait(timeout=300) == 130, (tmp_path / "first.out").read_text()
    stopped = re.search(r"^train: stopped by SIGTERM at step (\d+); checkpoint saved", newest_training_log(state_dir), re.M)
    assert stopped, newest_training_log(state_dir)[-3000:]
    step = int(stopped.group(1))
    assert f"ckpt-{step}.index" in {path.name for path in state_dir.glob("s3/local-artifacts/**/ckpt-*.index")}

    with started(command, tmp_path / "second.out") as run:
        resumed = f"train: resuming from ckpt-{step} at step {step}"
        wait_for(lambda: resumed in newest_training_log(state_dir), 900, "the second run did not resume", run, tmp_path / "second.out")
    assert re.search(r"Train \| restored \d+ checkpoint file\(s\) from s3://", (tmp_path / "second.out").read_text())
