"""Deployment on approval: the deployment function (containers/deploy/deploy.py, the same code the pipeline's
Deploy step invokes) and the EventBridge rules that call it. A release stage in an account of its own has the same
function, rules and statements in its stage stack (infra/stage_stack.py), built by the functions here.

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
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from constructs import Construct

from containers.deploy import champion, deploy
from infra.arns import arn, sagemaker_arn
from infra.cross_account import last_stage, workflow_stages
from infra.functions import small_function
from infra.rules import approvals, event_rule
from infra.storage import Storage, grants_for_aws_resources
from pipelines.config import READER_ROLE, Config, stage_role_arn

# It reads the whole model archive to check its sha256 before deploying (tens of MB for D0, hundreds for D7),
# streamed in 1 MiB chunks: time, not memory. Lambda allows up to 900 s.
DEPLOY_TIMEOUT_SECONDS = 300


def deploy_environment(config: Config, *, data_capture_s3_uri: str, later_stage_endpoints: list[str], **settings: str | None) -> dict[str, str]:
    """The function's environment, from pipeline.yaml's deployment section, in the variables the function reads.
    `later_stage_endpoints`: the later stages' endpoints whose state events the function handles, those of its own
    account only; `settings`: deploy.config_values' (role_arn, kms_key_id, and for a stage account's function its
    endpoint_name, inference_image_uri and model_copy_s3_uri)."""
    capture = data_capture_s3_uri if config.deployment.data_capture_percent else None
    values = deploy.config_values(config, data_capture_s3_uri=capture, **settings)
    return deploy.as_environment({**values, "later_stage_endpoints": ",".join(later_stage_endpoints) or None})


def deploy_function(scope: Construct, *, description: str, environment: dict[str, str], **names) -> tuple[lambda_.Function, logs.LogGroup]:
    """containers/deploy/deploy.py as a function: the workflow account's and each stage account's. `names`:
    small_function's function_name and role."""
    return small_function(
        scope,
        "DeployFunction",
        folder="deploy",
        handler="deploy.handler",
        description=description,
        environment=environment,
        timeout_seconds=DEPLOY_TIMEOUT_SECONDS,
        **names,
    )


def deploy_target(function: lambda_.IFunction) -> targets.LambdaFunction:
    return targets.LambdaFunction(function, retry_attempts=4, max_event_age=Duration.hours(6))


def approval_rule(scope: Construct, config: Config, target: events.IRuleTarget, *, event_bus: events.IEventBus | None = None) -> events.Rule:
    """A person's approval of our group's packages (infra.rules.approvals) deploys: on this account's default bus, or
    on the bus a stage account receives the workflow account's approvals on."""
    pattern = approvals(config)
    return events.Rule(
        scope,
        "OnApproval",
        description=f"Deploy packages of {config.model_package_group} approved in the Model Registry",
        event_bus=event_bus,
        event_pattern=events.EventPattern(source=[pattern["source"]], detail_type=[pattern["detail_type"]], detail=pattern["detail"]),
        targets=[target],
    )


def endpoint_state_rule(scope: Construct, target: events.IRuleTarget, endpoints: list[str]) -> events.Rule:
    """SageMaker's state changes of `endpoints` in this account, on its default bus: in service (autoscaling, a
    rollback's report) or failed (the report)."""
    return event_rule(
        scope,
        "OnEndpointInService",
        description=f"Configure autoscaling of {', '.join(endpoints)} once in service; report a rollback or a failure",
        source="aws.sagemaker",
        detail_type=deploy.ENDPOINT_EVENT,
        detail={"EndpointName": endpoints, "EndpointStatus": ["IN_SERVICE", "FAILED"]},
        targets=[target],
    )


def report_to(function: lambda_.Function, topic: sns.ITopic) -> None:
    """A rolled-back or failed update is published to `topic` (encrypted: publishing may use its key)."""
    function.add_environment(deploy.ENVIRONMENT["notification_topic_arn"], topic.topic_arn)
    topic.grant_publish(function)


class Deployment(Construct):
    """The workflow account's function. It takes approvals when the first stage is served from this account, and
    the state events of this account's stages' endpoints (infra.cross_account.workflow_stages); with no stage here
    it has no rule, and is kept for the champion function beside it (the two share their code)."""

    def __init__(self, scope: Construct, id: str, *, config: Config, storage: Storage, execution_role: iam.IRole) -> None:
        super().__init__(scope, id)
        local, first = workflow_stages(config), config.approval_stage
        endpoints = list(local.values())
        self.function, self.log_group = deploy_function(
            self,
            description=f"{config.project.name}: deploy an approved model package to {config.approval_endpoint}",
            environment=deploy_environment(
                config,
                role_arn=execution_role.role_arn,
                data_capture_s3_uri=storage.data_capture_uri(config),
                kms_key_id=storage.key.key_arn,
                later_stage_endpoints=[endpoint for stage, endpoint in local.items() if stage != first],
            ),
        )
        role = self.function.role
        assert role is not None

        for statement in deployment_statements(self, config, storage=storage, execution_role_arn=execution_role.role_arn):
            role.add_to_principal_policy(statement)

        self.champion_function, self.champion_log_group = champion_function(self, config)

        target = deploy_target(self.function)
        self.approval_rule = approval_rule(self, config, target) if first in local else None
        self.in_service_rule = endpoint_state_rule(self, target, endpoints) if endpoints else None

    def report_to(self, topic: sns.ITopic) -> None:
        report_to(self.function, topic)


def deployment_statements(scope: Construct, config: Config, *, storage: Storage, execution_role_arn: str) -> list[iam.PolicyStatement]:
    """What the deployment code (containers/deploy/deploy.py deploy_package, configure_autoscaling, rolled_back)
    needs in the workflow account: read the group's packages and their archives, and deploy to the endpoints of
    the stages served from this account. The deployment function's role, and people who run `cardamage deploy`.
    Nothing when no stage is served from this account."""
    endpoints = list(workflow_stages(config).values())
    if not endpoints:
        return []
    return [
        iam.PolicyStatement(
            sid="ReadPackagesOfTheGroup",
            actions=["sagemaker:DescribeModelPackage"],
            resources=[sagemaker_arn(scope, "model-package", f"{config.model_package_group}/*")],
        ),
        # The model archive is read to check its sha256 against the package's metadata before deploying
        # (deploy.check_archive): executions write it under <pipeline name>/<execution id>/, and only there.
        iam.PolicyStatement(
            sid="ReadModelArchives", actions=["s3:GetObject"], resources=[storage.artifacts.arn_for_objects(f"{config.pipeline_name}/*")]
        ),
        iam.PolicyStatement(sid="DecryptModelArchives", actions=["kms:Decrypt"], resources=[storage.key.key_arn]),
        *endpoint_statements(scope, config, key=storage.key, endpoints=endpoints, execution_role_arn=execution_role_arn),
    ]


def endpoint_statements(
    scope: Construct, config: Config, *, key: kms.IKey, endpoints: list[str], execution_role_arn: str
) -> list[iam.PolicyStatement]:
    """What deploying a package to `endpoints` of `scope`'s account needs there, once the package is described and
    its archive read: models and endpoint configs, the endpoints, passing `execution_role_arn` (the role the model
    runs as) to SageMaker, `key` for the endpoint's volumes and captures, and autoscaling. The workflow account's
    deployment (with its reads, deployment_statements) and each stage account's deploy and promote roles
    (infra/stage_stack.py, whose reads of the workflow's package and archive are their own)."""
    group = config.model_package_group
    return [
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
            resources=[sagemaker_arn(scope, "endpoint", endpoint) for endpoint in endpoints],  # every stage's here: it handles their state events
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
    """The FindChampion step's function: its role may only read the endpoint, its configs and the packages. When
    the last stage (what customers are served) is in an account of its own, the function reads that endpoint as
    the stage stack's reader role, which trusts this account, and reads only the packages itself."""
    last = last_stage(config)
    place = config.stage_accounts.get(last)
    project, group = config.project.name, config.model_package_group
    reader = stage_role_arn(project, last, place.account, READER_ROLE, partition=Aws.PARTITION) if place else None
    environment = {champion.ROLE_VARIABLE: reader} if reader else {}
    if place and place.region:  # production's own region (the workflow's when it names none)
        environment[champion.REGION_VARIABLE] = place.region
    function, log_group = small_function(
        scope,
        "ChampionFunction",
        folder="deploy",
        handler="champion.handler",
        description=f"{project}: find the package {config.endpoint_name} serves (the pipeline's champion)",
        environment=environment,
    )
    role = function.role
    assert role is not None
    packages = sagemaker_arn(scope, "model-package", f"{group}/*")
    if reader:
        role.add_to_principal_policy(iam.PolicyStatement(sid="ReadThePackages", actions=["sagemaker:DescribeModelPackage"], resources=[packages]))
        role.add_to_principal_policy(iam.PolicyStatement(sid="AssumeTheReaderRole", actions=["sts:AssumeRole"], resources=[reader]))
        return function, log_group
    role.add_to_principal_policy(
        iam.PolicyStatement(
            sid="ReadTheServedPackage",
            actions=["sagemaker:DescribeEndpoint", "sagemaker:DescribeModelPackage", "sagemaker:ListTags"],
            resources=[sagemaker_arn(scope, "endpoint", config.endpoint_name), packages],
        )
    )
    role.add_to_principal_policy(read_endpoint_configs(scope))
    return function, log_group
