"""The backend on AWS: SageMaker Pipelines' executions, the Model Registry and the endpoint, through boto3
(the control-plane calls are pipelines/aws.py; deployment is the deployment function's own code)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cached_property
from typing import Any

from containers.deploy import deploy as deployment
from pipelines import aws
from pipelines.backends import Approval, Execution, Package, Step
from pipelines.config import Config


@dataclass(frozen=True)
class TransformJob:
    name: str
    version: int
    instance_type: str
    input_uri: str
    output_uri: str


@dataclass(frozen=True)
class TransformSummary:
    uri: str
    files: int
    answered: int
    refused: int
    status: str
    failure: str


class AwsBackend:
    """The project's pipeline, group and endpoint in one AWS account and region."""

    def __init__(self, config: Config, *, region: str | None = None, endpoint_url: str | None = None, warn: Callable[[str], None] = lambda m: None):
        self.config = config
        self.session = aws.connect(region or config.aws.region, endpoint_url)
        self.where = f"AWS ({self.session.region})"
        self._warn = warn

    @cached_property
    def account(self) -> Config:
        """The config with unset account values (role, buckets, key) from the deployed stack's outputs."""
        return aws.with_stack_values(self.session, self.config, self._warn)

    @property
    def _sagemaker(self) -> Any:
        return self.session.client("sagemaker")

    def executions(self, limit: int) -> list[Execution]:
        return [_execution(description) for description in aws.list_executions(self._sagemaker, self.config.pipeline_name, limit)]

    def execution(self, reference: str) -> Execution:
        arn = aws.resolve_execution(self._sagemaker, self.config.pipeline_name, reference)
        execution = _execution(aws.describe_execution(self._sagemaker, arn))  # first: it names an unknown execution
        parameters = {p.get("Name", ""): p.get("Value", "") for p in aws.execution_parameters(self._sagemaker, arn)}
        steps = tuple(_step(step) for step in aws.execution_steps(self._sagemaker, arn))
        return replace(execution, parameters=parameters, steps=steps)

    def packages(self, limit: int) -> list[Package]:
        packages = aws.list_packages(self._sagemaker, self.session.client("s3"), self.config.model_package_group, limit)
        served = self._served()
        return [replace(package, serving=served is not None and served.arn == package.arn) for package in packages]

    def set_approval(self, reference: str, status: str, comment: str | None) -> Approval:
        arn = aws.resolve_package(self._sagemaker, self.config.model_package_group, reference)
        change = aws.set_approval(self._sagemaker, self.session.client("sts"), arn, status, comment)
        served = self._served() if status == "Rejected" else None
        return Approval(change.version, change.previous, change.status, change.description, still_served=served is not None and served.arn == arn)

    def deploy(self, reference: str | None, *, force: bool = False, reason: str = "") -> deployment.DeployResult:
        config = self.account
        if not config.aws.role_arn:
            raise aws.usage_error("deploy needs the role the endpoint's model runs as: set aws.role_arn in pipeline.yaml")
        capture = None
        if config.deployment.data_capture_percent > 0:
            if not config.aws.artifact_bucket:
                raise aws.usage_error(
                    "data capture writes to the artifact bucket: set aws.artifact_bucket in pipeline.yaml (or deployment.data_capture_percent: 0)"
                )
            capture = str(config.data_capture(config.aws.artifact_bucket))
        try:
            settings = deployment.DeploySettings.from_config(
                config, role_arn=config.aws.role_arn, data_capture_s3_uri=capture, kms_key_id=config.aws.kms_key_id
            )
        except deployment.SettingsError as exc:
            raise aws.usage_error(f"deployment settings: {exc}") from None
        group = config.model_package_group
        arn = aws.resolve_package(self._sagemaker, group, reference) if reference else aws.newest_approved(self._sagemaker, group)
        try:
            return deployment.deploy_package(
                self._sagemaker, self.session.client("application-autoscaling"), settings, arn, force=force, reason=reason
            )
        except deployment.DeployError as exc:
            raise aws.ControlPlaneError(str(exc)) from None

    def batch_transform(
        self,
        reference: str | None,
        input_uri: str,
        output_uri: str,
        *,
        instance_type: str | None = None,
        score_threshold: float | None = None,
        max_detections: int | None = None,
        now: datetime | None = None,
    ) -> TransformJob:
        """Start a Batch Transform job over `input_uri` on the package (`reference`, else the newest Approved),
        as a network-isolated model made the deployment function's way, its output under `output_uri`."""
        config = self.account
        if not config.aws.role_arn:
            raise aws.usage_error("batch-predict needs the role the job's model runs as: set aws.role_arn in pipeline.yaml (or deploy the stack)")
        try:
            values = deployment.config_values(config, role_arn=config.aws.role_arn, kms_key_id=config.aws.kms_key_id)
            settings = deployment.DeploySettings(**{**values, "data_capture_percent": 0})  # a job, not the endpoint: nothing to capture
        except deployment.SettingsError as exc:
            raise aws.usage_error(f"deployment settings: {exc}") from None
        group = config.model_package_group
        arn = aws.resolve_package(self._sagemaker, group, reference) if reference else aws.newest_approved(self._sagemaker, group)
        package = aws.describe_package(self._sagemaker, arn)
        version = int(package["ModelPackageVersion"])
        tags = {"project": config.project.name, "cardamage:model-package-arn": arn}
        model_name = deployment.create_model(self._sagemaker, settings, package, [{"Key": k, "Value": v} for k, v in tags.items()])
        environment = {
            deployment.ENVIRONMENT[name]: str(value)  # the handler's variables, as the deployment function names them
            for name, value in (("score_threshold", score_threshold), ("max_detections", max_detections))
            if value is not None
        }
        chosen = instance_type or config.deployment.instance_type
        name = aws.default_job_name(f"{config.project.name}-batch-v{version}", now)[:63].rstrip("-")
        request = aws.transform_job_request(
            job_name=name,
            model_name=model_name,
            input_uri=input_uri,
            output_uri=output_uri,
            instance_type=chosen,
            kms_key_id=config.aws.kms_key_id,
            instance_storage=deployment.has_instance_storage(chosen),
            environment=environment,
            tags=tags,
        )
        self._sagemaker.create_transform_job(**request)
        return TransformJob(name, version, chosen, input_uri, output_uri)

    def finish_batch_transform(self, job: TransformJob, *, progress=lambda status: None, poll: float = 30) -> TransformSummary:
        """Wait for the job, then write summary.csv beside its answers (one row per input object)."""
        from pipelines import batch

        description = aws.wait_for_transform_job(self._sagemaker, job.name, report=progress, poll=poll)
        s3 = self.session.client("s3")
        outcomes = aws.transform_outcomes(s3, job.input_uri, job.output_uri)
        text = batch.summary_text(outcomes, batch.class_names({}, outcomes))
        target = aws.parse_s3_uri(job.output_uri)
        key = f"{target.key.rstrip('/')}/{batch.SUMMARY}" if target.key else batch.SUMMARY
        key_id = self.account.aws.kms_key_id
        extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": key_id} if key_id else {}
        s3.put_object(Bucket=target.bucket, Key=key, Body=text.encode(), ContentType="text/csv", **extra)
        refused = sum(1 for outcome in outcomes if outcome.error is not None)
        status = description.get("TransformJobStatus", "")
        failure = description.get("FailureReason", "") if status != "Completed" else ""
        return TransformSummary(f"s3://{target.bucket}/{key}", len(outcomes), len(outcomes) - refused, refused, status, failure)

    def _served(self) -> deployment.ServedPackage | None:
        """The package the endpoint serves, as the deployment function tagged it."""
        endpoint = deployment.describe_endpoint(self._sagemaker, self.config.endpoint_name)
        return deployment.served_package(self._sagemaker, endpoint) if endpoint else None


def _execution(description: Mapping[str, Any]) -> Execution:
    status = description.get("PipelineExecutionStatus", "")
    arn = description.get("PipelineExecutionArn", "")
    return Execution(
        id=arn.rsplit("/", 1)[-1],
        status=status,
        started=_moment(description.get("CreationTime")),
        ended=_moment(description.get("LastModifiedTime")) if status in aws.TERMINAL else None,
        failure=_reason(description.get("FailureReason")),
        arn=arn,
    )


def _step(step: Mapping[str, Any]) -> Step:
    return Step(
        name=step.get("StepDisplayName") or step.get("StepName", ""),
        status=step.get("StepStatus", ""),
        started=_moment(step.get("StartTime")),
        ended=_moment(step.get("EndTime")),
        detail=aws.step_detail(step),
        failure=_reason(step.get("FailureReason")),
    )


def _moment(value: Any) -> datetime | None:
    return value if isinstance(value, datetime) else None


def _reason(text: Any) -> str:
    text = str(text or "").strip()
    return "" if text == "None" else text
