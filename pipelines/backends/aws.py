"""The backend on AWS: SageMaker Pipelines' executions, the Model Registry and the endpoint, through boto3
(the control-plane calls are pipelines/aws.py; deployment is the deployment function's own code)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from containers.deploy import deploy as deployment
from pipelines import aws
from pipelines.backends import Approval, Execution, Package, Step
from pipelines.config import Config


class AwsBackend:
    """The project's pipeline, group and endpoint in one AWS account and region."""

    def __init__(self, config: Config, *, region: str | None = None, endpoint_url: str | None = None):
        self.config = config
        self.session = aws.connect(region or config.aws.region, endpoint_url)
        self.where = f"AWS ({self.session.region})"

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

    def deploy(self, reference: str | None, *, force: bool = False) -> deployment.DeployResult:
        config = self.config
        if not config.aws.role_arn:
            raise aws.usage_error("deploy needs the role the endpoint's model runs as: set aws.role_arn in pipeline.yaml")
        capture = None
        if config.deployment.data_capture_percent > 0:
            if not config.aws.artifact_bucket:
                raise aws.usage_error(
                    "data capture writes to the artifact bucket: set aws.artifact_bucket in pipeline.yaml (or deployment.data_capture_percent: 0)"
                )
            capture = f"s3://{config.aws.artifact_bucket}/data-capture/{config.endpoint_name}/"
        try:
            settings = deployment.DeploySettings.from_config(
                config, role_arn=config.aws.role_arn, data_capture_s3_uri=capture, kms_key_id=config.aws.kms_key_id
            )
        except deployment.SettingsError as exc:
            raise aws.usage_error(f"deployment settings: {exc}") from None
        group = config.model_package_group
        arn = aws.resolve_package(self._sagemaker, group, reference) if reference else aws.newest_approved(self._sagemaker, group)
        try:
            return deployment.deploy_package(self._sagemaker, self.session.client("application-autoscaling"), settings, arn, force=force)
        except deployment.DeployError as exc:
            raise aws.ControlPlaneError(str(exc)) from None

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
