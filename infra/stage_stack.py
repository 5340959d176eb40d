"""A release stage's stack in an account of its own (deployment.accounts), one per such stage.

It holds what the stage account owns:
- its key and bucket (infra.storage.StageStorage): what the endpoint captures, the customers' photos, is that
  account's data; a stage in another region than the workflow's also keeps copies of the model archives there;
- the endpoint's execution role, which SageMaker assumes to read the model (from the workflow account: the package,
  its archive, the key; or the regional copy), pull the serving image, and write the endpoint's logs and captures;
- the deploy function, containers/deploy/deploy.py named stage_function_name, with its role: describe the package
  and read its archive in the workflow account, and deploy to this stage's endpoint only; the endpoint's rollback
  alarms and the topic they and the function report to;
- the rules that invoke the function: its endpoint's state changes and, in the first stage's stack only, the
  approvals the workflow account forwards to a bus whose policy admits that account only (later stages are
  reached by `cardamage promote`);
- the promote role `cardamage promote` assumes from the workflow account, and the reader role the workflow
  account's people and (for the last stage) its champion function assume to read what the stage serves;
- with drift monitoring (infra.cross_account.monitored_stages), the monitor of its endpoint (infra.drift): the
  schedule, the starter function as the monitor role, which describes the served package and reads its two baseline
  files in the workflow account and copies them into the stage's bucket, the job's role (its own bucket and key only)
  on the processing image published into this account, the metrics function, the drift alarm and the failed jobs'
  notice, both to the stage's topic. The accuracy in service is not computed here: the labels are the workflow's.
Role, function and bus names come from pipelines.config's names functions, which the workflow stack's grants
(infra.cross_account) use too, so the two sides name the same roles. The function, its rules and its statements
are infra.deployment's, as the workflow account's are: one recipe for both.

Nothing here may reference the workflow stack: it is in another account (and maybe region), where CloudFormation
exports do not reach ("Walkthrough: Refer to resource outputs in another AWS CloudFormation stack": exports work
within one account and region). The workflow's resources are named by what is known before either is deployed:
the workflow's account and region, the group's name, the archives' key pattern and the key's alias.
"""

from __future__ import annotations

from aws_cdk import Aws, CfnOutput, Environment, Stack, Tags
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from constructs import Construct

from containers.deploy import deploy
from infra import nag
from infra.arns import arn, sagemaker_arn
from infra.cross_account import baseline_files, model_archives, monitored_stages
from infra.deployment import (
    approval_rule,
    deploy_environment,
    deploy_function,
    deploy_target,
    endpoint_state_rule,
    endpoint_statements,
    read_endpoint_configs,
    report_to,
)
from infra.drift import DriftMonitoring, Watched, drift_alarm_name
from infra.images import processing_image, pull_serving_image, serving_image
from infra.monitoring import allow_publishing, drift_alarm, endpoint_alarms, monitoring_failures, notification_topic, tell
from infra.roles import endpoint_log_group, list_under
from infra.storage import MODEL_COPIES, StageStorage
from pipelines.config import (
    DEPLOY_ROLE,
    ENDPOINT_ROLE,
    MONITOR_ROLE,
    PROMOTE_ROLE,
    PROMOTE_ROLE_OUTPUT,
    READER_ROLE,
    READER_ROLE_OUTPUT,
    Config,
    stage_event_bus_name,
    stage_function_name,
    stage_role_name,
    workflow_key_alias,
)

DESCRIBE_PACKAGES = "DescribeWorkflowPackages"


def workflow_reads(
    config: Config, account: str, region: str, what: str = "ModelArchives", keys: list[str] | None = None
) -> list[iam.PolicyStatement]:
    """What a stage role reads of the workflow account's: the group's packages, objects at `keys` (by default the
    model archives; `what` names them in the statement ids) in a bucket whose name CloudFormation picks, so any bucket
    of that account, and their key (found by its alias, used through S3 in the workflow's region only). The workflow
    account's own policies (infra.cross_account) narrow each to our group, bucket and key; access across accounts needs
    both sides ("Cross-account policy evaluation logic", IAM User Guide)."""
    partition = Aws.PARTITION
    return [
        iam.PolicyStatement(
            sid=DESCRIBE_PACKAGES,
            actions=["sagemaker:DescribeModelPackage"],
            resources=[f"arn:{partition}:sagemaker:{region}:{account}:model-package/{config.model_package_group.lower()}/*"],
        ),
        # aws:ResourceAccount: the account that owns the resource ("AWS global condition context keys").
        iam.PolicyStatement(
            sid=f"ReadWorkflow{what}",
            actions=["s3:GetObject"],
            resources=[f"arn:{partition}:s3:::*/{key}" for key in (keys or [model_archives(config)])],
            conditions={"StringEquals": {"aws:ResourceAccount": account}},
        ),
        # An IAM policy names a key by its ARN only, never its alias; kms:ResourceAliases matches a key by its
        # aliases ("Specifying KMS keys in IAM policy statements", "Use aliases to control access to KMS keys",
        # AWS KMS Developer Guide). That it is evaluated for a key of another account is unverified here.
        iam.PolicyStatement(
            sid=f"DecryptWorkflow{what}",
            actions=["kms:Decrypt"],
            resources=[f"arn:{partition}:kms:{region}:{account}:key/*"],
            conditions={
                "ForAnyValue:StringEquals": {"kms:ResourceAliases": [workflow_key_alias(config.project.name)]},
                "StringEquals": {"kms:ViaService": f"s3.{region}.{Aws.URL_SUFFIX}"},
            },
        ),
    ]


def stage_role(scope: Construct, config: Config, stage: str, role: str, principal: iam.IPrincipal, purpose: str) -> iam.Role:
    """A stage account's role by the name the workflow stack's grants admit (pipelines.config.stage_role_name)."""
    return iam.Role(
        scope,
        f"{role.capitalize()}Role",
        role_name=stage_role_name(config.project.name, stage, role),
        assumed_by=principal,
        description=f"{config.project.name}: {purpose}",
    )


class StageStack(Stack):
    """`workflow_account` and `workflow_region` locate the workflow's registry, artifacts and key; `model_copies`:
    the stage is in another region than the workflow's, so its function copies each archive into its own bucket."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: Config,
        stage: str,
        workflow_account: str,
        workflow_region: str,
        model_copies: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(scope, id, description=f"{config.project.name}: release stage {stage} in an account of its own", **kwargs)
        Tags.of(self).add("project", config.project.name)
        project, reads = config.project.name, workflow_reads(config, workflow_account, workflow_region)
        self.stage, self.workflow_account, self.workflow_region = stage, workflow_account, workflow_region
        self.endpoint_name = endpoint = config.stage_endpoints[stage]
        self.storage = StageStorage(self, "Storage", config=config, stage=stage)
        key, bucket = self.storage.key, self.storage.bucket
        self.model_copies = model_copies
        image_uri, repository = serving_image(self, config)

        sagemaker = iam.ServicePrincipal("sagemaker.amazonaws.com")
        self.endpoint_role = stage_role(
            self, config, stage, ENDPOINT_ROLE, sagemaker, f"the {stage} endpoint's model, read from the workflow account"
        )
        for statement in reads:
            if statement.sid != DESCRIBE_PACKAGES:  # the model is made from the archive and an image: SageMaker reads no package
                self.endpoint_role.add_to_policy(statement)
        # The endpoint's container logs ("Log groups and streams that Amazon SageMaker AI sends to Amazon CloudWatch Logs").
        logs = arn(self, "logs", "log-group", endpoint_log_group(endpoint), colon=True)
        self.endpoint_role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteEndpointLogs",
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[logs, f"{logs}:log-stream:*"],
            )
        )
        self.endpoint_role.add_to_policy(iam.PolicyStatement(sid="EcrLogin", actions=["ecr:GetAuthorizationToken"], resources=["*"]))
        if repository:  # AWS's TensorFlow Serving image of this region (infra.images)
            self.endpoint_role.add_to_policy(pull_serving_image(repository))
        # The model runs as this role: it writes the captures and reads the regional copy, both with this account's key
        # (CreateModel's execution role: "How to use SageMaker AI execution roles", as the workflow's execution role).
        if config.deployment.data_capture_percent:
            captures = bucket.arn_for_objects(f"{config.data_capture(bucket.bucket_name, endpoint).key}*")
            self.endpoint_role.add_to_policy(iam.PolicyStatement(sid="WriteCapturedData", actions=["s3:PutObject"], resources=[captures]))
        if model_copies:
            copies = bucket.arn_for_objects(f"{MODEL_COPIES}*")
            self.endpoint_role.add_to_policy(iam.PolicyStatement(sid="ReadModelCopies", actions=["s3:GetObject"], resources=[copies]))
        data_keys = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"]
        self.endpoint_role.add_to_policy(iam.PolicyStatement(sid="UseTheStageKeyForData", actions=data_keys, resources=[key.key_arn]))

        # What deploying in this account takes, the deploy function's and the promote role's alike (infra.deployment).
        deploying = [
            *endpoint_statements(self, config, key=key, endpoints=[endpoint], execution_role_arn=self.endpoint_role.role_arn),
            *(self._copying() if model_copies else []),
        ]
        lambda_principal = iam.ServicePrincipal("lambda.amazonaws.com")
        self.deploy_role = stage_role(self, config, stage, DEPLOY_ROLE, lambda_principal, f"the {stage} deploy function")
        for statement in [*reads, *deploying]:
            self.deploy_role.add_to_policy(statement)

        # The endpoint's rollback alarms, and the topic they and the function tell (as the workflow's, infra.monitoring);
        # with drift monitoring, its drift alarm and failed jobs too.
        self.topic = notification_topic(self, config, key)
        self.alarms = endpoint_alarms(self, "", config, endpoint)
        self.drift = self.drift_alarm = self.monitoring_failed_rule = None
        if stage in monitored_stages(config):
            self.drift = self._drift_monitoring(config, workflow_account, workflow_region)
            self.monitoring_failed_rule = monitoring_failures(self, config, self.topic)
            self.drift_alarm = drift_alarm(self, "", config, endpoint) if config.monitoring.drift_alarm else None
        drifting = [self.drift_alarm] if self.drift_alarm else []
        tell(self.topic, *self.alarms, *drifting)
        allow_publishing(
            self,
            self.topic,
            key,
            rules=[self.monitoring_failed_rule] if self.monitoring_failed_rule else [],
            alarm_names=[*deploy.rollback_alarm_names(endpoint), *(drift_alarm_name(endpoint) for _ in drifting)],
        )

        environment = deploy_environment(
            config,
            role_arn=self.endpoint_role.role_arn,
            data_capture_s3_uri=self.storage.data_capture_uri(config, endpoint),
            kms_key_id=key.key_arn,
            later_stage_endpoints=[],  # a stage account's function deploys its own endpoint only
            endpoint_name=endpoint,
            inference_image_uri=image_uri,
            model_copy_s3_uri=self.storage.model_copies_uri() if model_copies else None,
        )
        self.function, self.log_group = deploy_function(
            self,
            description=f"{project}: deploy model packages to {endpoint}, the {stage} stage",
            environment=environment,
            function_name=stage_function_name(project, stage),  # promote reads its settings by this name
            role=self.deploy_role,
        )
        report_to(self.function, self.topic)
        target = deploy_target(self.function)
        self.bus = self.approval_rule = None
        if stage == config.approval_stage:
            self.bus = approvals_bus(self, config, stage, workflow_account)
            self.approval_rule = approval_rule(self, config, target, event_bus=self.bus)
        self.in_service_rule = endpoint_state_rule(self, target, [endpoint])

        # `cardamage promote` to or from this stage, from the workflow account: it reads the function's settings,
        # describes and calls the endpoint (the smoke test) and deploys as the function does. It describes packages and
        # reads archives with the promoter's own credentials in the workflow account, so it reads nothing across.
        promoter = iam.AccountPrincipal(workflow_account)
        self.promote_role = stage_role(
            self, config, stage, PROMOTE_ROLE, promoter, f"cardamage promote from the workflow account ({workflow_account})"
        )
        self.promote_role.add_to_policy(
            iam.PolicyStatement(sid="ReadTheDeploySettings", actions=["lambda:GetFunctionConfiguration"], resources=[self.function.function_arn])
        )
        self.promote_role.add_to_policy(
            iam.PolicyStatement(
                sid="SmokeTestTheEndpoint", actions=["sagemaker:InvokeEndpoint"], resources=[sagemaker_arn(self, "endpoint", endpoint)]
            )
        )
        for statement in deploying:
            self.promote_role.add_to_policy(statement)

        self.reader_role = self._reader_role(config, stage, workflow_account)

        CfnOutput(self, PROMOTE_ROLE_OUTPUT, value=self.promote_role.role_arn, description="cardamage promote assumes it (--role-arn overrides)")
        CfnOutput(self, READER_ROLE_OUTPUT, value=self.reader_role.role_arn, description="cardamage models and FindChampion read what it serves")
        CfnOutput(self, "DeployFunctionName", value=self.function.function_name, description="cardamage promote reads the stage's settings from it")
        CfnOutput(self, "BucketName", value=bucket.bucket_name, description=f"{endpoint}'s captured requests")
        CfnOutput(self, "KeyArn", value=key.key_arn, description="the stage account's key")
        nag.acknowledge_stage(self, config)

    def _drift_monitoring(self, config: Config, workflow_account: str, workflow_region: str) -> DriftMonitoring:
        """The drift monitor of this stage's endpoint in its own bucket, with its own key and its own copy of the
        processing image. The starter's role has the name the workflow account's grants admit: it describes the served
        package and reads its baseline files there, which it copies into this bucket for the job."""
        starter = stage_role(
            self,
            config,
            self.stage,
            MONITOR_ROLE,
            iam.ServicePrincipal("lambda.amazonaws.com"),
            f"the {self.stage} drift monitor's starter: reads the served package's baselines in the workflow account",
        )
        for statement in workflow_reads(config, workflow_account, workflow_region, "Baselines", baseline_files(config)):
            starter.add_to_policy(statement)
        watched = Watched(
            {self.stage: self.endpoint_name},
            self.storage.bucket,
            self.storage.key,
            processing_image(self, config),
            workflow_account=workflow_account,
            starter_role=starter,
        )
        return DriftMonitoring(self, "DriftMonitoring", config=config, watched=watched)

    def _copying(self) -> list[iam.PolicyStatement]:
        """A stage in another region copies each archive under models/ of its bucket once (skipped when the copy
        exists): HeadObject (s3:GetObject; with s3:ListBucket a missing copy is 404, not 403: HeadObject, Amazon S3
        API Reference) and the upload, with the stage key (SSE-KMS uploads need kms:GenerateDataKey, multipart ones
        kms:Decrypt too: "Using server-side encryption with AWS KMS keys (SSE-KMS)", S3 User Guide)."""
        bucket, key = self.storage.bucket, self.storage.key
        return [
            iam.PolicyStatement(
                sid="CopyModelArchives", actions=["s3:GetObject", "s3:PutObject"], resources=[bucket.arn_for_objects(f"{MODEL_COPIES}*")]
            ),
            list_under("ListModelCopies", bucket.bucket_arn, [MODEL_COPIES]),
            iam.PolicyStatement(sid="EncryptModelCopies", actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=[key.key_arn]),
        ]

    def _reader_role(self, config: Config, stage: str, workflow_account: str) -> iam.Role:
        """Which package this endpoint serves, by its config's tags (deploy.served_package), and nothing else: for the
        workflow account's people (`cardamage models`, the console) and, for the last stage, its champion function
        (the pipeline's FindChampion). Trusted by the workflow account, whose own policies say who may assume it
        ("How IAM roles differ from resource-based policies", IAM User Guide: both sides must allow)."""
        trust = iam.AccountPrincipal(workflow_account)
        role = stage_role(self, config, stage, READER_ROLE, trust, "the workflow account reads what this endpoint serves")
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadTheServedEndpoint",
                actions=["sagemaker:DescribeEndpoint", "sagemaker:ListTags"],
                resources=[sagemaker_arn(self, "endpoint", self.endpoint_name)],
            )
        )
        role.add_to_policy(read_endpoint_configs(self))
        return role


def approvals_bus(scope: Construct, config: Config, stage: str, workflow_account: str) -> events.EventBus:
    """The bus the workflow account forwards approvals to. It admits the workflow account's PutEvents and nothing
    else ("Example policy: Send events to a custom bus in a different account in Amazon EventBridge", EventBridge
    User Guide: the sender's account as principal)."""
    bus = events.EventBus(scope, "Approvals", event_bus_name=stage_event_bus_name(config.project.name, stage))
    bus.add_to_resource_policy(
        iam.PolicyStatement(
            sid="WorkflowAccountPutsApprovals",
            principals=[iam.AccountPrincipal(workflow_account)],
            actions=["events:PutEvents"],
            resources=[bus.event_bus_arn],
        )
    )
    return bus


def stage_stack_args(config: Config, stage: str, *, workflow_account: str, workflow_region: str | None) -> dict:
    """StageStack's arguments for a stage account (`cdk deploy` and CI/CD alike): that account, in the stage's own
    region or the workflow's, copying the model archives when the regions differ."""
    place = config.stage_accounts[stage]
    if place.region and not workflow_region:
        raise ValueError(
            f"deployment.accounts.{stage}.region is set, but the workflow's region is unknown: set aws.region in the "
            "configuration or CDK_DEFAULT_REGION, so that the stage's roles can name the workflow's resources"
        )
    return {
        "config": config,
        "stage": stage,
        "workflow_account": workflow_account,
        "workflow_region": workflow_region or Aws.REGION,
        # SageMaker reads a model's archive from a bucket in the endpoint's region (ContainerDefinition, ModelDataUrl,
        # SageMaker API Reference): a stage elsewhere copies it first.
        "model_copies": bool(place.region) and place.region != workflow_region,
        "env": Environment(account=place.account, region=place.region or workflow_region),
    }


def stage_stacks(scope: Construct, config: Config, *, workflow_account: str, workflow_region: str | None) -> list[StageStack]:
    """One stack per stage account, in that account and its region (the workflow's unless the stage names its own),
    named config.stage_stack_name(stage)."""
    places = {"workflow_account": workflow_account, "workflow_region": workflow_region}
    return [StageStack(scope, config.stage_stack_name(stage), **stage_stack_args(config, stage, **places)) for stage in config.stage_accounts]
