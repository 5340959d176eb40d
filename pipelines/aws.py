"""The control plane's AWS calls: the pipeline, its executions, the Model Registry and Ground Truth.

Plain functions that take boto3 clients, so that tests point them at moto (or stub one call) and the CLI
(`pipelines/cli/`; `pipelines/backends/aws.py` for the commands that exist on both sides) only parses
arguments and prints. Problems a person can fix raise `ControlPlaneError`
with a one-line message; its `exit_code` is 2 for a wrong invocation or setup (bad value, no region) and
1 for something found in AWS (no such pipeline, package or execution; a failed execution).
"""

from __future__ import annotations

import html
import json
import re
import string
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

from containers.common import archives
from containers.common.s3 import S3Location
from containers.common.s3 import parse_s3_uri as _parse_s3_uri
from containers.deploy import deploy as deployment
from containers.deploy.champion import recorded_champion
from containers.evaluation.intervals import ReportIntervals
from containers.evaluation.model_card import card_status
from containers.processing.formats.groundtruth import OBJECT_DETECTION_TYPE, class_map
from pipelines.backends import BackendError, Package, data_label, present_baselines
from pipelines.config import Config, LabelingConfig, stage_function_name
from pipelines.loopback import is_loopback
from steps.context import PLACEHOLDERS
from steps.parameters import Declared, ParameterError, as_text, check_overrides, declared_parameters

TERMINAL = frozenset({"Succeeded", "Failed", "Stopped"})
APPROVAL_STATUSES = tuple(sorted(deployment.APPROVAL_STATUSES))
BOUNDING_BOX_TEMPLATE = Path(__file__).resolve().parent / "labeling" / "bounding_box.liquid.html"
ADJUST_BOUNDING_BOX_TEMPLATE = Path(__file__).resolve().parent / "labeling" / "adjust_bounding_box.liquid.html"
_JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_LABEL_ATTRIBUTE = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,126}")  # CreateLabelingJob's LabelAttributeName (botocore)
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z]+(?:::[A-Za-z]+)?)\}")


class ControlPlaneError(BackendError):
    """A problem with a one-line, actionable message (exit status 2: the invocation or setup; 1: what AWS holds)."""


def usage_error(message: str) -> ControlPlaneError:
    return ControlPlaneError(message, exit_code=2)


# Sessions and clients.

# What requests to an endpoint on this machine (moto, LocalStack, `cardamage serve`) are signed with. The
# caller's own keys would hand whatever listens on that port requests signed with them, and temporary keys'
# session token as it is, in X-Amz-Security-Token (the API references' "Common Parameters").
LOOPBACK_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "aws_session_token": None}


@dataclass
class Aws:
    """A boto3 session and the endpoint URL every client is sent to (None: AWS's own)."""

    session: boto3.Session
    endpoint_url: str | None = None
    # The session's keys came from a service on this machine (an AssumeRole that moto or LocalStack answered): they
    # are that service's own, so they may go back to it, and they name the account it keeps the resources of.
    keys_from_here: bool = False
    _clients: dict[str, Any] = field(default_factory=dict)

    @property
    def region(self) -> str:
        return self.session.region_name

    def client(self, service: str) -> Any:
        if service not in self._clients:
            config = BotoConfig(retries={"mode": "standard", "max_attempts": 5}, user_agent_appid="cardamage")
            client = self.session.client(service, endpoint_url=self.endpoint_url, config=config)
            if self.endpoint_url is None and not self.keys_from_here and is_loopback(client.meta.endpoint_url):
                # An endpoint set by AWS_ENDPOINT_URL(_<SERVICE>) or the profile's endpoint_url (AWS SDKs and Tools
                # Reference Guide, "Service-specific endpoints"): the same rule as --endpoint-url.
                client = self.session.client(service, endpoint_url=client.meta.endpoint_url, config=config, **LOOPBACK_CREDENTIALS)
            self._clients[service] = client
        return self._clients[service]


def connect(region: str | None = None, endpoint_url: str | None = None) -> Aws:
    """A session from the usual credential chain; the region is the one given, else the environment's or
    profile's. Credentials are only looked for on the first call (botocore's NoCredentialsError then). An
    endpoint URL on this machine gets the dummy LOOPBACK_CREDENTIALS instead: no AWS service listens there."""
    session = boto3.Session(region_name=region, **(LOOPBACK_CREDENTIALS if is_loopback(endpoint_url) else {}))
    if not session.region_name:
        raise usage_error("no AWS region: pass --region, set aws.region in pipeline.yaml, or set AWS_DEFAULT_REGION")
    return Aws(session, endpoint_url)


# The account values from the deployed stack.


def stack_outputs(cloudformation: Any, stack_name: str) -> dict[str, str] | None:
    """The stack's outputs (OutputKey -> OutputValue); None when there is no such stack."""
    try:
        (stack,) = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ValidationError" and "does not exist" in str(exc):
            return None
        raise
    return {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}


def with_stack_values(session: Aws, config: Config, warn: Callable[[str], None] = lambda message: None) -> Config:
    """`config` with every unset `aws.*` account value taken from the workflow stack's outputs (the CDK app
    outputs each under its placeholder's name, infra/stack.py). Values pipeline.yaml sets win. CloudFormation
    is asked only when a value is missing; a missing stack or permission leaves the config as it is, with a
    warning, so the command's own message names what it lacks."""
    missing = {name: field for name, (field, _) in PLACEHOLDERS.items() if getattr(config.aws, field) is None}
    if not missing:
        return config
    try:
        outputs = stack_outputs(session.client("cloudformation"), config.stack_name)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        warn(f"cannot read the stack {config.stack_name}'s outputs ({code}); using pipeline.yaml's aws values only")
        return config
    if outputs is None:
        warn(f"no stack {config.stack_name} in {session.region}: deploy it (cdk deploy) or set pipeline.yaml's aws values")
        return config
    found = {field: outputs[name] for name, field in missing.items() if outputs.get(name)}
    return config.model_copy(update={"aws": config.aws.model_copy(update=found)}) if found else config


def parse_s3_uri(uri: str) -> S3Location:
    try:
        return _parse_s3_uri(uri)
    except ValueError as exc:
        raise usage_error(str(exc)) from None


_NOT_FOUND = re.compile(r"not found|does not exist|could not find|cannot find", re.IGNORECASE)


@contextmanager
def _or_missing(message: str) -> Iterator[None]:
    """SageMaker's "no such resource" as a ControlPlaneError saying `message`; other errors pass as they are."""
    try:
        yield
    except ClientError as exc:
        if is_not_found(exc):
            raise ControlPlaneError(message) from None
        raise


def is_not_found(exc: ClientError) -> bool:
    """Whether a SageMaker error means "no such resource" (the service says so in several ways). The deployment
    function, a single file, has its own copy; a test holds the two equal."""
    error = exc.response.get("Error", {})
    return error.get("Code") in {"ResourceNotFound", "ResourceNotFoundException"} or bool(_NOT_FOUND.search(str(error.get("Message", ""))))


# The pipeline.


def describe_pipeline(sagemaker: Any, name: str) -> dict[str, Any]:
    region = sagemaker.meta.region_name
    with _or_missing(f"no pipeline named {name!r} in {region}: create it with `cardamage upsert` (or deploy the CDK app)"):
        return sagemaker.describe_pipeline(PipelineName=name)


def unfilled_placeholders(definition: str) -> list[str]:
    """The `${Name}` placeholders left in a rendered definition (they make the pipeline unusable on AWS)."""
    return sorted(set(_PLACEHOLDER.findall(definition)))


def upsert_pipeline(sagemaker: Any, name: str, definition: str, role_arn: str, description: str = "") -> str:
    """Create the pipeline, or update it when it exists; returns "created" or "updated"."""
    arguments = {"PipelineName": name, "PipelineDefinition": definition, "RoleArn": role_arn, "PipelineDescription": description[:3072]}
    try:
        sagemaker.describe_pipeline(PipelineName=name)
    except ClientError as exc:
        if not is_not_found(exc):
            raise
        sagemaker.create_pipeline(PipelineDisplayName=name, **arguments)
        return "created"
    sagemaker.update_pipeline(**arguments)
    return "updated"


def pipeline_parameters(description: Mapping[str, Any]) -> dict[str, Declared]:
    """The parameters declared in the stored definition (what a run may set), by name."""
    try:
        definition = json.loads(description.get("PipelineDefinition") or "{}")
    except json.JSONDecodeError:
        raise ControlPlaneError(f"the stored definition of pipeline {description.get('PipelineName')!r} is not JSON") from None
    return declared_parameters(definition)


def validate_overrides(overrides: Mapping[str, str], known: Mapping[str, Declared]) -> list[dict[str, str]]:
    """StartPipelineExecution's PipelineParameters, every name and value checked first (all problems at once)."""
    try:
        checked = check_overrides(overrides, known)
    except ParameterError as exc:
        raise usage_error(str(exc)) from None
    return [{"Name": name, "Value": as_text(value)} for name, value in checked.items()]


def start_execution(sagemaker: Any, pipeline: str, parameters: list[dict[str, str]], description: str = "") -> str:
    arguments: dict[str, Any] = {"PipelineName": pipeline, "PipelineParameters": parameters}
    if description:
        arguments["PipelineExecutionDescription"] = description[:3072]
    return sagemaker.start_pipeline_execution(**arguments)["PipelineExecutionArn"]


# Executions.


def list_executions(sagemaker: Any, pipeline: str, limit: int) -> list[dict[str, Any]]:
    """The newest `limit` executions, each described (the summaries lack the end time)."""
    describe_pipeline(sagemaker, pipeline)
    summaries: list[dict[str, Any]] = []
    for page in sagemaker.get_paginator("list_pipeline_executions").paginate(
        PipelineName=pipeline, SortBy="CreationTime", SortOrder="Descending", PaginationConfig={"MaxItems": limit}
    ):
        summaries.extend(page.get("PipelineExecutionSummaries", []))
    summaries.sort(key=_start_time, reverse=True)  # as asked of the service; not every stand-in honours SortOrder
    return [describe_execution(sagemaker, summary["PipelineExecutionArn"]) for summary in summaries[:limit]]


def _start_time(summary: Mapping[str, Any]) -> datetime:
    return summary.get("StartTime") or datetime.min.replace(tzinfo=UTC)


def describe_execution(sagemaker: Any, arn: str) -> dict[str, Any]:
    with _or_missing(f"no pipeline execution {arn}: `cardamage executions` lists them"):
        return sagemaker.describe_pipeline_execution(PipelineExecutionArn=arn)


def execution_steps(sagemaker: Any, arn: str) -> list[dict[str, Any]]:
    """The execution's steps in the order they started."""
    steps: list[dict[str, Any]] = []
    for page in sagemaker.get_paginator("list_pipeline_execution_steps").paginate(PipelineExecutionArn=arn, SortOrder="Ascending"):
        steps.extend(page.get("PipelineExecutionSteps", []))
    return steps


def execution_parameters(sagemaker: Any, arn: str) -> list[dict[str, str]]:
    parameters: list[dict[str, str]] = []
    for page in sagemaker.get_paginator("list_pipeline_parameters_for_execution").paginate(PipelineExecutionArn=arn):
        parameters.extend(page.get("PipelineParameters", []))
    return parameters


def step_detail(step: Mapping[str, Any]) -> str:
    """The one thing worth showing about a step: its job, condition outcome, registered package or message."""
    metadata = step.get("Metadata") or {}
    for key in ("TrainingJob", "ProcessingJob", "TransformJob", "TuningJob", "Model", "Endpoint", "EndpointConfig"):
        if key in metadata and "Arn" in metadata[key]:
            return metadata[key]["Arn"].rsplit("/", 1)[-1]
    if "Condition" in metadata:
        return f"outcome {metadata['Condition'].get('Outcome')}"
    if "RegisterModel" in metadata:
        return metadata["RegisterModel"].get("Arn", "")
    if "Fail" in metadata:
        return metadata["Fail"].get("ErrorMessage", "")
    if "Lambda" in metadata:
        outputs = {o.get("Name"): o.get("Value") for o in metadata["Lambda"].get("OutputParameters", [])}
        return ", ".join(f"{k}={v}" for k, v in outputs.items())
    return ""


def resolve_execution(sagemaker: Any, pipeline: str, reference: str | None) -> str:
    """An execution ARN from an ARN, an execution id of this pipeline, or None (the newest)."""
    if reference and reference.startswith("arn:"):
        return reference
    description = describe_pipeline(sagemaker, pipeline)
    if reference:
        return f"{description['PipelineArn']}/execution/{reference}"
    page = sagemaker.list_pipeline_executions(PipelineName=pipeline, SortBy="CreationTime", SortOrder="Descending", MaxResults=20)
    summaries = page.get("PipelineExecutionSummaries", [])
    if not summaries:
        raise ControlPlaneError(f"pipeline {pipeline!r} has no execution yet: start one with `cardamage start`")
    return max(summaries, key=_start_time)["PipelineExecutionArn"]


def wait_for_execution(
    sagemaker: Any,
    arn: str,
    *,
    timeout: float,
    poll: float,
    report: Callable[[str], None] = lambda status: None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Poll until the execution ends; its final description. `report` hears each new status; running past
    `timeout` seconds is a ControlPlaneError with exit code 124 (as `timeout` uses)."""
    return poll_until(
        lambda: describe_execution(sagemaker, arn),
        "PipelineExecutionStatus",
        TERMINAL,
        f"execution {arn}",
        timeout=timeout,
        poll=poll,
        report=report,
        sleep=sleep,
        clock=clock,
    )


def poll_until(
    describe: Callable[[], dict[str, Any]],
    status_key: str,
    terminal: frozenset[str] | set[str],
    what: str,
    *,
    timeout: float,
    poll: float,
    report: Callable[[str], None],
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> dict[str, Any]:
    """Describe until the status (`status_key`) is terminal; the final description. `report` hears each new
    status; past `timeout` seconds, a ControlPlaneError with exit code 124 (as `timeout` uses)."""
    deadline, last = clock() + timeout, None
    while True:
        description = describe()
        status = description.get(status_key, "")
        if status != last:
            report(status)
            last = status
        if status in terminal:
            return description
        if clock() >= deadline:
            raise ControlPlaneError(f"{what} is still {status} after {timeout:g} s (it goes on; wait again)", exit_code=124)
        sleep(max(0.0, min(poll, deadline - clock())))


def failure_summary(sagemaker: Any, description: Mapping[str, Any]) -> str:
    """Why an execution failed: its reason and each failed step's, on one line."""
    status = description.get("PipelineExecutionStatus", "")
    parts = [f"execution {description.get('PipelineExecutionArn', '')} {status}"]
    reason = str(description.get("FailureReason") or "").strip()
    if reason and reason != "None":
        parts.append(reason)
    try:
        failed = [s for s in execution_steps(sagemaker, description["PipelineExecutionArn"]) if s.get("StepStatus") == "Failed"]
    except ClientError:
        failed = []
    parts += [f"step {s.get('StepName')}: {s.get('FailureReason') or step_detail(s) or 'failed'}" for s in failed]
    return "; ".join(parts)


# The Model Registry.


def describe_group(sagemaker: Any, group: str) -> dict[str, Any]:
    with _or_missing(f"no model package group {group!r} in {sagemaker.meta.region_name}: the pipeline's Register step creates it"):
        return sagemaker.describe_model_package_group(ModelPackageGroupName=group)


def package_summaries(sagemaker: Any, group: str, *, limit: int | None = None, status: str | None = None) -> Iterator[dict[str, Any]]:
    """The group's packages, newest first."""
    arguments: dict[str, Any] = {"ModelPackageGroupName": group, "SortBy": "CreationTime", "SortOrder": "Descending"}
    if status:
        arguments["ModelApprovalStatus"] = status
    if limit:
        arguments["PaginationConfig"] = {"MaxItems": limit}
    for page in sagemaker.get_paginator("list_model_packages").paginate(**arguments):
        yield from page.get("ModelPackageSummaryList", [])


def describe_package(sagemaker: Any, arn: str) -> dict[str, Any]:
    with _or_missing(f"no model package {arn}: `cardamage models` lists them"):
        return sagemaker.describe_model_package(ModelPackageName=arn)


def resolve_package(sagemaker: Any, group: str, reference: str) -> str:
    """A package ARN from an ARN or a version number (`3` or `v3`) of the group."""
    reference = reference.strip()
    if reference.startswith("arn:"):
        return describe_package(sagemaker, reference)["ModelPackageArn"]
    if not re.fullmatch(r"[vV]?\d+", reference):
        raise usage_error(f"PACKAGE must be a model package ARN or a version number of {group} (got {reference!r})")
    version = int(reference.lstrip("vV"))
    describe_group(sagemaker, group)
    versions = []
    for summary in package_summaries(sagemaker, group):
        if summary.get("ModelPackageVersion") == version:
            return summary["ModelPackageArn"]
        versions.append(summary.get("ModelPackageVersion"))
    known = f"versions {min(versions)} to {max(versions)}" if versions else "no versions yet"
    raise ControlPlaneError(f"model package group {group} has no version {version} ({known})")


def newest_approved(sagemaker: Any, group: str) -> str:
    describe_group(sagemaker, group)
    for summary in package_summaries(sagemaker, group, limit=1, status="Approved"):
        return summary["ModelPackageArn"]
    raise ControlPlaneError(f"no Approved package in {group}: approve one with `cardamage approve VERSION`")


def read_report(s3: Any, package: Mapping[str, Any]) -> Any:
    """The evaluation report (evaluation.json, parsed) the package's metrics point at; None when it cannot be read."""
    uri = ((package.get("ModelMetrics") or {}).get("ModelQuality") or {}).get("Statistics", {}).get("S3Uri")
    if not uri:
        return None
    try:
        bucket, key = parse_s3_uri(uri)
        return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except (ClientError, ControlPlaneError, ValueError):
        return None


def read_map(report: Any, package: Mapping[str, Any]) -> float | None:
    """The package's mAP: its evaluation report's (read_report), else the registered metadata's, else None."""
    try:
        return float(report["metrics"]["mAP"]["value"])
    except (ValueError, KeyError, TypeError):
        pass
    try:
        return float((package.get("CustomerMetadataProperties") or {})["mAP"])
    except (KeyError, TypeError, ValueError):
        return None


def list_packages(sagemaker: Any, s3: Any, group: str, limit: int) -> list[Package]:
    """The newest `limit` packages with their approval status, mAP and drift baselines (those whose files exist)."""

    def exists(uri: str) -> bool:
        try:
            bucket, key = parse_s3_uri(uri)
            s3.head_object(Bucket=bucket, Key=key)
        except (ClientError, ControlPlaneError, ValueError):
            return False
        return True

    describe_group(sagemaker, group)
    packages = []
    for summary in package_summaries(sagemaker, group, limit=limit):
        package = sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
        report = read_report(s3, package)
        packages.append(
            Package(
                version=package.get("ModelPackageVersion", 0),
                arn=package["ModelPackageArn"],
                status=package.get("ModelApprovalStatus", ""),
                created=package.get("CreationTime"),
                map=read_map(report, package),
                note=package.get("ApprovalDescription", ""),
                data=data_label((package.get("CustomerMetadataProperties") or {}).get("TrainingData")),
                champion=recorded_champion(package.get("CustomerMetadataProperties")),
                intervals=ReportIntervals.from_report(report),
                baselines=present_baselines(package.get("DriftCheckBaselines"), exists),
            )
        )
    return packages


@dataclass(frozen=True)
class ApprovalChange:
    arn: str
    version: int
    previous: str
    status: str
    description: str


def set_approval(sagemaker: Any, sts: Any, arn: str, status: str, comment: str | None = None) -> ApprovalChange:
    """Approve or reject a package, recording who did it (the caller's STS identity) and why."""
    if status not in APPROVAL_STATUSES:
        raise usage_error(f"approval status must be one of {', '.join(APPROVAL_STATUSES)}")
    package = describe_package(sagemaker, arn)
    identity = sts.get_caller_identity()["Arn"]
    text = f"{status} by {identity}" + (f": {comment.strip()}" if comment and comment.strip() else "")
    # Its model card's status follows in the same request (UpdateModelPackage takes ModelCard: botocore's service
    # model). Only the status: the content stays Evaluate's, and an Archived card's content may not change (the API
    # Reference, ModelPackageModelCard). A package registered without a card is left without one.
    card = {"ModelCard": {"ModelCardStatus": card_status(status)}} if package.get("ModelCard") else {}
    sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus=status, ApprovalDescription=text[:1024], **card)
    return ApprovalChange(arn, package.get("ModelPackageVersion", 0), package.get("ModelApprovalStatus", ""), status, text[:1024])


# Release stages in accounts of their own (deployment.accounts): `cardamage promote` works in such a stage's account
# through the role the stage stack makes for it (pipelines.config.stage_role_arn with PROMOTE_ROLE).

# An IAM role's ARN: arn:<partition>:iam::<account>:role/<path><name>, the path "/" or "/.../" of ASCII ! to ~ and
# the name 1-64 of letters, digits and _+=,.@- ("IAM identifiers", IAM User Guide; CreateRole's Path and RoleName).
_ROLE_ARN = re.compile(r"arn:(aws[a-z-]*):iam::(\d{12}):role/(?:[!-~]+/)?[\w+=,.@-]{1,64}", re.ASCII)
# AssumeRole's RoleSessionName: 2-64 of letters, digits and _+=,.@- (botocore's sts model, roleSessionNameType).
_SESSION_NAME_REFUSED = re.compile(r"[^\w+=,.@-]", re.ASCII)


@dataclass(frozen=True)
class RoleArn:
    arn: str
    partition: str
    account: str


def parse_role_arn(value: str, what: str) -> RoleArn:
    """`value` as an IAM role ARN; anything else is a usage error naming `what` (an option, a setting)."""
    match = _ROLE_ARN.fullmatch(value.strip())
    if not match:
        raise usage_error(f"{what} {value!r} is not an IAM role ARN: expected arn:aws:iam::<12-digit account>:role/<name>")
    return RoleArn(match.group(0), match.group(1), match.group(2))


@dataclass(frozen=True)
class Caller:
    """Who the credentials are (STS GetCallerIdentity, which needs no permission: the STS API Reference)."""

    arn: str

    @property
    def partition(self) -> str:
        return self.arn.split(":")[1]

    def session_name(self, command: str) -> str:
        """A role session name that says who assumed the role and for what (the role's account logs it in
        CloudTrail): `cardamage-<command>-<the caller's user or session name>`."""
        who = self.arn.rsplit("/", 1)[-1] or "unknown"
        return _SESSION_NAME_REFUSED.sub("-", f"cardamage-{command}-{who}")[:64]


def caller(sts: Any) -> Caller:
    return Caller(sts.get_caller_identity()["Arn"])


def assume_role(session: Aws, role_arn: str, *, region: str, session_name: str) -> Aws:
    """A session with the temporary keys of `role_arn` (STS AssumeRole through `session`), in `region`, sent
    where `session` sends its requests. STS's refusal is its ClientError, for the caller to word."""
    sts = session.client("sts")
    keys = sts.assume_role(RoleArn=role_arn, RoleSessionName=session_name)["Credentials"]
    secrets = {"aws_access_key_id": keys["AccessKeyId"], "aws_secret_access_key": keys["SecretAccessKey"], "aws_session_token": keys["SessionToken"]}
    assumed = boto3.Session(region_name=region, **secrets)
    return Aws(assumed, session.endpoint_url, keys_from_here=is_loopback(sts.meta.endpoint_url))


def stage_deploy_settings(session: Aws, config: Config, stage: str, account: str) -> deployment.DeploySettings:
    """The deploy settings of a stage in an account of its own: the environment of its deploy function (the stage
    stack's; `session` is in that account), the one place they are kept, read with Lambda GetFunctionConfiguration."""
    name, stack = stage_function_name(config.project.name, stage), config.stage_stack_name(stage)
    where = f"deploy function {name} of stage {stage} (account {account}, {session.region})"
    try:
        function = session.client("lambda").get_function_configuration(FunctionName=name)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            raise ControlPlaneError(f"there is no {where}: deploy the stage's stack {stack} (cdk deploy {stack})") from None
        raise
    try:
        settings = deployment.DeploySettings.from_environment((function.get("Environment") or {}).get("Variables") or {})
    except deployment.SettingsError as exc:
        raise ControlPlaneError(f"the {where}: {exc}: deploy the stage's stack {stack} again") from None
    endpoint = config.stage_endpoints[stage]
    if settings.endpoint_name != endpoint:
        raise ControlPlaneError(
            f"the {where} deploys to endpoint {settings.endpoint_name}, but pipeline.yaml names {stage}'s endpoint {endpoint}: "
            f"deploy the stage's stack {stack} again from this pipeline.yaml"
        )
    return settings


# Ground Truth.

# Ground Truth's built-in bounding-box Lambdas, PRE-BoundingBox (prepares each task) and ACS-BoundingBox
# (consolidates the workers' boxes), and those of its adjustment task, PRE-AdjustmentBoundingBox and
# ACS-AdjustmentBoundingBox ("Bounding box adjustment"), live in one AWS-owned account per region, the same
# for both. Source: the Amazon SageMaker API Reference, HumanTaskConfig.PreHumanTaskLambdaArn and
# AnnotationConsolidationConfig.AnnotationConsolidationLambdaArn (the same lists ship in botocore's service
# model; a test compares them for all four functions).
GROUND_TRUTH_ACCOUNTS = {
    "us-east-1": "432418664414",
    "us-east-2": "266458841044",
    "us-west-2": "081040173940",
    "ca-central-1": "918755190332",
    "eu-west-1": "568282634449",
    "eu-west-2": "487402164563",
    "eu-central-1": "203001061592",
    "ap-northeast-1": "477331159723",
    "ap-northeast-2": "845288260483",
    "ap-south-1": "565803892007",
    "ap-southeast-1": "377565633583",
    "ap-southeast-2": "454466003867",
}


def bounding_box_lambdas(region: str, adjust: bool = False) -> tuple[str, str]:
    """The region's (PRE-, ACS-) Lambda ARNs of the bounding-box task, or with `adjust` of its adjustment task."""
    account = GROUND_TRUTH_ACCOUNTS.get(region)
    task = "AdjustmentBoundingBox" if adjust else "BoundingBox"
    if account is None:
        kind = "bounding-box adjustment" if adjust else "bounding-box"
        raise usage_error(f"Ground Truth's {kind} task is not available in {region}; use one of {', '.join(sorted(GROUND_TRUTH_ACCOUNTS))}")
    return (f"arn:aws:lambda:{region}:{account}:function:PRE-{task}", f"arn:aws:lambda:{region}:{account}:function:ACS-{task}")


def label_categories(classes: list[str]) -> dict[str, Any]:
    """The label category configuration file: the classes in label-map order, so class_id + 1 is the label id."""
    return {"document-version": "2018-11-28", "labels": [{"label": name} for name in classes]}


def render_task_template(labeling: LabelingConfig, classes: list[str], template: Path = BOUNDING_BOX_TEMPLATE, **names: str) -> str:
    """The worker task page: the repository's crowd-bounding-box template with the config's texts (HTML-escaped)
    and `names`, further placeholders inserted as they are (Liquid names: the caller checks them)."""
    return string.Template(template.read_text(encoding="utf-8")).substitute(
        title=html.escape(labeling.task_title),
        instructions=html.escape(labeling.instructions),
        classes=html.escape(", ".join(classes)),
        **names,
    )


def render_adjustment_template(labeling: LabelingConfig, classes: list[str], prior_attribute: str) -> str:
    """The adjustment job's task page: crowd-bounding-box with the boxes under `prior_attribute` of each manifest
    line as its initial value."""
    check_label_attribute(prior_attribute, "the prior label attribute")
    return render_task_template(labeling, classes, ADJUST_BOUNDING_BOX_TEMPLATE, prior_attribute=prior_attribute)


def default_job_name(project: str, now: datetime | None = None) -> str:
    return f"{project}-{(now or datetime.now(UTC)).strftime('%Y%m%d-%H%M%S')}"


def check_job_name(name: str) -> str:
    if not _JOB_NAME.match(name):
        raise usage_error(f"job name {name!r} must be 1-63 letters, digits and hyphens")
    return name


def labeling_job_request(
    *,
    job_name: str,
    label_attribute: str,
    manifest_uri: str,
    output_path: str,
    categories_uri: str,
    template_uri: str,
    role_arn: str,
    workteam_arn: str,
    region: str,
    labeling: LabelingConfig,
    kms_key_id: str | None = None,
    tags: Mapping[str, str] | None = None,
    adjust: bool = False,
) -> dict[str, Any]:
    """CreateLabelingJob's arguments for a bounding-box job done by a private work team; with `adjust`, a
    bounding-box adjustment job (its Lambdas; the manifest and the task page carry the prior boxes)."""
    pre, consolidation = bounding_box_lambdas(region, adjust)
    output: dict[str, Any] = {"S3OutputPath": output_path}
    if kms_key_id:
        output["KmsKeyId"] = kms_key_id
    return {
        "LabelingJobName": check_job_name(job_name),
        "LabelAttributeName": label_attribute,
        "InputConfig": {"DataSource": {"S3DataSource": {"ManifestS3Uri": manifest_uri}}},
        "OutputConfig": output,
        "RoleArn": role_arn,
        "LabelCategoryConfigS3Uri": categories_uri,
        "HumanTaskConfig": {
            "WorkteamArn": workteam_arn,
            "UiConfig": {"UiTemplateS3Uri": template_uri},
            "PreHumanTaskLambdaArn": pre,
            "TaskKeywords": ["image", "bounding box", "car damage"],
            "TaskTitle": labeling.task_title,
            "TaskDescription": labeling.task_description,
            "NumberOfHumanWorkersPerDataObject": labeling.workers_per_object,
            "TaskTimeLimitInSeconds": labeling.task_time_limit_seconds,
            "MaxConcurrentTaskCount": labeling.max_concurrent_tasks,
            "AnnotationConsolidationConfig": {"AnnotationConsolidationLambdaArn": consolidation},
        },
        "Tags": [{"Key": key, "Value": value} for key, value in (tags or {}).items()],
    }


# Bounding-box adjustment. Its input manifest holds a prior labelling of each image in Ground Truth's output
# format: `<attribute>` ({"image_size", "annotations": [{"class_id", "left", "top", "width", "height"}]}) and
# `<attribute>-metadata` ({"class-map", "type": "groundtruth/object-detection", ...}); `cardamage review` writes
# the model's boxes so, under pipelines/review.py's ADJUSTMENT_ATTRIBUTE. The job must write its labels under
# another LabelAttributeName, and its label categories must hold the prior job's labels ("Start a label
# verification or adjustment job (API)", sms-data-verify-start-api, in the Amazon SageMaker Developer Guide).


def check_label_attribute(name: str, what: str) -> str:
    if not _LABEL_ATTRIBUTE.fullmatch(name):
        raise usage_error(f"{what} {name!r} must be 1-127 letters, digits and hyphens (Ground Truth's LabelAttributeName)")
    return name


def manifest_lines(s3: Any, uri: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """The JSON objects of the manifest at `uri`, read line by line, each with where it is (`<uri> line N`);
    blank lines are skipped."""
    location = parse_s3_uri(uri)
    try:
        body = s3.get_object(Bucket=location.bucket, Key=location.key)["Body"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "NoSuchBucket"):
            raise ControlPlaneError(f"no manifest at {uri}: upload it first", exit_code=1) from None
        raise
    for number, raw in enumerate(body.iter_lines(), start=1):
        if not raw.strip():
            continue
        where = f"{uri} line {number}"
        try:
            line = json.loads(raw)
        except ValueError as exc:
            detail = f"{exc.msg} at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else str(exc)
            raise usage_error(f"{where} is not JSON ({detail}); a manifest has one JSON object per line") from None
        if not isinstance(line, dict):
            raise usage_error(f"{where} is not a JSON object; a manifest has one JSON object per line")
        yield where, line


def prior_attribute(line: Mapping[str, Any], where: str) -> str:
    """The label attribute of the prior labelling on a manifest line: the one key with a `<key>-metadata`
    object beside it."""
    found = sorted(key for key in line if isinstance(line.get(f"{key}-metadata"), dict))
    if len(found) != 1:
        what = f"several: {', '.join(found)}" if found else "none"
        raise usage_error(f"{where}: an adjustment manifest line needs one prior labelling (a key with a <key>-metadata object); found {what}")
    return check_label_attribute(found[0], f"{where}: the prior label attribute")


def check_prior_boxes(line: Mapping[str, Any], attribute: str, classes: list[str], where: str) -> None:
    """That the line holds bounding boxes under `attribute` whose class-map is `classes` in order."""
    labels, metadata = line.get(attribute), line.get(f"{attribute}-metadata")
    if not isinstance(labels, dict) or not isinstance(labels.get("annotations"), list) or not isinstance(metadata, dict):
        raise usage_error(
            f"{where}: expected bounding boxes under {attribute!r} (an object with an annotations list) and {attribute}-metadata, "
            "as on the manifest's first line: every line adjusts the same prior labelling"
        )
    if metadata.get("type") != OBJECT_DETECTION_TYPE:
        raise usage_error(f"{where}: {attribute}-metadata.type is {metadata.get('type')!r}, expected {OBJECT_DETECTION_TYPE!r} (bounding boxes)")
    expected = class_map(classes)
    if metadata.get("class-map") != expected:
        raise usage_error(
            f"{where}: {attribute}-metadata.class-map is {json.dumps(metadata.get('class-map'))}, "
            f"expected {json.dumps(expected)} (data.classes in pipeline.yaml, in order)"
        )
    for index, box in enumerate(labels["annotations"]):
        class_id = box.get("class_id") if isinstance(box, dict) else None
        if type(class_id) is not int or not 0 <= class_id < len(classes):
            raise usage_error(f"{where}: {attribute}.annotations[{index}] has no class_id of the class-map (0 to {len(classes) - 1})")


def adjustment_manifest_attribute(s3: Any, uri: str, classes: list[str]) -> str:
    """The prior label attribute of the adjustment manifest at `uri`, found on its first line, once every line
    is checked to hold bounding boxes under it for `classes`."""
    attribute = None
    for where, line in manifest_lines(s3, uri):
        attribute = attribute or prior_attribute(line, where)
        check_prior_boxes(line, attribute, classes, where)
    if attribute is None:
        raise usage_error(f"{uri} has no lines: an adjustment manifest has one line per image (`cardamage review` writes adjustment.manifest)")
    return attribute


def check_adjusted_attribute(label_attribute: str, prior: str, manifest_uri: str) -> None:
    """Ground Truth refuses an adjustment job whose LabelAttributeName is the prior labelling's."""
    if label_attribute == prior:
        raise usage_error(
            f"the adjusted labels need a label attribute other than {prior!r}, the prior labelling's in {manifest_uri}: "
            "set data.label_attribute in pipeline.yaml to another name"
        )


def create_labeling_job(sagemaker: Any, s3: Any, request: Mapping[str, Any], uploads: Mapping[str, tuple[bytes, str]]) -> str:
    """Upload the job's files (S3 URI -> (body, content type)), then create the job; its ARN."""
    for uri, (body, content_type) in uploads.items():
        bucket, key = parse_s3_uri(uri)
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
    return sagemaker.create_labeling_job(**request)["LabelingJobArn"]


# ---------------------------------------------------------------------------------------------------------
# Batch Transform: the endpoint's handler over an S3 prefix of photos


TRANSFORM_TERMINAL = frozenset({"Completed", "Failed", "Stopped"})


def transform_job_request(
    *,
    job_name: str,
    model_name: str,
    input_uri: str,
    output_uri: str,
    instance_type: str,
    instance_count: int = 1,
    kms_key_id: str | None = None,
    instance_storage: bool = False,
    environment: Mapping[str, str] | None = None,
    tags: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """CreateTransformJob's arguments: each object under `input_uri` is one request with the photo as the body
    (application/x-image: the handler reads JPEG and PNG under it), answered as `<name>.out` under
    `output_uri`. One record at a time (a photo is never split), up to MaxPayloadInMB 6: the API's default,
    and the 6 MiB a real-time request takes (CreateTransformJob in botocore's sagemaker model: at most 100, and
    MaxConcurrentTransforms x MaxPayloadInMB at most 100; InvokeEndpoint's body at most 6,291,456 bytes in its
    sagemaker-runtime model). With a KMS key, the output and (unless the instances have NVMe instance storage,
    where SageMaker refuses one) the instances' volumes are encrypted with it."""
    output: dict[str, Any] = {"S3OutputPath": output_uri, "Accept": "application/json", "AssembleWith": "None"}
    resources: dict[str, Any] = {"InstanceType": instance_type, "InstanceCount": instance_count}
    if kms_key_id:
        output["KmsKeyId"] = kms_key_id
        if not instance_storage:
            resources["VolumeKmsKeyId"] = kms_key_id
    request: dict[str, Any] = {
        "TransformJobName": check_job_name(job_name),
        "ModelName": model_name,
        "BatchStrategy": "SingleRecord",
        "MaxPayloadInMB": 6,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": input_uri}},
            "ContentType": "application/x-image",
            "CompressionType": "None",
            "SplitType": "None",
        },
        "TransformOutput": output,
        "TransformResources": resources,
        "Tags": [{"Key": key, "Value": value} for key, value in (tags or {}).items()],
    }
    if environment:
        request["Environment"] = dict(environment)
    return request


def wait_for_transform_job(
    sagemaker: Any,
    name: str,
    *,
    timeout: float = 24 * 3600,
    poll: float = 30,
    report: Callable[[str], None] = lambda status: None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Poll DescribeTransformJob until the job ends; its final description."""
    return poll_until(
        lambda: sagemaker.describe_transform_job(TransformJobName=name),
        "TransformJobStatus",
        TRANSFORM_TERMINAL,
        f"transform job {name}",
        timeout=timeout,
        poll=poll,
        report=report,
        sleep=sleep,
        clock=clock,
    )


def list_keys(s3: Any, location: S3Location) -> list[str]:
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=location.bucket, Prefix=location.key):
        keys += [item["Key"] for item in page.get("Contents", [])]
    return keys


def transform_outcomes(s3: Any, input_uri: str, output_uri: str) -> list[Any]:
    """One batch Outcome per input object: its `<name>.out` answer, or an error saying there is none (Batch
    Transform writes no answer for a photo the handler refused, and then fails the job)."""
    from pipelines.batch import Outcome

    source, target = parse_s3_uri(input_uri), parse_s3_uri(output_uri)
    answers = {key[len(target.key) :].lstrip("/"): key for key in list_keys(s3, target) if key.endswith(".out")}
    outcomes = []
    for key in list_keys(s3, source):
        name = key[len(source.key) :].lstrip("/") or key.rsplit("/", 1)[-1]
        answer = answers.get(f"{name}.out")
        if answer is None:
            outcomes.append(Outcome(name, error="no answer in the job's output (see the job's failure reason and its logs)"))
            continue
        body = s3.get_object(Bucket=target.bucket, Key=answer)["Body"].read()
        try:
            outcomes.append(Outcome.from_answer(name, json.loads(body)))
        except (ValueError, KeyError, TypeError) as exc:
            outcomes.append(Outcome(name, error=f"unreadable answer {answer}: {exc}"))
    return outcomes


# The drift monitor's reports and inputs (`cardamage monitor` on AWS).


def latest_report(s3: Any, reports: S3Location, name: str) -> str | None:
    """The key prefix of the newest folder under `reports` that holds `name`, or None. The monitoring job names
    each window's folder by its start in ISO 8601's basic format (containers/deploy/monitor_start.py
    WINDOW_FOLDER), so the names sort in time order; they are listed as the CommonPrefixes of a Delimiter "/"
    listing (ListObjectsV2, Amazon S3 API Reference). A window whose job is still running, or failed, has no
    monitor.json yet: the job uploads its output "after the job completes" (S3UploadMode EndOfJob,
    ProcessingS3Output, SageMaker API Reference), so the newest folder that holds one is the latest report."""
    folders = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=reports.bucket, Prefix=reports.key, Delimiter="/"):
        folders += [folder["Prefix"] for folder in page.get("CommonPrefixes", [])]
    for folder in sorted(folders, reverse=True):
        listed = s3.list_objects_v2(Bucket=reports.bucket, Prefix=f"{folder}{name}", MaxKeys=1)
        if any(item["Key"] == f"{folder}{name}" for item in listed.get("Contents", [])):
            return folder
    return None


def download_prefix(s3: Any, location: S3Location, folder: Path, *, keep: Callable[[str], bool] = lambda key: True) -> list[str]:
    """Download every object under `location` that `keep` accepts into `folder`, at its key below the prefix;
    returns the keys downloaded. A key that would lead out of the folder (a leading '/' or a '..' part) is
    refused with ControlPlaneError, and nothing more is downloaded."""
    downloaded = []
    for key in list_keys(s3, location):
        if key.endswith("/") or not keep(key):
            continue
        target = archives.inside(folder, key[len(location.key) :])
        if target is None:
            raise ControlPlaneError(
                f"s3://{location.bucket}/{key}: refused: below s3://{location.bucket}/{location.key} the key leads out of the local "
                "folder it is downloaded to (a leading '/' or a '..' part); rename the object"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(location.bucket, key, str(target))
        downloaded.append(key)
    return downloaded
