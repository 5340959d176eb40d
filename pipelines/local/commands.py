"""The `--local` side of the CLI: the same commands as on AWS, on this machine's state directory.

`pipelines/cli.py` parses the options and calls these; they print with rich and raise `LocalError` (a
message and an exit status) for anything the user has to fix. The registry, the executions and the
endpoint records live under the state directory (default `.cardamage/`), see pipelines/local/state.py.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines.config import Config
from pipelines.local.console import Progress, execution_outputs, relative, summary_rows
from pipelines.local.endpoint import ENDPOINT_SETTINGS, EndpointServer, LocalDeployer
from pipelines.local.engine import ExecutionFailed
from pipelines.local.expressions import DefinitionProblem
from pipelines.local.runner import Inputs, local_definition, run_local, sample_inputs
from pipelines.local.state import Package, State
from pipelines.local.storage import LocalS3


class LocalError(Exception):
    """A problem the user fixes (exit status 2) or a run that failed (exit status 1)."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


def _console() -> Any:
    from rich.console import Console

    return Console(highlight=False, width=None if sys.stdout.isatty() else 200)


def _state(state_dir: Path, *, must_exist: bool = True) -> State:
    if must_exist and not (state_dir / "state.sqlite").is_file():
        raise LocalError(f"{state_dir}: no local runs here yet: run `cardamage run --local` first (or pass --state-dir)", 2)
    return State(state_dir)


def _quiet_tensorflow() -> None:
    """TensorFlow's start-up lines (CPU instructions, oneDNN) are noise for a command-line user."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


def _deployer(state_dir: Path) -> LocalDeployer:
    return LocalDeployer(_state(state_dir), LocalS3(state_dir / "s3"), state_dir / "endpoints")


# run --------------------------------------------------------------------------------------------------


def run(
    cfg: Config,
    state_dir: Path,
    inputs: Inputs | None,
    overrides: dict[str, str],
    definition_file: Path | None = None,
    *,
    verbose: bool = False,
) -> None:
    """Run the pipeline here; prints the steps as they go and where the results are. Raises LocalError."""
    from pipelines import aws

    console = _console()
    progress = Progress(console, verbose=verbose)
    started = time.monotonic()
    try:
        if definition_file is None:
            console.print(f"[dim]rendering the definition of {cfg.pipeline_name} from {relative(cfg.source)}...[/]")
        definition = local_definition(cfg, definition_file)
        known = aws.pipeline_parameters({"PipelineDefinition": json.dumps(definition)})
        try:
            checked = {p["Name"]: p["Value"] for p in aws.validate_overrides(overrides, known)}
        except aws.ControlPlaneError as exc:
            raise LocalError(str(exc), 2) from None
        result = run_local(
            cfg, state_dir, inputs or sample_inputs(cfg), checked, definition_file, reporter=progress.reporter(), definition=definition
        )
    except ExecutionFailed as exc:
        progress.stop()
        where = f"; log: {relative(exc.log)}" if exc.log else ""
        raise LocalError(f"execution {exc.execution} failed: {exc}{where}", 1) from None
    except DefinitionProblem as exc:
        progress.stop()
        raise LocalError(str(exc), 2) from None
    except KeyboardInterrupt:
        progress.stop()
        raise LocalError("stopped by Ctrl-C: the running step was stopped and the execution recorded as Stopped", 130) from None
    outputs = execution_outputs(state_dir.resolve(), result.execution)
    console.print(f"\n[bold green]Succeeded[/] execution {result.execution} in {time.monotonic() - started:.0f} s (state in {relative(state_dir)})")
    for label, value in summary_rows(outputs):
        console.print(f"  {label:<17} {value}", markup=False)
    if outputs.package and outputs.package.status != "Approved":
        console.print(
            f"  approve it with `cardamage approve --local {outputs.package.version}`, which deploys it to the local endpoint", markup=False
        )


# executions ------------------------------------------------------------------------------------------


def _time(moment: float | None) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def _took(start: float | None, end: float | None) -> str:
    if not start or not end:
        return "-"
    seconds = max(0, round(end - start))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _table(*columns: str) -> Any:
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def executions(cfg: Config, state_dir: Path, execution: str | None, limit: int) -> None:
    state, console = _state(state_dir), _console()
    if execution is None:
        rows = [row for row in state.executions(limit * 4) if row["pipeline"] == cfg.pipeline_name][:limit]
        if not rows:
            console.print(f"pipeline {cfg.pipeline_name} has no local execution in {relative(state_dir)} yet")
            return
        table = _table("execution", "status", "started (UTC)", "took", "failure")
        for row in rows:
            table.add_row(row["id"], row["status"], _time(row["started"]), _took(row["started"], row["ended"]), row["failure"] or "")
        console.print(table)
        return
    row = state.execution(execution)
    if row is None:
        raise LocalError(f"no local execution {execution!r} in {relative(state_dir)}: `cardamage executions --local` lists them", 1)
    console.print(f"execution  {row['id']} of {row['pipeline']}")
    console.print(f"status     {row['status']}")
    console.print(f"started    {_time(row['started'])} UTC, took {_took(row['started'], row['ended'])}")
    if row["failure"]:
        console.print(f"failure    {row['failure']}", markup=False)
    parameters = json.loads(row["parameters"] or "{}")
    console.print("parameters " + ", ".join(f"{k}={v}" for k, v in parameters.items()), markup=False)
    table = _table("step", "type", "status", "took", "cached from", "log", "failure")
    for step in state.steps(row["id"]):
        table.add_row(
            step["name"],
            step["type"],
            step["status"],
            _took(step["started"], step["ended"]),
            step["cached_from"] or "",
            relative(step["log"]) if step["log"] else "",
            step["failure"] or "",
        )
    console.print(table)


# the registry ------------------------------------------------------------------------------------------


def models(cfg: Config, state_dir: Path, limit: int) -> None:
    deployer, console = _deployer(state_dir), _console()
    packages = deployer.state.packages(cfg.model_package_group)[:limit]
    if not packages:
        console.print(f"no model packages in {cfg.model_package_group} (local) yet")
        return
    served = deployer.record(cfg.endpoint_name)
    table = _table("version", "status", "created (UTC)", "mAP", "endpoint", "execution", "approval note")
    for package in packages:
        table.add_row(
            str(package.version),
            package.status,
            _time(package.created),
            f"{package.map:.4f}" if package.map is not None else "-",
            "serving" if served and served.package_arn == package.arn else "",
            package.execution or "",
            package.approval_description or "",
        )
    console.print(table)


def _package(state: State, cfg: Config, reference: str) -> Package:
    package = state.package(reference, cfg.model_package_group)
    if package is None or package.group != cfg.model_package_group:
        versions = ", ".join(str(p.version) for p in state.packages(cfg.model_package_group)) or "none yet"
        raise LocalError(f"no model package {reference!r} in {cfg.model_package_group} (local); versions: {versions}", 1)
    return package


def set_approval(cfg: Config, state_dir: Path, reference: str, status: str, comment: str | None) -> None:
    """Approve or reject a local package, recording who and why. An approval deploys the package to the local
    endpoint, as the approval event does on AWS (with the same rule: never over a newer version)."""
    deployer, console = _deployer(state_dir), _console()
    package = _package(deployer.state, cfg, reference)
    note = f"{status} by {getpass.getuser()}@local" + (f": {comment.strip()}" if comment and comment.strip() else "")
    deployer.state.set_status(package.arn, status, note[:1024])
    console.print(f"version {package.version}: {package.status} -> {status} ({note})", markup=False)
    served = deployer.record(cfg.endpoint_name)
    if status == "Approved":
        result = deployer.deploy(package.arn, cfg.endpoint_name)
        console.print(f"endpoint {cfg.endpoint_name}: {result['status']} ({result['reason']})", markup=False)
    elif served and served.package_arn == package.arn:
        console.print(
            f"[yellow]warning:[/] endpoint {cfg.endpoint_name} still serves version {package.version}; "
            "`cardamage deploy --local --package N --force` puts another back"
        )


def deploy(cfg: Config, state_dir: Path, reference: str | None, force: bool) -> None:
    deployer, console = _deployer(state_dir), _console()
    if reference:
        package = _package(deployer.state, cfg, reference)
    else:
        approved = [p for p in deployer.state.packages(cfg.model_package_group) if p.status == "Approved"]
        if not approved:
            raise LocalError(f"no Approved package in {cfg.model_package_group} (local): approve one with `cardamage approve --local VERSION`", 1)
        package = approved[0]
    result = deployer.deploy(package.arn, cfg.endpoint_name, force=force)
    if result["status"] == "skipped" and "is not newer" not in result["reason"]:
        raise LocalError(f"not deployed: {result['reason']}", 1)
    console.print(f"endpoint {cfg.endpoint_name}: {result['status']} ({result['reason']})", markup=False)


# the endpoint -----------------------------------------------------------------------------------------


def _model_for(cfg: Config, state_dir: Path, reference: str | None) -> tuple[LocalDeployer, str | None]:
    deployer = _deployer(state_dir)
    arn = _package(deployer.state, cfg, reference).arn if reference else None
    if arn is None and deployer.record(cfg.endpoint_name) is None:
        raise LocalError(
            f"nothing is deployed to the local endpoint {cfg.endpoint_name}: approve a package (`cardamage approve --local N`) or pass --model N", 1
        )
    return deployer, arn


def serve(cfg: Config, state_dir: Path, port: int, reference: str | None) -> None:
    """Serve the endpoint in the foreground on 127.0.0.1 until Ctrl-C."""
    _quiet_tensorflow()
    deployer, arn = _model_for(cfg, state_dir, reference)
    try:
        server = EndpointServer(deployer, cfg.endpoint_name, port=port, package_arn=arn)
    except OSError as exc:
        raise LocalError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc} (pass --port)", 2) from None
    console = _console()
    model_dir, _ = deployer.model(cfg.endpoint_name, arn)
    console.print(f"loading {relative(model_dir)}...", markup=False)
    server.endpoint()  # load before saying it is ready
    url = f"http://127.0.0.1:{server.port}"
    what = f"package {reference}" if reference else f"endpoint {cfg.endpoint_name} (follows new deployments)"
    console.print(f"serving {what} at {url}  (GET /ping, POST /invocations; Ctrl-C stops)", markup=False)
    console.print(f"  try: curl -s -H 'Content-Type: image/jpeg' --data-binary @photo.jpg {url}/invocations", markup=False)
    # Ctrl-C and SIGTERM stop it cleanly, even when started from a process that ignores SIGINT (which a child
    # inherits: background jobs, test runners' workers).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.5)
    except KeyboardInterrupt:
        console.print("stopped")
    finally:
        server.shutdown()


def predict(
    cfg: Config, state_dir: Path, image: Path, output: Path | None, reference: str | None, score_threshold: float | None, max_detections: int | None
) -> None:
    """Detections for one image through the endpoint's handler (in this process), printed and drawn."""
    from containers.common.pictures import save_detections_picture
    from containers.inference.local import LocalEndpoint

    if not image.is_file():
        raise LocalError(f"{image}: no such image file", 2)
    _quiet_tensorflow()
    deployer, arn = _model_for(cfg, state_dir, reference)
    model_dir, environment = deployer.model(cfg.endpoint_name, arn)
    os.environ.update({k: str(v) for k, v in environment.items() if k in ENDPOINT_SETTINGS})
    attributes = ";".join(
        f"{name}={value}" for name, value in (("score_threshold", score_threshold), ("max_detections", max_detections)) if value is not None
    )
    body = image.read_bytes()
    content_type = "image/png" if image.suffix.lower() == ".png" else "image/jpeg"
    status, answer, _ = LocalEndpoint(model_dir).invoke(body, content_type, attributes or None, "application/json")
    reply = json.loads(answer)
    if status != 200:
        raise LocalError(f"{image}: the endpoint answered {status}: {reply.get('error', reply)}", 1)
    detections = reply["predictions"][0]["detections"]
    output = output or state_dir / "predictions" / f"{image.stem}.png"
    output.parent.mkdir(parents=True, exist_ok=True)
    save_detections_picture(body, detections, output)
    console = _console()
    served = f"package {reference}" if reference else f"endpoint {cfg.endpoint_name} ({relative(model_dir)})"
    console.print(f"{len(detections)} detection(s) in {image} by {served}", markup=False)
    if detections:
        table = _table("class", "score", "box (x0, y0, x1, y1 px)")
        for detection in detections:
            box = detection["box"]
            table.add_row(detection["class"], f"{detection['score']:.3f}", ", ".join(f"{box[k]:.0f}" for k in ("xmin", "ymin", "xmax", "ymax")))
        console.print(table)
    console.print(f"picture: {relative(output)}", markup=False)


def tensorboard(cfg: Config, state_dir: Path, port: int) -> None:
    """TensorBoard (foreground) on the event files of the pipeline's local training runs."""
    state_dir = state_dir.resolve()
    runs = sorted(
        {path.parent for path in (state_dir / "s3").rglob("events.out.tfevents.*") if cfg.pipeline_name in path.relative_to(state_dir).parts}
    )
    if not runs:
        raise LocalError(f"no TensorBoard event files of {cfg.pipeline_name} under {relative(state_dir)}: run `cardamage run --local` first", 1)
    program = shutil.which("tensorboard", path=str(Path(sys.executable).parent)) or shutil.which("tensorboard")
    if program is None:
        raise LocalError("the tensorboard program is not installed in this environment (run `make setup`)", 2)
    spec = ",".join(f"{_run_name(state_dir, run)}:{run}" for run in runs)
    _console().print(f"TensorBoard on {len(runs)} training run(s) at http://127.0.0.1:{port}  (Ctrl-C stops)", markup=False)
    with contextlib.suppress(KeyboardInterrupt):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        subprocess.run([program, "--logdir_spec", spec, "--host", "127.0.0.1", "--port", str(port)], check=False, env=env)


def _run_name(state_dir: Path, folder: Path) -> str:
    """A short, readable run name: the execution id, and the sub-folder under `tensorboard/` if any."""
    parts = folder.relative_to(state_dir / "s3").parts
    execution = next((p for p in parts if p[:8].isdigit() and "-" in p), parts[-1])
    below = parts[parts.index("tensorboard") + 1 :] if "tensorboard" in parts else ()
    return "/".join((execution, *below)).replace(",", "_").replace(":", "_")
