"""Drift monitoring on AWS (pipeline.yaml's `monitoring` section; docs/aws.md#monitoring), without Model Monitor:

    EventBridge Scheduler, on monitoring.schedule, one schedule per release stage's endpoint
      -> the starter function (containers/deploy/monitor_start.py): the window, its captured hours, the served
         package's baselines, for the accuracy in service the label files and the capture files review batches
         under s3://<artifacts>/review/ took photos from -> CreateProcessingJob <project>-monitor-<window start>-<stage>
      -> the job, as the monitoring job role: containers/monitoring/monitor.py on the processing image, writing
         monitor.json, report.html and atypical.json under s3://<artifacts>/monitoring/<endpoint>/<window start>/
      -> "SageMaker Processing Job State Change" (Completed) -> the metrics function
         (containers/deploy/monitor_metrics.py): CloudWatch metrics in the namespace <project>/Monitoring

The drift alarms and the notice of a failed job are the notifications' (infra/monitoring.py). Each role may do
what its code calls and no more (tests/infra/test_role_calls.py).

One recipe, two places (Watched): the workflow stack monitors the endpoints of the release stages it serves itself
(infra.cross_account.workflow_stages) in its artifacts bucket, with the accuracy in service from its labels and
review batches; a stage account's stack (infra/stage_stack.py) monitors its stage's endpoint in its own bucket, with
its own key and its own copy of the processing image, and its starter copies the served package's baselines from the
workflow account into that bucket (containers/deploy/monitor_start.py copy_baselines), so that the job reads nothing
of another account. The labels and review batches are the workflow account's: there, no accuracy in service.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aws_cdk import Aws, Duration
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from constructs import Construct

from containers.deploy import monitor_metrics, monitor_start
from infra.arns import arn, sagemaker_arn
from infra.cross_account import baselines_prefix, monitored_stages, workflow_stages
from infra.deployment import read_endpoint_configs
from infra.functions import small_function
from infra.images import Images
from infra.roles import list_under, sagemaker_role
from infra.rules import event_rule
from infra.storage import Storage, grants_for_aws_resources
from pipelines.config import REVIEW_PREFIX, Config
from steps.evaluate import OUTPUT as EVALUATION  # the folder of an execution's outputs that holds the baselines

PROCESSING_LOGS = "/aws/sagemaker/ProcessingJobs"  # "Log groups and streams that Amazon SageMaker AI sends to Amazon CloudWatch Logs"
# Processing jobs' instance metrics ("Amazon SageMaker AI metrics in Amazon CloudWatch", Processing job metrics).
PROCESSING_METRICS = "/aws/sagemaker/ProcessingJobs"
MANIFESTS = (monitor_start.LABELS_MANIFEST, monitor_start.CAPTURES_MANIFEST)  # the job's labelled inputs, by manifest


def monitored(config: Config) -> bool:
    """Whether the workflow stack monitors drift: a stage it serves itself is monitored (cross_account.monitored_stages)."""
    return bool(set(monitored_stages(config)) & set(workflow_stages(config)))


def drift_alarm_name(endpoint: str) -> str:
    return f"{endpoint}-drift"


def monitoring_jobs_rule(
    scope: Construct, id: str, config: Config, statuses: list[str], *, description: str, targets: Sequence[events.IRuleTarget]
) -> events.Rule:
    """A rule on the project's drift monitoring jobs (named <monitoring job prefix>-...) that end in one of `statuses`:
    the metrics function's (Completed) and the notice of a failed job's (infra/monitoring.py)."""
    return event_rule(
        scope,
        id,
        description=description,
        source="aws.sagemaker",
        detail_type=monitor_metrics.PROCESSING_EVENT,
        detail={"ProcessingJobName": [{"prefix": f"{config.monitoring_job_prefix}-"}], "ProcessingJobStatus": statuses},
        targets=targets,
    )


@dataclass(frozen=True)
class Watched:
    """What one stack's drift monitoring watches, and where: `endpoints` (stage -> endpoint) capture into `bucket`,
    where the reports go too, encrypted with `key`; the job runs `image`. `data`: the bucket the label exports land
    in, for the accuracy in service (None: not computed). `workflow_account`: the account whose artifacts bucket holds
    the packages' baselines, when it is not this stack's (a stage account's stack); then `starter_role` is the
    starter's role, made beforehand by the name the workflow account's grants admit."""

    endpoints: Mapping[str, str]
    bucket: s3.IBucket
    key: kms.IKey
    image: ecr_assets.DockerImageAsset
    data: s3.IBucket | None = None
    workflow_account: str | None = None
    starter_role: iam.Role | None = None

    def __post_init__(self) -> None:
        if self.data is not None and self.workflow_account:
            raise ValueError("Watched: the accuracy in service reads this account's labels (data), but the workflow is another account's")

    @classmethod
    def of_workflow(cls, config: Config, storage: Storage, images: Images) -> Watched:
        """The workflow stack's: the stages it serves itself, in its artifacts bucket, with the accuracy in service."""
        return cls(workflow_stages(config), storage.artifacts, storage.key, images.processing, data=storage.data)


class DriftMonitoring(Construct):
    """The workflow stack gives its `storage` and `images` (Watched.of_workflow); a stage account's stack gives `watched`."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: Config,
        storage: Storage | None = None,
        images: Images | None = None,
        watched: Watched | None = None,
    ) -> None:
        super().__init__(scope, id)
        if (watched is None) == (storage is None or images is None):
            raise TypeError("DriftMonitoring takes either storage and images (the workflow stack's) or watched")
        self.watched = watched = watched or Watched.of_workflow(config, storage, images)
        bucket, key, endpoints = watched.bucket, watched.key, watched.endpoints
        captures = {endpoint: config.data_capture(bucket.bucket_name, endpoint).key for endpoint in endpoints.values()}
        reports = {endpoint: config.monitoring_reports(bucket.bucket_name, endpoint).key for endpoint in endpoints.values()}
        jobs = sagemaker_arn(self, "processing-job", f"{config.monitoring_job_prefix}-*")
        report_objects = [bucket.arn_for_objects(f"{prefix}*") for prefix in reports.values()]
        labels = config.labels_prefix(watched.data.bucket_name) if watched.data else None
        self.namespace = monitor_metrics.namespace(config.project.name)

        self.job_role = self._job_role(config, watched, captures, reports)

        monitoring = config.monitoring
        places = {endpoint: {"stage": stage, "captures": captures[endpoint], "reports": reports[endpoint]} for stage, endpoint in endpoints.items()}
        settings = {
            "bucket": bucket.bucket_name,
            "endpoints": json.dumps(places, sort_keys=True),
            "group": config.model_package_group,
            "role_arn": self.job_role.role_arn,
            "image_uri": watched.image.image_uri,
            "kms_key_id": key.key_arn,
            "instance_type": monitoring.instance_type,
            "volume_size_gb": str(monitoring.volume_size_gb),
            "max_runtime_seconds": str(monitoring.max_runtime_minutes * 60),
            "window_hours": str(monitoring.window_hours),
            "atypical": str(monitoring.atypical),
            "job_prefix": config.monitoring_job_prefix,
            "baseline_prefix": f"{config.pipeline_name}/",
            "baseline_folder": EVALUATION,
            **({"labels": str(labels), "reviews": REVIEW_PREFIX} if labels else {}),
            **({"label_attribute": config.data.label_attribute} if labels and config.data.label_attribute else {}),
            **({"workflow_account": watched.workflow_account} if watched.workflow_account else {}),
        }
        self.starter, self.starter_log_group, starter = self._function(
            config,
            "StartFunction",
            handler="monitor_start.handler",
            does="start the drift monitor over the last window of each endpoint's captures",
            environment={({**monitor_start.ENVIRONMENT, **monitor_start.OPTIONAL_ENVIRONMENT})[name]: value for name, value in settings.items()},
            role=watched.starter_role,
        )
        # Which package each endpoint serves (its config's tags), and that package's baselines: described here, or in
        # the workflow account with the statements the stage stack gives the starter's role (infra/stage_stack.py).
        served = [sagemaker_arn(self, "endpoint", name) for name in endpoints.values()]
        packages = [] if watched.workflow_account else [sagemaker_arn(self, "model-package", f"{config.model_package_group}/*")]
        starter.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ReadTheServedPackage",
                actions=["sagemaker:DescribeEndpoint", "sagemaker:ListTags", *(["sagemaker:DescribeModelPackage"] if packages else [])],
                resources=[*served, *packages],
            )
        )
        starter.add_to_principal_policy(read_endpoint_configs(self))
        starter.add_to_principal_policy(list_under("ListCaptures", bucket.bucket_arn, captures.values()))
        if watched.data and labels:
            # The accuracy in service: which label files there are, and the review batches' review.json (which capture
            # files their photos came from), read through the key.
            starter.add_to_principal_policy(list_under("ListLabels", watched.data.bucket_arn, [labels.key]))
            starter.add_to_principal_policy(list_under("ListReviewBatches", bucket.bucket_arn, [REVIEW_PREFIX]))
            starter.add_to_principal_policy(
                iam.PolicyStatement(
                    sid="ReadReviewBatches", actions=["s3:GetObject"], resources=[bucket.arn_for_objects(f"{REVIEW_PREFIX}*{monitor_start.REVIEW}")]
                )
            )
            starter.add_to_principal_policy(iam.PolicyStatement(sid="DecryptReviewBatches", actions=["kms:Decrypt"], resources=[key.key_arn]))
        # A window without captures gets its empty monitor.json from the function itself; a job's labelled inputs get
        # their manifests in the window's folder, and in a stage account its copies of the baselines (BASELINE_COPIES).
        starter.add_to_principal_policy(iam.PolicyStatement(sid="WriteEmptyReports", actions=["s3:PutObject"], resources=report_objects))
        starter.add_to_principal_policy(iam.PolicyStatement(sid="EncryptEmptyReports", actions=["kms:GenerateDataKey"], resources=[key.key_arn]))
        starter.add_to_principal_policy(iam.PolicyStatement(sid="StartMonitoringJobs", actions=["sagemaker:CreateProcessingJob"], resources=[jobs]))
        starter.add_to_principal_policy(
            iam.PolicyStatement(
                sid="PassTheJobRoleToSageMakerOnly",
                actions=["iam:PassRole"],
                resources=[self.job_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            )
        )
        # The job names the key for its volume and output: SageMaker checks the caller may use it.
        starter.add_to_principal_policy(grants_for_aws_resources("JobsEncryptWithTheKey", key))

        # The schedules' role may invoke the starter only, for this account's default schedule group's schedules (the
        # conditions CDK's own Scheduler target role has; "Set up the execution role", EventBridge Scheduler User Guide).
        self.scheduler_role = iam.Role(
            self,
            "SchedulerRole",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com",
                conditions={
                    "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID, "aws:SourceArn": arn(self, "scheduler", "schedule-group", "default")}
                },
            ),
            description=f"{config.project.name}: EventBridge Scheduler starts the drift monitor",
        )
        # One schedule per stage's endpoint, in UTC (CreateSchedule's ScheduleExpressionTimezone defaults to UTC).
        self.schedules = {
            endpoint: scheduler.Schedule(
                self,
                f"Schedule{stage.capitalize()}",
                schedule=scheduler.ScheduleExpression.expression(monitoring.schedule),
                target=scheduler_targets.LambdaInvoke(
                    self.starter,
                    input=scheduler.ScheduleTargetInput.from_object({"endpoint_name": endpoint}),
                    retry_attempts=2,
                    max_event_age=Duration.hours(1),
                    role=self.scheduler_role,
                ),
                description=f"Start the drift monitor over {endpoint}'s last {monitoring.window_hours} hour(s) of captures",
            )
            for stage, endpoint in endpoints.items()
        }

        self.metrics_function, self.metrics_log_group, publisher = self._function(
            config,
            "MetricsFunction",
            handler="monitor_metrics.handler",
            does="publish a finished drift monitor's findings as CloudWatch metrics",
            environment={"METRIC_NAMESPACE": self.namespace, "JOB_PREFIX": config.monitoring_job_prefix},
        )
        describe = iam.PolicyStatement(sid="DescribeMonitoringJobs", actions=["sagemaker:DescribeProcessingJob"], resources=[jobs])
        publisher.add_to_principal_policy(describe)
        publisher.add_to_principal_policy(iam.PolicyStatement(sid="ReadReports", actions=["s3:GetObject"], resources=report_objects))
        publisher.add_to_principal_policy(iam.PolicyStatement(sid="DecryptReports", actions=["kms:Decrypt"], resources=[key.key_arn]))
        publisher.add_to_principal_policy(
            iam.PolicyStatement(
                sid="PutMonitoringMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],  # PutMetricData has no resource type; the namespace condition scopes it
                conditions={"StringEquals": {"cloudwatch:namespace": self.namespace}},
            )
        )
        self.completed_rule = monitoring_jobs_rule(
            self,
            "OnMonitoringJobCompleted",
            config,
            ["Completed"],
            description=f"Publish the metrics of {config.project.name}'s drift monitoring jobs",
            targets=[targets.LambdaFunction(self.metrics_function, retry_attempts=4, max_event_age=Duration.hours(6))],
        )

    def _function(
        self, config: Config, id: str, *, handler: str, does: str, environment: dict[str, str], role: iam.Role | None = None
    ) -> tuple[lambda_.Function, logs.LogGroup, iam.IRole]:
        """One of the two functions, with its log group and role (its own, or `role`). Their code is containers/deploy/:
        the starter reads what an endpoint serves through deploy.py there, as the champion function does."""
        description = f"{config.project.name}: {does}"
        function, log_group = small_function(self, id, folder="deploy", handler=handler, description=description, environment=environment, role=role)
        assert function.role is not None
        return function, log_group, function.role

    def _job_role(self, config: Config, watched: Watched, captures: dict[str, str], reports: dict[str, str]) -> iam.Role:
        """The monitoring job's role: read the captures and the baselines, write the reports, use the key, pull the
        processing image, write its log group. The baselines are the executions' evaluation folders, or in a stage
        account the starter's copies in each window's folder."""
        bucket, key = watched.bucket, watched.key
        role = sagemaker_role(self, "JobRole", f"{config.project.name}: the drift monitoring jobs")
        baselines = [f"{p}*/{monitor_start.BASELINE_COPIES}" for p in reports.values()] if watched.workflow_account else [baselines_prefix(config)]
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadCapturesAndBaselines",
                actions=["s3:GetObject"],
                resources=[bucket.arn_for_objects(f"{p}*") for p in [*captures.values(), *baselines]],
            )
        )
        role.add_to_policy(list_under("ListCapturesAndBaselines", bucket.bucket_arn, [*captures.values(), *baselines]))
        if watched.data:
            # The accuracy in service: the label files and the capture files that review batches took photos from (the
            # captures are read above), each input named by a manifest the starter writes into the window's folder.
            labels = config.labels_prefix(watched.data.bucket_name).key
            manifests = [bucket.arn_for_objects(f"{p}*/{name}") for p in reports.values() for name in MANIFESTS]
            role.add_to_policy(
                iam.PolicyStatement(
                    sid="ReadLabelsAndManifests", actions=["s3:GetObject"], resources=[watched.data.arn_for_objects(f"{labels}*"), *manifests]
                )
            )
            # Whether SageMaker lists a ManifestFile input's prefix is not documented: allowed, for the labels prefix only.
            role.add_to_policy(list_under("ListLabels", watched.data.bucket_arn, [labels]))
        role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteReports",
                actions=["s3:PutObject", "s3:AbortMultipartUpload"],
                resources=[bucket.arn_for_objects(f"{p}*") for p in reports.values()],
            )
        )
        # As the execution role (infra/roles.py): Decrypt to read, Encrypt for the output's key, GenerateDataKey to upload.
        data_keys = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"]
        role.add_to_policy(iam.PolicyStatement(sid="UseTheKeyForData", actions=data_keys, resources=[key.key_arn]))
        role.add_to_policy(grants_for_aws_resources("EncryptJobVolumes", key))
        logs = arn(self, "logs", "log-group", PROCESSING_LOGS, colon=True)
        role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteJobLogs",
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[logs, f"{logs}:log-stream:*"],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="PublishJobMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],  # PutMetricData has no resource type; the namespace condition scopes it
                conditions={"StringEquals": {"cloudwatch:namespace": PROCESSING_METRICS}},
            )
        )
        watched.image.repository.grant_pull(role)  # and ecr:GetAuthorizationToken, which has no resource type
        return role
