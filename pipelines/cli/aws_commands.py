"""The commands of the AWS pipeline: render its definition (offline), create or update it, start and wait
for executions, and label with Ground Truth. The AWS calls themselves are in pipelines/aws.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from pipelines.cli.app import Invocation, Side, command, fail, pairs
from pipelines.cli.options import ImagesPrefixOption, ParamOption, PollOption, RoleOption, TimeoutOption, ValuesOption, option
from pipelines.cli.output import when
from pipelines.config import Config

ExecutionOption = Annotated[
    str | None, typer.Option("--execution", "-e", metavar="ID", help="An execution ARN, or its id (the ARN's last part). Default: the newest.")
]


def _with_region(config: Config, region: str | None) -> Config:
    """The config with aws.region set (so the definition carries the region rather than ${AWS::Region})."""
    if not region or region == config.aws.region:
        return config
    return config.model_copy(update={"aws": config.aws.model_copy(update={"region": region})})


def _render(config: Config, values: dict[str, str]) -> str:
    from pipelines.definition import DefinitionError, render_definition

    try:
        return render_definition(config, values or None)
    except DefinitionError as exc:
        fail(str(exc), 2)


@command(Side.OFFLINE)
def definition(
    cli: Invocation,
    output: option(Path | None, "--output", "-o", metavar="FILE", dir_okay=False, help="Write the JSON here instead of stdout.") = None,
    value: ValuesOption = None,
    region: option(str | None, "--region", metavar="REGION", help="The region the definition names (else ${AWS::Region}).") = None,
) -> None:
    """Render the pipeline definition JSON, offline (no AWS call, no credentials).

    Account values come from --value, else pipeline.yaml's aws section, else stay ${Name} placeholders for the
    CDK app to fill. --region fills ${AWS::Region}."""
    config = _with_region(cli.config, region)
    text = _render(config, pairs(value, "--value"))
    if output is None:
        typer.echo(text, nl=False)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    typer.echo(f"wrote the definition of {config.pipeline_name} to {output}", err=True)


@command(Side.AWS, local_hint="on this machine, `cardamage run` renders the definition and runs it")
def upsert(cli: Invocation, role_arn: RoleOption = None, value: ValuesOption = None) -> None:
    """Create the pipeline on SageMaker, or update it, from the rendered definition.

    Every account value must be known (--value or pipeline.yaml's aws section); the role also stands for
    SageMakerRoleArn unless --value sets it. A pipeline the CDK app manages is overwritten by its next deploy."""
    from pipelines import aws

    role = role_arn or cli.account_config.aws.role_arn
    if not role:
        fail("upsert needs the role the pipeline runs as: pass --role-arn or set aws.role_arn in pipeline.yaml", 2)
    values = pairs(value, "--value")
    values.setdefault("SageMakerRoleArn", role)
    session = cli.aws()
    config = _with_region(cli.account_config, session.region)
    text = _render(config, values)
    missing = aws.unfilled_placeholders(text)
    if missing:
        fail(f"the definition still has placeholders for {', '.join(missing)}: pass --value NAME=VALUE or set them in pipeline.yaml's aws section", 2)
    description = f"Car damage detection ({config.project.name}): EfficientDet trained, evaluated, registered and deployed"
    outcome = aws.upsert_pipeline(session.client("sagemaker"), config.pipeline_name, text, role, description)
    typer.echo(f"{outcome} pipeline {config.pipeline_name} in {session.region}")


@command(Side.AWS, local_hint="on this machine, `cardamage run` starts an execution and waits for it")
def start(
    cli: Invocation,
    manifest: option(list[str] | None, "--manifest", metavar="S3URI", help="Labels to train on (repeatable; a URI ending in / is a prefix).") = None,
    images_prefix: ImagesPrefixOption = None,
    param: ParamOption = None,
    wait: option(bool, "--wait", help="Wait for the execution to end; exit 0 only if it succeeded.") = False,
    timeout: TimeoutOption = 12 * 3600.0,
    poll: PollOption = 30.0,
) -> None:
    """Start a pipeline execution on a dataset snapshot, parameters checked first; prints the execution ARN.

    The snapshot is the trigger's: the labelled inputs copied at their current version under
    snapshots/<id>/inputs/ (InputManifestUri) with snapshot.json beside them. `--param InputManifestUri=S3URI`
    trains on a prefix as it is, for example an earlier snapshot's inputs/ to retrain on exactly its data."""
    from pipelines import aws

    overrides = pairs(param, "--param")
    if manifest and "InputManifestUri" in overrides:
        fail("--manifest and --param InputManifestUri=... disagree; give one", 2)
    if images_prefix is not None:
        if "ImagesS3Prefix" in overrides and overrides["ImagesS3Prefix"] != images_prefix:
            fail("--images-prefix and --param ImagesS3Prefix=... disagree; give one", 2)
        overrides["ImagesS3Prefix"] = images_prefix
    session = cli.aws()
    sagemaker = session.client("sagemaker")
    known = aws.pipeline_parameters(aws.describe_pipeline(sagemaker, cli.config.pipeline_name))
    aws.validate_overrides(overrides, known)  # every other value checked before the snapshot copies anything
    description = "started with cardamage start"
    if "InputManifestUri" not in overrides:
        document = _snapshot(cli, session.client("s3"), manifest)
        overrides["InputManifestUri"] = document["inputs_uri"]
        description = f"started with cardamage start on dataset snapshot {document['snapshot_id']} ({len(document['inputs'])} input(s))"
        typer.echo(f"dataset snapshot {document['uri']}: {len(document['inputs'])} labelled input(s)", err=True)
    parameters = aws.validate_overrides(overrides, known)
    arn = aws.start_execution(sagemaker, cli.config.pipeline_name, parameters, description)
    typer.echo(arn)
    if wait:
        _wait_for(sagemaker, arn, timeout, poll)


def _snapshot(cli: Invocation, s3: Any, manifests: list[str] | None) -> dict:
    from containers.trigger import snapshot

    bucket = cli.account_config.aws.data_bucket
    if not bucket:
        fail("aws.data_bucket is not set: it is where the snapshot goes (or give --param InputManifestUri=S3URI to train on a prefix as it is)", 2)
    try:
        objects = snapshot.named_objects(s3, manifests) if manifests else None
        return snapshot.take(s3, cli.config.snapshot_prefixes(bucket), objects=objects)
    except ValueError as exc:
        fail(str(exc), 1)
    raise AssertionError("unreachable")


@command(Side.AWS, local_hint="`cardamage run` waits for its own execution")
def wait(cli: Invocation, execution: ExecutionOption = None, timeout: TimeoutOption = 12 * 3600.0, poll: PollOption = 30.0) -> None:
    """Wait for the newest (or the given) execution to end; exit 0 only when it succeeded.

    Exit status 1 with the reasons (the execution's and its failed steps') when it failed or stopped, 124 when
    --timeout passed first. Each status change is printed on stderr."""
    from pipelines import aws

    sagemaker = cli.aws().client("sagemaker")
    arn = aws.resolve_execution(sagemaker, cli.config.pipeline_name, execution)
    typer.echo(f"waiting for {arn}", err=True)
    _wait_for(sagemaker, arn, timeout, poll)


def _wait_for(sagemaker: Any, arn: str, timeout: float, poll: float) -> None:
    from pipelines import aws

    def report(status: str) -> None:
        typer.echo(f"{when(datetime.now(UTC))} {status}", err=True)

    description = aws.wait_for_execution(sagemaker, arn, timeout=timeout, poll=poll, report=report)
    if description.get("PipelineExecutionStatus") != "Succeeded":
        fail(aws.failure_summary(sagemaker, description), 1)
    typer.echo(f"execution {arn} Succeeded")


@command(Side.AWS, local_hint="Ground Truth is an AWS service")
def label(
    cli: Invocation,
    manifest: option(str | None, "--manifest", metavar="S3URI", help='A new labelling\'s manifest: {"source-ref": "s3://..."} lines.') = None,
    adjust: option(str | None, "--adjust", metavar="S3URI", help="Instead: a manifest of boxes to correct (review's adjustment.manifest).") = None,
    workteam_arn: option(str | None, "--workteam-arn", metavar="ARN", help="The private work team (default: labeling.workteam_arn).") = None,
    job_name: option(str | None, "--job-name", metavar="NAME", help="The labelling job's name (default: <project>-<UTC time>).") = None,
    role_arn: RoleOption = None,
) -> None:
    """Create a Ground Truth bounding-box labelling job for the config's classes, done by a private work team.

    With --manifest, workers draw every box. With --adjust, the job is a bounding-box adjustment job: workers
    see each image with the boxes of a prior labelling and correct them (move, resize, relabel, delete, add).
    `cardamage review` writes such a manifest, adjustment.manifest, with the model's boxes: upload it to S3, and
    the batch's images/ under its images_prefix (review.json), first. Every line must carry that prior labelling
    (an attribute with its -metadata) with a class-map of data.classes in order; the adjusted boxes are written
    under data.label_attribute (default: the project name), which must differ from the prior attribute.

    The label categories and the task page are uploaded to the artifact bucket; the labels are written under
    labeling.output_prefix (default s3://<data bucket>/ground-truth/), where the new-data trigger listens."""
    from pipelines import aws

    if (manifest is None) == (adjust is None):
        fail("pass exactly one of --manifest S3URI (a new labelling) and --adjust S3URI (correct a prior labelling's boxes)", 2)
    config = cli.account_config
    classes = config.data.classes
    workteam = workteam_arn or config.labeling.workteam_arn
    role = role_arn or config.aws.role_arn
    output = str(config.labeling_output(config.aws.data_bucket)) if config.labeling.output_prefix or config.aws.data_bucket else None
    for missing, message in (
        (not classes, "data.classes is null: a labelling job needs the class list"),
        (not workteam, "no work team: pass --workteam-arn or set labeling.workteam_arn in pipeline.yaml"),
        (not role, "no role for Ground Truth: pass --role-arn or set aws.role_arn in pipeline.yaml"),
        (not config.aws.artifact_bucket, "the task files go to the artifact bucket: set aws.artifact_bucket in pipeline.yaml"),
        (not output, "no output location: set labeling.output_prefix or aws.data_bucket in pipeline.yaml"),
    ):
        if missing:
            fail(message, 2)
    manifest_uri = manifest or adjust
    aws.parse_s3_uri(manifest_uri)
    session = cli.aws()
    name = aws.check_job_name(job_name or aws.default_job_name(config.project.name))
    label_attribute = config.data.label_attribute or config.project.name
    page_name, page = _task_page(session, config, classes, label_attribute, adjust)
    base = f"s3://{config.aws.artifact_bucket}/labeling/{name}/"
    uploads = {
        base + "label-categories.json": (json.dumps(aws.label_categories(classes), indent=2).encode(), "application/json"),
        base + page_name: (page.encode(), "text/html"),
    }
    request = aws.labeling_job_request(
        job_name=name,
        label_attribute=label_attribute,
        manifest_uri=manifest_uri,
        output_path=output,
        categories_uri=base + "label-categories.json",
        template_uri=base + page_name,
        role_arn=role,
        workteam_arn=workteam,
        region=session.region,
        labeling=config.labeling,
        kms_key_id=config.aws.kms_key_id,
        tags={"cardamage:project": config.project.name},
        adjust=adjust is not None,
    )
    arn = aws.create_labeling_job(session.client("sagemaker"), session.client("s3"), request, uploads)
    typer.echo(arn)
    typer.echo(f"the labels will be in {output.rstrip('/')}/{name}/manifests/output/output.manifest", err=True)


def _task_page(session: Any, config: Config, classes: list[str], label_attribute: str, adjust: str | None) -> tuple[str, str]:
    """The worker task page's file name and HTML: a new labelling's, or (with `adjust`, the manifest checked
    first) an adjustment job's, showing the manifest's prior boxes."""
    from pipelines import aws

    if adjust is None:
        return "bounding-box.liquid.html", aws.render_task_template(config.labeling, classes)
    prior = aws.adjustment_manifest_attribute(session.client("s3"), adjust, classes)
    aws.check_adjusted_attribute(label_attribute, prior, adjust)
    return "adjust-bounding-box.liquid.html", aws.render_adjustment_template(config.labeling, classes, prior)
