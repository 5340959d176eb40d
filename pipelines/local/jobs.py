"""Processing and Training jobs on this machine: the container programs run as subprocesses of this
Python, each in a sandbox folder that plays `/opt/ml/...`, with their inputs copied in, their outputs
copied back to the (local) S3 locations, and what SageMaker would give them: the hyperparameters file,
the channels' environment variables, the resource configuration, `model.tar.gz` packed from the model
folder, checkpoints kept between attempts as the checkpoint S3 prefix keeps them for spot training.

A training job of several instances runs them at once, algo-1 ... algo-N, each in a sandbox of its own that
names it in its resource configuration, on 127.0.0.1 ports picked here; their lines are shown prefixed by
host, and when one fails the others are stopped. Processing instances run one after the other.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from containers.inference import libraries
from containers.training import distributed
from pipelines.local.expressions import DefinitionProblem
from pipelines.local.storage import LocalS3

ROOT = Path(__file__).resolve().parents[2]
OPT_ML = "/opt/ml/"
IMAGE_ROOT = "/opt/program/"  # where the images put the repository's containers/ (see their Dockerfiles)


class JobFailed(Exception):
    """The job's program failed; the message is its reason (its last error line), `log` its log file."""

    def __init__(self, reason: str, log: Path):
        super().__init__(reason)
        self.log = log


class HostFailed(JobFailed):
    """One instance's program of a job of several failed (the first to fail; the others were stopped after it)."""

    def __init__(self, host: str, reason: str, log: Path):
        super().__init__(reason, log)
        self.host = host


@dataclass(frozen=True)
class Images:
    """What each image of the definition runs here: an entry point for images that have one of their own."""

    processing: str
    training: str
    inference: str

    def training_command(self, image: str) -> list[str]:
        if image != self.training:
            raise DefinitionProblem(
                f"the training image {image!r} is not the project's ({self.training!r}); the local engine runs only its own programs"
            )
        return [sys.executable, str(ROOT / "containers" / "training" / "train.py"), "train"]


def command_for(entrypoint: Sequence[str]) -> list[str]:
    """A Processing job's container entry point, with the image's paths mapped onto this repository."""
    if not entrypoint or not str(entrypoint[0]).startswith("python"):
        raise DefinitionProblem(f"the container entry point {list(entrypoint)!r} is not a Python program of this repository")
    program = str(entrypoint[1]) if len(entrypoint) > 1 else ""
    if not program.startswith(IMAGE_ROOT):
        raise DefinitionProblem(f"the program {program!r} is not under {IMAGE_ROOT} (the images' copy of containers/)")
    local = ROOT / program[len(IMAGE_ROOT) :]
    if not local.is_file():
        raise DefinitionProblem(f"the program {program!r} has no local copy at {local}")
    return [sys.executable, str(local), *map(str, entrypoint[2:])]


class Sandbox:
    """A folder that stands for the container's /opt/ml."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.opt_ml = folder / "opt" / "ml"
        self.opt_ml.mkdir(parents=True, exist_ok=True)

    def local(self, container_path: str) -> Path:
        if not container_path.startswith(OPT_ML):
            raise DefinitionProblem(f"the container path {container_path!r} is not under {OPT_ML}")
        return self.opt_ml / container_path[len(OPT_ML) :]

    def rewrite(self, value: str) -> str:
        """An argument or environment value with container paths moved into the sandbox."""
        return str(self.local(value)) if value.startswith(OPT_ML) else value


# How a job is stopped on Ctrl-C: each signal to its process group in turn, and how long it may take to end.
# A Processing program gets Ctrl-C's own SIGINT first.
INTERRUPT = ((signal.SIGINT, 10), (signal.SIGTERM, 10), (signal.SIGKILL, 5))
# A training job is stopped as StopTrainingJob stops one: "SageMaker sends the algorithm the SIGTERM signal, which
# delays job termination for 120 seconds" (StopTrainingJob, SageMaker API Reference); train.py saves a checkpoint.
TERMINATE = ((signal.SIGTERM, 120), (signal.SIGKILL, 5))


def run_program(
    command: list[str], env: dict[str, str], log: Path, echo: Callable[[str], None], stop: Sequence[tuple[int, float]] = INTERRUPT
) -> None:
    """Run a program, its output streamed to `echo` and to `log`; raises JobFailed with its last error line.
    Ctrl-C stops the program and its children (signals `stop`) before the KeyboardInterrupt goes on; what the
    program says while it stops still reaches the log."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        process = _start(command, env)
        output = _Output(process.stdout, out, echo)
        output.start()
        try:
            process.wait()
            output.join()
        except KeyboardInterrupt:
            _stop_on_ctrl_c([process], [output], stop, echo)
            raise
    if output.problem is not None:
        raise output.problem
    failure = _failure(process, output, log)
    if failure is not None:
        raise failure


def _stop_on_ctrl_c(
    processes: list[subprocess.Popen], outputs: list[_Output], stop: Sequence[tuple[int, float]], echo: Callable[[str], None]
) -> None:
    """Ctrl-C: the programs and their children are stopped (signals `stop`); what they say while they stop still
    reaches the logs."""
    first, grace = stop[0]
    echo(f"stopping the job ({signal.Signals(first).name}, up to {grace:.0f} s; Ctrl-C again kills it now)")
    try:
        _stop_all(processes, stop)
    finally:
        for output in outputs:
            output.join(timeout=5)


def _start(command: list[str], env: dict[str, str]) -> subprocess.Popen:
    """A program in a process group of its own (stopped as a group), its output and errors through one pipe."""
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True, bufsize=1)


def _failure(process: subprocess.Popen, output: _Output, log: Path) -> JobFailed | None:
    """Why an ended program failed, or None when it succeeded."""
    if process.returncode < 0:  # killed: its last line is not why it ended (a reclaimed spot instance, the OOM killer)
        after = f"; its last error line: {output.last_error}" if output.last_error else ""
        return JobFailed(f"the program was killed by {signal.Signals(-process.returncode).name}{after}", log)
    if process.returncode != 0:
        return JobFailed(output.last_error or output.last_line or f"exit status {process.returncode}", log)
    return None


def run_programs(
    programs: dict[str, tuple[list[str], dict[str, str], Path]], log: Path, echo: Callable[[str], None], stop: Sequence[tuple[int, float]]
) -> None:
    """Run several programs at once, one per host (`programs`: host -> command, environment, its log). Each line
    goes to its host's log and, prefixed with the host ("[algo-2] ..."), to `echo` and to `log`. When one fails
    the others are stopped (signals `stop`) and HostFailed names the first that failed; Ctrl-C stops them all."""
    log.parent.mkdir(parents=True, exist_ok=True)
    lock = threading.Lock()
    with open(log, "w") as joint, contextlib.ExitStack() as files:

        def prefixed(host: str) -> Callable[[str], None]:
            def say(line: str) -> None:
                with lock:
                    joint.write(f"[{host}] {line}\n")
                    joint.flush()
                    echo(f"[{host}] {line}")

            return say

        running: dict[str, tuple[subprocess.Popen, _Output, Path]] = {}
        for host, (command, env, own_log) in programs.items():
            out = files.enter_context(open(own_log, "w"))
            process = _start(command, env)
            running[host] = (process, _Output(process.stdout, out, prefixed(host)), own_log)
            running[host][1].start()
        processes = [process for process, _, _ in running.values()]
        try:
            failed = _first_failure(running)
            if failed is not None:
                left = [host for host, (process, _, _) in running.items() if process.poll() is None]
                if left:
                    first, grace = stop[0]
                    echo(f"{failed.host} failed: stopping {', '.join(left)} ({signal.Signals(first).name}, up to {grace:.0f} s)")
                _stop_all([running[host][0] for host in left], stop)
            for _, output, _ in running.values():
                output.join()
        except KeyboardInterrupt:
            _stop_on_ctrl_c(processes, [output for _, output, _ in running.values()], stop, echo)
            raise
        for process in processes:
            _kill_group(process)  # what a program left in its group
    for _, output, _ in running.values():
        if output.problem is not None:
            raise output.problem
    if failed is not None:
        raise failed


def _first_failure(running: dict[str, tuple[subprocess.Popen, _Output, Path]]) -> HostFailed | None:
    """Wait until every program ended or one failed; the first that failed (in time, then in host order)."""
    while True:
        for host, (process, output, log) in running.items():
            if process.poll() is not None and process.returncode != 0:
                output.join()  # its last lines, for its reason
                failure = _failure(process, output, log)
                return HostFailed(host, str(failure), log)
        if all(process.poll() is not None for process, _, _ in running.values()):
            return None
        time.sleep(0.1)


class _Output(threading.Thread):
    """Copies a program's output to its log and to `echo` as it comes, in a thread of its own: the pipe is
    read while the program is being stopped too, so it never fills and blocks it."""

    def __init__(self, stream: IO[str], log: IO[str], echo: Callable[[str], None]):
        super().__init__(daemon=True)
        self.stream, self.log, self.echo = stream, log, echo
        self.last_error, self.last_line = "", ""
        self.problem: Exception | None = None  # what `echo` raised: raised again by the caller, once the program ends

    def run(self) -> None:
        for line in self.stream:
            self.log.write(line)
            self.log.flush()
            text = line.rstrip()
            if text:
                if self.problem is None:
                    try:
                        self.echo(text)
                    except Exception as exc:
                        self.problem = exc
                self.last_line = text
                if re.search(r"(^|\s)error:|Error:|Exception:", text):
                    self.last_error = text


def _stop_all(processes: Sequence[subprocess.Popen], signals: Sequence[tuple[int, float]]) -> None:
    """Signal the programs' process groups until the programs end, then kill what they leave in their groups
    (their children may ignore the signal they obeyed). A second Ctrl-C kills the groups at once."""
    pending = list(processes)
    try:
        for sig, wait in signals:
            for process in pending:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, sig)
            deadline = time.monotonic() + wait
            pending = [process for process in pending if not _ended(process, deadline)]
            if not pending:
                break
    except KeyboardInterrupt:
        for process in processes:
            _kill_group(process)
        raise
    for process in processes:
        _kill_group(process)


def _ended(process: subprocess.Popen, deadline: float) -> bool:
    try:
        process.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        return False
    return True


def _kill_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


# Where `make setup` downloads the handler's wheels (hash-checked) on this machine, for training exports;
# the environment variable (containers/inference/libraries.py) overrides it.
LOCAL_WHEELS = Path(__file__).resolve().parents[2] / ".venv" / "serving-wheels"


def local_wheels() -> Path:
    return Path(os.environ.get(libraries.SERVING_WHEELS_ENV) or LOCAL_WHEELS)


def environment(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment (without any AWS credentials: jobs here reach no AWS), plus `extra`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SM_"))}
    return {**base, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1", **extra}


def run_processing(arguments: dict, name: str, s3: LocalS3, work: Path, echo: Callable[[str], None]) -> dict:
    """A CreateProcessingJob request, run here; returns what DescribeProcessingJob would add to it."""
    command = command_for(arguments["AppSpecification"].get("ContainerEntrypoint") or [])
    cluster = arguments["ProcessingResources"]["ClusterConfig"]
    count = int(cluster.get("InstanceCount", 1))
    hosts = [f"algo-{i + 1}" for i in range(count)]
    for index, host in enumerate(hosts):
        sandbox = Sandbox(work / host)
        for item in arguments.get("ProcessingInputs", []):
            source = item.get("S3Input")
            if source is None:
                raise DefinitionProblem(f"processing input {item.get('InputName')!r}: only S3 inputs run locally")
            sharded = source.get("S3DataDistributionType") == "ShardedByS3Key"
            s3.download(source["S3Uri"], sandbox.local(source["LocalPath"]), shard=(index, count) if sharded else None)
        config = sandbox.opt_ml / "config" / "resourceconfig.json"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(json.dumps({"current_host": host, "hosts": hosts}))
        program_arguments = [sandbox.rewrite(str(a)) for a in arguments["AppSpecification"].get("ContainerArguments", [])]
        if count > 1 and command[1].endswith("prepare_data.py"):
            program_arguments += ["--resource-config", str(config)]  # the program's hidden option for its host name
        for item in arguments.get("ProcessingOutputConfig", {}).get("Outputs", []):
            sandbox.local(item["S3Output"]["LocalPath"]).mkdir(parents=True, exist_ok=True)
        env = environment({k: sandbox.rewrite(str(v)) for k, v in (arguments.get("Environment") or {}).items()})
        if count > 1:
            echo(f"instance {host} of {count}")
        run_program(command + program_arguments, env, work / f"{host}.log", echo)
        for item in arguments.get("ProcessingOutputConfig", {}).get("Outputs", []):
            s3.upload(sandbox.local(item["S3Output"]["LocalPath"]), item["S3Output"]["S3Uri"])
    return {**arguments, "ProcessingJobName": name, "ProcessingJobStatus": "Completed"}


def run_training(arguments: dict, name: str, images: Images, s3: LocalS3, work: Path, echo: Callable[[str], None]) -> dict:
    """A CreateTrainingJob request, run here; returns what DescribeTrainingJob would add to it."""
    command = images.training_command(arguments["AlgorithmSpecification"]["TrainingImage"])
    count = int((arguments.get("ResourceConfig") or {}).get("InstanceCount", 1))
    if count > 1:
        return _run_training_cluster(arguments, name, command, count, s3, work, echo)
    instance = _training_instance(arguments, s3, Sandbox(work), "algo-1", ["algo-1"], echo)
    log = work / "training.log"
    try:
        run_program(command + instance.arguments, instance.env, log, echo, stop=TERMINATE)
    except JobFailed as exc:
        raise JobFailed(failure_reason(instance.failure) or str(exc), log) from None
    finally:
        _keep_outputs(arguments, s3, instance)
    return _completed(arguments, name, s3, work, instance.model_dir, log)


@dataclass(frozen=True)
class _TrainingInstance:
    """One instance of a training job: its sandbox's folders, and the program's arguments and environment."""

    host: str
    arguments: list[str]
    env: dict[str, str]
    model_dir: Path
    checkpoints: Path
    tensorboard: Path
    failure: Path


def _training_instance(arguments: dict, s3: LocalS3, sandbox: Sandbox, host: str, hosts: list[str], echo: Callable[[str], None]) -> _TrainingInstance:
    """What SageMaker gives one instance: the channels, hyperparameters.json, the resource configuration naming it,
    the checkpoint prefix restored into its checkpoint folder, and the training environment."""
    channels = {}
    for channel in arguments.get("InputDataConfig", []):
        source = channel["DataSource"].get("S3DataSource")
        if source is None:
            raise DefinitionProblem(f"training channel {channel['ChannelName']!r}: only S3 channels run locally")
        folder = sandbox.local(f"/opt/ml/input/data/{channel['ChannelName']}")
        sharded = len(hosts) > 1 and source.get("S3DataDistributionType") == "ShardedByS3Key"
        s3.download(source["S3Uri"], folder, shard=(hosts.index(host), len(hosts)) if sharded else None)
        channels[f"SM_CHANNEL_{channel['ChannelName'].upper()}"] = str(folder)
    config = sandbox.local("/opt/ml/input/config")
    config.mkdir(parents=True, exist_ok=True)
    (config / "hyperparameters.json").write_text(json.dumps({k: str(v) for k, v in (arguments.get("HyperParameters") or {}).items()}, indent=2))
    (config / "resourceconfig.json").write_text(json.dumps({"current_host": host, "hosts": hosts}))
    checkpoint = arguments.get("CheckpointConfig")
    checkpoints = sandbox.local(checkpoint.get("LocalPath", "/opt/ml/checkpoints") if checkpoint else "/opt/ml/checkpoints")
    # What an earlier job left in the checkpoint prefix comes back: "Existing checkpoints in S3 are written to the
    # SageMaker container at the start of the job" ("Use checkpoints in Amazon SageMaker"), a restarted spot job's too,
    # and to every instance: "the checkpoints from this S3 bucket are restored to checkpoint_local_path in each
    # instance of the new training job" ("Resume training from a checkpoint", SageMaker Developer Guide).
    if checkpoint and (restored := s3.download(checkpoint["S3Uri"], checkpoints)):
        echo(f"restored {restored} checkpoint file(s) from {checkpoint['S3Uri']}")
    model_dir, tensorboard, failure = (
        sandbox.local("/opt/ml/model"),
        sandbox.local("/opt/ml/output/tensorboard"),
        sandbox.local("/opt/ml/output/failure"),
    )
    model_dir.mkdir(parents=True, exist_ok=True)
    env = environment(
        {
            **(arguments.get("Environment") or {}),
            **channels,
            libraries.SERVING_WHEELS_ENV: str(local_wheels()),  # the training image's own copy, here
            "SM_MODEL_DIR": str(model_dir),
            "SM_OUTPUT_DATA_DIR": str(sandbox.local("/opt/ml/output/data")),
        }
    )
    # A TF_CONFIG of this shell is not the job's: SageMaker's containers start without it, and the program would
    # take it for a cluster to join.
    env.pop(distributed.TF_CONFIG, None)
    paths = ["--hyperparameters", str(config / "hyperparameters.json"), "--model-dir", str(model_dir), "--checkpoints", str(checkpoints)]
    paths += ["--tensorboard-dir", str(tensorboard), "--failure-file", str(failure)]
    return _TrainingInstance(host, paths, env, model_dir, checkpoints, tensorboard, failure)


def _run_training_cluster(arguments: dict, name: str, command: list[str], count: int, s3: LocalS3, work: Path, echo: Callable[[str], None]) -> dict:
    """A training job of several instances: algo-1 ... algo-N at once, each in its own sandbox, workers of one
    MultiWorkerMirroredStrategy cluster on 127.0.0.1 ports picked here (containers/training/distributed.py)."""
    hosts = [f"algo-{i + 1}" for i in range(count)]
    addresses = json.dumps({host: f"127.0.0.1:{port}" for host, port in zip(hosts, free_ports(count), strict=True)})
    instances, programs = [], {}
    for host in hosts:
        sandbox = Sandbox(work / host)
        instance = _training_instance(arguments, s3, sandbox, host, hosts, lambda line, host=host: echo(f"[{host}] {line}"))
        own = command + instance.arguments + ["--resource-config", str(sandbox.local("/opt/ml/input/config/resourceconfig.json"))]
        programs[host] = (own, {**instance.env, distributed.ADDRESSES_ENV: addresses}, work / f"{host}.log")
        instances.append(instance)
    chief = instances[0]
    log = work / "training.log"  # every host's lines, prefixed
    try:
        run_programs(programs, log, echo, stop=TERMINATE)
    except HostFailed as exc:
        failed = instances[hosts.index(exc.host)]
        raise JobFailed(f"{exc.host}: {failure_reason(failed.failure) or exc}", exc.log) from None
    finally:
        # Only the chief writes the checkpoint folder and TensorBoard; the others keep theirs in scratch folders.
        _keep_outputs(arguments, s3, chief)
    # SageMaker takes /opt/ml/model from every instance: "If multiple containers in a single training job write to
    # this directory they should ensure no file/directory names clash. SageMaker AI aggregates the result in a TAR
    # file" ("How Amazon SageMaker AI Processes Training Output"). Only the chief exports, so the archive is its
    # folder; anything another instance wrote would land in the same archive, and is refused here.
    for other in instances[1:]:
        written = sorted(str(path.relative_to(other.model_dir)) for path in other.model_dir.rglob("*"))
        if written:
            raise JobFailed(
                f"{other.host} wrote {', '.join(written[:5])} to /opt/ml/model: SageMaker merges every instance's model folder "
                f"into one archive, so only the chief ({chief.host}) may write there",
                programs[other.host][2],
            )
    return _completed(arguments, name, s3, work, chief.model_dir, programs[chief.host][2])


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1, one per worker: bound together (so they differ), then released for the workers."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def _keep_outputs(arguments: dict, s3: LocalS3, instance: _TrainingInstance) -> None:
    """Kept whatever the job's end, as SageMaker keeps the checkpoint folder in sync with S3 (deletions too):
    "Use checkpoints in Amazon SageMaker", SageMaker Developer Guide."""
    checkpoint = arguments.get("CheckpointConfig")
    if checkpoint and instance.checkpoints.is_dir():
        s3.upload(instance.checkpoints, checkpoint["S3Uri"], mirror=True)
    tensorboard_config = arguments.get("TensorBoardOutputConfig")
    if tensorboard_config and instance.tensorboard.is_dir():
        s3.upload(instance.tensorboard, tensorboard_config["S3OutputPath"])


def _completed(arguments: dict, name: str, s3: LocalS3, work: Path, model_dir: Path, log: Path) -> dict:
    """model.tar.gz packed from the model folder, and what DescribeTrainingJob says of the finished job."""
    artifact = f"{arguments['OutputDataConfig']['S3OutputPath'].rstrip('/')}/{name}/output/model.tar.gz"
    packed = work / "model.tar.gz"
    with tarfile.open(
        packed, "w:gz", compresslevel=1
    ) as archive:  # at the root, as SageMaker packs it; level 1: 6x faster than 9 on code/lib, 13% larger
        for path in sorted(model_dir.iterdir()):
            archive.add(path, arcname=path.name)
    s3.put_file(packed, artifact)
    metrics = final_metrics(arguments["AlgorithmSpecification"].get("MetricDefinitions", []), log.read_text())
    return {
        **arguments,
        "TrainingJobName": name,
        "TrainingJobStatus": "Completed",
        "ModelArtifacts": {"S3ModelArtifacts": artifact},
        "FinalMetricDataList": metrics,
    }


def failure_reason(failure: Path) -> str:
    """What a failed training job wrote to /opt/ml/output/failure: "SageMaker returns the first 1024 characters
    from this file as FailureReason" ("How Amazon SageMaker Processes Training Output", SageMaker Developer Guide)."""
    try:
        return failure.read_text(errors="replace")[:1024].strip()
    except FileNotFoundError:
        return ""


def final_metrics(definitions: list[dict], log: str) -> list[dict]:
    """The last value each metric definition's regex finds in the log, as SageMaker reports them."""
    found = []
    for definition in definitions:
        values = re.findall(definition["Regex"], log)
        if values:
            value = values[-1] if isinstance(values[-1], str) else values[-1][0]
            found.append({"MetricName": definition["Name"], "Value": float(value)})
    return found
