"""The new-data trigger: a Ground Truth output manifest landing under the labelling output prefix, or a label
export (any format) under the labels prefix, starts a pipeline execution on a snapshot of all labelled data.

    S3 (EventBridge notifications on) --Object Created--> rule --> trigger function --> snapshot + StartPipelineExecution

The function lists every labelled input, copies each at its current version under snapshots/<id>/inputs/
and writes snapshots/<id>/snapshot.json (containers/trigger/snapshot.py); the copies are what the execution
reads (InputManifestUri), so old versions expiring from the versioned bucket never take a model's data away.
A rule cannot do this itself: a SageMaker pipeline target's parameter may be a JSON path of the event only as
a whole, and no rule lists or copies objects (containers/trigger/trigger.py says more).
"""

from __future__ import annotations

from aws_cdk import Aws, Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.functions import small_function
from infra.roles import list_under
from infra.rules import event_rule
from infra.storage import Storage
from pipelines.config import Config

MANIFEST_KEY = "*/manifests/output/output.manifest"  # under <prefix>/<labelling job name>/
TIMEOUT_SECONDS = 300  # listing and copying the labelled inputs: label files are small, but there may be many


class NewLabelsTrigger(Construct):
    def __init__(self, scope: Construct, id: str, *, config: Config, storage: Storage, pipeline_arn: str) -> None:
        super().__init__(scope, id)
        data = storage.data
        where = config.snapshot_prefixes(data.bucket_name)  # what `cardamage start` uses too
        labeling_bucket, labeling, labels, snapshots = where.ground_truth_bucket, where.labeling, where.labels, where.snapshots
        self.function, self.log_group = small_function(
            self,
            "TriggerFunction",
            folder="trigger",
            handler="trigger.handler",
            description=f"{config.project.name}: start {config.pipeline_name} on a snapshot of all labelled data when labels land",
            environment={
                "PIPELINE_NAME": config.pipeline_name,
                "DATA_BUCKET": data.bucket_name,
                "LABELS_PREFIX": labels,
                "LABELING_BUCKET": labeling_bucket,
                "LABELING_PREFIX": labeling,
                "SNAPSHOTS_PREFIX": snapshots,
            },
            timeout_seconds=TIMEOUT_SECONDS,
        )
        assert self.function.role is not None
        self.function.role.add_to_principal_policy(
            iam.PolicyStatement(sid="StartThePipeline", actions=["sagemaker:StartPipelineExecution"], resources=[pipeline_arn])
        )
        elsewhere = labeling_bucket != data.bucket_name
        ground_truth = f"arn:{Aws.PARTITION}:s3:::{labeling_bucket}" if elsewhere else data.bucket_arn
        # It lists the versions under the labels prefix and Ground Truth's output prefix (snapshot.labelled_objects:
        # ListObjectVersions, nothing else).
        listing = ("s3:ListBucketVersions",)
        in_data = [labels] if elsewhere else [labels, labeling]
        self.function.role.add_to_principal_policy(list_under("ListLabelledInputs", data.bucket_arn, in_data, listing))
        if elsewhere:
            self.function.role.add_to_principal_policy(list_under("ListGroundTruthOutput", ground_truth, [labeling], listing))
        self.function.role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ReadLabelledInputs",
                actions=["s3:GetObject", "s3:GetObjectVersion"],
                resources=[data.arn_for_objects(f"{labels}*"), f"{ground_truth}/{labeling}*", data.arn_for_objects(f"{snapshots}*")],
            )
        )
        self.function.role.add_to_principal_policy(
            iam.PolicyStatement(sid="WriteSnapshots", actions=["s3:PutObject"], resources=[data.arn_for_objects(f"{snapshots}*")])
        )
        # Reading labels (Decrypt) and writing the copies and snapshot.json (GenerateDataKey) in buckets the key
        # encrypts ("Using server-side encryption with AWS KMS keys (SSE-KMS)", S3 user guide); no ReEncrypt*.
        self.function.role.add_to_principal_policy(
            iam.PolicyStatement(sid="UseTheKeyForData", actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[storage.key.key_arn])
        )
        ground_truth_keys = [{"wildcard": f"{labeling}{MANIFEST_KEY}"}]
        label_keys = [{"prefix": labels}]
        self.rule = self._rule("OnNewLabels", data.bucket_name, label_keys if elsewhere else [*ground_truth_keys, *label_keys], config)
        if elsewhere:  # a rule matches one bucket's events (that bucket must send its events to EventBridge)
            self.ground_truth_rule = self._rule("OnNewGroundTruthManifest", labeling_bucket, ground_truth_keys, config)

    def _rule(self, id: str, bucket: str, keys: list[dict], config: Config) -> events.Rule:
        return event_rule(
            self,
            id,
            description=f"Start {config.pipeline_name} on all labelled data when labels land in s3://{bucket}",
            source="aws.s3",
            detail_type="Object Created",
            detail={"bucket": {"name": [bucket]}, "object": {"key": keys}},
            targets=[targets.LambdaFunction(self.function, retry_attempts=4, max_event_age=Duration.hours(2))],
        )
