"""Customer-managed policies for the people who run the CLI against the stack, scoped to this project's resources.

- ApproverPolicy: what `cardamage approve` (without --force), `reject`, `models` and `executions` call: read the
  pipeline's executions, the group's packages and their evaluation reports, which package each endpoint serves,
  and set a package's approval status.
- OperatorPolicy: what `start`, `wait`, `executions`, `models`, `deploy`, `promote`, `review`, `monitor`, `label`,
  `batch-predict` and `predict` call: the reads above, starting executions on dataset snapshots, the deployment
  code's own calls (infra.deployment.deployment_statements: `cardamage deploy` runs the function's code), calling
  the endpoints, Batch Transform and Ground Truth jobs, and the data and artifact prefixes those commands read
  and write; with release stages in accounts of their own, assuming each one's promote role. `approve --force`
  deploys too, so it needs both. Not `upsert`: the stack owns the pipeline.

The stack outputs both ARNs; attach them to the approvers' and operators' own roles or groups.
tests/infra/test_role_calls.py holds each to the calls its commands make.
"""

from __future__ import annotations

from aws_cdk import Aws
from aws_cdk import aws_iam as iam
from constructs import Construct

from containers.deploy import monitor_start
from infra.arns import arn, sagemaker_arn
from infra.deployment import deployment_statements
from infra.roles import Roles, input_prefixes, list_under
from infra.storage import DATA_CAPTURE, Storage
from pipelines.config import BATCH_PREFIX, MONITORING_PREFIX, PROMOTE_ROLE, READER_ROLE, REVIEW_PREFIX, Config, stage_role_arn

LABELING_FILES = "labeling/"  # the task page and label categories `cardamage label` uploads to the artifacts bucket


def reading_statements(scope: Construct, config: Config, storage: Storage, pipeline_arn: str) -> list[iam.PolicyStatement]:
    """What `executions` and `models` read: the pipeline and its executions, the group's packages with their
    evaluation reports, and which package each release stage's endpoint serves (its config's tags)."""
    group = config.model_package_group
    return [
        iam.PolicyStatement(
            sid="ReadThePipeline", actions=["sagemaker:DescribePipeline", "sagemaker:ListPipelineExecutions"], resources=[pipeline_arn]
        ),
        iam.PolicyStatement(
            sid="ReadItsExecutions",
            actions=["sagemaker:DescribePipelineExecution", "sagemaker:ListPipelineExecutionSteps", "sagemaker:ListPipelineParametersForExecution"],
            resources=[f"{pipeline_arn}/execution/*"],
        ),
        iam.PolicyStatement(
            sid="ReadTheGroup", actions=["sagemaker:DescribeModelPackageGroup"], resources=[sagemaker_arn(scope, "model-package-group", group)]
        ),
        iam.PolicyStatement(
            sid="ReadThePackages", actions=["sagemaker:DescribeModelPackage"], resources=[sagemaker_arn(scope, "model-package", f"{group}/*")]
        ),
        iam.PolicyStatement(sid="ListThePackages", actions=["sagemaker:ListModelPackages"], resources=["*"]),  # has no resource type
        iam.PolicyStatement(
            sid="ReadWhatIsServed",
            actions=["sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig", "sagemaker:ListTags"],
            resources=[
                *(sagemaker_arn(scope, "endpoint", endpoint) for endpoint in config.stage_endpoints.values()),
                sagemaker_arn(scope, "endpoint-config", f"{group}-v*"),
            ],
        ),
        iam.PolicyStatement(
            sid="ReadEvaluationReports", actions=["s3:GetObject"], resources=[storage.artifacts.arn_for_objects(f"{config.pipeline_name}/*")]
        ),
        # `models` shows each package's accuracy in service from the newest drift report of each endpoint, found by
        # listing monitoring/<endpoint>/ (the bucket's name comes from the stack's outputs).
        list_under("ListMonitorReports", storage.artifacts.bucket_arn, [f"{MONITORING_PREFIX}/"]),
        iam.PolicyStatement(
            sid="ReadMonitorReports", actions=["s3:GetObject"], resources=[storage.artifacts.arn_for_objects(f"{MONITORING_PREFIX}/*")]
        ),
        iam.PolicyStatement(
            sid="ReadTheStackOutputs",  # the CLI's account values (pipelines/aws.py with_stack_values)
            actions=["cloudformation:DescribeStacks"],
            resources=[arn(scope, "cloudformation", "stack", f"{config.stack_name}/*")],
        ),
        iam.PolicyStatement(sid="DecryptWithTheKey", actions=["kms:Decrypt"], resources=[storage.key.key_arn]),
    ]


def stage_role_statements(config: Config, kind: str, sid: str) -> list[iam.PolicyStatement]:
    """Assuming one kind of role in each stage account (the stage stacks' roles trust this account): none without
    stage accounts. `cardamage promote` to or from such a stage assumes its promote role; `models` and the console
    read what it serves as its reader role."""
    project = config.project.name
    roles = [stage_role_arn(project, stage, place.account, kind, partition=Aws.PARTITION) for stage, place in config.stage_accounts.items()]
    return [iam.PolicyStatement(sid=sid, actions=["sts:AssumeRole"], resources=roles)] if roles else []


class People(Construct):
    def __init__(self, scope: Construct, id: str, *, config: Config, storage: Storage, roles: Roles, pipeline_arn: str) -> None:
        super().__init__(scope, id)
        name = config.project.name
        self.approver = iam.ManagedPolicy(
            self,
            "Approver",
            description=f"{name}: approve or reject model packages, list packages and executions (cardamage approve, reject, models, executions)",
            statements=[
                *reading_statements(self, config, storage, pipeline_arn),
                iam.PolicyStatement(
                    sid="SetApprovalStatus",
                    actions=["sagemaker:UpdateModelPackage"],
                    resources=[sagemaker_arn(self, "model-package", f"{config.model_package_group}/*")],
                ),
                *stage_role_statements(config, READER_ROLE, "AssumeStageReaderRoles"),
            ],
        )
        self.operator = iam.ManagedPolicy(
            self,
            "Operator",
            description=f"{name}: start executions, deploy and promote, label, review, batch-predict and predict (cardamage)",
            statements=[
                *reading_statements(self, config, storage, pipeline_arn),
                iam.PolicyStatement(sid="StartExecutions", actions=["sagemaker:StartPipelineExecution"], resources=[pipeline_arn]),
                *deployment_statements(self, config, storage=storage, execution_role_arn=roles.execution.role_arn),
                iam.PolicyStatement(
                    sid="CallTheEndpoints",
                    actions=["sagemaker:InvokeEndpoint"],
                    resources=[sagemaker_arn(self, "endpoint", endpoint) for endpoint in config.stage_endpoints.values()],
                ),
                iam.PolicyStatement(
                    sid="BatchTransform",  # jobs are named <project>-batch-v<version>-<UTC time>
                    actions=["sagemaker:CreateTransformJob", "sagemaker:DescribeTransformJob", "sagemaker:AddTags"],
                    resources=[sagemaker_arn(self, "transform-job", f"{name}-batch-*")],
                ),
                iam.PolicyStatement(
                    sid="LabelingJobs",  # any name `cardamage label --job-name` takes
                    actions=["sagemaker:CreateLabelingJob", "sagemaker:AddTags"],
                    resources=[sagemaker_arn(self, "labeling-job", "*")],
                ),
                iam.PolicyStatement(
                    sid="PassTheLabelingRoleToSageMakerOnly",
                    actions=["iam:PassRole"],
                    resources=[roles.labeling.role_arn],
                    conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
                ),
                *self._data_statements(config, storage),
                *stage_role_statements(config, PROMOTE_ROLE, "AssumeStagePromoteRoles"),
                *stage_role_statements(config, READER_ROLE, "AssumeStageReaderRoles"),
            ],
        )

    def _data_statements(self, config: Config, storage: Storage) -> list[iam.PolicyStatement]:
        """The prefixes the commands read (labelled data, execution outputs, captured requests, batch answers)
        and write (snapshots, review batches and pulled labels, Ground Truth's task files, batch summaries)."""
        data, artifacts = storage.data, storage.artifacts
        reads = [f"arn:{Aws.PARTITION}:s3:::{bucket}/{prefix}*" for bucket, prefix in input_prefixes(config, data.bucket_name)]
        bucket = data.bucket_name
        writes = [
            f"arn:{Aws.PARTITION}:s3:::{location.bucket}/{location.key}*"
            for location in (
                config.images_prefix(bucket),
                config.labels_prefix(bucket),
                config.snapshots_prefix(bucket),
                config.batch_prefixes(bucket, artifacts.bucket_name)[0],  # the photos batch-predict reads, which operators upload
            )
        ]
        return [
            iam.PolicyStatement(
                sid="ListTheBuckets", actions=["s3:ListBucket", "s3:ListBucketVersions"], resources=[data.bucket_arn, artifacts.bucket_arn]
            ),
            iam.PolicyStatement(
                sid="ReadData",
                actions=["s3:GetObject", "s3:GetObjectVersion"],
                resources=[
                    *reads,
                    artifacts.arn_for_objects(f"{config.pipeline_name}/*"),
                    artifacts.arn_for_objects(f"{DATA_CAPTURE}/*"),
                    artifacts.arn_for_objects(f"{BATCH_PREFIX}*"),
                ],
            ),
            # `cardamage monitor --since` finds the capture files review batches took photos from as the drift
            # monitor's starter does: through each batch's review.json (not its photos).
            iam.PolicyStatement(
                sid="ReadReviewBatches",
                actions=["s3:GetObject"],
                resources=[artifacts.arn_for_objects(f"{REVIEW_PREFIX}*{monitor_start.REVIEW}")],
            ),
            iam.PolicyStatement(
                sid="WriteData",
                actions=["s3:PutObject"],
                resources=[*writes, *(artifacts.arn_for_objects(f"{prefix}*") for prefix in (LABELING_FILES, BATCH_PREFIX, REVIEW_PREFIX))],
            ),
            iam.PolicyStatement(sid="EncryptWithTheKey", actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[storage.key.key_arn]),
        ]
