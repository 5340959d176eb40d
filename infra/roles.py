"""The SageMaker execution role (jobs, models, the endpoint) and the SageMaker Pipeline's own role.

Least privilege, statement by statement, with no managed policy (no AmazonSageMakerFullAccess):
- the execution role reads the labelled data under the pipeline's input prefixes, reads and writes its
  pipeline's prefix of the artifacts bucket and the endpoint's data-capture prefix, uses the KMS key, pulls
  the project's images (and the region's TensorFlow Serving image), and writes the log groups of its jobs
  and of the project's endpoints;
- the pipeline role starts and watches the jobs SageMaker Pipelines names (pipelines-*), registers packages
  in our group with the configured approval status only, passes the execution role to SageMaker and no
  other service, invokes the deployment function, and reads evaluation.json (the quality gate's property
  file) from its prefix. Neither may call UpdateModelPackage: only a person approves.
"""

from __future__ import annotations

from collections.abc import Iterable

from aws_cdk import Aws
from aws_cdk import aws_iam as iam
from constructs import Construct

from containers.common.s3 import S3Location, parse_s3_uri
from infra.arns import arn, sagemaker_arn
from infra.cross_account import workflow_stages
from infra.storage import DATA_CAPTURE, Storage, grants_for_aws_resources
from pipelines.config import Config


def input_prefixes(config: Config, data_bucket: str) -> list[S3Location]:
    """(bucket, prefix) pairs the pipeline reads: manifests, images, Ground Truth's output, label exports, the
    dataset snapshots the trigger starts executions on, the pretrained checkpoint."""
    locations = [
        config.input_manifests(data_bucket),
        config.images_prefix(data_bucket),
        config.labeling_output(data_bucket),
        config.labels_prefix(data_bucket),
        config.snapshots_prefix(data_bucket),
    ]
    if config.training.pretrained_checkpoint_uri:
        locations.append(parse_s3_uri(config.training.pretrained_checkpoint_uri))
    return locations


def list_under(sid: str, bucket_arn: str, prefixes: Iterable[str], actions: Iterable[str] = ("s3:ListBucket",)) -> iam.PolicyStatement:
    """Listing a bucket (ListBucket, or ListBucketVersions: "The s3:ListBucketVersions permission also supports
    the s3:prefix condition key", "Examples of Amazon S3 condition keys") for the keys under `prefixes` only."""
    return iam.PolicyStatement(
        sid=sid, actions=list(actions), resources=[bucket_arn], conditions={"StringLike": {"s3:prefix": sorted({f"{p}*" for p in prefixes})}}
    )


# The log groups SageMaker writes a job's or an endpoint's output to ("Log groups and streams that Amazon
# SageMaker AI sends to Amazon CloudWatch Logs", https://docs.aws.amazon.com/sagemaker/latest/dg/logging-cloudwatch.html).
JOB_LOG_GROUPS = ("/aws/sagemaker/ProcessingJobs", "/aws/sagemaker/TrainingJobs", "/aws/sagemaker/TransformJobs")


def endpoint_log_group(endpoint: str) -> str:
    return f"/aws/sagemaker/Endpoints/{endpoint}"


def sagemaker_role(scope: Construct, id: str, description: str) -> iam.Role:
    """A role SageMaker assumes: for jobs and models, for a pipeline, for labelling jobs; its policies are added after."""
    return iam.Role(scope, id, assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"), description=description)


# SageMaker Pipelines names the jobs of a step pipelines-<execution id>-<step name>-<token>-<failures> unless the
# definition turns on custom prefixes (it does not: steps/ sets no job names, tests/infra holds that):
# "IAM Access Management", Customize access management for Pipelines jobs,
# https://docs.aws.amazon.com/sagemaker/latest/dg/build-and-manage-access.html#build-and-manage-step-permissions-prefix
PIPELINE_JOBS = "pipelines-*"


class Roles(Construct):
    def __init__(self, scope: Construct, id: str, *, config: Config, storage: Storage) -> None:
        super().__init__(scope, id)
        artifacts, data = storage.artifacts, storage.data
        self.execution = sagemaker_role(self, "SageMakerExecution", f"{config.project.name}: processing and training jobs, models and the endpoint")
        reads = input_prefixes(config, data.bucket_name)
        by_bucket: dict[str, list[str]] = {}
        for bucket, prefix in reads:
            by_bucket.setdefault(bucket, []).append(prefix)
        self.execution.add_to_policy(
            iam.PolicyStatement(
                sid="ReadLabelledData",
                actions=["s3:GetObject"],
                resources=[f"arn:{Aws.PARTITION}:s3:::{bucket}/{prefix}*" for bucket, prefix in reads],
            )
        )
        for index, (bucket, prefixes) in enumerate(by_bucket.items()):
            self.execution.add_to_policy(list_under(f"ListLabelledData{index}", f"arn:{Aws.PARTITION}:s3:::{bucket}", prefixes))
        pipeline_prefix = f"{config.pipeline_name}/"
        self.execution.add_to_policy(
            iam.PolicyStatement(
                sid="ReadWriteExecutionOutputs",
                actions=["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
                resources=[artifacts.arn_for_objects(f"{pipeline_prefix}*")],
            )
        )
        self.execution.add_to_policy(
            iam.PolicyStatement(sid="WriteCapturedData", actions=["s3:PutObject"], resources=[artifacts.arn_for_objects(f"{DATA_CAPTURE}/*")])
        )
        # cardamage batch-predict's transform jobs run as this role: photos in, answers out (Config.batch_prefixes).
        batch_in, batch_out = config.batch_prefixes(data.bucket_name, artifacts.bucket_name)
        photos, answers = data.arn_for_objects(f"{batch_in.key}*"), artifacts.arn_for_objects(f"{batch_out.key}*")
        self.execution.add_to_policy(iam.PolicyStatement(sid="ReadBatchPhotos", actions=["s3:GetObject"], resources=[photos]))
        self.execution.add_to_policy(list_under("ListBatchPhotos", data.bucket_arn, [batch_in.key]))
        self.execution.add_to_policy(
            iam.PolicyStatement(sid="WriteBatchAnswers", actions=["s3:PutObject", "s3:AbortMultipartUpload"], resources=[answers])
        )
        self.execution.add_to_policy(list_under("ListExecutionOutputs", artifacts.bucket_arn, [pipeline_prefix]))
        # Decrypt: reading SSE-KMS inputs; Encrypt: a KMS key named in a job's output configuration ("How to use
        # SageMaker AI execution roles", each Create API's permissions); GenerateDataKey: uploading to a bucket
        # that encrypts with the key ("Using server-side encryption with AWS KMS keys (SSE-KMS)", S3 user guide).
        # Not ReEncrypt* nor the other GenerateDataKey* variants, which neither page names.
        self.execution.add_to_policy(
            iam.PolicyStatement(
                sid="UseTheKeyForData", actions=["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"], resources=[storage.key.key_arn]
            )
        )
        self.execution.add_to_policy(grants_for_aws_resources("EncryptJobVolumes", storage.key))
        # Processing and training jobs, batch-predict's transform jobs and the project's endpoints in this account run as
        # this role (a stage account's endpoint runs as its own, infra/stage_stack.py).
        groups = [*JOB_LOG_GROUPS, *(endpoint_log_group(endpoint) for endpoint in workflow_stages(config).values())]
        log_groups = [arn(self, "logs", "log-group", group, colon=True) for group in groups]
        self.execution.add_to_policy(
            iam.PolicyStatement(
                sid="WriteSageMakerLogs",
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[*log_groups, *(f"{group}:log-stream:*" for group in log_groups)],
            )
        )
        self.execution.add_to_policy(
            iam.PolicyStatement(
                sid="PublishSageMakerMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],  # PutMetricData has no resource type; the namespace condition scopes it
                conditions={"StringLike": {"cloudwatch:namespace": ["/aws/sagemaker/*", "aws/sagemaker/*"]}},
            )
        )
        self.execution.add_to_policy(
            iam.PolicyStatement(sid="EcrLogin", actions=["ecr:GetAuthorizationToken"], resources=["*"])  # has no resource type
        )

        self.pipeline = sagemaker_role(self, "Pipeline", f"{config.project.name}: SageMaker Pipelines runs {config.pipeline_name} as this role")

        group = config.model_package_group
        self.pipeline.add_to_policy(
            iam.PolicyStatement(
                sid="RunJobs",
                actions=[
                    "sagemaker:CreateProcessingJob",
                    "sagemaker:DescribeProcessingJob",
                    "sagemaker:StopProcessingJob",
                    "sagemaker:CreateTrainingJob",
                    "sagemaker:DescribeTrainingJob",
                    "sagemaker:StopTrainingJob",
                    "sagemaker:AddTags",
                ],
                resources=[sagemaker_arn(self, "processing-job", PIPELINE_JOBS), sagemaker_arn(self, "training-job", PIPELINE_JOBS)],
            )
        )
        packages = [sagemaker_arn(self, "model-package", f"{group}/*"), sagemaker_arn(self, "model-package-group", group)]
        # An execution registers with the configured approval status only, whatever ModelApprovalStatus it was
        # started with: CreateModelPackage takes the condition key sagemaker:ModelApprovalStatus ("Actions,
        # resources, and condition keys for Amazon SageMaker", Service Authorization Reference,
        # https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonsagemaker.html).
        self.pipeline.add_to_policy(
            iam.PolicyStatement(
                sid="RegisterModelsAsConfigured",
                actions=["sagemaker:CreateModelPackage"],
                resources=packages,
                conditions={"StringEquals": {"sagemaker:ModelApprovalStatus": config.registry.approval_status}},
            )
        )
        self.pipeline.add_to_policy(
            iam.PolicyStatement(sid="DescribeAndTagModels", actions=["sagemaker:DescribeModelPackage", "sagemaker:AddTags"], resources=packages)
        )
        self.pipeline.add_to_policy(
            iam.PolicyStatement(
                sid="PassTheExecutionRoleToSageMakerOnly",
                actions=["iam:PassRole"],
                resources=[self.execution.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            )
        )
        self.pipeline.add_to_policy(
            iam.PolicyStatement(sid="ReadEvaluationReports", actions=["s3:GetObject"], resources=[artifacts.arn_for_objects(f"{pipeline_prefix}*")])
        )
        storage.key.grant_decrypt(self.pipeline)
        # The jobs it creates name the key for their volumes and outputs: SageMaker checks the caller may use it.
        self.pipeline.add_to_policy(grants_for_aws_resources("JobsEncryptWithTheKey", storage.key))

        self.labeling = self._labeling_role(config, storage)

    def _labeling_role(self, config: Config, storage: Storage) -> iam.Role:
        """Ground Truth's role for `cardamage label --role-arn`: reads the images and the input manifests, reads the
        task files the CLI uploads under labeling/ in the artifacts bucket, and writes the labels where the
        new-data trigger listens."""
        data, artifacts = storage.data, storage.artifacts
        role = sagemaker_role(self, "Labeling", f"{config.project.name}: Ground Truth labelling jobs (cardamage label --role-arn)")
        output_bucket, output_prefix = config.labeling_output(data.bucket_name)
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadImagesAndManifests",
                actions=["s3:GetObject"],
                resources=[data.arn_for_objects("images/*"), data.arn_for_objects("manifests/*"), artifacts.arn_for_objects("labeling/*")],
            )
        )
        # Ground Truth's execution role needs GetObject, PutObject and AbortMultipartUpload on its buckets, and
        # CloudWatch for worker metrics ("Use IAM Managed Policies with Ground Truth", sms-security-permissions-get-started;
        # "Create a SageMaker Execution Role for a Ground Truth Labeling Job", sms-security-permission-execution-role).
        role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteLabels",
                actions=["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
                resources=[f"arn:{Aws.PARTITION}:s3:::{output_bucket}/{output_prefix}*"],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(sid="PublishLabelingMetrics", actions=["cloudwatch:PutMetricData"], resources=["*"])  # has no resource type
        )
        # Ground Truth documents the key's use for its output as Encrypt, Decrypt, ReEncrypt*, GenerateDataKey*
        # and DescribeKey ("Encrypt Output Data and Storage Volume with AWS KMS", sms-security-kms-permissions):
        # CDK's encrypt-decrypt grant is those but DescribeKey.
        storage.key.grant_encrypt_decrypt(role)
        log_groups = arn(self, "logs", "log-group", "/aws/sagemaker/LabelingJobs", colon=True)
        role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteLabelingLogs",
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[log_groups, f"{log_groups}:log-stream:*"],
            )
        )
        return role

    def allow_lambda_steps(self, *function_arns: str) -> None:
        """The pipeline's Lambda steps (Deploy, FindChampion) invoke the project's functions, and only those."""
        self.pipeline.add_to_policy(iam.PolicyStatement(sid="InvokeLambdaSteps", actions=["lambda:InvokeFunction"], resources=list(function_arns)))
