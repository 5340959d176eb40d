"""The workflow stack (everything the pipeline needs, deployed together) and the stage CI/CD deploys it in."""

from __future__ import annotations

from aws_cdk import CfnOutput, Environment, Stack, Stage, Tags
from constructs import Construct

from infra import nag
from infra.cross_account import StageAccountGrants
from infra.deployment import Deployment
from infra.drift import DriftMonitoring, monitored
from infra.images import Images
from infra.monitoring import Monitoring
from infra.people import People
from infra.pipeline import Pipeline
from infra.roles import Roles
from infra.storage import Storage
from infra.triggers import NewLabelsTrigger
from pipelines.config import Config
from steps.context import PLACEHOLDERS


class WorkflowStack(Stack):
    """Storage and key, roles, images, the model package group and the SageMaker Pipeline, the new-manifest
    trigger, deployment on approval, drift monitoring, notifications, and the policies for approvers and operators.
    `definition` is the rendered pipeline definition (infra.pipeline.render_for_cdk); rendering takes seconds, so
    callers render once and pass it in."""

    def __init__(self, scope: Construct, id: str, *, config: Config, definition: str, **kwargs) -> None:
        super().__init__(scope, id, description=f"{config.project.name}: car damage detection on SageMaker Pipelines", **kwargs)
        Tags.of(self).add("project", config.project.name)
        self.storage = Storage(self, "Storage", config=config)
        self.roles = Roles(self, "Roles", config=config, storage=self.storage)
        self.images = Images(self, "Images", config=config)
        self.images.grant_pull(self.roles.execution)
        self.deployment = Deployment(self, "Deployment", config=config, storage=self.storage, execution_role=self.roles.execution)
        # The Deploy step exists only where pipeline.yaml registers packages Approved (steps/deploy.py): elsewhere
        # the pipeline may not invoke the deployment function at all, and only an approval deploys.
        steps = [self.deployment.champion_function.function_arn]
        if config.registry.approval_status == "Approved":
            steps.append(self.deployment.function.function_arn)
        self.roles.allow_lambda_steps(*steps)
        self.values = {
            "SageMakerRoleArn": self.roles.execution.role_arn,
            "DataBucket": self.storage.data.bucket_name,
            "ArtifactBucket": self.storage.artifacts.bucket_name,
            "KmsKeyId": self.storage.key.key_arn,
            "ProcessingImageUri": self.images.processing.image_uri,
            "TrainingImageUri": self.images.training.image_uri,
            "InferenceImageUri": self.images.inference_uri,
            "DeployFunctionArn": self.deployment.function.function_arn,
            "ChampionFunctionArn": self.deployment.champion_function.function_arn,
        }
        self.pipeline = Pipeline(self, "Pipeline", config=config, definition=definition, values=self.values, role_arn=self.roles.pipeline.role_arn)
        self.stage_accounts = StageAccountGrants(self, "StageAccounts", config=config, storage=self.storage, group=self.pipeline.group)
        self.trigger = NewLabelsTrigger(self, "Trigger", config=config, storage=self.storage, pipeline_arn=self.pipeline.pipeline_arn)
        self.drift = DriftMonitoring(self, "DriftMonitoring", config=config, storage=self.storage, images=self.images) if monitored(config) else None
        self.monitoring = Monitoring(self, "Monitoring", config=config, key=self.storage.key, pipeline_arn=self.pipeline.pipeline_arn)
        self.deployment.report_to(self.monitoring.topic)
        self.people = People(self, "People", config=config, storage=self.storage, roles=self.roles, pipeline_arn=self.pipeline.pipeline_arn)
        nag.acknowledge_workflow(self, config)
        # What pipeline.yaml's `aws` section takes, for the CLI against this stack's resources.
        for name, (field, _) in PLACEHOLDERS.items():
            CfnOutput(self, name, value=self.values[name], description=f"pipeline.yaml aws.{field}")
        CfnOutput(self, "LabelingRoleArn", value=self.roles.labeling.role_arn, description="cardamage label --role-arn")
        CfnOutput(self, "PipelineName", value=config.pipeline_name)
        CfnOutput(self, "NotificationTopicArn", value=self.monitoring.topic.topic_arn)
        CfnOutput(self, "ApproverPolicyArn", value=self.people.approver.managed_policy_arn, description="attach to approvers (infra/people.py)")
        CfnOutput(self, "OperatorPolicyArn", value=self.people.operator.managed_policy_arn, description="attach to operators (infra/people.py)")


class WorkflowStage(Stage):
    """The unit CI/CD deploys: the workflow stack in the configured environment."""

    def __init__(self, scope: Construct, id: str, *, config: Config, definition: str, env: Environment | None = None) -> None:
        super().__init__(scope, id, env=env)
        self.stack = WorkflowStack(self, "Workflow", config=config, definition=definition, stack_name=stack_name(config))


def stack_name(config: Config) -> str:
    return config.stack_name
