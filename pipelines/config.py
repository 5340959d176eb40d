"""The typed configuration loaded from `pipeline.yaml`, the one file a team edits.

Everything else (the pipeline definition, the CDK app, the local runs) reads this object and nothing else.
Loading is strict: an unknown key, a wrong type or an impossible value is a `ConfigError` whose message
names the file, the line and the dotted key, and says what was expected.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from containers.common.s3 import S3_URI_EXAMPLE, S3_URI_PATTERN, S3Location, parse_s3_uri
from containers.deploy.deploy import APPROVAL_STATUSES
from containers.deploy.monitor_start import MAX_WINDOW_HOURS
from containers.deploy.monitor_start import job_name as monitoring_job_name
from containers.evaluation.intervals import DEFAULT_SEED, MIN_RESAMPLES
from containers.inference import image as serving
from containers.processing.formats import AUTO, FORMATS
from containers.processing.labelling import normalise_class
from containers.training.hyperparameters import (
    GPUS_PER_INSTANCE,
    VARIANTS,
    BatchSize,
    ImageSize,
    LearningRate,
    ModelVariant,
    TrainingSteps,
    batch_problem,
    replicas,
)

DEFAULT_CONFIG = Path("pipeline.yaml")

INSTANCE_TYPE_PATTERN = r"^ml\.[a-z0-9-]+\.[a-z0-9]+$"
InstanceType = Annotated[str, Field(pattern=INSTANCE_TYPE_PATTERN, description="a SageMaker instance type such as ml.m5.xlarge")]
S3Uri = Annotated[str, Field(pattern=S3_URI_PATTERN)]
InstanceCount = Annotated[int, Field(ge=1, le=100)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
# How far below the champion's mAP a challenger may fall; negative: the improvement it must show (mAPs are in [0, 1]).
Tolerance = Annotated[float, Field(ge=-1.0, le=1.0)]
# How the quality gate compares a challenger with the champion (the ChampionRule parameter; steps/check_quality.py):
# margin, the champion's lead itself; significant, the lower bound of the lead's bootstrap interval.
CHAMPION_RULES = ("margin", "significant")
ChampionRule = Literal[CHAMPION_RULES]
ApprovalStatus = Literal[APPROVAL_STATUSES]  # SageMaker's ModelApprovalStatus values, kept by the deployment function
_DURATION = TypeAdapter(timedelta)


def _positive_iso_duration(text: str) -> str:
    """An ISO 8601 duration as SageMaker's CacheConfig.ExpireAfter takes it (P30D, PT12H), parsed by pydantic;
    kept as text, which is what the definition carries."""
    try:
        parsed = _DURATION.validate_strings(text)
    except ValidationError:
        parsed = None
    if not text.startswith("P") or parsed is None or parsed <= timedelta(0):
        raise ValueError("must be a positive ISO 8601 duration such as P30D, P1W or PT12H")
    return text


IsoDuration = Annotated[str, AfterValidator(_positive_iso_duration)]
Region = Annotated[str, Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")]


class KeyProblem(ValueError):
    """A check's problem with a key below the one it validates (a stage under deployment.accounts), or with
    another section's key when the check spans sections: the message then names that key and its line."""

    def __init__(self, message: str, *key: str) -> None:
        super().__init__(message)
        self.key = key


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ProjectConfig(_Section):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9](-*[A-Za-z0-9]){0,40}$")] = "car-damage"


class ProcessingConfig(_Section):
    instance_type: InstanceType = "ml.m5.xlarge"
    instance_count: InstanceCount = 1
    workers: Annotated[int, Field(ge=1, le=256)] | None = None


class SampleConfig(_Section):
    manifests: Annotated[list[str], Field(min_length=1)]
    images: str
    images_prefix: S3Uri


LabelFormat = Literal[AUTO, *FORMATS]  # type: ignore[valid-type]


class DataConfig(_Section):
    label_attribute: Annotated[str, Field(min_length=1)] | None = None
    classes: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)] | None = ["dent", "scratch"]
    class_map: dict[Annotated[str, Field(min_length=1)], Annotated[str, Field(min_length=1)]] = {}
    label_format: LabelFormat = AUTO
    via_attribute: Annotated[str, Field(min_length=1)] | None = None
    validation_fraction: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.2
    split_seed: Annotated[int, Field(ge=0)] = 2021
    shards: Annotated[int, Field(ge=1, le=1024)] = 4
    max_invalid_fraction: Annotated[float, Field(ge=0.0, le=1.0)] = 0.05
    processing: ProcessingConfig = ProcessingConfig()
    sample: SampleConfig | None = None

    @field_validator("classes")
    @classmethod
    def _unique_classes(cls, classes: list[str] | None) -> list[str] | None:
        if classes is not None:
            seen = [name for i, name in enumerate(classes) if name in classes[:i]]
            if seen:
                raise ValueError(f"class names must be unique; repeated: {', '.join(sorted(set(seen)))}")
            bad = [name for name in classes if not re.fullmatch(r"[^\s'\"\\][^'\"\\]*", name) or name != name.strip()]
            if bad:
                raise ValueError(f"class names may not contain quotes or backslashes, or start/end with spaces: {bad}")
        return classes

    @field_validator("class_map")
    @classmethod
    def _class_map_onto_classes(cls, class_map: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        # The rule PrepareData applies (containers/processing/labelling.py, Classes): names match whatever
        # their case and spacing, and a map's target must be one of the classes.
        sources = [normalise_class(source) for source in class_map]
        repeated = sorted({source for i, source in enumerate(sources) if source in sources[:i]})
        if repeated:
            raise ValueError(f"names a source class twice (case and spaces do not count): {repeated}")
        classes = info.data.get("classes")
        if classes is not None:
            known = {normalise_class(name) for name in classes}
            unknown = {source: target for source, target in class_map.items() if normalise_class(target) not in known}
            if unknown:
                raise ValueError(f"maps onto names that are not in data.classes {classes}: {unknown}")
        return class_map


class TrainingConfig(_Section):
    instance_type: InstanceType = "ml.p3.2xlarge"
    # Instances of one training job, which MultiWorkerMirroredStrategy trains as one (the TrainingInstanceCount
    # parameter's default). batch_size is the global batch, split evenly across every GPU of every instance.
    instance_count: InstanceCount = 1
    model: ModelVariant = "efficientdet-d0"
    image_size: ImageSize | None = None
    batch_size: BatchSize = 8
    steps: TrainingSteps = 2000
    learning_rate: LearningRate | None = None
    checkpoint_every: Annotated[int, Field(ge=1)] = 500
    spot: bool = True
    max_run_minutes: Annotated[int, Field(ge=1, le=28 * 24 * 60)] = 240
    max_wait_minutes: Annotated[int, Field(ge=1, le=28 * 24 * 60)] = 480
    volume_size_gb: Annotated[int, Field(ge=1, le=16384)] = 50
    pretrained_checkpoint_uri: S3Uri | None = None

    @property
    def input_size(self) -> int:
        """The input size used: the configured one, or the variant's own."""
        return self.image_size or VARIANTS[self.model]["size"]

    @model_validator(mode="after")
    def _batch_splits(self) -> TrainingConfig:
        problem = batch_problem(self.batch_size, replicas(self.instance_type, self.instance_count))
        if problem:
            gpus = GPUS_PER_INSTANCE.get(self.instance_type, 0)
            what = f"{self.instance_count} instance(s) of {self.instance_type}" + (f" with {gpus} GPU(s) each" if gpus else "")
            raise KeyProblem(f"{problem} ({what}; training.batch_size is {self.batch_size})", "instance_count")
        return self

    @model_validator(mode="after")
    def _spot_wait(self) -> TrainingConfig:
        if self.spot and self.max_wait_minutes < self.max_run_minutes:
            raise ValueError(
                f"max_wait_minutes ({self.max_wait_minutes}) must be at least max_run_minutes ({self.max_run_minutes}) for spot training"
            )
        return self


class EvaluationConfig(_Section):
    instance_type: InstanceType = "ml.m5.xlarge"
    # The quality gate: a model is registered only when its COCO mAP@[.5:.95] reaches this.
    map_threshold: Fraction = 0.3
    # And, when the endpoint serves a model (the champion), the challenger's mAP must reach the champion's less
    # this, both measured on the same validation records; negative: the improvement a challenger must show.
    champion_tolerance: Tolerance = 0.0
    # The loosest gate an execution may ask for, whoever starts it (MapThreshold and ChampionTolerance are
    # parameters): the pipeline ends at its first step, a Fail step naming these keys, when an execution's
    # MapThreshold is below min_map_threshold or its ChampionTolerance above max_champion_tolerance. null: the
    # configured map_threshold and champion_tolerance themselves (an execution may tighten the gate, not loosen it).
    min_map_threshold: Fraction | None = None
    max_champion_tolerance: Tolerance | None = None
    # How the champion's lead is judged (the ChampionRule parameter's default): margin refuses a challenger whose
    # mAP falls more than champion_tolerance below the champion's; significant only one whose lead's 95% interval
    # lies wholly above champion_tolerance. champion_rules: the rules an execution may choose (another ends at the
    # definition's first step, naming this key).
    champion_rule: ChampionRule = "margin"
    champion_rules: Annotated[list[ChampionRule], Field(min_length=1)] = list(CHAMPION_RULES)
    # Evaluate's bootstrap intervals over the validation images: how many resamples, and the seed that draws them.
    bootstrap_resamples: Annotated[int, Field(ge=MIN_RESAMPLES)] = MIN_RESAMPLES
    bootstrap_seed: Annotated[int, Field(ge=0)] = DEFAULT_SEED

    @property
    def map_floor(self) -> float:
        """The lowest MapThreshold an execution may run with."""
        return self.map_threshold if self.min_map_threshold is None else self.min_map_threshold

    @property
    def tolerance_ceiling(self) -> float:
        """The highest ChampionTolerance an execution may run with."""
        return self.champion_tolerance if self.max_champion_tolerance is None else self.max_champion_tolerance

    @model_validator(mode="after")
    def _gate_within_floor(self) -> EvaluationConfig:
        if self.map_threshold < self.map_floor:
            raise ValueError(f"map_threshold ({self.map_threshold}) must be at least min_map_threshold ({self.map_floor})")
        if self.champion_tolerance > self.tolerance_ceiling:
            raise ValueError(f"champion_tolerance ({self.champion_tolerance}) must be at most max_champion_tolerance ({self.tolerance_ceiling})")
        if len(set(self.champion_rules)) != len(self.champion_rules):
            raise ValueError(f"champion_rules ({', '.join(self.champion_rules)}) names a rule twice")
        if self.champion_rule not in self.champion_rules:
            raise ValueError(f"champion_rule ({self.champion_rule}) must be one of champion_rules ({', '.join(self.champion_rules)})")
        return self


class AwsConfig(_Section):
    """Account-specific values. Left null, the definition carries a `${Name}` placeholder that the CDK app fills."""

    region: Region | None = None
    role_arn: Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$")] | None = None
    data_bucket: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")] | None = None
    artifact_bucket: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")] | None = None
    kms_key_id: Annotated[str, Field(min_length=1)] | None = None
    processing_image_uri: Annotated[str, Field(min_length=1)] | None = None
    training_image_uri: Annotated[str, Field(min_length=1)] | None = None
    inference_image_uri: Annotated[str, Field(min_length=1)] | None = None
    deploy_function_arn: Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:lambda:.+$")] | None = None
    champion_function_arn: Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:lambda:.+$")] | None = None


class PipelineConfig(_Section):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9](-*[A-Za-z0-9]){0,255}$")] | None = None
    caching: bool = True
    cache_expire_after: IsoDuration = "P30D"
    # Defaults of the InputManifestUri and ImagesS3Prefix parameters; null: under the data bucket.
    input_manifest_uri: S3Uri | None = None
    images_prefix: S3Uri | None = None


class RegistryConfig(_Section):
    model_package_group: Annotated[str, Field(pattern=r"^[A-Za-z0-9](-*[A-Za-z0-9]){0,62}$")] | None = None
    # PendingManualApproval: a person approves in the Model Registry; Approved: deploy at once (a dev pipeline).
    approval_status: ApprovalStatus = "PendingManualApproval"
    inference_instance_types: Annotated[list[InstanceType], Field(min_length=1)] = ["ml.m5.xlarge", "ml.g4dn.xlarge"]
    content_types: Annotated[list[str], Field(min_length=1)] = ["image/jpeg", "image/png", "application/x-image", "application/json"]
    response_types: Annotated[list[str], Field(min_length=1)] = ["application/json"]


def _account_id(value: Any) -> str:
    if isinstance(value, str) and re.fullmatch(r"\d{12}", value):
        return value
    raise ValueError('must be an AWS account id: 12 digits in quotes, e.g. "111111111111" (YAML reads bare digits as a number)')


AccountId = Annotated[str, BeforeValidator(_account_id)]


class StageAccount(_Section):
    """Where a release stage is served from when it is not the workflow's account (deployment.accounts)."""

    account: AccountId
    region: Region | None = None  # null: the workflow's region

    @model_validator(mode="before")
    @classmethod
    def _bare_account(cls, value: Any) -> Any:
        # `staging: "111111111111"` is short for `staging: {account: "111111111111"}`.
        return value if isinstance(value, dict) else {"account": _account_id(value)}


# The names one account's policies give to another account's roles and event bus (docs/aws.md#stage-accounts):
# built here only, so that the workflow stack's grants and the stage stacks' resources cannot disagree. A stage
# account holds, per project and stage: the endpoint's execution role (SageMaker assumes it to read the model
# package, its archive and the key), the deploy function's role, the role `cardamage promote` assumes there, and
# the bus the workflow account's approval events are sent to (a bus of its own, not the account's default bus,
# so that its policy is the stage stack's alone). IAM role names are at most 64 characters ("IAM and AWS STS
# quotas", IAM User Guide); the config refuses a project whose names would be longer.
# Every stage account also holds a read-only role, trusted by the workflow account: what its endpoint serves, for
# `cardamage models` and the console, and for the workflow's champion function when the stage is the last one.
# With drift monitoring, the monitor's starter function's role, which describes the served package and reads its
# baselines in the workflow account (infra/stage_stack.py).
ENDPOINT_ROLE, DEPLOY_ROLE, PROMOTE_ROLE, READER_ROLE, MONITOR_ROLE = "endpoint", "deploy", "promote", "reader", "monitor"
STAGE_ROLES = (ENDPOINT_ROLE, DEPLOY_ROLE, PROMOTE_ROLE, READER_ROLE, MONITOR_ROLE)
# The stage stack's outputs naming the roles the workflow account's people assume there.
PROMOTE_ROLE_OUTPUT, READER_ROLE_OUTPUT = "PromoteRoleArn", "ReaderRoleArn"
IAM_ROLE_NAME_MAX = 64


def stage_role_name(project: str, stage: str, role: str) -> str:
    """The name of a stage account's role: one of STAGE_ROLES."""
    if role not in STAGE_ROLES:
        raise ValueError(f"no stage role {role!r} (one of {', '.join(STAGE_ROLES)})")
    return f"{project}-{stage}-{role}"


def stage_role_arn(project: str, stage: str, account: str, role: str, *, partition: str = "aws") -> str:
    return f"arn:{partition}:iam::{account}:role/{stage_role_name(project, stage, role)}"


def stage_function_name(project: str, stage: str) -> str:
    """The stage account's deploy function (Lambda names are at most 64 characters, like the roles': checked with them).
    `cardamage promote` reads the stage's deployment settings from its environment."""
    return stage_role_name(project, stage, DEPLOY_ROLE)


def stage_event_bus_name(project: str, stage: str) -> str:
    return f"{project}-{stage}-approvals"


def stage_event_bus_arn(project: str, stage: str, account: str, region: str, *, partition: str = "aws") -> str:
    return f"arn:{partition}:events:{region}:{account}:event-bus/{stage_event_bus_name(project, stage)}"


def workflow_key_alias(project: str) -> str:
    """The workflow key's alias. A stage account's roles find the key by it (kms:ResourceAliases): the key's ARN
    ends in an id KMS picks, and a stack in another account cannot reference the workflow stack's outputs."""
    return f"alias/{project}"


class DeploymentConfig(_Section):
    endpoint_name: Annotated[str, Field(pattern=r"^[A-Za-z0-9](-*[A-Za-z0-9]){0,62}$")] | None = None
    instance_type: InstanceType = "ml.m5.xlarge"
    initial_instance_count: InstanceCount = 1
    max_instance_count: InstanceCount = 2
    invocations_per_instance: Annotated[int, Field(ge=1)] = 100  # per minute: the autoscaling target
    data_capture_percent: Annotated[int, Field(ge=0, le=100)] = 100
    score_threshold: Annotated[float, Field(ge=0.0, le=1.0)] = 0.3
    max_detections: Annotated[int, Field(ge=1, le=100)] = 100
    # How an update moves traffic to a new model (a blue/green update, rolled back automatically when the
    # endpoint's 5XX, latency or 4XX-share alarm goes off): all_at_once, canary (canary_percent of the fleet
    # first) or linear (linear_step_percent at a time); each step bakes bake_seconds. canary and linear
    # need initial_instance_count >= 2.
    traffic: Literal["all_at_once", "canary", "linear"] = "all_at_once"
    bake_seconds: Annotated[int, Field(ge=0, le=3600)] = 600
    canary_percent: Annotated[int, Field(ge=1, le=50)] = 25
    linear_step_percent: Annotated[int, Field(ge=10, le=50)] = 25
    # Release stages, in order, e.g. [staging, production]: an approval deploys to the first stage's endpoint,
    # `cardamage promote` smoke-tests a stage and deploys the same package to the next. The last stage is served
    # at endpoint_name, each other at <endpoint_name>-<stage>. Empty: one endpoint.
    stages: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9]{0,15}$")]] = []
    # Stages served from accounts of their own: stage -> the account's id, or {account, region} for a region of
    # its own too. A stage not listed, or listed with infrastructure.account, is served from the workflow's account.
    accounts: dict[str, StageAccount] = {}

    @field_validator("accounts")
    @classmethod
    def _accounts_of_stages(cls, accounts: dict[str, StageAccount], info: ValidationInfo) -> dict[str, StageAccount]:
        stages = info.data.get("stages")
        if not accounts or stages is None:  # wrong stages are reported on their own
            return accounts
        if not stages:
            raise ValueError("names release stages' accounts, but deployment.stages lists no stages: list them, e.g. [staging, production]")
        unknown = [stage for stage in accounts if stage not in stages]
        if unknown:
            raise KeyProblem(f"is not a release stage (deployment.stages: {', '.join(stages)})", unknown[0])
        return accounts

    @model_validator(mode="after")
    def _stages(self) -> DeploymentConfig:
        if len(self.stages) == 1:
            raise ValueError(f"stages: one stage ({self.stages[0]}) is one endpoint: list two or more, e.g. [staging, production], or none")
        if len(set(self.stages)) != len(self.stages):
            raise ValueError(f"stages: {', '.join(self.stages)} names a stage twice")
        return self

    @model_validator(mode="after")
    def _counts(self) -> DeploymentConfig:
        if self.max_instance_count < self.initial_instance_count:
            raise ValueError(f"max_instance_count ({self.max_instance_count}) is below initial_instance_count ({self.initial_instance_count})")
        if self.traffic != "all_at_once" and self.initial_instance_count < 2:
            raise ValueError(
                f"traffic: {self.traffic} shifts a share of the fleet, which one instance cannot give: set initial_instance_count to 2 or more, "
                "or traffic: all_at_once"
            )
        return self


class LabelingConfig(_Section):
    workteam_arn: Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:workteam/.+$")] | None = None
    task_title: Annotated[str, Field(min_length=1, max_length=128)] = "Draw a box around each dent and scratch"
    task_description: Annotated[str, Field(min_length=1, max_length=255)] = "Car damage: dents and scratches"
    instructions: Annotated[str, Field(min_length=1)] = (
        "Draw one tight box around each dent and each scratch. A dent is a deformation of a panel; a scratch is damage "
        "to the paint. Leave undamaged cars without boxes."
    )
    workers_per_object: Annotated[int, Field(ge=1, le=9)] = 1
    task_time_limit_seconds: Annotated[int, Field(ge=30, le=28800)] = 600
    max_concurrent_tasks: Annotated[int, Field(ge=1, le=5000)] = 100
    # Where Ground Truth writes its output; the new-data trigger listens for manifests under it. Null: the data bucket.
    output_prefix: S3Uri | None = None


class SourceConfig(_Section):
    """The git repository CodePipeline builds from: a CodeStar (CodeConnections) connection to GitHub, GitLab or
    Bitbucket with `repository: owner/name`, or, without `connection_arn`, a CodeCommit repository's name."""

    repository: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)?$")] | None = None
    branch: Annotated[str, Field(pattern=r"^[A-Za-z0-9._/-]+$", max_length=255)] = "main"
    connection_arn: (
        Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:(codestar-connections|codeconnections):[a-z0-9-]+:\d{12}:connection/.+$")] | None
    ) = None

    @model_validator(mode="after")
    def _repository_form(self) -> SourceConfig:
        if self.connection_arn and (not self.repository or "/" not in self.repository):
            raise ValueError("with connection_arn, repository must be owner/name (the repository the connection reaches)")
        if not self.connection_arn and self.repository and "/" in self.repository:
            raise ValueError("repository owner/name needs connection_arn (a CodeStar connection); a CodeCommit repository is a bare name")
        return self


class AlarmsConfig(_Section):
    """When the endpoint alarms go off (each notifies the SNS topic and rolls back an update in progress)."""

    model_latency_ms: Annotated[int, Field(ge=1, le=600_000)] = 3000  # average ModelLatency over 5 minutes
    server_errors: Annotated[int, Field(ge=1)] = 5  # Invocation5XXErrors in 5 minutes
    client_error_percent: Annotated[int, Field(ge=1, le=100)] = 20  # Invocation4XXErrors as a share of Invocations in 5 minutes


DATA_CAPTURE_PREFIX = "data-capture"  # of the artifacts bucket; its objects expire (infrastructure.data_capture_expiration_days)
BATCH_PREFIX = "batch/"  # batch-predict on AWS: photos under it in the data bucket, answers in the artifacts bucket
# Review batches on AWS: `cardamage review --output s3://<ArtifactBucket>/review/<batch>/`, the one place the operators'
# policy lets a batch go (infra/people.py), where the drift monitor finds their review.json (infra/drift.py).
REVIEW_PREFIX = "review/"


class InfrastructureConfig(_Section):
    """What the CDK app (app.py, infra/) needs beyond the rest of this file."""

    # The account to deploy to; null: the account of the credentials running `cdk deploy` (env-agnostic otherwise).
    account: Annotated[str, Field(pattern=r"^\d{12}$")] | None = None
    # The CI/CD pipeline's source; without a repository the app is the workflow stack alone (deployed by hand).
    source: SourceConfig = SourceConfig()
    # Who is told about failed executions, endpoint alarms and approvals waiting (SNS email subscriptions).
    notification_emails: list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]] = []
    # The TensorFlow Serving version of the SageMaker inference image (tensorflow-inference, CPU or GPU build by
    # the endpoint's instance type; containers/inference/image.py has the tags) that registered models are served by, unless
    # aws.inference_image_uri names an image. The default is the training image's TensorFlow.
    serving_version: Annotated[str, Field(pattern=r"^\d+\.\d+(\.\d+)?$")] = serving.DEFAULT_VERSION
    # Lifecycle, in days. Execution outputs move to S3 Intelligent-Tiering. PrepareData's output, the TFRecord
    # copies of the photos (with Train's checkpoints), is under a prefix of its own and expires after
    # artifact_expiration_days; null keeps it. The rest is kept: registered model packages and the endpoint (each
    # new instance) read their model.tar.gz from there. Keep the expiry longer than pipeline.cache_expire_after: a
    # cached PrepareData's output is used again as it is. `cardamage promote` smoke-tests with a package's
    # validation records, and `cardamage review` knows the labelled photos, from prepared data that has not
    # expired. Data captured by the endpoint, server access logs, and replaced (noncurrent) object versions in
    # every bucket expire; an expired object's last version goes noncurrent_version_expiration_days later.
    artifact_expiration_days: Annotated[int, Field(ge=1)] | None = 90
    data_capture_expiration_days: Annotated[int, Field(ge=1)] = 90
    access_log_expiration_days: Annotated[int, Field(ge=1)] = 365
    noncurrent_version_expiration_days: Annotated[int, Field(ge=1)] = 30
    alarms: AlarmsConfig = AlarmsConfig()


# Drift monitoring on AWS (infra/drift.py, docs/aws.md#monitoring): the monitor's reports of an endpoint go under
# MONITORING_PREFIX/<endpoint>/ of the artifacts bucket (Config.monitoring_reports).
MONITORING_PREFIX = "monitoring"
# EventBridge Scheduler's schedule expressions ("Schedule types in EventBridge Scheduler", EventBridge Scheduler
# User Guide; ScheduleExpression in the CreateSchedule API reference): at(yyyy-mm-ddThh:mm:ss) runs once,
# rate(value unit) every value minutes, hours or days, cron(...) at the times its six fields name. The cron
# fields, their ranges and wildcards are those of "Cron expressions reference" (EventBridge User Guide); the unit
# of a rate is singular for 1 and plural otherwise, as EventBridge's rate expressions require ("Rate expressions").
_RATE = re.compile(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)")
_AT = re.compile(r"at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)")
_CRON = re.compile(r"cron\(([^()]*)\)")
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_WEEKDAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
# (field, lowest, highest, names, wildcards beyond , - * /)
_CRON_FIELDS = (
    ("minutes", 0, 59, (), ""),
    ("hours", 0, 23, (), ""),
    ("day-of-month", 1, 31, (), "?LW"),
    ("month", 1, 12, _MONTHS, ""),
    ("day-of-week", 1, 7, _WEEKDAYS, "?L#"),
    ("year", 1970, 2199, (), ""),
)
SCHEDULE_FORMS = "rate(1 hour), rate(30 minutes), cron(15 * * * ? *) or at(2026-01-02T03:00:00)"


def _cron_value(token: str, low: int, high: int, names: tuple[str, ...]) -> bool:
    return token in names or (token.isdigit() and low <= int(token) <= high)


def _cron_part(part: str, low: int, high: int, names: tuple[str, ...], extra: str) -> bool:
    """One comma-separated item of a cron field: *, a value, a range, an increment, or L, W, # where allowed."""
    base, slash, step = part.partition("/")
    if slash:
        start, dash, end = base.partition("-")
        single = base == "*" or (_cron_value(start, low, high, names) and (not dash or _cron_value(end, low, high, names)))
        return single and step.isdigit() and int(step) >= 1
    if part == "*" or (part == "L" and "L" in extra) or (part == "LW" and "W" in extra):
        return True
    if "W" in extra and part.endswith("W"):
        return _cron_value(part[:-1], low, high, names)
    if "L" in extra and part.endswith("L"):
        return _cron_value(part[:-1], low, high, names)
    if "#" in extra and "#" in part:
        day, _, nth = part.partition("#")
        return _cron_value(day, low, high, names) and nth in ("1", "2", "3", "4", "5")
    start, dash, end = part.partition("-")
    return _cron_value(start, low, high, names) and (not dash or _cron_value(end, low, high, names))


def _schedule_expression(text: str) -> str:
    """An EventBridge Scheduler expression, checked as far as its documentation goes (above)."""
    forms = f"use {SCHEDULE_FORMS} (EventBridge Scheduler's schedule expressions)"
    if rate := _RATE.fullmatch(text):
        value, unit = int(rate[1]), rate[2]
        if value < 1:
            raise ValueError(f"a rate's value must be a positive whole number: {forms}")
        if (value == 1) != (not unit.endswith("s")):
            raise ValueError(f"a rate of {value} takes the {'singular' if value == 1 else 'plural'} unit: {forms}")
        return text
    if at := _AT.fullmatch(text):
        try:
            datetime.fromisoformat(at[1])
        except ValueError:
            raise ValueError(f"{at[1]} is not a date and time: {forms}") from None
        return text
    cron = _CRON.fullmatch(text)
    if not cron:
        raise ValueError(forms)
    fields = cron[1].split()
    if len(fields) != len(_CRON_FIELDS):
        raise ValueError(f"a cron expression has six fields (minutes hours day-of-month month day-of-week year), not {len(fields)}: {forms}")
    for value, (name, low, high, names, extra) in zip(fields, _CRON_FIELDS, strict=True):
        if value == "?" and "?" in extra:
            continue
        if not all(_cron_part(part, low, high, names, extra) for part in value.split(",")):
            spelled = f"{low}-{high}" + (f" or {names[0]}-{names[-1]}" if names else "")
            raise ValueError(f"the cron field {name} ({value}) must be {spelled}, with the wildcards , - * / {extra}".rstrip() + f": {forms}")
    if (fields[2] == "?") == (fields[4] == "?"):
        raise ValueError("a cron expression takes ? in exactly one of day-of-month and day-of-week (e.g. cron(15 * * * ? *))")
    return text


ScheduleExpression = Annotated[str, AfterValidator(_schedule_expression)]


class MonitoringConfig(_Section):
    """Drift monitoring on AWS: a scheduled Processing job runs containers/monitoring/monitor.py over each release
    stage's endpoint's captured data (infra/drift.py, containers/deploy/monitor_start.py)."""

    # Off, or with deployment.data_capture_percent 0 (nothing captured), the stack has no schedule, job or alarm.
    enabled: bool = True
    # When the monitor runs, an EventBridge Scheduler expression in UTC.
    schedule: ScheduleExpression = "rate(1 hour)"
    # How many full hours before each run it reads; at most one less than a Processing job's 10 inputs.
    window_hours: Annotated[int, Field(ge=1, le=MAX_WINDOW_HOURS)] = 1
    # ml.m5.large and ml.t3.medium are both Processing instance types (ProcessingClusterConfig.InstanceType,
    # the SageMaker API reference); an hour's statistics take a few milliseconds a photo.
    instance_type: InstanceType = "ml.m5.large"
    volume_size_gb: Annotated[int, Field(ge=1, le=16384)] = 30  # holds the window's captured files
    max_runtime_minutes: Annotated[int, Field(ge=1, le=12960)] = 60  # MaxRuntimeInSeconds is at most 777600 (9 days)
    atypical: Annotated[int, Field(ge=1, le=1000)] = 20  # the most atypical photos a report lists
    # A CloudWatch alarm per endpoint on its Drift metric, which tells the notification topic.
    drift_alarm: bool = True


class Config(_Section):
    project: ProjectConfig = ProjectConfig()
    aws: AwsConfig = AwsConfig()
    data: DataConfig = DataConfig()
    pipeline: PipelineConfig = PipelineConfig()
    training: TrainingConfig = TrainingConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    registry: RegistryConfig = RegistryConfig()
    deployment: DeploymentConfig = DeploymentConfig()
    labeling: LabelingConfig = LabelingConfig()
    infrastructure: InfrastructureConfig = InfrastructureConfig()
    monitoring: MonitoringConfig = MonitoringConfig()

    @model_validator(mode="after")
    def _stage_endpoint_names(self) -> Config:
        too_long = [name for name in self.stage_endpoints.values() if len(name) > 63]
        if too_long:
            raise ValueError(
                f"deployment.stages: the endpoint name {too_long[0]} is over SageMaker's 63 characters: shorten the stage or endpoint name"
            )
        return self

    @model_validator(mode="after")
    def _prepared_data_outlives_the_cache(self) -> Config:
        # A cached PrepareData hands a later execution an earlier one's output: it must not have expired by then.
        days = self.infrastructure.artifact_expiration_days
        if days and self.pipeline.caching and _DURATION.validate_strings(self.pipeline.cache_expire_after) >= timedelta(days=days):
            raise ValueError(
                f"infrastructure.artifact_expiration_days ({days}) must be longer than pipeline.cache_expire_after "
                f"({self.pipeline.cache_expire_after}): a cached PrepareData reuses an earlier execution's output"
            )
        return self

    @model_validator(mode="after")
    def _monitoring_jobs_of_each_stage(self) -> Config:
        # A job's name is the window's and the stage's (containers/deploy/monitor_start.py job_name): two stages
        # sharing names would see one's job as the other's, already started.
        names = {
            monitoring_job_name(self.monitoring_job_prefix, stage, endpoint, datetime(2026, 1, 1, tzinfo=UTC))
            for stage, endpoint in self.stage_endpoints.items()
        }
        if len(names) < len(self.stage_endpoints):
            raise ValueError(
                f"deployment.stages: with project.name {self.project.name} the stages' monitoring jobs would share names "
                "(SageMaker's 63 characters leave too little of each stage): shorten the project's name"
            )
        return self

    @model_validator(mode="after")
    def _a_share_of_the_data_per_worker(self) -> Config:
        # Each training worker reads TFRecord files of its own (containers/training/train.py worker_input): PrepareData
        # must write at least as many training shards as there are instances.
        if self.data.shards < self.training.instance_count:
            raise KeyProblem(
                f"{self.training.instance_count} instances each read training files of their own, but data.shards is "
                f"{self.data.shards}: set data.shards to at least {self.training.instance_count}",
                "training",
                "instance_count",
            )
        return self

    @model_validator(mode="after")
    def _stage_accounts_are_placed(self) -> Config:
        accounts, workflow = self.deployment.accounts, self.infrastructure.account
        if not accounts:
            return self
        if workflow is None:
            raise KeyProblem(
                "must name the workflow's account when deployment.accounts names stages' accounts: it tells a stage's account "
                "from the workflow's, and the stage accounts' own policies will name it",
                "infrastructure",
                "account",
            )
        for stage, place in accounts.items():
            if place.account == workflow and place.region is not None and place.region != self.aws.region:
                raise KeyProblem(
                    f"a stage in the workflow's own account ({workflow}) is served from the workflow's region (aws.region: "
                    f"{self.aws.region or 'null'}): leave region out, or give the stage an account of its own",
                    "deployment",
                    "accounts",
                    stage,
                    "region",
                )
        for stage in self.stage_accounts:
            names = [stage_role_name(self.project.name, stage, role) for role in STAGE_ROLES]
            too_long = [name for name in names if len(name) > IAM_ROLE_NAME_MAX]
            if too_long:
                raise KeyProblem(
                    f"the role name {too_long[0]} of stage {stage}'s account is over IAM's {IAM_ROLE_NAME_MAX} characters: "
                    "shorten the project's name or the stage's",
                    "project",
                    "name",
                )
        return self

    # Names derived from the project's when the file leaves them null.
    @property
    def pipeline_name(self) -> str:
        return self.pipeline.name or f"{self.project.name}-pipeline"

    @property
    def model_package_group(self) -> str:
        return self.registry.model_package_group or f"{self.project.name}-models"

    @property
    def endpoint_name(self) -> str:
        """The production endpoint: what claims teams call, and the champion a challenger is judged against."""
        return self.deployment.endpoint_name or f"{self.project.name}-endpoint"

    @property
    def stage_endpoints(self) -> dict[str, str]:
        """Each release stage's endpoint, in order (deployment.stages); one "production" stage without stages."""
        stages = self.deployment.stages or ["production"]
        return {stage: self.endpoint_name if stage == stages[-1] else f"{self.endpoint_name}-{stage}" for stage in stages}

    @property
    def approval_stage(self) -> str:
        """The stage approvals deploy to: the first of deployment.stages ("production" without stages)."""
        return next(iter(self.stage_endpoints))

    @property
    def approval_endpoint(self) -> str:
        """Where an approved package is deployed: the first stage's endpoint (the only one without stages)."""
        return self.stage_endpoints[self.approval_stage]

    @property
    def stage_accounts(self) -> dict[str, StageAccount]:
        """The release stages served from accounts other than the workflow's, in stage order. A stage listed with
        infrastructure.account is the workflow's own account: it needs no grant across accounts, so it is not here."""
        accounts = self.deployment.accounts
        return {
            stage: accounts[stage] for stage in self.deployment.stages if stage in accounts and accounts[stage].account != self.infrastructure.account
        }

    def cross_account_deploy_step_problem(self) -> str:
        """Why the pipeline's Deploy step cannot deploy, or "": it runs in the workflow's account, so with
        registry.approval_status Approved (the step exists) the first stage must be served from that account. Checked
        where stacks are built (infra/app.py), not when the file loads: the local engine has no accounts, and the
        repository's own `local` profile registers Approved."""
        first = self.approval_stage
        if self.registry.approval_status != "Approved" or first not in self.stage_accounts:
            return ""
        return (
            f"registry.approval_status: Approved deploys each package from the pipeline's Deploy step in the workflow's "
            f"account, but the first release stage ({first}) is served from account {self.stage_accounts[first].account} "
            "(deployment.accounts): register PendingManualApproval (a person's approval reaches that account's deploy "
            f"function), or serve {first} from the workflow's account"
        )

    @property
    def stack_name(self) -> str:
        """The workflow stack's CloudFormation name (the CDK app's; the CLI reads its outputs by it)."""
        return self.project.name

    def stage_stack_name(self, stage: str) -> str:
        """The stack of a release stage in an account of its own (infra/stage_stack.py), named after the workflow's."""
        return f"{self.stack_name}-{stage}"

    # Where the data is when the file names no other place: prefixes of the data bucket. `data_bucket` may be a
    # stand-in (the definition's placeholder, a CDK token), so the defaults are built, never parsed.
    def input_manifests(self, data_bucket: str) -> S3Location:
        """The InputManifestUri parameter's default: what an execution trains on."""
        return parse_s3_uri(self.pipeline.input_manifest_uri) if self.pipeline.input_manifest_uri else S3Location(data_bucket, "manifests/")

    def images_prefix(self, data_bucket: str) -> S3Location:
        """The ImagesS3Prefix parameter's default: the prefix the labels' image references start with."""
        return parse_s3_uri(self.pipeline.images_prefix) if self.pipeline.images_prefix else S3Location(data_bucket, "images/")

    def labels_prefix(self, data_bucket: str) -> S3Location:
        """Where teams upload label exports in any format (`labels/<batch>/...`); the new-data trigger listens there."""
        return S3Location(data_bucket, "labels/")

    def data_capture(self, artifact_bucket: str, endpoint: str | None = None) -> S3Location:
        """Where an endpoint (by default production's) captures requests and answers (DataCaptureConfig.DestinationS3Uri);
        SageMaker adds `<endpoint>/<variant>/yyyy/mm/dd/hh/` below it. The review loop reads it."""
        return S3Location(artifact_bucket, f"{DATA_CAPTURE_PREFIX}/{endpoint or self.endpoint_name}/")

    def monitoring_reports(self, artifact_bucket: str, endpoint: str) -> S3Location:
        """Where the drift monitor's reports of `endpoint` go: `<window start>/monitor.json`, `report.html` and
        `atypical.json` below it (containers/deploy/monitor_start.py names the window's folder)."""
        return S3Location(artifact_bucket, f"{MONITORING_PREFIX}/{endpoint}/")

    @property
    def monitoring_job_prefix(self) -> str:
        """The names of the monitoring jobs start with this and a hyphen; the stack's roles allow only those."""
        return f"{self.project.name}-monitor"

    def batch_prefixes(self, data_bucket: str, artifact_bucket: str) -> tuple[S3Location, S3Location]:
        """Where `cardamage batch-predict` on AWS reads photos (`s3://<data>/batch/<name>/`) and writes answers
        (`s3://<artifacts>/batch/<name>/`): the only prefixes the stack's SageMaker role, which the transform job
        runs as, may read and write for it (infra/roles.py grants them from here)."""
        return S3Location(data_bucket, BATCH_PREFIX), S3Location(artifact_bucket, BATCH_PREFIX)

    def snapshots_prefix(self, data_bucket: str) -> S3Location:
        """Where dataset snapshots go: `<id>/snapshot.json` and `<id>/inputs/`, what an execution trains on."""
        return S3Location(data_bucket, "snapshots/")

    def snapshot_prefixes(self, data_bucket: str):
        """Where the labelled inputs are and where snapshots go, as the trigger function is configured
        (infra/triggers.py sets its environment from the same methods)."""
        from containers.trigger.snapshot import Prefixes

        labeling_bucket, labeling = self.labeling_output(data_bucket)
        return Prefixes(data_bucket, self.labels_prefix(data_bucket).key, labeling, self.snapshots_prefix(data_bucket).key, labeling_bucket)

    def labeling_output(self, data_bucket: str) -> S3Location:
        """Where Ground Truth writes its labels, and where the new-data trigger listens (a prefix: it ends in `/`)."""
        if not self.labeling.output_prefix:
            return S3Location(data_bucket, "ground-truth/")
        bucket, prefix = parse_s3_uri(self.labeling.output_prefix)
        return S3Location(bucket, prefix if not prefix or prefix.endswith("/") else f"{prefix}/")

    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)
    _source: str = PrivateAttr(default="<defaults>")
    _profile: str | None = PrivateAttr(default=None)
    _profiles: tuple[str, ...] = PrivateAttr(default=())

    @property
    def profile(self) -> str | None:
        """The profile applied, if any."""
        return self._profile

    @property
    def base_dir(self) -> Path:
        """The folder relative paths in the file are resolved against: the config file's own folder."""
        return self._base_dir

    @property
    def profiles(self) -> tuple[str, ...]:
        """The names of the profiles the file defines."""
        return self._profiles

    @property
    def source(self) -> str:
        return self._source

    def path(self, relative: str) -> Path:
        """A path from the config, resolved against the config file's folder."""
        return (self._base_dir / relative).resolve()


class ConfigError(Exception):
    """The configuration file is missing, unreadable or invalid. The message is meant for a person."""


def load_config(path: str | Path = DEFAULT_CONFIG, profile: str | None = None) -> Config:
    """Load and validate a `pipeline.yaml` (with a profile's overrides applied), raising `ConfigError`
    with every problem found."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file (pass --config PATH)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    return parse_config(text, source=str(path), base_dir=path.resolve().parent, profile=profile)


def parse_config(text: str, *, source: str = "<string>", base_dir: Path | None = None, profile: str | None = None) -> Config:
    """Validate configuration text (YAML); `source` names it in error messages.

    A top-level `profiles` mapping holds named sets of overrides (`profiles.local.training.steps: 10`),
    merged over the rest when that profile is asked for. Every profile is validated on every load, so a
    mistake in one is found before anyone uses it."""
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise ConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections (project, data, training)")
    profiles = data.pop("profiles", None) or {}
    if not isinstance(profiles, dict) or not all(isinstance(v, dict) for v in profiles.values()):
        raise ConfigError(f"{source}:{_line_of(root, ['profiles'])}: profiles: must map each profile name to a mapping of overrides")
    problems = _validate(data, root, source)
    for name, overrides in profiles.items():
        problems += _validate(_merge(data, overrides), root, source, profile=str(name))
    if problems:
        raise ConfigError("invalid configuration:\n" + "\n".join(f"  {p}" for p in problems))
    if profile is not None and profile not in profiles:
        raise ConfigError(f"{source}: no profile {profile!r} (profiles: {', '.join(map(str, profiles)) or 'none'})")
    config = Config.model_validate(_merge(data, profiles[profile]) if profile else data)
    config._base_dir = base_dir or Path.cwd()
    config._source = source
    config._profile = profile
    config._profiles = tuple(str(name) for name in profiles)
    return config


def _validate(data: dict, root: yaml.Node | None, source: str, profile: str | None = None) -> list[str]:
    try:
        Config.model_validate(data)
    except ValidationError as exc:
        return [_describe(error, root, source, profile) for error in exc.errors()]
    return []


def _merge(base: dict, overrides: dict) -> dict:
    """`base` with `overrides` merged in, section by section (a mapping merges, any other value replaces)."""
    merged = dict(base)
    for key, value in overrides.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


def _describe(error: Any, root: yaml.Node | None, source: str, profile: str | None = None) -> str:
    loc = [part for part in error["loc"] if not _is_union_branch(part)]
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, KeyProblem):
        loc += list(cause.key)
    key = ".".join(str(part) for part in loc) or "(top level)"
    line = _line_of(root, loc)
    if profile is not None:  # the value may come from the profile's overrides or from the section it overrides
        in_profile = _line_of(root, ["profiles", profile, *loc], exact=True)
        key, line = (f"profiles.{profile}.{key}", in_profile) if in_profile else (f"{key} (in profile {profile!r})", line)
    where = f"{source}:{line}" if line else source
    if error["type"] == "extra_forbidden":
        model = _model_at(loc[:-1])
        known = ", ".join(model.model_fields) if model else ""
        return f"{where}: {key}: unknown key" + (f" (expected one of: {known})" if known else "")
    if error["type"] == "missing":
        return f"{where}: {key}: required key is missing"
    got = error.get("input")
    shown = f" (got {got!r})" if not isinstance(got, dict | list) else ""
    return f"{where}: {key}: {explain(error)}{shown}"


def explain(error: Any) -> str:
    """What a pydantic error says the value must be, in this project's words (also used for the pipeline's
    parameters, which are checked with the same types)."""
    ctx = error.get("ctx") or {}
    if error["type"] == "string_pattern_mismatch" and "pattern" in ctx:
        if ctx["pattern"] == INSTANCE_TYPE_PATTERN:
            return "must be a SageMaker instance type such as ml.m5.xlarge"
        if ctx["pattern"] == S3_URI_PATTERN:
            return f"must be an S3 URI such as {S3_URI_EXAMPLE}"
        return f"must match {ctx['pattern']}"
    if error["type"] == "value_error":
        return str(ctx.get("error", error["msg"]))
    if error["type"] in _BOUNDS:
        return _BOUNDS[error["type"]].format(**ctx)
    return _KINDS.get(error["type"]) or error["msg"][0].lower() + error["msg"][1:]


_BOUNDS = {
    "greater_than_equal": "must be at least {ge}",
    "less_than_equal": "must be at most {le}",
    "greater_than": "must be more than {gt}",
    "less_than": "must be less than {lt}",
    "literal_error": "must be one of {expected}",
}
_KINDS = {
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "int_type": "must be a whole number",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "finite_number": "must be a finite number",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "string_type": "must be text",
}


def _is_union_branch(part: Any) -> bool:
    # pydantic names the branch of an `X | None` union it tried (e.g. "int", "list[str]"); not a key.
    return isinstance(part, str) and (part in {"int", "float", "str", "bool", "none"} or "[" in part)


def _model_at(loc: list[Any]) -> type[BaseModel] | None:
    model: type[BaseModel] = Config
    parts = iter(loc)
    for part in parts:
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        nested = next((t for t in _types_of(field.annotation) if isinstance(t, type) and issubclass(t, BaseModel)), None)
        if nested is None:
            return None
        if get_origin(field.annotation) is dict:  # a mapping of sections: the next part is its key (a stage's name)
            next(parts, None)
        model = nested
    return model


def _types_of(annotation: Any) -> list[Any]:
    args = getattr(annotation, "__args__", None)
    return [annotation] if not args else [a for arg in args for a in _types_of(arg)] + [annotation]


def _line_of(root: yaml.Node | None, loc: list[Any], exact: bool = False) -> int | None:
    """The 1-based line of the deepest YAML node that `loc` reaches (with `exact`, None unless it reaches
    the end of `loc`)."""
    node, line = root, (root.start_mark.line + 1) if root is not None else None
    for depth, part in enumerate(loc):
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if getattr(k, "value", None) == str(part)), None)
            if match is None:
                return None if exact and depth < len(loc) else line
            node, line = match[1], match[0].start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return None if exact else line
    return line
