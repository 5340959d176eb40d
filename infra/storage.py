"""The customer-managed KMS key and the buckets: labelled data, pipeline artifacts, and their access logs."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from pipelines.config import DATA_CAPTURE_PREFIX, Config, workflow_key_alias
from steps.prepare_data import OUTPUT_FOLDER as PREPARED_DATA

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
            alias=workflow_key_alias(config.project.name),  # stage stacks find the key by it (infra/stage_stack.py)
            description=f"{config.project.name}: data, artifacts, job volumes, captured requests, notifications",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        # The services that publish to the encrypted SNS topic get their use of the key where the rules and
        # alarms that publish are made, with the conditions only those know (infra.monitoring).
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
        # Execution outputs are kept: registered packages and the endpoint read model.tar.gz from
        # <pipeline>/<execution>/model/. PrepareData's output, the photos' TFRecord copies (and Train's checkpoints
        # under it), is <pipeline>/prepared-data/<execution>/ (steps/prepare_data.py), whose own rule expires it: a
        # rule filters by key prefix, tags or size (S3 User Guide, "Adding filters to Lifecycle rules"), so the
        # expiring folder comes before the execution id. Where the two rules overlap, "permanent deletion takes
        # precedence over transition" (S3 User Guide, "How Amazon S3 handles conflicts in lifecycle configurations").
        # In these versioned buckets an expired object becomes a noncurrent version, which ExpireReplacedVersions
        # deletes (S3 User Guide, "Expiring objects").
        pipeline_outputs = s3.LifecycleRule(
            id="ExecutionOutputs",
            prefix=f"{config.pipeline_name}/",
            transitions=[s3.Transition(storage_class=s3.StorageClass.INTELLIGENT_TIERING, transition_after=Duration.days(0))],
        )
        captured = s3.LifecycleRule(id="ExpireCapturedData", prefix=f"{DATA_CAPTURE}/", expiration=Duration.days(infra.data_capture_expiration_days))
        rules = [expire_old_versions, pipeline_outputs, captured]
        if infra.artifact_expiration_days:  # null: a team keeps its prepared data
            prepared = f"{config.pipeline_name}/{PREPARED_DATA}/"
            rules.append(s3.LifecycleRule(id="ExpirePreparedData", prefix=prepared, expiration=Duration.days(infra.artifact_expiration_days)))
        self.artifacts = s3.Bucket(self, "Artifacts", **common, server_access_logs_prefix="artifacts/", lifecycle_rules=rules)

    def data_capture_uri(self, config: Config) -> str:
        """Where the endpoint approvals deploy to captures requests and answers (the deployment function's
        DATA_CAPTURE_S3_URI; a later stage's endpoint captures beside it, under its own name)."""
        return str(config.data_capture(self.artifacts.bucket_name, config.approval_endpoint))
