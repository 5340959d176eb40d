"""Deployment on approval: the deployment function (containers/deploy/deploy.py, the same code the pipeline's
Deploy step invokes) and the EventBridge rules that call it.

- "SageMaker Model Package State Change" with ModelApprovalStatus Approved in our group: a person approved a
  package in the Model Registry. The function deploys it unless the endpoint already serves the same or a
  newer version (it checks the version itself: a late approval of an old package changes nothing).
- "SageMaker Endpoint State Change" to IN_SERVICE for our endpoint: autoscaling is registered once the
  endpoint can take it (SageMaker refuses while it is being created), and an update that was rolled back is
  reported to the notification topic; to FAILED: the failure is reported.

And the champion function (containers/deploy/champion.py), which the pipeline's FindChampion step invokes:
it only reads which package the endpoint serves.
"""

from __future__ import annotations

from aws_cdk import Aws, Duration
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from constructs import Construct

from containers.deploy import deploy
from infra.arns import arn, sagemaker_arn
from infra.functions import small_function
from infra.rules import approvals, event_rule
from infra.storage import Storage, grants_for_aws_resources
from pipelines.config import Config


def deploy_environment(config: Config, *, role_arn: str, data_capture_s3_uri: str, kms_key_id: str) -> dict[str, str]:
    """The function's environment, from pipeline.yaml's deployment section, in the variables the function reads."""
    capture = data_capture_s3_uri if config.deployment.data_capture_percent else None
    return deploy.as_environment(deploy.config_values(config, role_arn=role_arn, data_capture_s3_uri=capture, kms_key_id=kms_key_id))


class Deployment(Construct):
    def __init__(self, scope: Construct, id: str, *, config: Config, storage: Storage, execution_role: iam.IRole) -> None:
        super().__init__(scope, id)
        self.function, self.log_group = small_function(
            self,
            "DeployFunction",
            folder="deploy",
            handler="deploy.handler",
            description=f"{config.project.name}: deploy an approved model package to {config.approval_endpoint}",
            environment=deploy_environment(
                config, role_arn=execution_role.role_arn, data_capture_s3_uri=storage.data_capture_uri(config), kms_key_id=storage.key.key_arn
            ),
            # It reads the whole model archive to check its sha256 before deploying (tens of MB for D0, hundreds for
            # D7), streamed in 1 MiB chunks: time, not memory. Lambda allows up to 900 s.
            timeout_seconds=300,
        )
        role = self.function.role
        assert role is not None

        for statement in deployment_statements(self, config, storage=storage, execution_role_arn=execution_role.role_arn):
            role.add_to_principal_policy(statement)
        endpoints = list(config.stage_endpoints.values())

        self.champion_function, self.champion_log_group = champion_function(self, config)

        target = targets.LambdaFunction(self.function, retry_attempts=4, max_event_age=Duration.hours(6))
        self.approval_rule = event_rule(
            self,
            "OnApproval",
            description=f"Deploy packages of {config.model_package_group} approved in the Model Registry",
            **approvals(config),
            targets=[target],
        )
        self.in_service_rule = event_rule(
            self,
            "OnEndpointInService",
            description=f"Configure autoscaling of {', '.join(endpoints)} once in service; report a rollback or a failure",
            source="aws.sagemaker",
            detail_type=deploy.ENDPOINT_EVENT,
            detail={"EndpointName": endpoints, "EndpointStatus": ["IN_SERVICE", "FAILED"]},
            targets=[target],
        )

    def report_to(self, topic: sns.ITopic) -> None:
        """A rolled-back or failed update is published to `topic` (encrypted: publishing may use its key)."""
        self.function.add_environment(deploy.ENVIRONMENT["notification_topic_arn"], topic.topic_arn)
        topic.grant_publish(self.function)


def deployment_statements(scope: Construct, config: Config, *, storage: Storage, execution_role_arn: str) -> list[iam.PolicyStatement]:
    """What the deployment code (containers/deploy/deploy.py deploy_package, configure_autoscaling, rolled_back)
    needs on the project's endpoints: the deployment function's role, and people who run `cardamage deploy`."""
    group, endpoints, key = config.model_package_group, list(config.stage_endpoints.values()), storage.key
    return [
        iam.PolicyStatement(
            sid="ReadPackagesOfTheGroup",
            actions=["sagemaker:DescribeModelPackage"],
            resources=[sagemaker_arn(scope, "model-package", f"{group}/*")],
        ),
        # The model archive is read to check its sha256 against the package's metadata before deploying
        # (deploy.check_archive): executions write it under <pipeline name>/<execution id>/, and only there.
        iam.PolicyStatement(
            sid="ReadModelArchives", actions=["s3:GetObject"], resources=[storage.artifacts.arn_for_objects(f"{config.pipeline_name}/*")]
        ),
        iam.PolicyStatement(sid="DecryptModelArchives", actions=["kms:Decrypt"], resources=[key.key_arn]),
        # Models and endpoint configs are named <group>-v<version>-<hash> (deploy.resource_name).
        iam.PolicyStatement(
            sid="CreateModelsAndEndpointConfigs",
            actions=[
                "sagemaker:CreateModel",
                "sagemaker:CreateEndpointConfig",
                "sagemaker:DescribeEndpointConfig",
                "sagemaker:AddTags",
                "sagemaker:ListTags",
            ],
            resources=[sagemaker_arn(scope, "model", f"{group}-v*"), sagemaker_arn(scope, "endpoint-config", f"{group}-v*")],
        ),
        read_endpoint_configs(scope),
        iam.PolicyStatement(
            sid="CreateAndUpdateTheEndpoint",
            actions=[
                "sagemaker:CreateEndpoint",
                "sagemaker:UpdateEndpoint",
                "sagemaker:DescribeEndpoint",
                "sagemaker:ListTags",
                "sagemaker:AddTags",
                "sagemaker:DeleteTags",  # an earlier forced deployment's reason, once it no longer holds
                "sagemaker:UpdateEndpointWeightsAndCapacities",  # registering the variant with Application Auto Scaling
            ],
            resources=[sagemaker_arn(scope, "endpoint", endpoint) for endpoint in endpoints],  # every stage's: it handles their state events
        ),
        iam.PolicyStatement(
            sid="PassTheExecutionRoleToSageMakerOnly",
            actions=["iam:PassRole"],
            resources=[execution_role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
        ),
        # The endpoint config names the key for the endpoint's volumes and captured data: SageMaker checks the caller may use it.
        grants_for_aws_resources("EncryptEndpointWithTheKey", key),
        iam.PolicyStatement(
            sid="ScaleTheEndpoint",
            actions=[
                "application-autoscaling:RegisterScalableTarget",
                "application-autoscaling:DeregisterScalableTarget",
                "application-autoscaling:PutScalingPolicy",
                "application-autoscaling:DeleteScalingPolicy",
                "application-autoscaling:DescribeScalableTargets",
                "application-autoscaling:DescribeScalingPolicies",
            ],
            resources=["*"],  # Application Auto Scaling's actions here take no resource ARN
        ),
        iam.PolicyStatement(
            sid="TargetTrackingAlarms",
            actions=["cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms"],
            resources=[arn(scope, "cloudwatch", "alarm", "TargetTracking-endpoint/*", colon=True)],
        ),
        iam.PolicyStatement(
            sid="AutoScalingServiceLinkedRole",
            actions=["iam:CreateServiceLinkedRole"],
            resources=[
                f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}:role/aws-service-role/sagemaker.application-autoscaling.amazonaws.com/"
                "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
            ],
            conditions={"StringLike": {"iam:AWSServiceName": "sagemaker.application-autoscaling.amazonaws.com"}},
        ),
    ]


def read_endpoint_configs(scope: Construct) -> iam.PolicyStatement:
    """Reading which package an endpoint serves reads its current endpoint config's tags (deploy.served_package),
    and that config may have been made by another project or by hand (another name than <group>-v*): only
    whether this project made it, and for which package, is read."""
    return iam.PolicyStatement(
        sid="ReadTheServedEndpointConfig",
        actions=["sagemaker:DescribeEndpointConfig", "sagemaker:ListTags"],
        resources=[sagemaker_arn(scope, "endpoint-config", "*")],
    )


def champion_function(scope: Construct, config: Config):
    """The FindChampion step's function: its role may only read the endpoint, its configs and the packages."""
    function, log_group = small_function(
        scope,
        "ChampionFunction",
        folder="deploy",
        handler="champion.handler",
        description=f"{config.project.name}: find the package {config.endpoint_name} serves (the pipeline's champion)",
        environment={},
    )
    role = function.role
    assert role is not None
    group, endpoint = config.model_package_group, config.endpoint_name
    role.add_to_principal_policy(
        iam.PolicyStatement(
            sid="ReadTheServedPackage",
            actions=["sagemaker:DescribeEndpoint", "sagemaker:DescribeModelPackage", "sagemaker:ListTags"],
            resources=[sagemaker_arn(scope, "endpoint", endpoint), sagemaker_arn(scope, "model-package", f"{group}/*")],
        )
    )
    role.add_to_principal_policy(read_endpoint_configs(scope))
    return function, log_group
