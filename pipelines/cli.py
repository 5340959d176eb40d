"""`cardamage`: the command line of the car damage detection workflow.

Every command takes `--config PATH` (default `./pipeline.yaml`), the one file a team edits. The
control-plane commands (definition, upsert, start, executions, wait, models, approve, reject, deploy, label)
also take `--region` and `--endpoint-url`, use the usual AWS credential chain, keep their AWS calls in
`pipelines/aws.py`, and report a problem as one line on stderr: exit status 2 for a wrong invocation or
setup (an invalid value, no credentials, no region), 1 for what AWS answered (no such pipeline, package or
execution; an execution that failed).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
import yaml

import containers
from pipelines.config import DEFAULT_CONFIG, Config, ConfigError, load_config

if TYPE_CHECKING:
    from pipelines.aws import Aws

PREPARE_DATA = Path(containers.__file__).resolve().parent / "processing" / "prepare_data.py"
STATE_DIR = Path(".cardamage")

app = typer.Typer(
    help="Car damage detection (EfficientDet, TF2 Object Detection API) as a SageMaker Pipelines workflow.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ConfigPath = Annotated[
    Path,
    typer.Option("--config", "-c", help="The pipeline configuration file.", dir_okay=False),
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cardamage {version('cardamage')}")
        raise typer.Exit()


@app.callback()
def _main(
    _version_flag: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")] = False,
) -> None:
    """Car damage detection (EfficientDet, TF2 Object Detection API) as a SageMaker Pipelines workflow."""


def _load(path: Path, profile: str | None = None) -> Config:
    try:
        return load_config(path, profile=profile or None)
    except ConfigError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None


def _load_local(path: Path, profile: str | None) -> Config:
    """The configuration for a --local command: the named profile, else `local` when the file defines one."""
    if profile is None:
        base = _load(path)
        return _load(path, "local") if "local" in base.profiles else base
    return _load(path, None if profile == "none" else profile)


ProfileOption = Annotated[
    str | None, typer.Option("--profile", help="A profile of pipeline.yaml to apply (its `profiles` section); `none` for the file as it is.")
]
LocalProfileOption = Annotated[
    str | None,
    typer.Option("--profile", help="A profile of pipeline.yaml to apply. Default: `local` where the file defines it; `none` for the file as it is."),
]
LocalOption = Annotated[bool, typer.Option("--local", help="Work on this machine (the local engine's state directory) instead of AWS.")]
StateDirOption = Annotated[
    Path, typer.Option("--state-dir", help="The local engine's state: local S3, executions, registry, endpoints.", file_okay=False)
]


@app.command("config")
def show_config(
    config: ConfigPath = DEFAULT_CONFIG,
    profile: ProfileOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of YAML.")] = False,
) -> None:
    """Validate the configuration (every profile) and print it, or a profile of it, with every default filled in."""
    resolved = _load(config, None if profile == "none" else profile).model_dump(mode="json")
    typer.echo(json.dumps(resolved, indent=2) if as_json else yaml.safe_dump(resolved, sort_keys=False).rstrip())


@app.command("prepare-data")
def prepare_data(
    config: ConfigPath = DEFAULT_CONFIG,
    manifest: Annotated[
        list[Path] | None,
        typer.Option("--manifest", "-m", help="A Ground Truth output manifest, or a folder of them (repeatable). Default: the bundled sample."),
    ] = None,
    images: Annotated[Path | None, typer.Option(help="The local folder that stands for --images-prefix.", file_okay=False)] = None,
    images_prefix: Annotated[str | None, typer.Option(help="The S3 prefix the manifests' source-refs start with.")] = None,
    output: Annotated[Path, typer.Option(help="Where the TFRecords, label map and report go.", file_okay=False)] = STATE_DIR / "prepared-data",
    workers: Annotated[int | None, typer.Option(min=1, help="Worker processes (default: data.processing.workers, else one per core).")] = None,
) -> None:
    """Prepare training data locally: the PrepareData program on a manifest (default: the bundled sample).

    It runs the same program, with the same arguments from pipeline.yaml, as the pipeline's Processing job."""
    cfg = _load(config)
    if manifest:
        if images is None or images_prefix is None:
            typer.secho("error: --manifest needs --images DIR and --images-prefix S3URI too", fg=typer.colors.RED, err=True)
            raise typer.Exit(2)
        manifests, images_dir, prefix = list(manifest), images, images_prefix
    else:
        sample = cfg.data.sample
        if sample is None:
            typer.secho(f"error: {cfg.source} has no data.sample section; pass --manifest", fg=typer.colors.RED, err=True)
            raise typer.Exit(2)
        manifests = [cfg.path(m) for m in sample.manifests]
        images_dir, prefix = images or cfg.path(sample.images), images_prefix or sample.images_prefix
    command = [sys.executable, str(PREPARE_DATA), *prepare_data_arguments(cfg, manifests, images_dir, prefix, output, workers)]
    result = subprocess.run(command, check=False)
    if result.returncode != 0:
        raise typer.Exit(result.returncode)
    _print_outputs(output)


def prepare_data_arguments(
    cfg: Config, manifests: list[Path], images: Path, images_prefix: str, output: Path, workers: int | None = None
) -> list[str]:
    """The program's arguments for this configuration: what the Processing step passes, with local paths."""
    data = cfg.data
    arguments = [arg for path in manifests for arg in ("--manifest", str(path))]
    arguments += [
        "--images", str(images),
        "--images-prefix", images_prefix,
        "--output", str(output),
        "--validation-fraction", str(data.validation_fraction),
        "--seed", str(data.split_seed),
        "--shards", str(data.shards),
        "--max-invalid-fraction", str(data.max_invalid_fraction),
    ]  # fmt: skip
    if data.classes:
        arguments += ["--classes", ",".join(data.classes)]
    if data.label_attribute:
        arguments += ["--label-attribute", data.label_attribute]
    if workers or data.processing.workers:
        arguments += ["--workers", str(workers or data.processing.workers)]
    return arguments


def _print_outputs(output: Path) -> None:
    report = json.loads((output / "report.json").read_text())
    rows = [
        ("training records", output / "train"),
        ("validation records", output / "validation"),
        ("label map", output / "label_map.pbtxt"),
        ("data report", output / "report.json"),
        ("report pictures", ", ".join(str(output / name) for name in report["pictures"].values())),
    ]
    typer.echo("")
    for label, where in rows:
        typer.echo(f"  {label:<19} {where}")


# The control plane: SageMaker Pipelines, the Model Registry, the endpoint and Ground Truth, on AWS or on
# any endpoint URL (moto in the tests).

PLACEHOLDER_NAMES = (
    "SageMakerRoleArn, DataBucket, ArtifactBucket, KmsKeyId, ProcessingImageUri, TrainingImageUri, InferenceImageUri, DeployFunctionArn"
)
RegionOption = Annotated[
    str | None, typer.Option("--region", help="The AWS region (default: aws.region in the config, else AWS_DEFAULT_REGION or the profile's).")
]
EndpointUrlOption = Annotated[
    str | None, typer.Option("--endpoint-url", help="Send every AWS request to this URL (moto, LocalStack, a VPC endpoint).")
]
ValuesOption = Annotated[
    list[str] | None,
    typer.Option("--value", help=f"NAME=VALUE for an account placeholder (repeatable); NAME is one of {PLACEHOLDER_NAMES}."),
]
RoleOption = Annotated[str | None, typer.Option("--role-arn", help="The IAM role SageMaker uses (default: aws.role_arn in the config).")]
ExecutionOption = Annotated[
    str | None, typer.Option("--execution", "-e", help="An execution ARN, or its id (the ARN's last part). Default: the newest.")
]
TimeoutOption = Annotated[float, typer.Option("--timeout", min=0, help="Give up waiting after this many seconds (exit status 124).")]
PollOption = Annotated[float, typer.Option("--poll", min=0.01, help="Seconds between two status checks.")]
CommentOption = Annotated[str | None, typer.Option("--comment", "-m", help="Why: recorded in the approval description with your identity.")]
PackageArgument = Annotated[str, typer.Argument(help="The model package: its ARN, or its version number in the group.")]


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


_CREDENTIAL_CODES = {
    "ExpiredToken": "the AWS credentials have expired: refresh them (aws sso login, or new temporary keys)",
    "ExpiredTokenException": "the AWS credentials have expired: refresh them (aws sso login, or new temporary keys)",
    "InvalidClientTokenId": "the AWS access key is not valid: check AWS_PROFILE / AWS_ACCESS_KEY_ID",
    "UnrecognizedClientException": "the AWS access key is not valid: check AWS_PROFILE / AWS_ACCESS_KEY_ID",
    "SignatureDoesNotMatch": "the AWS secret key does not match the access key",
}


@contextmanager
def _control_plane() -> Iterator[None]:
    """What goes wrong talking to AWS, as one line on stderr with an exit status instead of a traceback."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        ParamValidationError,
        PartialCredentialsError,
        ProfileNotFound,
    )

    from containers.deploy.deploy import DeployError, SettingsError
    from pipelines.aws import ControlPlaneError

    try:
        yield
    except ControlPlaneError as exc:
        _fail(str(exc), exc.exit_code)
    except (NoCredentialsError, PartialCredentialsError):
        _fail("no AWS credentials found: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run `aws sso login`", 2)
    except NoRegionError:
        _fail("no AWS region: pass --region, set aws.region in pipeline.yaml, or set AWS_DEFAULT_REGION", 2)
    except ProfileNotFound as exc:
        _fail(f"{exc}: check AWS_PROFILE", 2)
    except SettingsError as exc:
        _fail(f"deployment settings: {exc}", 2)
    except DeployError as exc:
        _fail(str(exc), 1)
    except ParamValidationError as exc:
        _fail(" ".join(str(exc).split()), 2)
    except EndpointConnectionError as exc:
        _fail(f"cannot reach {exc.kwargs.get('endpoint_url')}: check the network, --region and --endpoint-url", 1)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        hint = _CREDENTIAL_CODES.get(error.get("Code", ""))
        _fail(hint or f"{exc.operation_name}: {error.get('Code')}: {error.get('Message')}", 2 if hint else 1)
    except BotoCoreError as exc:
        _fail(str(exc), 1)


def _connect(cfg: Config, region: str | None, endpoint_url: str | None) -> Aws:
    from pipelines import aws

    return aws.connect(region or cfg.aws.region, endpoint_url)


def _pairs(items: list[str] | None, option: str) -> dict[str, str]:
    """NAME=VALUE options as a mapping (a later NAME wins)."""
    pairs = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            _fail(f"{option} expects NAME=VALUE (got {item!r})", 2)
        pairs[name.strip()] = value
    return pairs


def _with_region(cfg: Config, region: str | None) -> Config:
    """The config with aws.region set (so the definition carries the region rather than ${AWS::Region})."""
    if not region or region == cfg.aws.region:
        return cfg
    return cfg.model_copy(update={"aws": cfg.aws.model_copy(update={"region": region})})


def _render(cfg: Config, values: dict[str, str]) -> str:
    from pipelines.definition import DefinitionError, render_definition

    try:
        return render_definition(cfg, values or None)
    except DefinitionError as exc:
        _fail(str(exc), 2)


def _console() -> Any:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 200)


def _table(*columns: str) -> Any:
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if isinstance(moment, datetime) else "-"


def _duration(start: datetime | None, end: datetime | None) -> str:
    if not isinstance(start, datetime) or not isinstance(end, datetime):
        return "-"
    seconds = max(0, round((end - start).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def _reason(text: Any) -> str:
    text = str(text or "").strip()
    return "" if text == "None" else text


@app.command("definition")
def definition(
    config: ConfigPath = DEFAULT_CONFIG,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the JSON to this file instead of stdout.", dir_okay=False)] = None,
    value: ValuesOption = None,
    profile: ProfileOption = None,
    region: RegionOption = None,
    endpoint_url: EndpointUrlOption = None,
) -> None:
    """Render the pipeline definition JSON, offline (no AWS call, no credentials).

    Account values come from --value, else pipeline.yaml's aws section, else stay ${Name} placeholders for the
    CDK app to fill. --region fills ${AWS::Region}; --endpoint-url is accepted for symmetry and unused."""
    cfg = _with_region(_load(config, None if profile == "none" else profile), region)
    text = _render(cfg, _pairs(value, "--value"))
    if output is None:
        typer.echo(text, nl=False)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    typer.echo(f"wrote the definition of {cfg.pipeline_name} to {output}", err=True)


@app.command("upsert")
def upsert(
    config: ConfigPath = DEFAULT_CONFIG,
    role_arn: RoleOption = None,
    value: ValuesOption = None,
    region: RegionOption = None,
    endpoint_url: EndpointUrlOption = None,
) -> None:
    """Create the pipeline on SageMaker, or update it, from the rendered definition.

    Every account value must be known (--value or pipeline.yaml's aws section); the role also stands for
    SageMakerRoleArn unless --value sets it."""
    from pipelines import aws

    cfg = _load(config)
    role = role_arn or cfg.aws.role_arn
    if not role:
        _fail("upsert needs the role the pipeline runs as: pass --role-arn or set aws.role_arn in pipeline.yaml", 2)
    values = _pairs(value, "--value")
    values.setdefault("SageMakerRoleArn", role)
    with _control_plane():
        session = _connect(cfg, region, endpoint_url)
        cfg = _with_region(cfg, session.region)
        text = _render(cfg, values)
        missing = aws.unfilled_placeholders(text)
        if missing:
            raise aws.usage_error(
                f"the definition still has placeholders for {', '.join(missing)}: pass --value NAME=VALUE or set them in pipeline.yaml's aws section"
            )
        description = f"Car damage detection ({cfg.project.name}): EfficientDet trained, evaluated, registered and deployed"
        outcome = aws.upsert_pipeline(session.client("sagemaker"), cfg.pipeline_name, text, role, description)
    typer.echo(f"{outcome} pipeline {cfg.pipeline_name} in {session.region}")


@app.command("start")
def start(
    config: ConfigPath = DEFAULT_CONFIG,
    manifest: Annotated[str | None, typer.Option("--manifest", help="The Ground Truth manifest(s) to train on (InputManifestUri).")] = None,
    images_prefix: Annotated[str | None, typer.Option("--images-prefix", help="The images' S3 prefix (ImagesS3Prefix).")] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="NAME=VALUE for a pipeline parameter (repeatable), e.g. TrainingSteps=500.")
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the execution to end; exit 0 only if it succeeded.")] = False,
    timeout: TimeoutOption = 12 * 3600.0,
    poll: PollOption = 30.0,
    region: RegionOption = None,
    endpoint_url: EndpointUrlOption = None,
) -> None:
    """Start a pipeline execution, with parameter overrides checked first; prints the execution ARN."""
    from pipelines import aws

    cfg = _load(config)
    overrides = _pairs(param, "--param")
    for option, name, given in (("--manifest", "InputManifestUri", manifest), ("--images-prefix", "ImagesS3Prefix", images_prefix)):
        if given is not None:
            if name in overrides and overrides[name] != given:
                _fail(f"{option} and --param {name}=... disagree; give one", 2)
            overrides[name] = given
    with _control_plane():
        session = _connect(cfg, region, endpoint_url)
        sagemaker = session.client("sagemaker")
        known = aws.pipeline_parameters(aws.describe_pipeline(sagemaker, cfg.pipeline_name))
        parameters = aws.validate_overrides(overrides, known)
        arn = aws.start_execution(sagemaker, cfg.pipeline_name, parameters, "started with cardamage start")
        typer.echo(arn)
        if wait:
            _wait_for(sagemaker, arn, timeout, poll)


@app.command("executions")
def executions(
    config: ConfigPath = DEFAULT_CONFIG,
    execution: ExecutionOption = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many executions to list, newest first.")] = 10,
    local: LocalOption = False,
    state_dir: StateDirOption = STATE_DIR,
    profile: LocalProfileOption = None,
    region: RegionOption = None,
    endpoint_url: EndpointUrlOption = None,
) -> None:
    """List the pipeline's executions, or show one with its parameters and steps (--execution)."""
    from pipelines import aws

    if local:
        with _local():
            local_commands().executions(_load_local(config, profile), state_dir, execution, limit)
        return
    cfg = _load(config)
    with _control_plane():
        sagemaker = _connect(cfg, region, endpoint_url).client("sagemaker")
        if execution is None:
            _print_executions(aws.list_executions(sagemaker, cfg.pipeline_name, limit), cfg.pipeline_name)
            return
        arn = aws.resolve_execution(sagemaker, cfg.pipeline_name, execution)
        description = aws.describe_execution(sagemaker, arn)
        steps = aws.execution_steps(sagemaker, arn)
        parameters = aws.execution_parameters(sagemaker, arn)
    _print_execution(description, parameters, steps)


def _print_executions(rows: list[dict[str, Any]], pipeline: str) -> None:
    if not rows:
        typer.echo(f"pipeline {pipeline} has no execution yet")
        return
    table = _table("execution", "status", "started (UTC)", "ended (UTC)", "took", "failure")
    for row in rows:
        status = row.get("PipelineExecutionStatus", "")
        ended = row.get("LastModifiedTime") if status in {"Succeeded", "Failed", "Stopped"} else None
        table.add_row(
            row["PipelineExecutionArn"].rsplit("/", 1)[-1],
            status,
            _when(row.get("CreationTime")),
            _when(ended),
            _duration(row.get("CreationTime"), ended),
            _reason(row.get("FailureReason")),
        )
    _console().print(table)


def _print_execution(description: dict[str, Any], parameters: list[dict[str, str]], steps: list[dict[str, Any]]) -> None:
    from pipelines import aws

    console = _console()
    status = description.get("PipelineExecutionStatus", "")
    ended = description.get("LastModifiedTime") if status in aws.TERMINAL else None
    console.print(f"execution  {description.get('PipelineExecutionArn')}")
    console.print(f"status     {status}")
    console.print(f"started    {_when(description.get('CreationTime'))} UTC")
    console.print(f"ended      {_when(ended)}" + (f" UTC (took {_duration(description.get('CreationTime'), ended)})" if ended else ""))
    if _reason(description.get("FailureReason")):
        console.print(f"failure    {_reason(description.get('FailureReason'))}")
    if parameters:
        console.print("parameters " + ", ".join(f"{p.get('Name')}={p.get('Value')}" for p in parameters))
    if not steps:
        console.print("no step has started yet")
        return
    table = _table("step", "status", "started (UTC)", "took", "detail", "failure")
    for step in steps:
        table.add_row(
            step.get("StepDisplayName") or step.get("StepName", ""),
            step.get("StepStatus", ""),
            _when(step.get("StartTime")),
            _duration(step.get("StartTime"), step.get("EndTime")),
            aws.step_detail(step),
            _reason(step.get("FailureReason")),
        )
    console.print(table)


@app.command("wait")
def wait(
    config: ConfigPath = DEFAULT_CONFIG,
    execution: ExecutionOption = None,
    timeout: TimeoutOption = 12 * 3600.0,
    poll: PollOption = 30.0,
    region: RegionOption = None,
    endpoint_url: EndpointUrlOption = None,
) -> None:
    """Wait for the newest (or the given) execution to end; exit 0 only when it succeeded.

    Exit status 1 with the reasons (the execution's and its failed steps') when it failed or stopped, 124 when
    --timeout passed first. Each status change is printed on stderr."""
    from pipelines import aws

    cfg = _load(config)
    with _control_plane():
        sagemaker = _connect(cfg, region, endpoint_url).client("sagemaker")
        arn = aws.resolve_execution(sagemaker, cfg.pipeline_name, execution)
        typer.echo(f"waiting for {arn}", err=True)
        _wait_for(sagemaker, arn, timeout, poll)


def _wait_for(sagemaker: Any, arn: str, timeout: float, poll: float) -> None:
    from pipelines import aws

    def report(status: str) -> None:
        typer.echo(f"{_when(datetime.now(UTC))} {status}", err=True)

    description = aws.wait_for_execution(sagemaker, arn, timeout=timeout, poll=poll, report=report)
    if description.get("PipelineExecutionStatus") != "Succeeded":
        _fail(aws.failure_summary(sagemaker, description), 1)
    typer.echo(f"execution {arn} Succeeded")


@app.command("models")
def models(
    config: ConfigPath = DEFAULT_CONFIG,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many packages to show, newest first.")] = 20,
    local: LocalOption = False,
    state_dir: StateDirOption = STATE_DIR,
    profile: LocalProfileOption = None,
    region: RegionOption = None,
    endpoint_url: EndpointUrlOption = None,
) -> None:
    """The model packages of the group: version, approval status, creation time, mAP, and which one the endpoint serves."""
    from pipelines import aws

    if local:
        with _local():
            local_commands().models(_load_local(config, profile), state_dir, limit)
        return
    cfg = _load(config)
    with _control_plane():
        session = _connect(cfg, region, endpoint_url)
        rows = aws.list_packages(session.client("sagemaker"), session.client("s3"), cfg.model_package_group, limit, cfg.endpoint_name)
    if not rows:
        typer.echo(f"no model packages in {cfg.model_package_group} yet")
        return
    table = _table("version", "status", "created (UTC)", "mAP", "endpoint", "approval note")
    for row in rows:
        table.add_row(str(row.version), row.status, _when(row.created), row.map, "serving" if row.deployed else "", row.description)
    _console().print(table)


@app.command("approve")
def approve(
    package: PackageArgument,
    comment: CommentOption = None,
    config: ConfigPath = DEFAULT_CONFIG,
    local: LocalOption = False,
    state_dir: StateDirOption = STATE_DIR,
    profile: LocalProfileOption = None,
    region: RegionOption = None,
    endpoint_url: EndpointUrlOption = None,
) -> None:
    """Approve a model package (the deployment rule then deploys it); records your identity and the comment.

    With --local the approval deploys the package to the local endpoint at once, as the rule does on AWS."""
    if local:
        with _local():
            local_commands().set_approval(_load_local(config, profile), state_dir, package, "Approved", comment)
        return
    _set_approval(config, package, "Approved", comment, region, endpoint_url)


@app.command("reject")
def reject(
    package: PackageArgument,
    comment: CommentOption = None,
    config: ConfigPath = DEFAULT_CONFIG,
    local: LocalOption = False,
    state_dir: StateDirOption = STATE_DIR,
    profile: LocalProfileOption = None,
    region: RegionOption = None,
    endpoint_url: EndpointUrlOption = None,
) -> None:
    """Reject a model package; records your identity and the comment. The endpoint is not changed."""
    if local:
        with _local():
            local_commands().set_approval(_load_local(config, profile), state_dir, package, "Rejected", comment)
        return
    _set_approval(config, package, "Rejected", comment, region, endpoint_url)


def _set_approval(config: Path, package: str, status: str, comment: str | None, region: str | None, endpoint_url: str | None) -> None:
    from containers.deploy.deploy import describe_endpoint, served_package
    from pipelines import aws

    cfg = _load(config)
    with _control_plane():
        session = _connect(cfg, region, endpoint_url)
        sagemaker = session.client("sagemaker")
        arn = aws.resolve_package(sagemaker, cfg.model_package_group, package)
        change = aws.set_approval(sagemaker, session.client("sts"), arn, status, comment)
        endpoint = describe_endpoint(sagemaker, cfg.endpoint_name) if status == "Rejected" else None
        served = served_package(sagemaker, endpoint) if endpoint else None
    typer.echo(f"version {change.version}: {change.previous} -> {change.status} ({change.description})")
    if served and served.arn == arn:
        typer.secho(
            f"warning: endpoint {cfg.endpoint_name} still serves version {change.version}; `cardamage deploy --package N --force` puts another back",
            fg=typer.colors.YELLOW,
            err=True,
        )


@app.command("deploy")
def deploy(
    config: ConfigPath = DEFAULT_CONFIG,
    package: Annotated[str | None, typer.Option("--package", help="The package's ARN or version (default: the newest Approved one).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Deploy even when the endpoint serves the same or a newer version.")] = False,
    local: LocalOption = False,
    state_dir: StateDirOption = STATE_DIR,
    profile: LocalProfileOption = None,
    role_arn: RoleOption = None,
    region: RegionOption = None,
    endpoint_url: EndpointUrlOption = None,
) -> None:
    """Deploy an Approved model package to the endpoint (create or update) with the deployment section's settings."""
    from containers.deploy.deploy import DeploySettings, deploy_package
    from pipelines import aws

    if local:
        with _local():
            local_commands().deploy(_load_local(config, profile), state_dir, package, force)
        return
    cfg = _load(config)
    role = role_arn or cfg.aws.role_arn
    if not role:
        _fail("deploy needs the role the endpoint's model runs as: pass --role-arn or set aws.role_arn in pipeline.yaml", 2)
    bucket = cfg.aws.artifact_bucket
    if cfg.deployment.data_capture_percent > 0 and not bucket:
        _fail("data capture writes to the artifact bucket: set aws.artifact_bucket in pipeline.yaml (or deployment.data_capture_percent: 0)", 2)
    capture = f"s3://{bucket}/data-capture/{cfg.endpoint_name}/" if bucket and cfg.deployment.data_capture_percent > 0 else None
    with _control_plane():
        settings = DeploySettings.from_config(cfg, role_arn=role, data_capture_s3_uri=capture, kms_key_id=cfg.aws.kms_key_id)
        session = _connect(cfg, region, endpoint_url)
        sagemaker = session.client("sagemaker")
        group = cfg.model_package_group
        arn = aws.resolve_package(sagemaker, group, package) if package else aws.newest_approved(sagemaker, group)
        result = deploy_package(sagemaker, session.client("application-autoscaling"), settings, arn, force=force)
    if result.status == "skipped":
        if not result.up_to_date:
            _fail(f"not deployed: {result.reason}", 1)
        typer.echo(f"nothing to do: {result.reason}")
        return
    typer.echo(f"{result.status} endpoint {result.endpoint_name} with version {result.model_package_version} ({result.model_package_arn})")
    typer.echo(f"  model            {result.model_name}")
    typer.echo(f"  endpoint config  {result.endpoint_config_name}")
    typer.echo(f"  endpoint status  {result.endpoint_status}")
    typer.echo(f"  autoscaling      {result.autoscaling}")


# The local engine: the same definition run on this machine (pipelines/local/).


def local_commands() -> Any:
    from pipelines.local import commands

    return commands


@contextmanager
def _local() -> Iterator[None]:
    from pipelines.local.commands import LocalError

    try:
        yield
    except LocalError as exc:
        _fail(str(exc), exc.exit_code)


@app.command("run")
def run(
    local: LocalOption = False,
    config: ConfigPath = DEFAULT_CONFIG,
    profile: LocalProfileOption = None,
    state_dir: StateDirOption = STATE_DIR,
    manifest: Annotated[
        list[Path] | None,
        typer.Option("--manifest", "-m", help="A Ground Truth output manifest (repeatable). Default: the bundled sample.", dir_okay=False),
    ] = None,
    images: Annotated[
        Path | None,
        typer.Option("--images", help="The local folder that stands for --images-prefix (when source-refs are S3 URIs).", file_okay=False),
    ] = None,
    images_prefix: Annotated[str | None, typer.Option("--images-prefix", help="The S3 prefix the manifests' source-refs start with.")] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="NAME=VALUE for a pipeline parameter (repeatable), e.g. TrainingSteps=20.")
    ] = None,
    definition_file: Annotated[
        Path | None, typer.Option("--definition", help="Run this definition JSON instead of rendering one from the config.", dir_okay=False)
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show every line the jobs print (TensorFlow's too).")] = False,
) -> None:
    """Run the whole pipeline on this machine (--local): the definition the CDK app deploys, step by step.

    Exit status 0 when it succeeds; 1, with the Fail step's message or the failed step's error and log, when it
    does not; 2 for a wrong invocation. Steps whose inputs did not change since a successful run are cached."""
    from pipelines.local.runner import Inputs

    if not local:
        _fail("run executes the pipeline on this machine: pass --local (on AWS: `cardamage upsert`, then `cardamage start --wait`)", 2)
    cfg = _load_local(config, profile)
    if (images is None) != (images_prefix is None):
        _fail("--images and --images-prefix go together: the folder and the S3 prefix it stands for", 2)
    if images is not None and not manifest:
        _fail("--images needs --manifest: the manifests whose source-refs start with --images-prefix", 2)
    inputs = Inputs(list(manifest), images, images_prefix) if manifest else None
    with _local():
        local_commands().run(cfg, state_dir, inputs, _pairs(param, "--param"), definition_file, verbose=verbose)


@app.command("serve")
def serve(
    local: LocalOption = False,
    config: ConfigPath = DEFAULT_CONFIG,
    profile: LocalProfileOption = None,
    state_dir: StateDirOption = STATE_DIR,
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="The port on 127.0.0.1 (0: any free one).")] = 8080,
    model: Annotated[
        str | None, typer.Option("--model", help="Serve this package (version or ARN) instead of what the endpoint has deployed.")
    ] = None,
) -> None:
    """Serve the local endpoint in the foreground: SageMaker's GET /ping and POST /invocations on 127.0.0.1.

    It serves what the pipeline's Deploy step (or an approval) deployed, and picks up a newer deployment at
    the next request; --model pins one package. Requests go through the endpoint's own handler code."""
    if not local:
        _fail("serve runs the endpoint on this machine: pass --local (on AWS the endpoint is SageMaker's: `cardamage deploy`)", 2)
    with _local():
        local_commands().serve(_load_local(config, profile), state_dir, port, model)


@app.command("predict")
def predict(
    image: Annotated[Path, typer.Argument(help="A JPEG or PNG photo.", dir_okay=False)],
    local: LocalOption = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Where to save the picture (default <state-dir>/predictions/<image>.png).", dir_okay=False)
    ] = None,
    config: ConfigPath = DEFAULT_CONFIG,
    profile: LocalProfileOption = None,
    state_dir: StateDirOption = STATE_DIR,
    model: Annotated[str | None, typer.Option("--model", help="Use this package (version or ARN) instead of the deployed one.")] = None,
    score_threshold: Annotated[
        float | None, typer.Option("--score-threshold", min=0.0, max=1.0, help="Drop detections below this score (default: the endpoint's).")
    ] = None,
    max_detections: Annotated[int | None, typer.Option("--max-detections", min=1, help="At most this many detections.")] = None,
) -> None:
    """Detect damage in one photo with the local endpoint's model; prints the boxes and saves a picture of them."""
    if not local:
        _fail("predict uses the local endpoint: pass --local", 2)
    with _local():
        local_commands().predict(_load_local(config, profile), state_dir, image, output, model, score_threshold, max_detections)


@app.command("tensorboard")
def tensorboard(
    local: LocalOption = False,
    config: ConfigPath = DEFAULT_CONFIG,
    profile: LocalProfileOption = None,
    state_dir: StateDirOption = STATE_DIR,
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="The port on 127.0.0.1.")] = 6006,
) -> None:
    """Open TensorBoard on the event files of the local training runs (foreground; Ctrl-C stops).

    On AWS the event files are in S3 under each execution's `tensorboard/` prefix (TensorBoardOutputConfig)."""
    if not local:
        _fail("tensorboard --local reads this machine's runs; on AWS point TensorBoard at the execution's tensorboard/ S3 prefix", 2)
    with _local():
        local_commands().tensorboard(_load_local(config, profile), state_dir, port)


@app.command("label")
def label(
    manifest: Annotated[str, typer.Option("--manifest", help='The input manifest (one {"source-ref": "s3://..."} line per image).')],
    config: ConfigPath = DEFAULT_CONFIG,
    workteam_arn: Annotated[str | None, typer.Option("--workteam-arn", help="The private work team (default: labeling.workteam_arn).")] = None,
    job_name: Annotated[str | None, typer.Option("--job-name", help="The labelling job's name (default: <project>-<UTC time>).")] = None,
    role_arn: RoleOption = None,
    region: RegionOption = None,
    endpoint_url: EndpointUrlOption = None,
) -> None:
    """Create a Ground Truth bounding-box labelling job for the config's classes, done by a private work team.

    The label categories and the task page are uploaded to the artifact bucket; the labels are written under
    labeling.output_prefix (default s3://<data bucket>/ground-truth/), where the new-data trigger listens."""
    from pipelines import aws

    cfg = _load(config)
    classes = cfg.data.classes
    workteam = workteam_arn or cfg.labeling.workteam_arn
    role = role_arn or cfg.aws.role_arn
    output = cfg.labeling.output_prefix or (f"s3://{cfg.aws.data_bucket}/ground-truth/" if cfg.aws.data_bucket else None)
    for missing, message in (
        (not classes, "data.classes is null: a labelling job needs the class list"),
        (not workteam, "no work team: pass --workteam-arn or set labeling.workteam_arn in pipeline.yaml"),
        (not role, "no role for Ground Truth: pass --role-arn or set aws.role_arn in pipeline.yaml"),
        (not cfg.aws.artifact_bucket, "the task files go to the artifact bucket: set aws.artifact_bucket in pipeline.yaml"),
        (not output, "no output location: set labeling.output_prefix or aws.data_bucket in pipeline.yaml"),
    ):
        if missing:
            _fail(message, 2)
    with _control_plane():
        aws.parse_s3_uri(manifest)
        session = _connect(cfg, region, endpoint_url)
        name = aws.check_job_name(job_name or aws.default_job_name(cfg.project.name))
        base = f"s3://{cfg.aws.artifact_bucket}/labeling/{name}/"
        uploads = {
            base + "label-categories.json": (json.dumps(aws.label_categories(classes), indent=2).encode(), "application/json"),
            base + "bounding-box.liquid.html": (aws.render_task_template(cfg.labeling, classes).encode(), "text/html"),
        }
        request = aws.labeling_job_request(
            job_name=name,
            label_attribute=cfg.data.label_attribute or cfg.project.name,
            manifest_uri=manifest,
            output_path=output,
            categories_uri=base + "label-categories.json",
            template_uri=base + "bounding-box.liquid.html",
            role_arn=role,
            workteam_arn=workteam,
            region=session.region,
            labeling=cfg.labeling,
            kms_key_id=cfg.aws.kms_key_id,
            tags={"cardamage:project": cfg.project.name},
        )
        arn = aws.create_labeling_job(session.client("sagemaker"), session.client("s3"), request, uploads)
    typer.echo(arn)
    typer.echo(f"the labels will be in {output.rstrip('/')}/{name}/manifests/output/output.manifest", err=True)


if __name__ == "__main__":
    app()
