"""A release stage's stack in an account of its own (deployment.accounts), one per such stage.

It holds what the stage account owns of issue 24 so far:
- the endpoint's execution role, which SageMaker assumes to read the model from the workflow account (the
  package, its archive, the key) and to pull the serving image and write the endpoint's logs here;
- the deploy function's role: describe packages in the workflow account, read and check the archive, and pass
  the endpoint role to SageMaker only. The function itself comes with the next slice;
- the bus the workflow account forwards approvals to, whose policy admits that account only.
Role and bus names come from pipelines.config's names functions, which the workflow stack's grants
(infra.cross_account) use too, so the two sides name the same roles.

Nothing here may reference the workflow stack: it is in another account (and maybe region), where CloudFormation
exports do not reach ("Walkthrough: Refer to resource outputs in another AWS CloudFormation stack": exports work
within one account and region). The workflow's resources are named by what is known before either is deployed:
the workflow's account and region, the group's name, the archives' key pattern and the key's alias.
"""

from __future__ import annotations

from aws_cdk import Aws, Environment, Stack, Tags
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk.region_info import FactName
from constructs import Construct

from containers.inference import image as serving
from infra import nag
from infra.arns import arn
from infra.cross_account import model_archives
from infra.roles import endpoint_log_group
from pipelines.config import DEPLOY_ROLE, ENDPOINT_ROLE, Config, stage_event_bus_name, stage_role_name, workflow_key_alias


def workflow_reads(config: Config, account: str, region: str) -> list[iam.PolicyStatement]:
    """What a stage role reads of the workflow account's: the group's packages, the model archives (in a bucket
    whose name CloudFormation picks, so any bucket of that account, at the archives' keys only) and their key
    (found by its alias, used through S3 in the workflow's region only). The workflow account's own policies
    (infra.cross_account) narrow each to our group, bucket and key; access across accounts needs both sides
    ("Cross-account policy evaluation logic", IAM User Guide)."""
    partition = Aws.PARTITION
    return [
        iam.PolicyStatement(
            sid="DescribeWorkflowPackages",
            actions=["sagemaker:DescribeModelPackage"],
            resources=[f"arn:{partition}:sagemaker:{region}:{account}:model-package/{config.model_package_group.lower()}/*"],
        ),
        # aws:ResourceAccount: the account that owns the resource ("AWS global condition context keys").
        iam.PolicyStatement(
            sid="ReadWorkflowModelArchives",
            actions=["s3:GetObject"],
            resources=[f"arn:{partition}:s3:::*/{model_archives(config)}"],
            conditions={"StringEquals": {"aws:ResourceAccount": account}},
        ),
        # An IAM policy names a key by its ARN only, never its alias; kms:ResourceAliases matches a key by its
        # aliases ("Specifying KMS keys in IAM policy statements", "Use aliases to control access to KMS keys",
        # AWS KMS Developer Guide). That it is evaluated for a key of another account is unverified here.
        iam.PolicyStatement(
            sid="DecryptWorkflowModelArchives",
            actions=["kms:Decrypt"],
            resources=[f"arn:{partition}:kms:{region}:{account}:key/*"],
            conditions={
                "ForAnyValue:StringEquals": {"kms:ResourceAliases": [workflow_key_alias(config.project.name)]},
                "StringEquals": {"kms:ViaService": f"s3.{region}.{Aws.URL_SUFFIX}"},
            },
        ),
    ]


def stage_role(scope: Construct, config: Config, stage: str, role: str, service: str, purpose: str) -> iam.Role:
    """A stage account's role by the name the workflow stack's grants admit (pipelines.config.stage_role_name)."""
    name = stage_role_name(config.project.name, stage, role)
    return iam.Role(
        scope,
        f"{role.capitalize()}Role",
        role_name=name,
        assumed_by=iam.ServicePrincipal(f"{service}.amazonaws.com"),
        description=f"{config.project.name}: {purpose}",
    )


class StageStack(Stack):
    """`workflow_account` and `workflow_region` locate the workflow's registry, artifacts and key."""

    def __init__(self, scope: Construct, id: str, *, config: Config, stage: str, workflow_account: str, workflow_region: str, **kwargs) -> None:
        super().__init__(scope, id, description=f"{config.project.name}: release stage {stage} in an account of its own", **kwargs)
        Tags.of(self).add("project", config.project.name)
        project, reads = config.project.name, workflow_reads(config, workflow_account, workflow_region)
        self.workflow_account, self.workflow_region, self.endpoint_name = workflow_account, workflow_region, config.stage_endpoints[stage]

        self.endpoint_role = stage_role(
            self, config, stage, ENDPOINT_ROLE, "sagemaker", f"the {stage} endpoint's model, read from the workflow account"
        )
        for statement in reads:
            self.endpoint_role.add_to_policy(statement)
        # The endpoint's container logs ("Log groups and streams that Amazon SageMaker AI sends to Amazon CloudWatch Logs").
        logs = arn(self, "logs", "log-group", endpoint_log_group(self.endpoint_name), colon=True)
        self.endpoint_role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteEndpointLogs",
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[logs, f"{logs}:log-stream:*"],
            )
        )
        self.endpoint_role.add_to_policy(iam.PolicyStatement(sid="EcrLogin", actions=["ecr:GetAuthorizationToken"], resources=["*"]))
        if not config.aws.inference_image_uri:  # AWS's TensorFlow Serving image of this region (infra.images)
            account = self.regional_fact(FactName.DLC_REPOSITORY_ACCOUNT)
            self.endpoint_role.add_to_policy(
                iam.PolicyStatement(
                    sid="PullServingImage",
                    actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
                    resources=[f"arn:{Aws.PARTITION}:ecr:{Aws.REGION}:{account}:repository/{serving.REPOSITORY}"],
                )
            )

        # The deploy function's role; the function (containers/deploy/deploy.py) is added with the next slice.
        # It describes the package and checks its archive's sha256 (deploy.check_archive), as in the workflow account.
        self.deploy_role = stage_role(self, config, stage, DEPLOY_ROLE, "lambda", f"the {stage} deploy function")
        for statement in reads:
            self.deploy_role.add_to_policy(statement)
        to_sagemaker = {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
        passing = iam.PolicyStatement(
            sid="PassEndpointRoleToSageMaker", actions=["iam:PassRole"], resources=[self.endpoint_role.role_arn], conditions=to_sagemaker
        )
        self.deploy_role.add_to_policy(passing)

        # Admits the workflow account's PutEvents and nothing else ("Example policy: Send events to a custom bus in a
        # different account in Amazon EventBridge", EventBridge User Guide: the sender's account as principal).
        self.bus = events.EventBus(self, "Approvals", event_bus_name=stage_event_bus_name(project, stage))
        self.bus.add_to_resource_policy(
            iam.PolicyStatement(
                sid="WorkflowAccountPutsApprovals",
                principals=[iam.AccountPrincipal(workflow_account)],
                actions=["events:PutEvents"],
                resources=[self.bus.event_bus_arn],
            )
        )
        nag.acknowledge_stage(self, config)


def stage_stacks(scope: Construct, config: Config, *, prefix: str, workflow_account: str, workflow_region: str | None) -> list[StageStack]:
    """One stack per stage account, in that account and its region (the workflow's unless the stage names its own)."""
    stacks = []
    for stage, place in config.stage_accounts.items():
        if place.region and not workflow_region:
            raise ValueError(
                f"deployment.accounts.{stage}.region is set, but the workflow's region is unknown: set aws.region in the "
                "configuration or CDK_DEFAULT_REGION, so that the stage's roles can name the workflow's resources"
            )
        region = place.region or workflow_region
        env = Environment(account=place.account, region=region)
        stacks.append(
            StageStack(
                scope,
                f"{prefix}-{stage}",
                config=config,
                stage=stage,
                workflow_account=workflow_account,
                workflow_region=workflow_region or Aws.REGION,
                env=env,
            )
        )
    return stacks
