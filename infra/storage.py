"""The customer-managed KMS key and the buckets: labelled data, pipeline artifacts, and their access logs."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from containers.common.s3 import S3Location
from pipelines.config import DATA_CAPTURE_PREFIX, Config, workflow_key_alias
from steps.prepare_data import OUTPUT_FOLDER as PREPARED_DATA

# Key prefixes in the artifacts bucket besides each execution's outputs (<pipeline name>/<execution id>/...).
DATA_CAPTURE = DATA_CAPTURE_PREFIX
MODEL_COPIES = "models/"  # of a stage bucket: the regional copies of the model archives (StageStorage)


def grants_for_aws_resources(sid: str, key: kms.IKey) -> iam.PolicyStatement:
    """CreateGrant and DescribeKey on the key, for grants that AWS services make for the resources they encrypt
    with it (job and endpoint volumes: kms:GrantIsForAWSResource), and no others."""
    return iam.PolicyStatement(
        sid=sid, actions=["kms:CreateGrant", "kms:DescribeKey"], resources=[key.key_arn], conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}}
    )


def project_key(scope: Construct, id: str, *, description: str, alias: str | None = None) -> kms.Key:
    """A customer-managed key that rotates yearly and outlives the stack (RETAIN): what it encrypts is kept too."""
    return kms.Key(scope, id, alias=alias, description=description, enable_key_rotation=True, removal_policy=RemovalPolicy.RETAIN)


def expire_replaced_versions(config: Config) -> s3.LifecycleRule:
    """In the versioned buckets, a replaced or deleted object's old version goes after a while."""
    return s3.LifecycleRule(
        id="ExpireReplacedVersions",
        noncurrent_version_expiration=Duration.days(config.infrastructure.noncurrent_version_expiration_days),
        abort_incomplete_multipart_upload_after=Duration.days(7),
    )


def expire_captured_data(config: Config) -> s3.LifecycleRule:
    """What the endpoints captured (data-capture/<endpoint>/...) expires."""
    return s3.LifecycleRule(
        id="ExpireCapturedData", prefix=f"{DATA_CAPTURE}/", expiration=Duration.days(config.infrastructure.data_capture_expiration_days)
    )


def access_logs_bucket(scope: Construct, config: Config, expire_old_versions: s3.LifecycleRule) -> s3.Bucket:
    """The buckets' server access logs. They cannot be delivered to a bucket encrypted with a customer key: SSE-S3 here."""
    return s3.Bucket(
        scope,
        "AccessLogs",
        encryption=s3.BucketEncryption.S3_MANAGED,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        enforce_ssl=True,
        versioned=True,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,  # logging is granted by bucket policy (cdk.json flag)
        lifecycle_rules=[
            expire_old_versions,
            s3.LifecycleRule(id="ExpireLogs", expiration=Duration.days(config.infrastructure.access_log_expiration_days)),
        ],
        removal_policy=RemovalPolicy.RETAIN,
    )


def encrypted_bucket(
    scope: Construct, id: str, *, key: kms.IKey, logs: s3.IBucket, logs_prefix: str, lifecycle_rules: list[s3.LifecycleRule], **extra
) -> s3.Bucket:
    """A private, versioned bucket that refuses plain HTTP, encrypts with `key`, logs its access to `logs` under
    `logs_prefix`, and is kept when the stack is deleted."""
    return s3.Bucket(
        scope,
        id,
        encryption=s3.BucketEncryption.KMS,
        encryption_key=key,
        bucket_key_enabled=True,  # one data key per bucket and period: far fewer KMS requests
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        enforce_ssl=True,
        versioned=True,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        server_access_logs_bucket=logs,
        server_access_logs_prefix=logs_prefix,
        lifecycle_rules=lifecycle_rules,
        removal_policy=RemovalPolicy.RETAIN,
        **extra,
    )


class Storage(Construct):
    """One key encrypts every bucket, job volume and output, the SNS topic and captured data. Buckets are kept
    when the stack is deleted (RETAIN): labelled data and registered models outlive the infrastructure."""

    def __init__(self, scope: Construct, id: str, *, config: Config) -> None:
        super().__init__(scope, id)
        infra = config.infrastructure
        self.key = project_key(
            self,
            "Key",
            alias=workflow_key_alias(config.project.name),  # stage stacks find the key by it (infra/stage_stack.py)
            description=f"{config.project.name}: data, artifacts, job volumes, captured requests, notifications",
        )
        # The services that publish to the encrypted SNS topic get their use of the key where the rules and
        # alarms that publish are made, with the conditions only those know (infra.monitoring).
        expire_old_versions = expire_replaced_versions(config)
        self.logs = access_logs_bucket(self, config, expire_old_versions)
        # Images, manifests and Ground Truth's output. EventBridge notifications on: the new-manifest trigger.
        self.data = encrypted_bucket(
            self, "Data", key=self.key, logs=self.logs, logs_prefix="data/", lifecycle_rules=[expire_old_versions], event_bridge_enabled=True
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
        rules = [expire_old_versions, pipeline_outputs, expire_captured_data(config)]
        if infra.artifact_expiration_days:  # null: a team keeps its prepared data
            prepared = f"{config.pipeline_name}/{PREPARED_DATA}/"
            rules.append(s3.LifecycleRule(id="ExpirePreparedData", prefix=prepared, expiration=Duration.days(infra.artifact_expiration_days)))
        self.artifacts = encrypted_bucket(self, "Artifacts", key=self.key, logs=self.logs, logs_prefix="artifacts/", lifecycle_rules=rules)

    def data_capture_uri(self, config: Config) -> str:
        """Where the endpoint approvals deploy to captures requests and answers (the deployment function's
        DATA_CAPTURE_S3_URI; a later stage's endpoint captures beside it, under its own name)."""
        return str(config.data_capture(self.artifacts.bucket_name, config.approval_endpoint))


class StageStorage(Construct):
    """A release stage's own key and bucket in its account (infra/stage_stack.py): what its endpoint captures, the
    customers' photos, is that account's data. A stage in another region than the workflow's also keeps its copies
    of the model archives under models/ (MODEL_COPIES), since SageMaker reads a model's archive from a bucket in the
    endpoint's region (ContainerDefinition, ModelDataUrl, SageMaker API Reference)."""

    def __init__(self, scope: Construct, id: str, *, config: Config, stage: str) -> None:
        super().__init__(scope, id)
        self.key = project_key(self, "Key", description=f"{config.project.name}: the {stage} endpoint's volumes, captured requests and notifications")
        expire_old_versions = expire_replaced_versions(config)
        self.logs = access_logs_bucket(self, config, expire_old_versions)
        self.bucket = encrypted_bucket(
            self, "Bucket", key=self.key, logs=self.logs, logs_prefix="stage/", lifecycle_rules=[expire_old_versions, expire_captured_data(config)]
        )

    def data_capture_uri(self, config: Config, endpoint: str) -> str:
        return str(config.data_capture(self.bucket.bucket_name, endpoint))

    def model_copies_uri(self) -> str:
        return str(S3Location(self.bucket.bucket_name, MODEL_COPIES))
