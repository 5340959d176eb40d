"""The new-data trigger: a Ground Truth output manifest landing under the labelling output prefix starts a
pipeline execution with that manifest as InputManifestUri.

    S3 (EventBridge notifications on) --Object Created--> rule --> trigger function --> StartPipelineExecution

A rule cannot target the pipeline directly with the manifest's URI: a SageMaker pipeline target's parameter
value may be a JSON path of the event only as a whole (`$.detail.object.key`), and the event holds the bucket
and the key apart, so no target parameter can be `s3://bucket/key` (containers/trigger/trigger.py says more).
The function builds it and uses the event's id as the idempotency token.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.functions import small_function
from infra.storage import Storage
from pipelines.config import Config

MANIFEST_KEY = "*/manifests/output/output.manifest"  # under <prefix>/<labelling job name>/


class NewManifestTrigger(Construct):
    def __init__(self, scope: Construct, id: str, *, config: Config, storage: Storage, pipeline_arn: str) -> None:
        super().__init__(scope, id)
        self.function, self.log_group = small_function(
            self,
            "TriggerFunction",
            folder="trigger",
            handler="trigger.handler",
            description=f"{config.project.name}: start {config.pipeline_name} on a new Ground Truth output manifest",
            environment={"PIPELINE_NAME": config.pipeline_name},
        )
        assert self.function.role is not None
        self.function.role.add_to_principal_policy(
            iam.PolicyStatement(sid="StartThePipeline", actions=["sagemaker:StartPipelineExecution"], resources=[pipeline_arn])
        )
        bucket, prefix = config.labeling_output(storage.data.bucket_name)
        self.rule = events.Rule(
            self,
            "OnNewManifest",
            description=f"Start {config.pipeline_name} when Ground Truth writes an output manifest under s3://{bucket}/{prefix}",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={"bucket": {"name": [bucket]}, "object": {"key": [{"wildcard": f"{prefix}{MANIFEST_KEY}"}]}},
            ),
            targets=[targets.LambdaFunction(self.function, retry_attempts=4, max_event_age=Duration.hours(2))],
        )
