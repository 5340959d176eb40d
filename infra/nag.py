"""cdk-nag's AwsSolutions checks at every synth, and the findings acknowledged, each with its reason.

cdk-nag 3 runs as a policy-validation plugin: `Validations.of(app).add_plugins(...)`. An unacknowledged
finding fails the synth (the report is cdk.out/validation-report.json). Acknowledgments are made on the
construct that owns the finding, naming the rule and, for IAM5, the very wildcard (`[Action::...]`,
`[Resource::...]`), so a new wildcard is a new finding.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Acknowledgment, App, Stack, Token, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

from containers.deploy import monitor_start
from infra.cross_account import baseline_files, baselines_prefix, model_archives, workflow_stages
from infra.drift import MANIFESTS, PROCESSING_LOGS, DriftMonitoring
from infra.people import LABELING_FILES
from infra.roles import JOB_LOG_GROUPS, PIPELINE_JOBS, endpoint_log_group, input_prefixes
from infra.storage import DATA_CAPTURE, MODEL_COPIES
from pipelines.config import BATCH_PREFIX, MONITORING_PREFIX, REVIEW_PREFIX, Config


def check(app: App) -> None:
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def acknowledge(construct: IConstruct, *findings: tuple[str, str]) -> None:
    """(rule id, reason) pairs for `construct` and everything under it."""
    for rule, reason in findings:
        Validations.of(construct).acknowledge(Acknowledgment(id=rule, reason=reason))


def _logical_id(construct: IConstruct) -> str:
    stack = Stack.of(construct)
    return stack.resolve(stack.get_logical_id(construct.node.default_child))


def _arn_of(construct: IConstruct) -> str:
    """How cdk-nag writes a resource's Fn::GetAtt Arn in a finding id."""
    return f"<{_logical_id(construct)}.Arn>"


REGIONAL = "arn:<AWS::Partition>:{service}:<AWS::Region>:<AWS::AccountId>:{resource}"
GROUND_TRUTH_KEY = (
    "On this key only: Ground Truth's page on encrypting its output (Encrypt Output Data and Storage Volume with AWS KMS) "
    "names kms:GenerateDataKey* and kms:ReEncrypt* for the labelling job's role"
)


def acknowledge_workflow(stack: Stack, config: Config) -> None:
    """The findings of the workflow stack (infra.stack.WorkflowStack, which calls this): wildcards that name a
    prefix or a name pattern we own, actions without resource types, and the buckets' notification handler that
    CDK provides."""
    storage, roles = stack.storage, stack.roles
    data, artifacts = storage.data, storage.artifacts
    pipeline_prefix = f"{_arn_of(artifacts)}/{config.pipeline_name}/*"
    group = config.model_package_group.lower()

    def sagemaker(resource: str) -> str:
        return REGIONAL.format(service="sagemaker", resource=resource)

    reads = []
    for bucket, prefix in input_prefixes(config, data.bucket_name):
        shown = f"<{_logical_id(data)}>" if bucket == data.bucket_name else bucket
        reads.append((f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::{shown}/{prefix}*]", f"Reads the pipeline's input prefix {prefix}"))
    log_groups = [*JOB_LOG_GROUPS, *(endpoint_log_group(endpoint) for endpoint in workflow_stages(config).values())]
    acknowledge(
        roles.execution,
        (
            "AwsSolutions-IAM5[Resource::*]",
            "cloudwatch:PutMetricData (scoped by a namespace condition) and ecr:GetAuthorizationToken have no resource type",
        ),
        *(
            (
                f"AwsSolutions-IAM5[Resource::{REGIONAL.format(service='logs', resource=f'log-group:{group}')}:log-stream:*]",
                f"SageMaker names a log stream per job or variant and instance in {group}",
            )
            for group in log_groups
        ),
        (f"AwsSolutions-IAM5[Resource::{pipeline_prefix}]", "Each execution writes under <pipeline>/<execution id>/, unknown until it runs"),
        (f"AwsSolutions-IAM5[Resource::{_arn_of(artifacts)}/data-capture/*]", "The endpoint captures requests under data-capture/<endpoint>/<date>/"),
        (f"AwsSolutions-IAM5[Resource::{_arn_of(data)}/{BATCH_PREFIX}*]", "Batch Transform jobs read the photos a person put under batch/<name>/"),
        (f"AwsSolutions-IAM5[Resource::{_arn_of(artifacts)}/{BATCH_PREFIX}*]", "Batch Transform jobs write <photo>.out under batch/<name>/"),
        *reads,
    )
    acknowledge(
        roles.pipeline,
        *(
            (
                f"AwsSolutions-IAM5[Resource::{sagemaker(f'{kind}/{PIPELINE_JOBS}')}]",
                "SageMaker Pipelines names each job pipelines-<execution>-<step>-<token>-<retries>; unknown until it runs",
            )
            for kind in ("processing-job", "training-job")
        ),
        (f"AwsSolutions-IAM5[Resource::{sagemaker(f'model-package/{group}/*')}]", "Register creates a new version in our group each run"),
        (f"AwsSolutions-IAM5[Resource::{pipeline_prefix}]", "The quality gate reads <pipeline>/<execution id>/evaluation/evaluation.json"),
    )
    output_bucket, output_prefix = config.labeling_output(data.bucket_name)
    shown_bucket = f"<{_logical_id(data)}>" if output_bucket == data.bucket_name else output_bucket
    labels = f"arn:<AWS::Partition>:s3:::{shown_bucket}/{output_prefix}*"
    labeling_logs = REGIONAL.format(service="logs", resource="log-group:/aws/sagemaker/LabelingJobs")
    acknowledge(
        roles.labeling,
        ("AwsSolutions-IAM5[Action::kms:GenerateDataKey*]", GROUND_TRUTH_KEY),
        ("AwsSolutions-IAM5[Action::kms:ReEncrypt*]", GROUND_TRUTH_KEY),
        (f"AwsSolutions-IAM5[Resource::{_arn_of(data)}/images/*]", "Ground Truth shows the workers any image the input manifest names"),
        (f"AwsSolutions-IAM5[Resource::{_arn_of(data)}/manifests/*]", "The input manifests to label, named per batch"),
        (f"AwsSolutions-IAM5[Resource::{_arn_of(artifacts)}/labeling/*]", "The task page and label categories cardamage label uploads per job"),
        (f"AwsSolutions-IAM5[Resource::{labels}]", "Ground Truth writes <prefix>/<job>/manifests, annotations and activelearning files"),
        (f"AwsSolutions-IAM5[Resource::{labeling_logs}:log-stream:*]", "Ground Truth names a log stream per labelling job"),
        ("AwsSolutions-IAM5[Resource::*]", "cloudwatch:PutMetricData has no resource type; Ground Truth publishes the workers' metrics with it"),
    )
    deploying = [
        NO_RESOURCE_TYPE,
        (
            f"AwsSolutions-IAM5[Resource::{sagemaker(f'model-package/{group}/*')}]",
            "Any version of our group may be approved and is described before deploying",
        ),
        *_deploying(config),
    ]
    acknowledge(
        stack.deployment.function.role,
        *deploying,
        PUBLISHING,
        (f"AwsSolutions-IAM5[Resource::{pipeline_prefix}]", "The model archive to check is under <pipeline>/<execution id>/, any execution's"),
    )
    acknowledge(
        stack.deployment.champion_function.role,
        (f"AwsSolutions-IAM5[Resource::{sagemaker(f'model-package/{group}/*')}]", "The served package may be any version of our group"),
        SERVED_CONFIG,
    )
    trigger = stack.trigger.function
    labels_prefix, snapshots_prefix = config.labels_prefix(data.bucket_name).key, config.snapshots_prefix(data.bucket_name).key
    acknowledge(
        trigger.role,
        (f"AwsSolutions-IAM5[Resource::{_arn_of(data)}/{labels_prefix}*]", "Teams upload label exports under labels/<batch>/, any name"),
        (
            f"AwsSolutions-IAM5[Resource::{f'{_arn_of(data)}/{output_prefix}*' if output_bucket == data.bucket_name else labels}]",
            "Ground Truth writes <prefix>/<job>/manifests/output/output.manifest",
        ),
        (f"AwsSolutions-IAM5[Resource::{_arn_of(data)}/{snapshots_prefix}*]", "Each snapshot is written under snapshots/<id>/, named when taken"),
    )
    _acknowledge_people(stack, config, reads, deploying)
    if stack.drift is not None:
        _acknowledge_drift(stack.drift, config)
    acknowledge(
        stack,
        (
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
            "CDK's own handler that turns on the data bucket's EventBridge notifications at deploy time; it only writes its logs",
        ),
    )


# deploy.served_package reads the tags of whatever config the endpoint is on (infra.deployment.read_endpoint_configs).
SERVED_CONFIG = (
    f"AwsSolutions-IAM5[Resource::{REGIONAL.format(service='sagemaker', resource='endpoint-config/*')}]",
    "Only reads (describe, tags): the endpoint's current config may be another project's or hand-made, and its tags say whether it is ours",
)
NO_RESOURCE_TYPE = (
    "AwsSolutions-IAM5[Resource::*]",
    "Application Auto Scaling's target and policy actions for SageMaker variants take no resource ARN",
)
PUBLISHING = ("AwsSolutions-IAM5[Action::kms:GenerateDataKey*]", "Publishing a rollback notice to the topic encrypted with the project's key")


def _deploying(config: Config) -> list[tuple[str, str]]:
    """The name patterns of deploying to an endpoint (infra.deployment.endpoint_statements), in any account."""
    group = config.model_package_group.lower()
    return [
        (
            f"AwsSolutions-IAM5[Resource::{REGIONAL.format(service='sagemaker', resource=f'model/{group}-v*')}]",
            "Models are named <group>-v<version>-<hash> per approved version",
        ),
        (
            f"AwsSolutions-IAM5[Resource::{REGIONAL.format(service='sagemaker', resource=f'endpoint-config/{group}-v*')}]",
            "Endpoint configs are named <group>-v<version>-<hash> per version",
        ),
        (
            f"AwsSolutions-IAM5[Resource::{REGIONAL.format(service='cloudwatch', resource='alarm:TargetTracking-endpoint/*')}]",
            "Target tracking creates its alarms as TargetTracking-endpoint/<endpoint>/...; the name is Application Auto Scaling's",
        ),
        SERVED_CONFIG,
    ]


def _acknowledge_drift(drift: DriftMonitoring, config: Config, reads: Sequence[tuple[str, str]] = ()) -> None:
    """Drift monitoring's roles (infra.drift): the monitoring job's, the starter's, the metrics function's and the
    schedules', in the workflow stack or a stage account's (whose starter also has `reads`: the workflow account's
    package and baselines). Each wildcard is a folder per endpoint, per window or per execution, or a name per job."""
    watched = drift.watched
    artifacts = _arn_of(watched.bucket)  # the bucket of the captures and reports: the workflow's artifacts, or the stage's own
    endpoints = list(watched.endpoints.values())
    jobs = (
        f"AwsSolutions-IAM5[Resource::{REGIONAL.format(service='sagemaker', resource=f'processing-job/{config.monitoring_job_prefix}-*')}]",
        "Monitoring jobs are named <project>-monitor-<window start>-<stage>, one per window, named when the window ends",
    )

    def reports(why: str) -> list[tuple[str, str]]:
        return [(f"AwsSolutions-IAM5[Resource::{artifacts}/{MONITORING_PREFIX}/{endpoint}/*]", why) for endpoint in endpoints]

    processing_logs = REGIONAL.format(service="logs", resource=f"log-group:{PROCESSING_LOGS}")
    wildcard = f"AwsSolutions-IAM5[Resource::{artifacts}"
    accuracy, reviews = [], []
    if watched.data:  # the accuracy in service: the label files and review batches
        labels = config.labels_prefix(watched.data.bucket_name).key
        accuracy = [
            (f"AwsSolutions-IAM5[Resource::{_arn_of(watched.data)}/{labels}*]", "Label exports land under labels/<batch>/, any batch"),
            *(
                (f"{wildcard}/{MONITORING_PREFIX}/{endpoint}/*/{name}]", "The starter writes a window's input manifests into its report folder")
                for endpoint in endpoints
                for name in MANIFESTS
            ),
        ]
        reviews = [(f"{wildcard}/{REVIEW_PREFIX}*{monitor_start.REVIEW}]", "cardamage review --output puts review.json under review/<batch>/")]
    if watched.workflow_account:
        baselines = [
            (
                f"{wildcard}/{MONITORING_PREFIX}/{endpoint}/*/{monitor_start.BASELINE_COPIES}*]",
                "The starter copies a package's baselines into each window's folder",
            )
            for endpoint in endpoints
        ]
    else:
        baselines = [(f"{wildcard}/{baselines_prefix(config)}*]", "A package's baselines are in its execution's evaluation/ folder, any execution's")]
    acknowledge(
        drift.job_role,
        *accuracy,
        *((f"{wildcard}/{DATA_CAPTURE}/{endpoint}/*]", "SageMaker writes captures hourly under data-capture/<endpoint>/") for endpoint in endpoints),
        *baselines,
        *reports("Each window's report is written under monitoring/<endpoint>/<window start>/"),
        (f"AwsSolutions-IAM5[Resource::{processing_logs}:log-stream:*]", "SageMaker names a log stream per processing job and instance"),
        (
            "AwsSolutions-IAM5[Resource::*]",
            "cloudwatch:PutMetricData (scoped by a namespace condition) and ecr:GetAuthorizationToken have no resource type",
        ),
    )
    group = config.model_package_group.lower()
    packages = [
        (
            f"AwsSolutions-IAM5[Resource::{REGIONAL.format(service='sagemaker', resource=f'model-package/{group}/*')}]",
            "The served package, whose baselines the job reads, may be any version of our group",
        )
    ]
    acknowledge(
        drift.starter.role,
        *(reads or packages),
        SERVED_CONFIG,
        jobs,
        *reports("A window without captures gets its empty monitor.json under monitoring/<endpoint>/<window start>/"),
        *reviews,
    )
    acknowledge(
        drift.metrics_function.role,
        ("AwsSolutions-IAM5[Resource::*]", "cloudwatch:PutMetricData has no resource type; a condition limits it to the project's namespace"),
        jobs,
        *reports("The function reads each window's monitor.json under monitoring/<endpoint>/<window start>/"),
    )
    acknowledge(
        drift.scheduler_role,
        (
            f"AwsSolutions-IAM5[Resource::{_arn_of(drift.starter)}:*]",
            "CDK's Lambda target for EventBridge Scheduler also grants the function's versions and aliases; the starter has none",
        ),
    )


def _acknowledge_people(stack: Stack, config: Config, reads: list[tuple[str, str]], deploying: list[tuple[str, str]]) -> None:
    """The approvers' and operators' policies (infra.people): the same name patterns as the roles whose work they
    watch or do by hand."""
    people, storage = stack.people, stack.storage
    artifacts = _arn_of(storage.artifacts)
    group, pipeline = config.model_package_group.lower(), config.pipeline_name.lower()

    def sagemaker(resource: str) -> str:
        return REGIONAL.format(service="sagemaker", resource=resource)

    def wildcard(resource: str) -> str:
        return f"AwsSolutions-IAM5[Resource::{resource}]"

    reading = [
        (wildcard(sagemaker(f"pipeline/{pipeline}/execution/*")), "Execution ids are chosen by SageMaker when each execution starts"),
        (wildcard(sagemaker(f"model-package/{group}/*")), "Every version of our group is listed, described and may be approved"),
        (wildcard(sagemaker(f"endpoint-config/{group}-v*")), "The served endpoint config is named <group>-v<version>-<hash> per version"),
        (wildcard("*"), "sagemaker:ListModelPackages has no resource type (the group is a request parameter)"),
        (wildcard(f"{artifacts}/{config.pipeline_name}/*"), "Evaluation reports are under <pipeline>/<execution id>/evaluation/"),
        (wildcard(f"{artifacts}/{MONITORING_PREFIX}/*"), "cardamage monitor and models read the drift reports under monitoring/<endpoint>/<window>/"),
        (
            wildcard(REGIONAL.format(service="cloudformation", resource=f"stack/{config.stack_name}/*")),
            "A stack ARN ends in its id, unknown before deploying; the CLI reads its outputs by name",
        ),
    ]
    acknowledge(people.approver, *reading)
    batch_jobs = sagemaker(f"transform-job/{config.project.name}-batch-*")
    acknowledge(
        people.operator,
        *reading,
        *deploying,
        *((rule, f"{reason}; operators also write review photos, pulled labels and snapshots there") for rule, reason in reads),
        (wildcard(batch_jobs), "cardamage batch-predict names each job <project>-batch-v<version>-<UTC time>"),
        (wildcard(sagemaker("labeling-job/*")), "cardamage label takes any job name a person gives it (--job-name)"),
        (wildcard(f"{artifacts}/{DATA_CAPTURE}/*"), "cardamage review reads the captures under data-capture/<endpoint>/<date>/"),
        (
            wildcard(f"{artifacts}/{REVIEW_PREFIX}*{monitor_start.REVIEW}"),
            "cardamage monitor --since reads each review batch's review.json under review/<batch>/, as the drift monitor's starter does",
        ),
        (
            wildcard(f"arn:<AWS::Partition>:s3:::<{_logical_id(storage.data)}>/{BATCH_PREFIX}*"),
            "Operators upload the photos of a batch-predict under batch/<name>/",
        ),
        *(
            (wildcard(f"{artifacts}/{prefix}*"), f"Written per run under {prefix} by cardamage {command}")
            for prefix, command in ((LABELING_FILES, "label"), (BATCH_PREFIX, "batch-predict"), (REVIEW_PREFIX, "review --output"))
        ),
    )


def acknowledge_stage(stack: Stack, config: Config) -> None:
    """The findings of a stage account's stack (infra.stage_stack.StageStack, which calls this): its roles read the
    workflow account's packages, archives and key by pattern, since that account's ids are not known here, and deploy
    to the stage's endpoint by the same name patterns as the workflow's deployment."""
    reads = _workflow_reads(stack, config, [model_archives(config)], "The model archives only")
    logs = REGIONAL.format(service="logs", resource=f"log-group:{endpoint_log_group(stack.endpoint_name)}")
    bucket = _arn_of(stack.storage.bucket)
    captures = (
        f"AwsSolutions-IAM5[Resource::{bucket}/{DATA_CAPTURE}/{stack.endpoint_name}/*]",
        "The endpoint captures requests under data-capture/<endpoint>/<variant>/<hour>/, named by SageMaker",
    )
    copies = [(f"AwsSolutions-IAM5[Resource::{bucket}/{MODEL_COPIES}*]", "Model archives are copied to models/<group>/v<version>/<sha256>/")]
    copies = copies if stack.model_copies else []
    acknowledge(
        stack.endpoint_role,
        *reads,
        (f"AwsSolutions-IAM5[Resource::{logs}:log-stream:*]", "SageMaker names a log stream per variant and instance"),
        ("AwsSolutions-IAM5[Resource::*]", "ecr:GetAuthorizationToken has no resource type"),
        captures,
        *copies,
    )
    deploying = [NO_RESOURCE_TYPE, *_deploying(config), *copies]
    acknowledge(stack.deploy_role, *reads, *deploying, PUBLISHING)
    acknowledge(stack.promote_role, *deploying)
    acknowledge(stack.reader_role, SERVED_CONFIG)
    if stack.drift is not None:
        _acknowledge_drift(stack.drift, config, _workflow_reads(stack, config, baseline_files(config), "A package's two baseline files only"))


def _workflow_reads(stack: Stack, config: Config, keys: list[str], what: str) -> list[tuple[str, str]]:
    """A stage role's reads of the workflow account (infra.stage_stack.workflow_reads): its packages, the objects at
    `keys` (`what` they are) and its key, each by pattern, since that account's ids are not known here."""
    workflow = f"{_as_nag_shows(stack.workflow_region, 'Region')}:{stack.workflow_account}"
    return [
        (
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:sagemaker:{workflow}:model-package/{config.model_package_group.lower()}/*]",
            "Any version of our group in the workflow account may be approved or served, and is described",
        ),
        *(
            (
                f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::*/{key}]",
                f"{what}, in a bucket of the workflow account (aws:ResourceAccount) whose name CloudFormation picks there",
            )
            for key in keys
        ),
        (
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:kms:{workflow}:key/*]",
            "The workflow key only, by its alias (kms:ResourceAliases) and through S3: its id is picked by KMS in another account",
        ),
    ]


def _as_nag_shows(value: str, pseudo: str) -> str:
    """A stack's account or region as cdk-nag writes it in a finding id: the literal, or <AWS::...>."""
    return f"<AWS::{pseudo}>" if Token.is_unresolved(value) else value


UNENCRYPTED_BUILDS = (
    "AwsSolutions-CB4",
    "Build outputs are the repository's code and synthesized templates (no secrets); CodeBuild encrypts them with the AWS managed key",
)


def acknowledge_cicd(pipeline) -> None:  # aws_cdk.pipelines.CodePipeline, after build_pipeline()
    """CDK Pipelines' own roles and projects: their policies are what CDK Pipelines generates for moving
    artifacts between stages, and change with CDK releases rather than with this project. CDK Pipelines writes
    the stack's own account and region into its ARNs (literals when the stack has an environment)."""
    stack = Stack.of(pipeline)
    account, region = _as_nag_shows(stack.account, "AccountId"), _as_nag_shows(stack.region, "Region")
    regional = f"arn:<AWS::Partition>:{{service}}:{region}:{account}:{{resource}}"
    artifacts = _arn_of(pipeline.pipeline.artifact_bucket)
    synth, mutation = _logical_id(pipeline.synth_project), _logical_id(pipeline.self_mutation_project)
    grant = "CDK Pipelines' artifact grants (read, write and clean up build artifacts) on the pipeline's own artifact bucket"
    codebuild_logs = regional.format(service="logs", resource="log-group:/aws/codebuild/")
    reports = regional.format(service="codebuild", resource="report-group/")
    acknowledge(
        pipeline,
        *[(f"AwsSolutions-IAM5[Action::s3:{action}]", grant) for action in ("Abort*", "DeleteObject*", "GetBucket*", "GetObject*", "List*")],
        (f"AwsSolutions-IAM5[Resource::{artifacts}/*]", grant),
        (
            "AwsSolutions-IAM5[Resource::*]",
            "Asset publishing needs ecr:GetAuthorizationToken (no resource type); self-mutation reads CloudFormation stacks of the app",
        ),
        (
            f"AwsSolutions-IAM5[Resource::arn:*:iam::{account}:role/*]",
            "Self-mutation and asset publishing assume the CDK bootstrap roles (cdk-<qualifier>-*-role-<account>-<region>) in this account",
        ),
        (f"AwsSolutions-IAM5[Resource::{reports}*]", "CodeBuild test reports of the asset projects, named by CodeBuild"),
        (f"AwsSolutions-IAM5[Resource::{reports}<{synth}>-*]", "CodeBuild test reports of the synth project, named by CodeBuild"),
        (f"AwsSolutions-IAM5[Resource::{reports}<{mutation}>-*]", "CodeBuild test reports of the self-mutation project, named by CodeBuild"),
        (f"AwsSolutions-IAM5[Resource::{codebuild_logs}*]", "CodeBuild log groups of the asset projects, one per project, named by CodeBuild"),
        (f"AwsSolutions-IAM5[Resource::{codebuild_logs}<{synth}>:*]", "The synth project's log streams, named by CodeBuild"),
        (f"AwsSolutions-IAM5[Resource::{codebuild_logs}<{mutation}>:*]", "The self-mutation project's log streams, named by CodeBuild"),
        # With cross-account keys every project uses the artifact bucket's key, and CB4 is not found: not acknowledged then.
        *([UNENCRYPTED_BUILDS] if pipeline.pipeline.artifact_bucket.encryption_key is None else []),
        (
            "AwsSolutions-S1",
            "The pipeline's artifact bucket holds transient build artifacts written only by the pipeline's roles; CloudTrail records its use",
        ),
    )
