"""The commands that exist on this machine only: run the pipeline (the local engine), serve and query the local
endpoint, open TensorBoard on the local training runs, and run PrepareData on a manifest.

They work on the state directory (`--state-dir`, default `.cardamage/`) with pipeline.yaml's `local` profile
unless `--profile` names another. `--local` is accepted and changes nothing: these commands have no AWS side.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Annotated

import typer

import containers
from pipelines.backends import BackendError
from pipelines.backends.local import LocalBackend
from pipelines.cli.app import Invocation, Side, command, fail, pairs
from pipelines.cli.data_commands import label_choices
from pipelines.cli.options import (
    ClassMapOption,
    ImagesOption,
    ImagesPrefixOption,
    LabelFormatOption,
    LabelsOption,
    MaxDetectionsOption,
    ModelOption,
    ParamOption,
    ScoreThresholdOption,
    option,
)
from pipelines.cli.output import console, duration, table

PREPARE_DATA = Path(containers.__file__).resolve().parent / "processing" / "prepare_data.py"


def custom_attributes(score_threshold: float | None, max_detections: int | None) -> str | None:
    """The options as the endpoint's custom attributes (`score_threshold=0.5;max_detections=10`); None for none."""
    chosen = (("score_threshold", score_threshold), ("max_detections", max_detections))
    return ";".join(f"{name}={value}" for name, value in chosen if value is not None) or None


def _quiet_tensorflow() -> None:
    """TensorFlow's start-up lines (CPU instructions, oneDNN) are noise for a command-line user."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


@command(Side.LOCAL)
def run(
    cli: Invocation,
    manifest: LabelsOption = None,
    images: ImagesOption = None,
    images_prefix: ImagesPrefixOption = None,
    param: ParamOption = None,
    definition_file: option(Path | None, "--definition", metavar="FILE", dir_okay=False, help="Run this definition JSON instead.") = None,
    verbose: option(bool, "--verbose", "-v", help="Show every line the jobs print (TensorFlow's too).") = False,
) -> None:
    """Run the whole pipeline on this machine: the definition the CDK app deploys, step by step.

    Exit status 0 when it succeeds; 1, with the Fail step's message or the failed step's error and log, when it
    does not; 2 for a wrong invocation; 130 when stopped by Ctrl-C. Steps whose inputs did not change since a
    successful run are cached. Parameters (--param) are checked as `cardamage start` checks them.

    Like a triggered execution, the run trains on every labelled input staged in this state folder so far, and
    reads their images through the common root of their images prefixes (prefixes in two buckets: exit 2)."""
    from pipelines.local.console import Progress, execution_outputs, relative, summary_rows
    from pipelines.local.engine import ExecutionFailed
    from pipelines.local.expressions import DefinitionProblem
    from pipelines.local.runner import Inputs, local_definition, run_local, sample_inputs

    if (images is None) != (images_prefix is None):
        fail("--images and --images-prefix go together: the folder and the S3 prefix it stands for", 2)
    if images is not None and not manifest:
        fail("--images needs --manifest: the manifests whose source-refs start with --images-prefix", 2)
    config, state_dir = cli.config, cli.state_dir
    out = console()
    progress = Progress(out, verbose=verbose)
    started = time.monotonic()
    try:
        if definition_file is None:
            out.print(f"[dim]rendering the definition of {config.pipeline_name} from {relative(config.source)}...[/]")
        definition = local_definition(config, definition_file)
        inputs = Inputs(list(manifest), images, images_prefix) if manifest else sample_inputs(config)
        result = run_local(config, state_dir, inputs, pairs(param, "--param"), definition_file, reporter=progress.reporter(), definition=definition)
    except ExecutionFailed as exc:
        progress.stop()
        where = f"; log: {relative(exc.log)}" if exc.log else ""
        raise BackendError(f"execution {exc.execution} failed: {exc}{where}", 1) from None
    except DefinitionProblem as exc:
        progress.stop()
        raise BackendError(str(exc), 2) from None
    except KeyboardInterrupt:
        progress.stop()
        raise BackendError("stopped by Ctrl-C: the running step was stopped and the execution recorded as Stopped", 130) from None
    outputs = execution_outputs(state_dir.resolve(), result.execution)
    out.print(f"\n[bold green]Succeeded[/] execution {result.execution} in {duration(time.monotonic() - started)} (state in {relative(state_dir)})")
    for label, value in summary_rows(outputs):
        out.print(f"  {label:<17} {value}", markup=False)
    if outputs.package and outputs.package.status != "Approved":
        out.print(f"  approve it with `cardamage approve --local {outputs.package.version}`, which deploys it to the local endpoint", markup=False)


def _model_for(cli: Invocation, reference: str | None) -> tuple[LocalBackend, str | None]:
    """The local backend and the package to serve: `reference`, else (None) what the endpoint has deployed."""
    backend = LocalBackend(cli.config, cli.state_dir)
    arn = backend.package(reference).arn if reference else None
    if arn is None and backend.deployer.record(cli.config.endpoint_name) is None:
        name = cli.config.endpoint_name
        raise BackendError(f"nothing is deployed to the local endpoint {name}: approve a package (`cardamage approve --local N`) or pass --model N")
    return backend, arn


@command(Side.LOCAL)
def serve(
    cli: Invocation,
    port: option(int, "--port", metavar="PORT", min=0, max=65535, help="The port on 127.0.0.1 (0: any free one).") = 8080,
    model: ModelOption = None,
) -> None:
    """Serve the local endpoint in the foreground on 127.0.0.1: SageMaker's container contract (GET /ping, POST
    /invocations) and the runtime API (POST /endpoints/<endpoint>/invocations), so boto3's sagemaker-runtime
    client works against it with --endpoint-url.

    It serves what the pipeline's Deploy step (or an approval) deployed, and picks up a newer deployment at
    the next request; --model pins one package. Requests go through the endpoint's own handler code."""
    from pipelines.local.console import relative
    from pipelines.local.endpoint import EndpointServer

    _quiet_tensorflow()
    backend, arn = _model_for(cli, model)
    endpoint_name = cli.config.endpoint_name
    try:
        server = EndpointServer(backend.deployer, endpoint_name, port=port, package_arn=arn)
    except OSError as exc:
        raise BackendError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc} (pass --port)", 2) from None
    out = console()
    model_dir, _ = backend.deployer.model(endpoint_name, arn)
    out.print(f"loading {relative(model_dir)}...", markup=False)
    server.endpoint()  # load before saying it is ready
    url = f"http://127.0.0.1:{server.port}"
    what = f"package {model}" if model else f"endpoint {endpoint_name} (follows new deployments)"
    out.print(f"serving {what} at {url}  (GET /ping, POST /invocations; Ctrl-C stops)", markup=False)
    out.print(f"  SageMaker runtime API: POST {url}/endpoints/{cli.config.endpoint_name}/invocations (boto3 with endpoint_url={url})", markup=False)
    out.print(f"  try: curl -s -H 'Content-Type: image/jpeg' --data-binary @photo.jpg {url}/invocations", markup=False)
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
        out.print("stopped")
    finally:
        server.shutdown()


@command(Side.BOTH)
def predict(
    cli: Invocation,
    images: Annotated[list[Path], typer.Argument(metavar="IMAGE...", dir_okay=False, help="JPEG or PNG photos.")],
    output: option(Path | None, "--output", "-o", metavar="OUT", help="The pictures: a .png for one photo, else a folder.") = None,
    endpoint: option(str | None, "--endpoint", metavar="NAME", help="The endpoint to call (default: the config's).") = None,
    model: ModelOption = None,
    score_threshold: ScoreThresholdOption = None,
    max_detections: MaxDetectionsOption = None,
) -> None:
    """Detect damage in photos; prints the boxes and saves a picture of each.

    With --local, the local endpoint's model through the endpoint's handler. Otherwise InvokeEndpoint on the
    AWS endpoint, with the photo as the binary body and the threshold in the custom attributes;
    --endpoint-url points it at any runtime-compatible URL, such as `cardamage serve`. Several photos are sent
    concurrently. The pictures go to --output: default <state-dir>/predictions/ here, ./predictions/ on AWS."""
    missing = [str(image) for image in images if not image.is_file()]
    if missing:
        fail(f"no such image file: {', '.join(missing)}", 2)
    if model is not None and not cli.is_local:
        fail("--model picks a local package; an AWS endpoint serves what is deployed (cardamage deploy --package N)", 2)
    attributes = custom_attributes(score_threshold, max_detections)
    endpoint_name = endpoint or cli.config.endpoint_name
    invoke, served = _local_invoker(cli, model) if cli.is_local else _runtime_invoker(cli, endpoint_name)
    default = cli.state_dir / "predictions" if cli.is_local else Path("predictions")
    pictures = _picture_paths(images, output, default)
    results = _predict_all(images, invoke, attributes)
    out = console()
    failed = 0
    for image, picture in zip(images, pictures, strict=True):
        outcome = results[image]
        if isinstance(outcome, str):
            failed += 1
            typer.echo(f"{image}: {outcome}", err=True)
            continue
        _show_detections(out, image, picture, outcome, served)
    if failed:
        raise typer.Exit(1)


def _local_invoker(cli: Invocation, model: str | None):
    from containers.inference.local import LocalEndpoint
    from pipelines.local.console import relative
    from pipelines.local.endpoint import apply_serving_environment

    _quiet_tensorflow()
    backend, arn = _model_for(cli, model)
    model_dir, environment = backend.deployer.model(cli.config.endpoint_name, arn)
    apply_serving_environment(environment)
    local = LocalEndpoint(model_dir)
    capture = None if model else backend.deployer.capture(cli.config.endpoint_name)  # the endpoint captures; a package looked at does not

    def invoke(body: bytes, content_type: str, attributes: str | None) -> tuple[int, dict]:
        status, answer, answer_type = local.invoke(body, content_type, attributes, "application/json")
        if capture is not None and status == 200:
            capture.record(body, content_type, answer, answer_type)
        return status, json.loads(answer)

    served = f"package {model}" if model else f"endpoint {cli.config.endpoint_name} ({relative(model_dir)})"
    return invoke, served


def _runtime_invoker(cli: Invocation, endpoint_name: str):
    """InvokeEndpoint through boto3's sagemaker-runtime client; a ModelError gives the container's status."""
    from botocore.exceptions import ClientError

    if cli.endpoint_url and not (cli.region or cli.config.aws.region or boto3_region()):
        # A runtime-compatible URL that is not AWS (cardamage serve): any region signs the request.
        from pipelines import aws

        runtime = aws.connect("us-east-1", cli.endpoint_url).client("sagemaker-runtime")
    else:
        runtime = cli.aws().client("sagemaker-runtime")

    def invoke(body: bytes, content_type: str, attributes: str | None) -> tuple[int, dict]:
        request = {"EndpointName": endpoint_name, "Body": body, "ContentType": content_type, "Accept": "application/json"}
        if attributes:
            request["CustomAttributes"] = attributes
        try:
            return 200, json.loads(runtime.invoke_endpoint(**request)["Body"].read())
        except ClientError as exc:
            error = exc.response
            if error.get("Error", {}).get("Code") != "ModelError":
                raise
            try:
                original = json.loads(error.get("OriginalMessage") or "{}")
            except ValueError:
                original = {"error": error.get("OriginalMessage")}
            return int(error.get("OriginalStatusCode") or 500), original

    return invoke, f"endpoint {endpoint_name}" + (f" at {cli.endpoint_url}" if cli.endpoint_url else "")


def boto3_region() -> str | None:
    import boto3

    return boto3.Session().region_name


def _picture_paths(images: list[Path], output: Path | None, default: Path) -> list[Path]:
    if output is not None and output.suffix.lower() == ".png":
        if len(images) > 1:
            fail("--output FILE.png is for one image; give a folder for several", 2)
        return [output]
    folder = output or default
    names = [image.stem for image in images]
    repeated = {name for name in names if names.count(name) > 1}
    return [folder / (f"{image.stem}-{index}.png" if image.stem in repeated else f"{image.stem}.png") for index, image in enumerate(images)]


PREDICT_CONCURRENCY = 4  # requests in flight: enough to hide the round trip, few enough for one endpoint instance


def _predict_all(images: list[Path], invoke, attributes: str | None) -> dict[Path, dict | str]:
    """Each image's answer, or why it has none; sent concurrently, with a progress bar for several."""
    from concurrent.futures import ThreadPoolExecutor

    def one(image: Path) -> dict | str:
        body = image.read_bytes()
        content_type = "image/png" if image.suffix.lower() == ".png" else "image/jpeg"
        status, reply = invoke(body, content_type, attributes)
        if status != 200:
            return f"the endpoint answered {status}: {reply.get('error', reply) if isinstance(reply, dict) else reply}"
        return reply

    with ThreadPoolExecutor(max_workers=min(PREDICT_CONCURRENCY, len(images))) as pool:
        futures = {image: pool.submit(one, image) for image in dict.fromkeys(images)}
        if len(futures) > 1:
            from tqdm import tqdm

            for future in tqdm(futures.values(), total=len(futures), desc="predicting", unit="img", file=sys.stderr, leave=False):
                future.result()
        return {image: future.result() for image, future in futures.items()}


def _show_detections(out, image: Path, picture: Path, reply: dict, served: str) -> None:
    from containers.common.pictures import save_detections_picture

    detections = reply["predictions"][0]["detections"]
    save_detections_picture(image.read_bytes(), detections, picture)
    out.print(f"{len(detections)} detection(s) in {image} by {served}", markup=False, soft_wrap=True)  # paths stay whole
    if detections:
        boxes = table("class", "score", "box (x0, y0, x1, y1 px)")
        for detection in detections:
            box = detection["box"]
            boxes.add_row(detection["class"], f"{detection['score']:.3f}", ", ".join(f"{box[k]:.0f}" for k in ("xmin", "ymin", "xmax", "ymax")))
        out.print(boxes)
    out.print(f"picture: {picture}", markup=False, soft_wrap=True)


@command(Side.LOCAL)
def tensorboard(cli: Invocation, port: option(int, "--port", metavar="PORT", min=1, max=65535, help="The port on 127.0.0.1.") = 6006) -> None:
    """Open TensorBoard on the event files of the local training runs (foreground; Ctrl-C stops).

    On AWS the event files are in S3 under each execution's `tensorboard/` prefix (TensorBoardOutputConfig)."""
    state_dir, pipeline = cli.state_dir.resolve(), cli.config.pipeline_name
    runs = sorted({path.parent for path in (state_dir / "s3").rglob("events.out.tfevents.*") if pipeline in path.relative_to(state_dir).parts})
    if not runs:
        fail(f"no TensorBoard event files of {pipeline} under {cli.state_dir}: run `cardamage run` first", 1)
    program = shutil.which("tensorboard", path=str(Path(sys.executable).parent)) or shutil.which("tensorboard")
    if program is None:
        fail("the tensorboard program is not installed in this environment (run `make setup`)", 2)
    spec = ",".join(f"{_run_name(state_dir, folder)}:{folder}" for folder in runs)
    console().print(f"TensorBoard on {len(runs)} training run(s) at http://127.0.0.1:{port}  (Ctrl-C stops)", markup=False)
    with contextlib.suppress(KeyboardInterrupt):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        subprocess.run([program, "--logdir_spec", spec, "--host", "127.0.0.1", "--port", str(port)], check=False, env=env)


def _run_name(state_dir: Path, folder: Path) -> str:
    """A short, readable run name: the execution id, and the sub-folder under `tensorboard/` if any."""
    parts = folder.relative_to(state_dir / "s3").parts
    execution = next((p for p in parts if p[:8].isdigit() and "-" in p), parts[-1])
    below = parts[parts.index("tensorboard") + 1 :] if "tensorboard" in parts else ()
    return "/".join((execution, *below)).replace(",", "_").replace(":", "_")


@command(Side.LOCAL)
def prepare_data(
    cli: Invocation,
    manifest: LabelsOption = None,
    output: option(Path | None, "--output", metavar="DIR", file_okay=False, help="The outputs' folder (default: <state-dir>/prepared-data).") = None,
    images: ImagesOption = None,
    images_prefix: ImagesPrefixOption = None,
    label_format: LabelFormatOption = None,
    class_map: ClassMapOption = None,
    workers: option(int | None, "--workers", metavar="N", min=1, help="Worker processes (default: data.processing.workers, or one per core).") = None,
) -> None:
    """Prepare training data here: the PrepareData program on labels (default: the bundled sample).

    It runs the same program, with the same arguments from pipeline.yaml, as the pipeline's Processing job."""
    from steps.prepare_data import data_arguments

    config = cli.config
    if manifest:
        if images is None or images_prefix is None:
            fail("--manifest needs --images DIR and --images-prefix S3URI too", 2)
        manifests, images_dir, prefix = list(manifest), images, images_prefix
    else:
        sample = config.data.sample
        if sample is None:
            fail(f"{config.source} has no data.sample section; pass --manifest", 2)
        manifests = [config.path(m) for m in sample.manifests]
        images_dir, prefix = images or config.path(sample.images), images_prefix or sample.images_prefix
    output = output or cli.state_dir / "prepared-data"
    arguments = [arg for path in manifests for arg in ("--manifest", str(path))]
    chosen_format, mapping = label_choices(cli, label_format, class_map)
    data = config.data.model_copy(update={"label_format": chosen_format, "class_map": mapping})
    arguments += ["--images", str(images_dir), "--images-prefix", prefix, "--output", str(output), *data_arguments(data, workers)]
    result = subprocess.run([sys.executable, str(PREPARE_DATA), *arguments], check=False)
    if result.returncode != 0:
        raise typer.Exit(result.returncode)
    report = json.loads((output / "report.json").read_text())
    typer.echo("")
    for label, where in (
        ("training records", output / "train"),
        ("validation records", output / "validation"),
        ("label map", output / "label_map.pbtxt"),
        ("data report", output / "report.json"),
        ("report pictures", ", ".join(str(output / name) for name in report["pictures"].values())),
    ):
        typer.echo(f"  {label:<19} {where}")
