"""Deploy an approved model package to the project's SageMaker endpoint.

One module, three callers: the deployment Lambda (`handler`, invoked by the EventBridge rule on "SageMaker
Model Package State Change" events and by the pipeline's Deploy step), and `cardamage deploy`
(`deploy_package`). It imports only the standard library and boto3: the Lambda's code is this folder, which it
shares with the champion function and the drift monitor's functions (champion.py, monitor_start.py,
monitor_metrics.py), and those import it.

The rules it keeps:
- Only an `Approved` package of the configured group is deployed; anything else is `skipped` with a reason
  (no exception: an event about another package is not an error).
- `decide` is the whole rule (the local deployer calls it too): a package never replaces itself, a newer
  version, or a better one by the recorded mAP, unless forced with a reason (a deliberate rollback from the
  command line, recorded in the endpoint's tags). A package its pipeline execution registered Approved is
  deployed only where the configuration approves at registration (`registry.approval_status: Approved`);
  elsewhere only a person's approval (UpdateModelPackage) deploys.
- The model archive is the one that was evaluated: its sha256, recorded at registration (metadata
  `ModelSha256`), is checked before anything is created. The endpoint is tagged with the package it serves
  (`cardamage:model-package-version`, `-arn`, `-group`).
- A release stage in an account of its own (`inference_image_uri`) gets a model made from the package's
  container with its region's serving image, so CreateModel names no image of the workflow's account; in
  another region (`model_copy_s3_uri`) the model serves a copy of the archive in the stage's bucket, checked as
  it is copied. `registry` reads the packages where the caller's own SageMaker client cannot (`cardamage promote`).
- Resource names are deterministic, so a retried invocation reuses what the first one created:
  `<group>-v<version>-<hash>`, the hash covering the package ARN and the settings that shaped the resource,
  at most 63 characters.
- Nothing waits: the Lambda returns once SageMaker has accepted the request, with the endpoint status
  read once. Autoscaling is configured right after; when SageMaker refuses it because the endpoint is
  still being created, the result says so and the "SageMaker Endpoint State Change" event (IN_SERVICE)
  sent to the same handler configures it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, asdict, dataclass, fields, replace
from typing import Any

from botocore.exceptions import ClientError

LOG = logging.getLogger("cardamage.deploy")

TAG_ARN = "cardamage:model-package-arn"
TAG_VERSION = "cardamage:model-package-version"
TAG_GROUP = "cardamage:model-package-group"
TAG_FORCED = "cardamage:forced-because"  # the reason given when an older or worse package was forced in
VARIANT = "AllTraffic"
CAPTURED_AS_JSON = ("application/json",)  # data capture keeps these bodies as text, others base64 (pipelines/local/capture.py too)
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
SCALING_METRIC = "SageMakerVariantInvocationsPerInstance"
SCALE_IN_COOLDOWN = 300  # seconds: scale in slowly, a burst often comes back
SCALE_OUT_COOLDOWN = 60
NAME_LIMIT = 63  # SageMaker's limit for model, endpoint config and endpoint names

PACKAGE_EVENT = "SageMaker Model Package State Change"
ENDPOINT_EVENT = "SageMaker Endpoint State Change"
# While an endpoint is in one of these, SageMaker refuses UpdateEndpoint; a Failed one can only be deleted.
IN_PROGRESS = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"})

_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_ROLE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$")
_INSTANCE_TYPE = re.compile(r"^ml\.[a-z0-9-]+\.[a-z0-9]+$")
_S3_URI = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$")  # containers/common/s3.py's pattern; a test holds them equal
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")  # us-east-1, us-gov-west-1, cn-north-1
# An ECR image: <account>.dkr.ecr.<region>.<domain suffix>/<repository>[:<tag>|@sha256:<digest>]. The repository is
# botocore's RepositoryName pattern (ecr service model); a tag is up to 128 letters, digits, _ . - (Docker's rule).
_IMAGE_URI = re.compile(
    r"^\d{12}\.dkr\.ecr\.[a-z]{2}(-[a-z]+)+-\d+\.[a-z0-9.-]+/"
    r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[0-9a-f]{64})?$"
)
# Instance families with NVMe instance storage (the "d" families such as m5d, c5d, g4dn, p3dn, p4d, and the
# g5/g6/p5 GPUs): SageMaker encrypts that storage itself and CreateEndpointConfig fails when KmsKeyId is set.
_LOCAL_STORAGE = re.compile(r"^ml\.(?:[a-z]+\d+[a-z]*d[a-z]*|g5|g6|g6e|p5|p5e|p5en|trn1|trn1n)\.")
_NOT_FOUND = re.compile(r"not found|does not exist|could not find|cannot find", re.IGNORECASE)


class SettingsError(ValueError):
    """A deployment setting is missing or invalid; the message names it (the variable, for the Lambda)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class DeployError(RuntimeError):
    """The deployment cannot go ahead (unknown package, endpoint busy or failed); the message says what to do."""


# The Lambda's environment: setting name -> variable. The first three have no default.
ENVIRONMENT = {
    "endpoint_name": "ENDPOINT_NAME",
    "role_arn": "ROLE_ARN",
    "model_package_group": "MODEL_PACKAGE_GROUP",
    "instance_type": "INSTANCE_TYPE",
    "initial_instance_count": "INITIAL_INSTANCE_COUNT",
    "max_instance_count": "MAX_INSTANCE_COUNT",
    "invocations_per_instance": "INVOCATIONS_PER_INSTANCE",
    "data_capture_percent": "DATA_CAPTURE_PERCENT",
    "data_capture_s3_uri": "DATA_CAPTURE_S3_URI",
    "kms_key_id": "KMS_KEY_ID",
    "score_threshold": "SCORE_THRESHOLD",
    "max_detections": "MAX_DETECTIONS",
    "traffic": "TRAFFIC",
    "bake_seconds": "BAKE_SECONDS",
    "canary_percent": "CANARY_PERCENT",
    "linear_step_percent": "LINEAR_STEP_PERCENT",
    "rollback_alarms": "ROLLBACK_ALARMS",
    "notification_topic_arn": "NOTIFICATION_TOPIC_ARN",
    "later_stage_endpoints": "LATER_STAGE_ENDPOINTS",
    "registry_approval_status": "REGISTRY_APPROVAL_STATUS",
    "inference_image_uri": "INFERENCE_IMAGE_URI",
    "model_copy_s3_uri": "MODEL_COPY_S3_URI",
}
APPROVAL_STATUSES = ("PendingManualApproval", "Approved", "Rejected")  # ModelApprovalStatus (the API reference)
METADATA_SHA256 = "ModelSha256"  # the package metadata holding the sha256 of the archive Evaluate scored
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20
# How an update shifts traffic to the new model (UpdateEndpoint's BlueGreenUpdatePolicy; the API reference's
# TrafficRoutingConfig): all at once, a canary share first, or in linear steps; each step bakes for
# bake_seconds (0-3600) while the rollback alarms watch. A canary may be at most 50% of the fleet and a linear
# step 10-50% (deployment-guardrails-blue-green-canary / -linear), so both need two or more instances.
TRAFFIC = {"all_at_once": "ALL_AT_ONCE", "canary": "CANARY", "linear": "LINEAR"}


def rollback_alarm_names(endpoint_name: str) -> tuple[str, str, str]:
    """The CloudWatch alarms that roll an update back (the stack creates them under these names): 5XX
    errors, model latency, and the share of requests the model refused (4XX)."""
    return (f"{endpoint_name}-5xx-errors", f"{endpoint_name}-model-latency", f"{endpoint_name}-4xx-share")


@dataclass(frozen=True)
class DeploySettings:
    """How the endpoint is built: the `deployment` section of pipeline.yaml, or the Lambda's environment."""

    endpoint_name: str
    role_arn: str  # the role SageMaker assumes to pull the image and the model artifact
    model_package_group: str
    instance_type: str = "ml.m5.xlarge"
    initial_instance_count: int = 1
    max_instance_count: int = 2
    invocations_per_instance: int = 100  # per instance per minute: the autoscaling target
    data_capture_percent: int = 0
    data_capture_s3_uri: str | None = None
    kms_key_id: str | None = None
    score_threshold: float = 0.3  # the endpoint handler's defaults (SCORE_THRESHOLD, MAX_DETECTIONS)
    max_detections: int = 100
    traffic: str = "all_at_once"  # a key of TRAFFIC
    bake_seconds: int = 600
    canary_percent: int = 25
    linear_step_percent: int = 25
    rollback_alarms: str = ""  # comma-separated alarm names; empty: no automatic rollback
    notification_topic_arn: str | None = None  # where a rolled-back or failed update is reported (the stack's topic)
    # With release stages: the endpoints that `cardamage promote` deploys to (comma-separated). Approvals never go
    # there; the function handles their state events (autoscaling, rollback and failure reports) as its own.
    later_stage_endpoints: str = ""
    # The status the pipeline registers packages with (registry.approval_status). Only Approved lets a package
    # its execution registered Approved be deployed without a person's approval.
    registry_approval_status: str = "PendingManualApproval"
    # A release stage in an account of its own (deployment.accounts; infra/stage_stack.py). `inference_image_uri`:
    # the serving image of the stage's region; when set, the model is made from the package's archive and this
    # image (CreateModel's Image and ModelDataUrl) rather than from the package in another account.
    # `model_copy_s3_uri`: a stage in another region than the workflow's: the archive is first copied under this
    # prefix of the stage's own bucket, since "the model artifacts must be in an S3 bucket that is in the same
    # region as the model or endpoint you are creating" (ContainerDefinition, ModelDataUrl, SageMaker API Reference).
    inference_image_uri: str | None = None
    model_copy_s3_uri: str | None = None

    def __post_init__(self) -> None:
        for field, ok, message in self._checks():
            if not ok:
                raise SettingsError(f"{field}: {message} (got {getattr(self, field)!r})", field)

    def _checks(self) -> list[tuple[str, bool, str]]:
        return [
            ("endpoint_name", bool(_NAME.match(str(self.endpoint_name))), "must be 1-63 letters, digits and hyphens"),
            ("model_package_group", bool(_NAME.match(str(self.model_package_group))), "must be 1-63 letters, digits and hyphens"),
            ("role_arn", bool(_ROLE.match(str(self.role_arn))), "must be an IAM role ARN (arn:aws:iam::<account>:role/<name>)"),
            ("instance_type", bool(_INSTANCE_TYPE.match(str(self.instance_type))), "must be a SageMaker instance type such as ml.m5.xlarge"),
            ("initial_instance_count", _is_int(self.initial_instance_count, 1), "must be an integer of at least 1"),
            ("max_instance_count", _is_int(self.max_instance_count, 1), "must be an integer of at least 1"),
            (
                "max_instance_count",
                not _is_int(self.initial_instance_count, 1) or self.max_instance_count >= self.initial_instance_count,
                f"must be at least initial_instance_count ({self.initial_instance_count})",
            ),
            ("invocations_per_instance", _is_int(self.invocations_per_instance, 1), "must be an integer of at least 1"),
            ("data_capture_percent", _is_int(self.data_capture_percent, 0, 100), "must be an integer from 0 to 100"),
            (
                "data_capture_s3_uri",
                (self.data_capture_s3_uri is None and not self.data_capture_percent) or bool(_S3_URI.match(str(self.data_capture_s3_uri))),
                "must be an S3 URI such as s3://bucket/data-capture/ when data_capture_percent is above 0",
            ),
            ("kms_key_id", self.kms_key_id is None or bool(str(self.kms_key_id).strip()), "must not be empty"),
            (
                "notification_topic_arn",
                self.notification_topic_arn is None or str(self.notification_topic_arn).startswith("arn:"),
                "must be an SNS topic ARN",
            ),
            (
                "score_threshold",
                isinstance(self.score_threshold, int | float) and 0.0 <= self.score_threshold <= 1.0,
                "must be a number from 0 to 1",
            ),
            ("max_detections", _is_int(self.max_detections, 1, 100), "must be an integer from 1 to 100"),
            ("traffic", self.traffic in TRAFFIC, f"must be one of {', '.join(TRAFFIC)}"),
            ("registry_approval_status", self.registry_approval_status in APPROVAL_STATUSES, f"must be one of {', '.join(APPROVAL_STATUSES)}"),
            (
                "later_stage_endpoints",
                all(_NAME.match(name) for name in self.later_stages()),
                "must be endpoint names (1-63 letters, digits and hyphens), comma-separated",
            ),
            (
                "inference_image_uri",
                self.inference_image_uri is None or bool(_IMAGE_URI.match(str(self.inference_image_uri))),
                "must be an ECR image URI such as 123456789012.dkr.ecr.eu-west-1.amazonaws.com/repository:tag (or @sha256:<digest>)",
            ),
            (
                "model_copy_s3_uri",
                self.model_copy_s3_uri is None or (bool(_S3_URI.match(str(self.model_copy_s3_uri))) and str(self.model_copy_s3_uri).endswith("/")),
                "must be an S3 prefix URI ending in / such as s3://bucket/models/",
            ),
            (
                "model_copy_s3_uri",
                self.model_copy_s3_uri is None or self.inference_image_uri is not None,
                "only a model made from inference_image_uri serves the copy: set inference_image_uri too",
            ),
            ("bake_seconds", _is_int(self.bake_seconds, 0, 3600), "must be an integer from 0 to 3600"),
            ("canary_percent", _is_int(self.canary_percent, 1, 50), "must be an integer from 1 to 50"),
            ("linear_step_percent", _is_int(self.linear_step_percent, 10, 50), "must be an integer from 10 to 50"),
            (
                "traffic",
                self.traffic == "all_at_once" or not _is_int(self.initial_instance_count, 1) or self.initial_instance_count >= 2,
                f"{self.traffic} shifts a share of the fleet, so it needs initial_instance_count of 2 or more",
            ),
        ]

    def later_stages(self) -> list[str]:
        return _listed(self.later_stage_endpoints)

    def for_endpoint(self, endpoint_name: str) -> DeploySettings:
        """These settings for another of the project's endpoints (a later release stage): its own alarms and capture prefix."""
        if endpoint_name == self.endpoint_name:
            return self
        capture = self.data_capture_s3_uri
        if capture and capture.rstrip("/").endswith("/" + self.endpoint_name):
            capture = capture.rstrip("/")[: -len(self.endpoint_name)] + endpoint_name + "/"
        return replace(
            self,
            endpoint_name=endpoint_name,
            data_capture_s3_uri=capture,
            rollback_alarms=",".join(rollback_alarm_names(endpoint_name)) if self.rollback_alarms else "",
            later_stage_endpoints="",
        )

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> DeploySettings:
        """The Lambda's settings; a missing or invalid variable is a `SettingsError` naming the variable."""
        values: dict[str, Any] = {}
        for item in fields(cls):
            variable = ENVIRONMENT[item.name]
            raw = (environ.get(variable) or "").strip()
            if not raw:
                if item.default is MISSING:  # no default: required
                    raise SettingsError(f"environment variable {variable} is not set ({_PURPOSE[item.name]})", item.name)
                continue
            values[item.name] = _parse(variable, raw, item.type)
        try:
            return cls(**values)
        except SettingsError as exc:
            variable = ENVIRONMENT.get(exc.field or "", "")
            raise SettingsError(f"environment variable {variable}: {str(exc).split(': ', 1)[-1]}", exc.field) from None

    @classmethod
    def from_config(
        cls, config: Any, *, role_arn: str, data_capture_s3_uri: str | None = None, kms_key_id: str | None = None, endpoint_name: str | None = None
    ) -> DeploySettings:
        """The settings from a loaded pipeline.yaml for `endpoint_name` (default: where approvals deploy). Data
        capture needs `data_capture_s3_uri` when its share is above 0."""
        values = config_values(config, role_arn=role_arn, data_capture_s3_uri=data_capture_s3_uri, kms_key_id=kms_key_id, endpoint_name=endpoint_name)
        return cls(**{key: value for key, value in values.items() if value is not None})  # None: the setting's default


# fmt: off
def config_values(config: Any, *, role_arn: str, data_capture_s3_uri: str | None = None, kms_key_id: str | None = None,
                  endpoint_name: str | None = None, inference_image_uri: str | None = None, model_copy_s3_uri: str | None = None) -> dict[str, Any]:
    # fmt: on
    """The settings' values from a loaded pipeline.yaml (`pipelines.config.Config`, read by attribute so that
    this module does not import `pipelines`), unchecked: the CDK app passes tokens for the account values.
    `endpoint_name`: the stage endpoint to deploy to; by default where approvals deploy (the first stage's)."""
    deployment = config.deployment
    endpoint = endpoint_name or config.approval_endpoint
    later = list(config.stage_endpoints.values())[1:] if endpoint == config.approval_endpoint else []
    return {
        "endpoint_name": endpoint,
        "role_arn": role_arn,
        "model_package_group": config.model_package_group,
        "instance_type": deployment.instance_type,
        "initial_instance_count": deployment.initial_instance_count,
        "max_instance_count": deployment.max_instance_count,
        "invocations_per_instance": deployment.invocations_per_instance,
        "data_capture_percent": deployment.data_capture_percent,
        "data_capture_s3_uri": data_capture_s3_uri,
        "kms_key_id": kms_key_id,
        "score_threshold": deployment.score_threshold,
        "max_detections": deployment.max_detections,
        "traffic": deployment.traffic,
        "bake_seconds": deployment.bake_seconds,
        "canary_percent": deployment.canary_percent,
        "linear_step_percent": deployment.linear_step_percent,
        "rollback_alarms": ",".join(rollback_alarm_names(endpoint)),
        "later_stage_endpoints": ",".join(later) or None,
        "registry_approval_status": config.registry.approval_status,
        "inference_image_uri": inference_image_uri,
        "model_copy_s3_uri": model_copy_s3_uri,
    }


def as_environment(values: Mapping[str, Any]) -> dict[str, str]:
    """Settings' values as the function's environment (the inverse of `DeploySettings.from_environment`);
    unset values are left out."""
    return {ENVIRONMENT[name]: str(value) for name, value in values.items() if value is not None}


_PURPOSE = {
    "endpoint_name": "the endpoint to create or update",
    "role_arn": "the role the endpoint's model runs as",
    "model_package_group": "the Model Registry group whose approved packages are deployed",
}


def _listed(text: str) -> list[str]:
    """The names of a comma-separated setting (ROLLBACK_ALARMS, LATER_STAGE_ENDPOINTS)."""
    return [name.strip() for name in str(text).split(",") if name.strip()]


def _is_int(value: Any, low: int, high: int | None = None) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low and (high is None or value <= high)


def _parse(variable: str, raw: str, kind: Any) -> Any:
    """An environment variable's text as the setting's type (dataclass field types are strings here)."""
    kind = str(kind)
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
    except ValueError:
        raise SettingsError(f"environment variable {variable} must be {'an integer' if kind == 'int' else 'a number'} (got {raw!r})") from None
    return raw


@dataclass(frozen=True)
class ServedPackage:
    """The package an endpoint serves, from its tags."""

    arn: str
    version: int
    group: str


@dataclass(frozen=True)
class Candidate:
    """What the deployment rule reads of a package: the one offered, or the one the endpoint serves."""

    arn: str
    group: str
    version: int
    status: str = "Approved"
    map: float | None = None  # the mAP recorded at registration (its metadata), when known
    # Approved when its pipeline execution registered it, and not changed since: no person approved it.
    approved_at_registration: bool = False


@dataclass(frozen=True)
class Decision:
    """Deploy or not, and why. `up_to_date`: skipped because the endpoint already serves this or a newer one."""

    deploy: bool
    reason: str
    up_to_date: bool = False


def decide(  # noqa: PLR0911  (one return per rule, in order)
    package: Candidate,
    served: Candidate | None,
    *,
    group: str,
    force: bool = False,
    force_reason: str = "",
    registry_approval_status: str = "PendingManualApproval",
) -> Decision:
    """The one deployment rule, for the deployment function, the pipeline's Deploy step, `cardamage deploy`
    and the local deployer:
    - only a package of the endpoint's group, and only an Approved one, is ever deployed (`force` or not);
    - one its pipeline execution registered Approved, only where the configuration registers Approved
      (`registry_approval_status`, a team's deliberate choice); elsewhere a person approves it first;
    - the package the endpoint serves is not deployed again (nothing would change);
    - an older version, or a newer one whose recorded mAP is below the served one's, is deployed only when
      forced with a reason (a rollback, say);
    - anything else is deployed."""
    version = package.version
    if package.group != group:
        return Decision(False, f"the package belongs to group {package.group!r}; this endpoint serves group {group!r}")
    if package.status != "Approved":
        return Decision(False, f"version {version} is {package.status or 'without an approval status'}, not Approved")
    if package.approved_at_registration and registry_approval_status != "Approved":
        return Decision(
            False,
            f"version {version} was registered Approved by its pipeline execution, but registry.approval_status is "
            f"{registry_approval_status}: only a person's approval deploys it (cardamage approve, or the Model Registry)",
        )
    if served is None:
        return Decision(True, f"nothing is served yet: version {version} is deployed")
    if served.arn == package.arn:
        return Decision(False, f"the endpoint already serves version {version}", up_to_date=True)
    if served.group != group:
        return Decision(True, f"the endpoint serves a package of group {served.group!r}: version {version} of {group!r} replaces it")
    objection = ""
    if version < served.version:
        objection = f"version {version} is older than the served version {served.version}"
    elif package.map is not None and served.map is not None and package.map < served.map:
        objection = f"version {version}'s mAP {package.map:.4f} is below the served version {served.version}'s {served.map:.4f}"
    if not objection:
        return Decision(True, f"version {version} replaces the served version {served.version}")
    if not force:
        return Decision(False, f"{objection} (force it with a reason to roll back)", up_to_date=version < served.version)
    if not force_reason.strip():
        return Decision(False, f"{objection}: forcing it needs a reason")
    return Decision(True, f"forced: {objection}; reason: {force_reason.strip()}")


@dataclass(frozen=True)
class DeployResult:
    """What a deployment did. `as_dict()` is the Lambda's answer (the Deploy step's outputs)."""

    status: str  # "created", "updated", "skipped"; for the endpoint events "autoscaled" or "reported" (a failure)
    endpoint_name: str
    model_package_arn: str
    reason: str = ""
    model_package_version: int | None = None
    model_name: str = ""
    endpoint_config_name: str = ""
    endpoint_status: str = ""  # read once, right after the request
    autoscaling: str = ""
    up_to_date: bool = False  # skipped because the endpoint already serves this version or a newer one

    def as_dict(self) -> dict[str, str]:
        """Every value as a string: the pipeline's LambdaStep declares its outputs as strings."""
        return {key: "" if value is None else str(value) for key, value in asdict(self).items()}


def deploy_package(
    sagemaker: Any,
    autoscaling: Any,
    settings: DeploySettings,
    package_arn: str,
    *,
    force: bool = False,
    reason: str = "",
    s3: Any = None,
    registry: Any = None,
    copy_s3: Any = None,
) -> DeployResult:
    """Create or update the endpoint for `package_arn` when `decide` says so (`force` with a `reason` lets an
    older or worse package in, never an unapproved one). The boto3 clients: `sagemaker` and `autoscaling` act on
    the endpoint; `registry` describes the packages (the offered one and the served one; None: `sagemaker`); `s3`
    reads the model archive to check its digest; `copy_s3` writes its regional copy (`model_copy_s3_uri`; None:
    `s3`). None for `s3` or `copy_s3` is a default client, as in the Lambda. `cardamage promote` into a stage
    account passes the workflow session's clients as `registry` and `s3`, and the assumed role's for the rest.
    Nothing waits for the endpoint."""
    clients = _Clients(sagemaker, autoscaling, registry or sagemaker, s3, copy_s3 or s3)
    try:
        return _deploy(clients, settings, package_arn, force=force, reason=reason)
    except _EndpointAppeared:
        # Another invocation (the EventBridge rule and the Deploy step fire for the same package) created the
        # endpoint between our check and our request: decide again against what is there now.
        try:
            return _deploy(clients, settings, package_arn, force=force, reason=reason)
        except _EndpointAppeared:
            raise DeployError(f"endpoint {settings.endpoint_name} appeared and vanished while deploying: deploy again") from None


@dataclass(frozen=True)
class _Clients:
    """The clients a deployment uses; see `deploy_package`."""

    sagemaker: Any
    autoscaling: Any
    registry: Any
    s3: Any
    copy_s3: Any


class _EndpointAppeared(Exception):
    pass


def candidate(package: Mapping[str, Any]) -> Candidate:
    """A DescribeModelPackage answer as the rule reads it; the mAP is the one Register recorded (metadata)."""
    try:
        recorded = float((package.get("CustomerMetadataProperties") or {})["mAP"])
    except (KeyError, TypeError, ValueError):
        recorded = None
    return Candidate(
        package["ModelPackageArn"],
        package.get("ModelPackageGroupName", ""),
        int(package.get("ModelPackageVersion") or 0),
        package.get("ModelApprovalStatus", ""),
        recorded,
        approved_at_registration=package.get("ModelApprovalStatus") == "Approved" and not _changed_since_created(package),
    )


def _changed_since_created(package: Mapping[str, Any]) -> bool:
    """Whether UpdateModelPackage changed the package after CreateModelPackage: its LastModifiedTime is later
    than its CreationTime. The API reference says only "the last time the model package was modified", not
    whether creation sets it; both an absent time and one equal to the creation count as unchanged (moto
    leaves it absent until an update). Only people may call UpdateModelPackage: the execution role may not."""
    created, modified = package.get("CreationTime"), package.get("LastModifiedTime")
    try:
        return created is not None and modified is not None and modified > created
    except TypeError:  # times of different kinds (never from boto3): treat as unchanged, the safe side
        return False


def archive_location(package: Mapping[str, Any]) -> str:
    """The S3 URI of the package's model archive (its first container's ModelDataUrl)."""
    containers = (package.get("InferenceSpecification") or {}).get("Containers") or [{}]
    return str(containers[0].get("ModelDataUrl") or "")


def recorded_digest(metadata: Mapping[str, Any] | None) -> str:
    """The archive's sha256 that Register recorded in the package's metadata ("" for a package registered
    before digests were)."""
    return str((metadata or {}).get(METADATA_SHA256) or "").strip().lower()


def check_archive(read_chunks: Callable[[str], Any], uri: str, recorded: str, version: Any) -> str:
    """Refuse (`DeployError`, naming both digests) the model archive at `uri` when its sha256 is not
    `recorded`, the one recorded at registration: the archive changed after Evaluate scored it.
    `read_chunks(uri)` yields the archive's bytes. Returns a note for a package that recorded none."""
    if not _digest_to_check(recorded, version):
        return _not_checked(version)
    digest = hashlib.sha256()
    for chunk in read_chunks(uri):
        digest.update(chunk)
    _same_digest(uri, digest.hexdigest(), recorded, version)
    return ""


def _digest_to_check(recorded: str, version: Any) -> bool:
    """Whether the package recorded a digest to check; a recorded value that is not a sha256 is refused."""
    if recorded and not _SHA256.match(recorded):
        raise DeployError(f"version {version}'s metadata {METADATA_SHA256} is not a sha256 ({recorded!r}): not deployed")
    return bool(recorded)


def _not_checked(version: Any) -> str:
    return f"version {version} recorded no archive digest (registered before digests were): not checked"


def _same_digest(uri: str, found: str, recorded: str, version: Any) -> None:
    if found != recorded:
        raise DeployError(
            f"model archive {uri} has sha256 {found}, but version {version} was registered with {recorded}: "
            "the archive changed after it was evaluated; not deployed"
        )


def file_chunks(path: Any) -> Iterator[bytes]:
    """A local file's bytes in 1 MiB chunks: `check_archive`'s reader for a file (the local deployer's)."""
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            yield chunk


def s3_chunks(s3: Any) -> Callable[[str], Any]:
    """`check_archive`'s reader for S3: the object streamed in 1 MiB chunks (`s3` None: a default client,
    made only when there is something to read)."""

    def read(uri: str) -> Any:
        bucket, key = _s3_object(uri)
        if s3 is None:
            import boto3

            client = boto3.client("s3")
        else:
            client = s3
        try:
            body = client.get_object(Bucket=bucket, Key=key)["Body"]
        except ClientError as exc:
            message = exc.response.get("Error", {}).get("Message", exc)
            raise DeployError(f"cannot read the model archive {uri}: {message}") from None
        return body.iter_chunks(_CHUNK)

    return read


def _s3_object(uri: str) -> tuple[str, str]:
    match = re.match(r"^s3://([^/]+)/(.+)$", uri)
    if not match:
        raise DeployError(f"the package's ModelDataUrl is not an S3 object URI: {uri!r}")
    return match.group(1), match.group(2)


def model_data(settings: DeploySettings, package: Mapping[str, Any], s3: Any, copy_s3: Any) -> tuple[str, str]:
    """The archive the model serves, and a note for the answer ("": nothing to say): the package's own, its
    sha256 checked against the recorded one, or with `model_copy_s3_uri` its regional copy (`copy_archive`)."""
    if settings.model_copy_s3_uri:
        return copy_archive(s3_chunks(s3), copy_s3, settings, package)
    uri = archive_location(package)
    return uri, check_archive(s3_chunks(s3), uri, recorded_digest(package.get("CustomerMetadataProperties")), package.get("ModelPackageVersion"))


def copy_location(settings: DeploySettings, group: str, version: Any, recorded: str) -> str:
    """`<model_copy_s3_uri><group>/v<version>/<sha256>/model.tar.gz`: a copy's key names the digest its bytes
    were checked against, so it is never taken for another archive; `unchecked` for a package that recorded none."""
    return f"{settings.model_copy_s3_uri}{group}/v{version}/{recorded or 'unchecked'}/model.tar.gz"


def copy_archive(read_chunks: Callable[[str], Any], copy_s3: Any, settings: DeploySettings, package: Mapping[str, Any]) -> tuple[str, str]:
    """The package's archive copied under `model_copy_s3_uri` (the stage's bucket, in the stage's region): its URI
    and a note for the answer. The archive is read once, hashed as it streams into the copy, and a digest that is
    not the recorded one fails the upload before S3 completes the object (`_HashingReader`), so a changed archive
    leaves no copy. A copy already there is not made again but checked: it is what the model serves, and it is
    read in the stage's own region. A package that recorded no digest is copied again each time, since nothing
    says what an earlier copy holds. The copy is encrypted with the stage's key (`kms_key_id`), when there is one."""
    source, group, version = archive_location(package), package["ModelPackageGroupName"], package["ModelPackageVersion"]
    recorded = recorded_digest(package.get("CustomerMetadataProperties"))
    checked = _digest_to_check(recorded, version)
    uri = copy_location(settings, group, version, recorded)
    bucket, key = _s3_object(uri)
    if copy_s3 is None:
        import boto3

        copy_s3 = boto3.client("s3")
    if checked and _copy_exists(copy_s3, bucket, key, uri):
        check_archive(s3_chunks(copy_s3), uri, recorded, version)
        return uri, f"the archive's copy {uri} was there already (its sha256 checked)"

    def at_end(found: str) -> None:
        if checked:
            _same_digest(source, found, recorded, version)

    reader = _HashingReader(read_chunks(source), at_end)
    # SSEKMSKeyId takes a "Key ID, Key ARN, or Key Alias", the ARN only for a key of another account (PutObject and
    # CreateMultipartUpload, Amazon S3 API Reference): the stage's key is in the caller's own account.
    encryption = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": settings.kms_key_id} if settings.kms_key_id else {}
    try:
        copy_s3.upload_fileobj(reader, bucket, key, ExtraArgs=encryption)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise DeployError(f"cannot write the archive's copy {uri}: {error.get('Code')}: {error.get('Message')}") from None
    if not checked:
        return uri, f"{_not_checked(version)}; copied unchecked to {uri} (sha256 {reader.hexdigest()})"
    return uri, f"the archive was copied to {uri}"


def _copy_exists(copy_s3: Any, bucket: str, key: str, uri: str) -> bool:
    """Whether the copy is there (HeadObject). Without s3:ListBucket on the bucket, S3 answers a missing object
    with 403 rather than 404 (HeadObject, Amazon S3 API Reference), which is refused here, naming that."""
    try:
        copy_s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        if str(error.get("Code")) in {"404", "NoSuchKey", "NotFound"}:
            return False
        raise DeployError(
            f"cannot tell whether the archive's copy {uri} exists: HeadObject answered {error.get('Code')} ({error.get('Message')}); "
            "S3 answers 403 for a missing object when the caller may not s3:ListBucket the bucket"
        ) from None
    return True


class _HashingReader:
    """The archive's chunks as the file object `upload_fileobj` reads, hashed as they arrive. When the archive
    ends, `at_end(sha256)` runs, before the read that reached the end returns: an error raised there fails the
    transfer before S3 completes the object. boto3's transfer (s3transfer) reads a stream it cannot seek either
    whole before its one PutObject (below 8 MiB, its multipart threshold) or part by part until a read returns
    nothing, and aborts the multipart upload when a read raises. upload_fileobj is used over a hand-written
    multipart upload because it is that, with retries and parts in parallel."""

    def __init__(self, chunks: Any, at_end: Callable[[str], None]):
        self._chunks, self._at_end = iter(chunks), at_end
        self._digest = hashlib.sha256()
        self._buffer = bytearray()
        self._ended = False

    def read(self, size: int | None = -1) -> bytes:
        whole = size is None or size < 0
        while not self._ended and (whole or len(self._buffer) < size):
            chunk = next(self._chunks, None)
            if chunk is None:
                self._ended = True
                self._at_end(self._digest.hexdigest())
            else:
                self._digest.update(chunk)
                self._buffer += chunk
        count = len(self._buffer) if whole else size
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        return data

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def _served_candidate(sagemaker: Any, served: ServedPackage | None, group: str) -> Candidate | None:
    """The served package as the rule reads it. One of another group is not described: the rule compares
    nothing across groups, and the function's role may read only its own group's packages."""
    if served is None:
        return None
    if served.group and served.group != group:
        return Candidate(served.arn, served.group, served.version)
    try:
        return candidate(sagemaker.describe_model_package(ModelPackageName=served.arn))
    except ClientError as exc:
        if not is_not_found(exc):
            raise
        return Candidate(served.arn, served.group, served.version)  # deleted since: its mAP is unknown


def _deploy(clients: _Clients, settings: DeploySettings, package_arn: str, *, force: bool, reason: str) -> DeployResult:
    sagemaker, autoscaling = clients.sagemaker, clients.autoscaling
    package = describe_package(clients.registry, package_arn)
    offered = candidate(package)
    arn, group, version = offered.arn, offered.group, offered.version
    endpoint = describe_endpoint(sagemaker, settings.endpoint_name) if offered.group == settings.model_package_group else None
    served = _served_candidate(clients.registry, served_package(sagemaker, endpoint), settings.model_package_group) if endpoint else None
    rule = {"group": settings.model_package_group, "registry_approval_status": settings.registry_approval_status}
    decision = decide(offered, served, force=force, force_reason=reason, **rule)
    if not decision.deploy:
        LOG.info("skipped %s: %s", arn, decision.reason)
        return DeployResult("skipped", settings.endpoint_name, arn, decision.reason, version, up_to_date=decision.up_to_date)
    if endpoint is not None:
        _check_updatable(endpoint)
    model_data_url, archive_note = model_data(settings, package, clients.s3, clients.copy_s3)

    tags = package_tags(arn, version, group, force_reason=reason if force else "")
    model_name = create_model(sagemaker, settings, package, tags, model_data_url=model_data_url)
    config_name = create_endpoint_config(sagemaker, settings, model_name, package, tags)
    if endpoint is None:
        try:
            sagemaker.create_endpoint(EndpointName=settings.endpoint_name, EndpointConfigName=config_name, Tags=tags)
        except ClientError as exc:
            if _already_exists(exc):
                raise _EndpointAppeared from exc
            raise
        outcome = "created"
    else:
        if endpoint.get("EndpointConfigName") == config_name:
            why = f"endpoint {settings.endpoint_name} already uses endpoint config {config_name}"
            return DeployResult("skipped", settings.endpoint_name, arn, why, version, up_to_date=True)
        update_endpoint(sagemaker, autoscaling, settings, endpoint, config_name)
        sagemaker.add_tags(ResourceArn=endpoint["EndpointArn"], Tags=tags)
        if not any(tag["Key"] == TAG_FORCED for tag in tags):  # an earlier forced deployment's reason no longer holds
            sagemaker.delete_tags(ResourceArn=endpoint["EndpointArn"], TagKeys=[TAG_FORCED])
        outcome = "updated"

    now = describe_endpoint(sagemaker, settings.endpoint_name) or {}
    state = "in service" if now.get("EndpointStatus") == "InService" else "being deployed"
    scaling = try_autoscaling(autoscaling, settings)
    LOG.info("%s endpoint %s with version %s (%s): %s", outcome, settings.endpoint_name, version, arn, now.get("EndpointStatus"))
    return DeployResult(
        outcome,
        settings.endpoint_name,
        arn,
        "; ".join(filter(None, [decision.reason, archive_note, f"version {version} of {group} is {state}"])),
        version,
        model_name,
        config_name,
        now.get("EndpointStatus", ""),
        scaling,
    )


def describe_package(sagemaker: Any, package_arn: str) -> dict[str, Any]:
    """The package's description; an unknown ARN is a `DeployError`."""
    try:
        return sagemaker.describe_model_package(ModelPackageName=package_arn)
    except ClientError as exc:
        if is_not_found(exc):
            raise DeployError(f"no model package {package_arn}") from None
        raise


def describe_endpoint(sagemaker: Any, name: str) -> dict[str, Any] | None:
    """The endpoint's description, or None when there is no endpoint of that name."""
    try:
        return sagemaker.describe_endpoint(EndpointName=name)
    except ClientError as exc:
        if is_not_found(exc):
            return None
        raise


def served_package(sagemaker: Any, endpoint: Mapping[str, Any], config_tags: Mapping[str, str] | None = None) -> ServedPackage | None:
    """The package the endpoint serves now: the one its current endpoint config was made for (the config's
    tags). The endpoint's own tags name the package of the last update asked for, and SageMaker only moves
    the endpoint to the new config when an update lands: after an automatic rollback it is back on the old
    one. The endpoint's tags stand in for a config without ours; None for an endpoint this code did not deploy.
    `config_tags`: the current config's tags, when the caller has read them already."""
    tags = dict(_config_tags(sagemaker, endpoint) if config_tags is None else config_tags)
    if TAG_ARN not in tags:
        tags = _tags(sagemaker, endpoint["EndpointArn"])
    try:
        return ServedPackage(tags[TAG_ARN], int(tags[TAG_VERSION]), tags.get(TAG_GROUP, ""))
    except (KeyError, ValueError):
        return None


def _config_tags(sagemaker: Any, endpoint: Mapping[str, Any]) -> dict[str, str]:
    """The tags of the endpoint's current endpoint config ({} when it has none, or is gone)."""
    config_name = endpoint.get("EndpointConfigName")
    if not config_name:
        return {}
    try:
        config = sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
        return _tags(sagemaker, config["EndpointConfigArn"])
    except ClientError as exc:
        if not is_not_found(exc):
            raise
        return {}


def _tags(sagemaker: Any, arn: str) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in sagemaker.list_tags(ResourceArn=arn).get("Tags", [])}


def package_tags(arn: str, version: int, group: str, force_reason: str = "") -> list[dict[str, str]]:
    """The endpoint's tags naming what it serves, and why when that was forced (tag values: 256 characters)."""
    tags = [{"Key": TAG_ARN, "Value": arn}, {"Key": TAG_VERSION, "Value": str(version)}, {"Key": TAG_GROUP, "Value": group}]
    if force_reason.strip():
        tags.append({"Key": TAG_FORCED, "Value": _tag_value(force_reason.strip())})
    return tags


def _tag_value(text: str) -> str:
    """A tag value: at most 256 characters of letters, digits, spaces and _ . : / = + - @ (others become spaces)."""
    return re.sub(r"[^\w .:/=+\-@]", " ", text)[:256]


def resource_name(group: str, version: int, *parts: Any) -> str:
    """`<group>-v<version>-<8 hex digits>`: deterministic, distinct per package and per settings, valid and
    at most 63 characters (the group name is shortened when needed)."""
    digest = hashlib.sha256("\n".join(str(part) for part in parts).encode()).hexdigest()[:8]
    suffix = f"-v{version}-{digest}"
    head = group[: NAME_LIMIT - len(suffix)].rstrip("-")
    return f"{head}{suffix}"


def model_environment(settings: DeploySettings) -> dict[str, str]:
    """The endpoint handler's defaults: a copy of containers/inference/inference.py's `serving_environment`
    (this file ships alone), which a test holds equal."""
    return {"SCORE_THRESHOLD": str(settings.score_threshold), "MAX_DETECTIONS": str(settings.max_detections)}


def create_model(
    sagemaker: Any, settings: DeploySettings, package: Mapping[str, Any], tags: list[dict[str, str]], *, model_data_url: str | None = None
) -> str:
    """A SageMaker Model from the package (its image and artifact), reused when a retry finds it. With
    `inference_image_uri` (a stage in an account of its own) the model is made from the package's container
    instead (`image_container`; `model_data_url`: the archive's regional copy, when there is one).

    Network-isolated: the serving container reaches no network (SageMaker still fetches the artifact and
    writes captured data). The model carries its handler's libraries in code/lib, so the container has
    nothing to install at start (containers/inference/libraries.py)."""
    arn, group, version = package["ModelPackageArn"], package["ModelPackageGroupName"], package["ModelPackageVersion"]
    if settings.inference_image_uri:
        container = image_container(settings, package, model_data_url)
        shaped_by = json.dumps(container, sort_keys=True)  # the image, the archive and the environment
    else:
        environment = model_environment(settings)
        container = {"ModelPackageName": arn, "Environment": environment}
        shaped_by = json.dumps(environment, sort_keys=True)  # as before stages had accounts: the same names
    name = resource_name(group, version, arn, settings.role_arn, shaped_by, "isolated")
    _create_unless_exists(
        lambda: sagemaker.create_model(
            ModelName=name,
            PrimaryContainer=container,
            ExecutionRoleArn=settings.role_arn,
            EnableNetworkIsolation=True,
            Tags=tags,
        )
    )
    return name


def image_container(settings: DeploySettings, package: Mapping[str, Any], model_data_url: str | None = None) -> dict[str, Any]:
    """CreateModel's PrimaryContainer for a stage in an account of its own: the package's first container with
    the stage region's serving image (`inference_image_uri`), the archive (`model_data_url`, else the package's),
    and the package's environment with ours over it. A model made from the package (ModelPackageName) would have
    SageMaker pull the package's image, an ECR repository of the workflow's account and region, which the stage
    could use only through a repository policy ("Deploy a Model Version from a Different Account", SageMaker
    Developer Guide: the group, the image's repository and the archive's bucket each need a cross-account policy)."""
    containers = (package.get("InferenceSpecification") or {}).get("Containers") or [{}]
    first = containers[0]
    url = model_data_url or first.get("ModelDataUrl")
    if not url:
        raise DeployError(f"version {package.get('ModelPackageVersion')}'s package names no ModelDataUrl: nothing to serve")
    environment = {**(first.get("Environment") or {}), **model_environment(settings)}
    return {"Image": settings.inference_image_uri, "ModelDataUrl": url, "Environment": environment}


def endpoint_config_request(settings: DeploySettings, model_name: str) -> dict[str, Any]:
    """CreateEndpointConfig's arguments, without the name and tags."""
    request: dict[str, Any] = {
        "ProductionVariants": [
            {
                "VariantName": VARIANT,
                "ModelName": model_name,
                "InstanceType": settings.instance_type,
                "InitialInstanceCount": settings.initial_instance_count,
                "InitialVariantWeight": 1.0,
            }
        ]
    }
    if settings.data_capture_percent > 0:
        capture: dict[str, Any] = {
            "EnableCapture": True,
            "InitialSamplingPercentage": settings.data_capture_percent,
            "DestinationS3Uri": settings.data_capture_s3_uri,
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            # JSON bodies are captured as text; every other type (the images) is captured base64-encoded,
            # which is all the header can say: it has no entry for binary types.
            "CaptureContentTypeHeader": {"JsonContentTypes": list(CAPTURED_AS_JSON)},
        }
        if settings.kms_key_id:
            capture["KmsKeyId"] = settings.kms_key_id
        request["DataCaptureConfig"] = capture
    if settings.kms_key_id and not has_instance_storage(settings.instance_type):
        request["KmsKeyId"] = settings.kms_key_id
    return request


def has_instance_storage(instance_type: str) -> bool:
    """Whether the instance type has NVMe instance storage, for which SageMaker refuses a KmsKeyId."""
    return bool(_LOCAL_STORAGE.match(instance_type))


def create_endpoint_config(sagemaker: Any, settings: DeploySettings, model_name: str, package: Mapping[str, Any], tags: list[dict[str, str]]) -> str:
    """A new endpoint config for this model and these settings, reused when a retry finds it."""
    request = endpoint_config_request(settings, model_name)
    group, version = package["ModelPackageGroupName"], package["ModelPackageVersion"]
    name = resource_name(group, version, settings.endpoint_name, json.dumps(request, sort_keys=True))
    _create_unless_exists(lambda: sagemaker.create_endpoint_config(EndpointConfigName=name, Tags=tags, **request))
    return name


def deployment_config(settings: DeploySettings) -> dict[str, Any]:
    """UpdateEndpoint's DeploymentConfig: a blue/green update shifting traffic as `traffic` says, rolled back
    automatically when one of the rollback alarms goes off while a step bakes."""
    routing: dict[str, Any] = {"Type": TRAFFIC[settings.traffic], "WaitIntervalInSeconds": settings.bake_seconds}
    if settings.traffic == "canary":
        routing["CanarySize"] = {"Type": "CAPACITY_PERCENT", "Value": settings.canary_percent}
    elif settings.traffic == "linear":
        routing["LinearStepSize"] = {"Type": "CAPACITY_PERCENT", "Value": settings.linear_step_percent}
    config: dict[str, Any] = {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": routing}}
    alarms = _listed(settings.rollback_alarms)
    if alarms:
        config["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": name} for name in alarms]}
    return config


def update_endpoint(sagemaker: Any, autoscaling: Any, settings: DeploySettings, endpoint: Mapping[str, Any], config_name: str) -> None:
    """Point the endpoint at the new config, blue/green with the deployment config's traffic shifting and
    automatic rollback. A model swap keeps the variant's current (autoscaled) instance count; a change of
    instance type is refused by SageMaker while the variant is an autoscaling target, so the target is removed
    first (and registered again afterwards)."""
    if _instance_type_of(sagemaker, endpoint.get("EndpointConfigName")) == settings.instance_type:
        sagemaker.update_endpoint(
            EndpointName=settings.endpoint_name,
            EndpointConfigName=config_name,
            RetainAllVariantProperties=True,
            ExcludeRetainedVariantProperties=[{"VariantPropertyType": "DataCaptureConfig"}],
            DeploymentConfig=deployment_config(settings),
        )
    else:
        remove_autoscaling(autoscaling, settings)
        sagemaker.update_endpoint(EndpointName=settings.endpoint_name, EndpointConfigName=config_name, DeploymentConfig=deployment_config(settings))


def _instance_type_of(sagemaker: Any, config_name: str | None) -> str | None:
    if not config_name:
        return None
    try:
        config = sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
    except ClientError as exc:
        if is_not_found(exc):
            return None
        raise
    variants = [v for v in config.get("ProductionVariants", []) if v.get("VariantName") == VARIANT]
    return variants[0].get("InstanceType") if variants else None


def _resource_id(settings: DeploySettings) -> str:
    return f"endpoint/{settings.endpoint_name}/variant/{VARIANT}"


def policy_name(settings: DeploySettings) -> str:
    return f"{settings.endpoint_name}-invocations-per-instance"


def configure_autoscaling(autoscaling: Any, settings: DeploySettings) -> None:
    """Register the variant as a scalable target (initial to max instances) with a target-tracking policy on
    invocations per instance. Both calls replace what is there, so running them again is harmless."""
    resource_id = _resource_id(settings)
    autoscaling.register_scalable_target(
        ServiceNamespace="sagemaker",
        ResourceId=resource_id,
        ScalableDimension=SCALABLE_DIMENSION,
        MinCapacity=settings.initial_instance_count,
        MaxCapacity=settings.max_instance_count,
    )
    autoscaling.put_scaling_policy(
        PolicyName=policy_name(settings),
        ServiceNamespace="sagemaker",
        ResourceId=resource_id,
        ScalableDimension=SCALABLE_DIMENSION,
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": float(settings.invocations_per_instance),
            "PredefinedMetricSpecification": {"PredefinedMetricType": SCALING_METRIC},
            "ScaleInCooldown": SCALE_IN_COOLDOWN,
            "ScaleOutCooldown": SCALE_OUT_COOLDOWN,
        },
    )


def try_autoscaling(autoscaling: Any, settings: DeploySettings) -> str:
    """`configure_autoscaling`, reporting a refusal instead of failing a deployment that SageMaker accepted."""
    try:
        configure_autoscaling(autoscaling, settings)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        LOG.warning("autoscaling of %s not configured now: %s", settings.endpoint_name, error)
        return f"not configured now ({error.get('Code')}: {error.get('Message')}); the endpoint's IN_SERVICE event configures it"
    return (
        f"{settings.initial_instance_count} to {settings.max_instance_count} instances, "
        f"target {settings.invocations_per_instance} invocations per instance per minute"
    )


def remove_autoscaling(autoscaling: Any, settings: DeploySettings) -> None:
    """Delete the policy and deregister the target; absent ones are fine."""
    calls: list[Callable[[], Any]] = [
        lambda: autoscaling.delete_scaling_policy(
            PolicyName=policy_name(settings), ServiceNamespace="sagemaker", ResourceId=_resource_id(settings), ScalableDimension=SCALABLE_DIMENSION
        ),
        lambda: autoscaling.deregister_scalable_target(
            ServiceNamespace="sagemaker", ResourceId=_resource_id(settings), ScalableDimension=SCALABLE_DIMENSION
        ),
    ]
    for call in calls:
        try:
            call()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ObjectNotFoundException" and not is_not_found(exc):
                raise


def _check_updatable(endpoint: Mapping[str, Any]) -> None:
    status = endpoint.get("EndpointStatus", "")
    name = endpoint.get("EndpointName", "")
    if status in IN_PROGRESS:
        raise DeployError(f"endpoint {name} is {status}: nothing changed; deploy again when it is InService")
    if status == "Failed":
        reason = endpoint.get("FailureReason") or "no reason given"
        raise DeployError(f"endpoint {name} is Failed ({reason}): SageMaker only allows deleting it; delete it and deploy again")


def _create_unless_exists(create: Callable[[], Any]) -> None:
    try:
        create()
    except ClientError as exc:
        if not _already_exists(exc):
            raise


def _already_exists(exc: ClientError) -> bool:
    return "already exist" in str(exc.response.get("Error", {}).get("Message", ""))


def is_not_found(exc: ClientError) -> bool:
    """Whether a SageMaker error means "no such resource" (the service says so in several ways)."""
    error = exc.response.get("Error", {})
    return error.get("Code") in {"ResourceNotFound", "ResourceNotFoundException"} or bool(_NOT_FOUND.search(str(error.get("Message", ""))))


# The Lambda.


@dataclass(frozen=True)
class Request:
    """What an event asks for: deploy a package, configure autoscaling, or nothing (with the reason)."""

    action: str  # "deploy", "autoscale" (in service: also checks for a rollback), "failed" or "skip"
    model_package_arn: str = ""
    reason: str = ""
    force: bool = False
    endpoint_name: str = ""  # the endpoint an endpoint event is about (the function's own, or a later stage's)


def parse_event(event: Mapping[str, Any], settings: DeploySettings) -> Request:
    """The request in an EventBridge event (model package or endpoint state change) or in the direct input
    `{"model_package_arn": ..., "endpoint_name": ..., "force": false, "reason": ""}` of the Deploy step and of a
    manual invoke (`reason`: why an older or worse package is forced in)."""
    if not isinstance(event, Mapping):
        raise DeployError(f"the event must be a JSON object, not {type(event).__name__}")
    detail_type = event.get("detail-type")
    detail = event.get("detail") if isinstance(event.get("detail"), Mapping) else {}
    if detail_type == PACKAGE_EVENT:
        return _package_event(detail, settings)
    if detail_type == ENDPOINT_EVENT:
        return _endpoint_event(detail, settings)
    if "model_package_arn" in event:
        return _direct_request(event, settings)
    raise DeployError(f"unrecognised event: expected a {PACKAGE_EVENT!r} or {ENDPOINT_EVENT!r} event, or {{'model_package_arn': ...}}")


def _package_event(detail: Mapping[str, Any], settings: DeploySettings) -> Request:
    arn, group, status = detail.get("ModelPackageArn", ""), detail.get("ModelPackageGroupName", ""), detail.get("ModelApprovalStatus", "")
    if group != settings.model_package_group:
        return Request("skip", arn, f"the package belongs to group {group!r}; this endpoint serves group {settings.model_package_group!r}")
    if status != "Approved":
        return Request("skip", arn, f"the package is {status or 'without an approval status'}, not Approved")
    if not arn:
        raise DeployError("the model package event has no detail.ModelPackageArn")
    return Request("deploy", arn)


def _endpoint_event(detail: Mapping[str, Any], settings: DeploySettings) -> Request:
    name, status = detail.get("EndpointName", ""), str(detail.get("EndpointStatus", ""))
    ours = [settings.endpoint_name, *settings.later_stages()]
    if name not in ours:
        return Request("skip", reason=f"the event is about endpoint {name!r}, not {' or '.join(map(repr, ours))}")
    normal = status.replace("_", "").lower()  # events say IN_SERVICE, the API InService
    if normal == "failed":
        return Request("failed", endpoint_name=name)
    if normal != "inservice":
        return Request("skip", reason=f"endpoint {name} is {status}; autoscaling is configured when it is in service")
    return Request("autoscale", endpoint_name=name)


def _direct_request(event: Mapping[str, Any], settings: DeploySettings) -> Request:
    arn = event.get("model_package_arn")
    if not isinstance(arn, str) or not arn.startswith("arn:"):
        raise DeployError(f"model_package_arn must be a model package ARN (got {arn!r})")
    endpoint = event.get("endpoint_name")
    if endpoint not in (None, "", settings.endpoint_name):
        raise DeployError(f"this function deploys to endpoint {settings.endpoint_name!r}, the request names {endpoint!r}: check ENDPOINT_NAME")
    reason = event.get("reason") or ""
    if not isinstance(reason, str):
        raise DeployError(f"reason must be text (got {type(reason).__name__})")
    return Request("deploy", arn, reason=reason, force=event.get("force") is True)


# Rolled back, or failed: the team is told. "If any alarms are tripped during a deployment, SageMaker rolls back
# the deployment" (API_AutoRollbackConfig), and the endpoint stays on its previous endpoint config, so an endpoint
# back in service whose own tags (set when the update was asked for) name another package than its current
# config's tags was rolled back. The "SageMaker Endpoint State Change" events that start this are the ones
# the autoscaling rule already receives (IN_SERVICE), and FAILED. Still not documented by AWS (checked again in
# 2026): no page shows a rollback's events, nor says an IN_SERVICE event follows one. Reports in the Terraform
# AWS provider's issues (#39099, 2024; #48997, 2026) say the endpoint returns to InService on its previous config.


def rolled_back(sagemaker: Any, settings: DeploySettings, endpoint: Mapping[str, Any], config_tags: Mapping[str, str]) -> str:
    """The notice for an update that was rolled back, or "" when the endpoint serves what was last asked for
    (`config_tags`: the endpoint's current config's). The endpoint's tags are set back to its config's, so a
    repeated event reports it once."""
    asked = _tags(sagemaker, endpoint["EndpointArn"])
    config = {key: value for key, value in config_tags.items() if key.startswith("cardamage:")}
    if TAG_ARN not in config or TAG_ARN not in asked or asked[TAG_ARN] == config[TAG_ARN]:
        return ""
    sagemaker.add_tags(ResourceArn=endpoint["EndpointArn"], Tags=[{"Key": key, "Value": value} for key, value in config.items()])
    if TAG_FORCED not in config:
        sagemaker.delete_tags(ResourceArn=endpoint["EndpointArn"], TagKeys=[TAG_FORCED])
    why = f" ({endpoint['FailureReason']})" if endpoint.get("FailureReason") else ""
    # Without rollback alarms no alarm can have gone off: the update itself did not complete.
    cause = f"An alarm watching the update went off ({settings.rollback_alarms})" if settings.rollback_alarms else "The update did not complete"
    return (
        f"Endpoint {settings.endpoint_name} rolled back the update to version {asked.get(TAG_VERSION, '?')} ({asked[TAG_ARN]}){why}: "
        f"it serves version {config.get(TAG_VERSION, '?')} ({config[TAG_ARN]}) again. {cause}; `cardamage models` shows what is served."
    )


def failed_update(sagemaker: Any, settings: DeploySettings, endpoint: Mapping[str, Any]) -> str:
    """The notice for an endpoint that failed (to be created or updated); `endpoint` is {} when it was
    deleted before the event arrived, and its reason went with it."""
    again = "Deploy a package again (`cardamage deploy`) once the cause is fixed."
    if not endpoint:
        return f"Endpoint {settings.endpoint_name} failed and has been deleted since, so SageMaker's reason cannot be read. {again}"
    asked = _tags(sagemaker, endpoint["EndpointArn"])
    version = f" with version {asked[TAG_VERSION]} ({asked.get(TAG_ARN, '')})" if TAG_VERSION in asked else ""
    reason = (endpoint.get("FailureReason") or "no reason given").rstrip(". ")  # a reason may end with its own full stop
    return f"Endpoint {settings.endpoint_name} failed{version}: {reason}. {again}"


def report(settings: DeploySettings, notice: str) -> str:
    """Publish `notice` to the notification topic (when there is one and something to say); returns it."""
    if notice and settings.notification_topic_arn:
        import boto3

        boto3.client("sns").publish(TopicArn=settings.notification_topic_arn, Subject=f"{settings.endpoint_name}: deployment"[:100], Message=notice)
    if notice:
        LOG.warning("%s", notice)
    return notice


def _clients() -> tuple[Any, Any]:
    import boto3

    return boto3.client("sagemaker"), boto3.client("application-autoscaling")


def registry_for(package_arn: str, sagemaker: Any) -> Any:
    """The SageMaker client that describes `package_arn`: `sagemaker` itself, or one of the package's region when
    that is not the client's (a stage in a region of its own: SageMaker's API is regional, and a package is
    described in the region its ARN names)."""
    parts = package_arn.split(":")
    region = parts[3] if len(parts) > 3 else ""
    if not region or region == sagemaker.meta.region_name:
        return sagemaker
    import boto3

    return boto3.client("sagemaker", region_name=region)


def handler(event: Mapping[str, Any], context: Any = None) -> dict[str, str]:
    """The Lambda entry point. Returns `{"status", "endpoint_name", "model_package_arn", "reason", ...}`, all
    strings; raises (so the invocation fails and is retried) only when the deployment could not be done."""
    settings = DeploySettings.from_environment(os.environ)
    request = parse_event(event, settings)
    settings = settings.for_endpoint(request.endpoint_name or settings.endpoint_name)
    if request.action == "skip":
        result = DeployResult("skipped", settings.endpoint_name, request.model_package_arn, request.reason)
    elif request.action == "autoscale":
        sagemaker, autoscaling = _clients()
        endpoint = describe_endpoint(sagemaker, settings.endpoint_name) or {}
        config_tags = _config_tags(sagemaker, endpoint) if endpoint else {}
        served = served_package(sagemaker, endpoint, config_tags) if endpoint else None
        configure_autoscaling(autoscaling, settings)
        notice = report(settings, rolled_back(sagemaker, settings, endpoint, config_tags)) if endpoint else ""
        result = DeployResult(
            "autoscaled",
            settings.endpoint_name,
            served.arn if served else "",
            "; ".join(filter(None, ["the endpoint is in service: autoscaling configured", notice])),
            served.version if served else None,
            endpoint_status=endpoint.get("EndpointStatus", ""),
            autoscaling=f"{settings.initial_instance_count} to {settings.max_instance_count} instances",
        )
    elif request.action == "failed":
        sagemaker, _ = _clients()
        endpoint = describe_endpoint(sagemaker, settings.endpoint_name) or {}
        notice = report(settings, failed_update(sagemaker, settings, endpoint))
        result = DeployResult("reported", settings.endpoint_name, "", notice, endpoint_status=endpoint.get("EndpointStatus", ""))
    else:
        sagemaker, autoscaling = _clients()
        registry = registry_for(request.model_package_arn, sagemaker)
        result = deploy_package(
            sagemaker, autoscaling, settings, request.model_package_arn, force=request.force, reason=request.reason, registry=registry
        )
    answer = result.as_dict()
    print(json.dumps(answer, sort_keys=True))  # the Lambda's log line
    return answer
