"""The customer-managed KMS key and the buckets: labelled data, pipeline artifacts, and their access logs."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from pipelines.config import DATA_CAPTURE_PREFIX, Config

# Key prefixes in the artifacts bucket besides each execution's outputs (<pipeline name>/<execution id>/...).
DATA_CAPTURE = DATA_CAPTURE_PREFIX


def grants_for_aws_resources(sid: str, key: kms.IKey) -> iam.PolicyStatement:
    """CreateGrant and DescribeKey on the key, for grants that AWS services make for the resources they encrypt
    with it (job and endpoint volumes: kms:GrantIsForAWSResource), and no others."""
    return iam.PolicyStatement(
        sid=sid, actions=["kms:CreateGrant", "kms:DescribeKey"], resources=[key.key_arn], conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}}
    )


class Storage(Construct):
    """One key encrypts every bucket, job volume and output, the SNS topic and captured data. Buckets are kept
    when the stack is deleted (RETAIN): labelled data and registered models outlive the infrastructure."""

    def __init__(self, scope: Construct, id: str, *, config: Config) -> None:
        super().__init__(scope, id)
        infra = config.infrastructure
        self.key = kms.Key(
            self,
            "Key",
            alias=f"alias/{config.project.name}",
            description=f"{config.project.name}: data, artifacts, job volumes, captured requests, notifications",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        # Services that write into encrypted resources on our behalf: EventBridge and CloudWatch alarms publish
        # to the encrypted SNS topic.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="NotificationsPublishToTheEncryptedTopic",
                principals=[iam.ServicePrincipal("events.amazonaws.com"), iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],  # in a key policy, "*" is this key
            )
        )
        expire_old_versions = s3.LifecycleRule(
            id="ExpireReplacedVersions",
            noncurrent_version_expiration=Duration.days(infra.noncurrent_version_expiration_days),
            abort_incomplete_multipart_upload_after=Duration.days(7),
        )
        # Server access logs cannot be delivered to a bucket encrypted with a customer key: SSE-S3 here.
        self.logs = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,  # logging is granted by bucket policy (cdk.json flag)
            lifecycle_rules=[expire_old_versions, s3.LifecycleRule(id="ExpireLogs", expiration=Duration.days(infra.access_log_expiration_days))],
            removal_policy=RemovalPolicy.RETAIN,
        )
        common = dict(
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,  # one data key per bucket and period: far fewer KMS requests
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.logs,
            removal_policy=RemovalPolicy.RETAIN,
        )
        # Images, manifests and Ground Truth's output. EventBridge notifications on: the new-manifest trigger.
        self.data = s3.Bucket(
            self, "Data", **common, server_access_logs_prefix="data/", event_bridge_enabled=True, lifecycle_rules=[expire_old_versions]
        )
        pipeline_outputs = s3.LifecycleRule(
            id="ExecutionOutputs",
            prefix=f"{config.pipeline_name}/",
            transitions=[s3.Transition(storage_class=s3.StorageClass.INTELLIGENT_TIERING, transition_after=Duration.days(0))],
            expiration=Duration.days(infra.artifact_expiration_days) if infra.artifact_expiration_days else None,
        )
        captured = s3.LifecycleRule(id="ExpireCapturedData", prefix=f"{DATA_CAPTURE}/", expiration=Duration.days(infra.data_capture_expiration_days))
        self.artifacts = s3.Bucket(
            self, "Artifacts", **common, server_access_logs_prefix="artifacts/", lifecycle_rules=[expire_old_versions, pipeline_outputs, captured]
        )

    def data_capture_uri(self, config: Config) -> str:
        """Where the endpoint approvals deploy to captures requests and answers (the deployment function's
        DATA_CAPTURE_S3_URI; a later stage's endpoint captures beside it, under its own name)."""
        return str(config.data_capture(self.artifacts.bucket_name, config.approval_endpoint))
