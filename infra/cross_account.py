"""The workflow stack's grants to release stages served from accounts of their own (deployment.accounts).

For each such stage, the stage account's endpoint role (SageMaker assumes it to fetch the model) and its deploy
function's role may, and nothing else may:
- describe and list the packages of the model package group (the group's resource policy);
- read the model archives, `<pipeline>/<execution>/model/<training job>/output/model.tar.gz`, and nothing else
  of the artifacts bucket: not the prepared data, not the captured requests (the bucket policy);
- decrypt them, through S3 only (the key policy).
A stage whose endpoint's drift is monitored (monitored_stages) has its monitor's starter role (MONITOR_ROLE) read the
served package and its two baseline files (the bucket policy: those files of the executions' evaluation folders
only), decrypting them through S3: the starter copies them into the stage's own bucket for the monitoring job.
When the first release stage is served from an account of its own, it also forwards approvals of the group's
packages to that stage's bus (forward_approvals): approvals deploy to the first stage only, later stages are reached
by `cardamage promote`. A stage served from the workflow's own account gets nothing here: its roles are this
account's, and the stack's own policies cover them. Without stage accounts this construct adds nothing, so the
template is today's. Which stages are the workflow account's own is workflow_stages, the one home of that rule.

The principal of each statement is the stage account, narrowed by an `aws:PrincipalArn` condition to the
role ARNs that pipelines.config.stage_role_arn builds, which the stage stacks will create with those names.
Naming the roles as principals would need them to exist first: IAM turns a role ARN in a policy's Principal into
the role's unique id when the policy is saved ("AWS JSON policy elements: Principal", IAM User Guide), and a key
policy's principals "must exist and be visible to AWS KMS" (CreateKey and PutKeyPolicy, AWS KMS API Reference).
The stage stacks are deployed after this one, so their roles do not exist yet; a condition on the ARN needs no
role to exist, and holds only for the role of that name ("aws:PrincipalArn", AWS global condition context keys).
Each stage account must still allow the use in its roles' own policies: access across accounts needs both
("Cross-account policy evaluation logic", IAM User Guide). Whether SageMaker's model package group policies
evaluate aws:PrincipalArn like S3 and KMS do is unverified here (a global condition key, which AWS's group policy
examples do not show).
"""

from __future__ import annotations

from aws_cdk import Aws
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from containers.deploy import monitor_start
from infra.arns import sagemaker_arn
from infra.rules import approvals, event_rule
from infra.storage import Storage
from pipelines.config import DEPLOY_ROLE, ENDPOINT_ROLE, MONITOR_ROLE, Config, stage_event_bus_arn, stage_role_arn
from steps.evaluate import OUTPUT as EVALUATION  # the folder of an execution's outputs that holds the baselines

# What the stage accounts' roles call on the workflow account's resources: the deploy function describes the
# package it deploys and reads its archive to check the sha256 (containers/deploy/deploy.py check_archive);
# SageMaker, as the endpoint role, reads the archive (CreateModel's ModelDataUrl). ListModelPackages is what
# issue 24 names with DescribeModelPackage for reading packages; no stage code calls it yet (the deploy function
# only describes), so the stage slices drop it unless a caller comes. It takes the model-package resource type
# ("Actions, resources, and condition keys for Amazon SageMaker", Service Authorization Reference), so a group
# policy may grant it on the group's packages, as AWS's examples do. AWS's own example of a group policy across
# accounts ("Deploy a Model Version from a Different Account", SageMaker Developer Guide) also grants
# DescribeModelPackageGroup on the group, and UpdateModelPackage and CreateModel on the packages: not here, since
# no stage code describes the group, only a person in the workflow account approves, and CreateModel's one
# resource type is model, which the stage account's own policies grant.
PACKAGE_ACTIONS = ["sagemaker:DescribeModelPackage", "sagemaker:ListModelPackages"]
ARCHIVE_ACTIONS = ["s3:GetObject"]
KEY_ACTIONS = ["kms:Decrypt", "kms:DescribeKey"]
READING_ROLES = (DEPLOY_ROLE, ENDPOINT_ROLE)
# The drift monitor's starter reads the baseline files (containers/deploy/monitor_start.py copy_baselines) and decrypts
# them as S3 reads them for it; it describes the served package with the deploy role's grant.
BASELINE_ACTIONS = ["s3:GetObject"]
BASELINE_KEY_ACTIONS = ["kms:Decrypt"]


def model_archives(config: Config) -> str:
    """The keys of the model archives in the artifacts bucket. Train writes under <pipeline>/<execution id>/model
    (steps/train.py, its OutputDataConfig), and SageMaker puts a job's archive at
    <S3OutputPath>/<training job name>/output/model.tar.gz, as the local engine does (pipelines/local/jobs.py)."""
    return f"{config.pipeline_name}/*/model/*/output/model.tar.gz"


def baselines_prefix(config: Config) -> str:
    """The key pattern of the folders that hold packages' baselines: the executions' evaluation outputs."""
    return f"{config.pipeline_name}/*/{EVALUATION}/"


def baseline_files(config: Config) -> list[str]:
    """The keys of the baseline files Register records as a package's DriftCheckBaselines, in those folders."""
    return [f"{baselines_prefix(config)}{name}" for name, _ in monitor_start.BASELINES.values()]


def stage_roles(config: Config, stage: str, account: str, roles: tuple[str, ...] = READING_ROLES) -> list[str]:
    """The ARNs of a stage account's roles that read the workflow's archives (`roles`: some of them)."""
    return [stage_role_arn(config.project.name, stage, account, role, partition=Aws.PARTITION) for role in roles]


def last_stage(config: Config) -> str:
    """The stage that serves customers, whose package is the pipeline's champion."""
    return list(config.stage_endpoints)[-1]


def workflow_stages(config: Config) -> dict[str, str]:
    """The release stages served from the workflow's own account, stage -> endpoint, in stage order: the endpoints
    the workflow stack deploys, scales, watches and monitors (the stage stacks hold the others')."""
    return {stage: endpoint for stage, endpoint in config.stage_endpoints.items() if stage not in config.stage_accounts}


def monitored_stages(config: Config) -> dict[str, str]:
    """The release stages whose endpoints' drift is monitored, stage -> endpoint, wherever each is served (the
    workflow stack monitors its own, a stage account's stack its stage's: infra/drift.py): all of them when
    pipeline.yaml turns monitoring on and the endpoints capture something, else none."""
    monitoring = config.monitoring.enabled and config.deployment.data_capture_percent > 0
    return dict(config.stage_endpoints) if monitoring else {}


def stage_grant(
    config: Config,
    stage: str,
    account: str,
    what: str,
    actions: list[str],
    resource: str | list[str],
    roles: tuple[str, ...] = READING_ROLES,
    **conditions: dict,
) -> iam.PolicyStatement:
    """A resource policy's statement allowing `actions` on `resource` (one, or a list) to the stage account's `roles` only."""
    return iam.PolicyStatement(
        sid=f"{stage.capitalize()}{what}",  # stage names are lower-case letters and digits
        principals=[iam.AccountPrincipal(account)],
        actions=actions,
        resources=[resource] if isinstance(resource, str) else resource,
        conditions={"ArnEquals": {"aws:PrincipalArn": stage_roles(config, stage, account, roles)}, **conditions},
    )


class StageAccountGrants(Construct):
    def __init__(self, scope: Construct, id: str, *, config: Config, storage: Storage, group: sagemaker.CfnModelPackageGroup) -> None:
        super().__init__(scope, id)
        packages = sagemaker_arn(self, "model-package", f"{config.model_package_group}/*")
        archives = storage.artifacts.arn_for_objects(model_archives(config))
        # kms:ViaService: the key is used only in requests S3 makes for these roles, in the bucket's (and the key's)
        # region ("AWS KMS condition keys", kms:ViaService, AWS KMS Developer Guide).
        through_s3 = {"kms:ViaService": f"s3.{Aws.REGION}.{Aws.URL_SUFFIX}"}
        baselines = [storage.artifacts.arn_for_objects(key) for key in baseline_files(config)]
        reading = []
        for stage, place in config.stage_accounts.items():
            monitored = stage in monitored_stages(config)
            # The deploy function describes packages, and the drift monitor's starter the served one: the endpoint's
            # model is made from the package's archive and the stage's own serving image (containers/deploy/deploy.py
            # create_model), so SageMaker reads no package.
            describing = (DEPLOY_ROLE, MONITOR_ROLE) if monitored else (DEPLOY_ROLE,)
            reading.append(stage_grant(config, stage, place.account, "ReadsPackages", PACKAGE_ACTIONS, packages, roles=describing))
            storage.artifacts.add_to_resource_policy(stage_grant(config, stage, place.account, "ReadsModelArchives", ARCHIVE_ACTIONS, archives))
            # A key policy names its own key as "*".
            key = stage_grant(config, stage, place.account, "DecryptsModelArchivesThroughS3", KEY_ACTIONS, "*", StringEquals=through_s3)
            storage.key.add_to_resource_policy(key)
            if monitored:
                monitor = (MONITOR_ROLE,)
                storage.artifacts.add_to_resource_policy(
                    stage_grant(config, stage, place.account, "ReadsBaselines", BASELINE_ACTIONS, baselines, roles=monitor)
                )
                decrypting = stage_grant(
                    config, stage, place.account, "DecryptsBaselinesThroughS3", BASELINE_KEY_ACTIONS, "*", monitor, StringEquals=through_s3
                )
                storage.key.add_to_resource_policy(decrypting)
        if reading:
            group.model_package_group_policy = iam.PolicyDocument(statements=reading)
        self.forwarding = forward_approvals(self, config) if config.approval_stage in config.stage_accounts else None


def stage_bus(config: Config, stage: str) -> str:
    """The ARN of a stage account's approval bus. A stage without a region of its own is in the workflow's region,
    which is this stack's."""
    place = config.stage_accounts[stage]
    return stage_event_bus_arn(config.project.name, stage, place.account, place.region or Aws.REGION, partition=Aws.PARTITION)


def forward_approvals(scope: Construct, config: Config) -> events.Rule:
    """Send each approval of our group's packages to the first stage's bus in its account, where that stage's deploy
    function takes it; later stages are promoted to, never approved into. Across accounts a rule's target is the
    other account's bus, put to with a role of the sender's that may call events:PutEvents on it, and the receiving
    bus's policy admits the sender ("Sending and receiving events between AWS accounts in Amazon EventBridge",
    EventBridge User Guide; "Permissions for event buses in Amazon EventBridge": "We recommend always using IAM roles
    when the target of a rule is an event bus")."""
    stage = config.approval_stage
    # The target grants this role events:PutEvents on that bus, and on nothing else (aws_events_targets.EventBus).
    role = iam.Role(
        scope,
        "ForwardApprovals",
        assumed_by=iam.ServicePrincipal("events.amazonaws.com"),
        description=f"{config.project.name}: send approvals to the {stage} account's bus",
    )
    bus = events.EventBus.from_event_bus_arn(scope, "Bus", stage_bus(config, stage))
    description = f"Send approvals of {config.model_package_group} to the {stage} account's bus"
    return event_rule(scope, "OnApprovalToStageAccounts", description=description, **approvals(config), targets=[targets.EventBus(bus, role=role)])
