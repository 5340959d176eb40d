"""What the step modules share while the pipeline is built: the account values (or their placeholders),
the SageMaker SDK's pipeline session, and where each execution writes.

The SDK looks some values up when they are not valid-looking (a role name is resolved through IAM, a
bucket is checked through S3): every placeholder is therefore rendered as a valid-looking sentinel that
pipelines/definition.py replaces by the real value or by `${Name}` in the finished JSON, for the CDK app
to fill with Fn::Sub. No AWS call is made while building.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipelines.config import Config

if TYPE_CHECKING:
    from sagemaker.core.workflow.functions import Join
    from sagemaker.core.workflow.pipeline_context import PipelineSession

# Placeholder name -> (the config field that may hold the value, the sentinel the SDK sees while rendering).
PLACEHOLDERS: dict[str, tuple[str, str]] = {
    "SageMakerRoleArn": ("role_arn", "arn:aws:iam::111111111111:role/CardamagePlaceholderSageMakerRoleArn"),
    "DataBucket": ("data_bucket", "cardamage-placeholder-databucket"),
    "ArtifactBucket": ("artifact_bucket", "cardamage-placeholder-artifactbucket"),
    "KmsKeyId": ("kms_key_id", "cardamage-placeholder-kmskeyid"),
    "ProcessingImageUri": ("processing_image_uri", "111111111111.dkr.ecr.xx-placeholder-1.amazonaws.com/cardamage-placeholder-processingimageuri:1"),
    "TrainingImageUri": ("training_image_uri", "111111111111.dkr.ecr.xx-placeholder-1.amazonaws.com/cardamage-placeholder-trainingimageuri:1"),
    "InferenceImageUri": ("inference_image_uri", "111111111111.dkr.ecr.xx-placeholder-1.amazonaws.com/cardamage-placeholder-inferenceimageuri:1"),
    "DeployFunctionArn": ("deploy_function_arn", "arn:aws:lambda:xx-placeholder-1:111111111111:function:CardamagePlaceholderDeployFunctionArn"),
    "ChampionFunctionArn": ("champion_function_arn", "arn:aws:lambda:xx-placeholder-1:111111111111:function:CardamagePlaceholderChampionFunctionArn"),
}
# The region the SDK is given when none is configured; CloudFormation's Fn::Sub fills ${AWS::Region}.
REGION_SENTINEL = "xx-placeholder-1"
REGION_PLACEHOLDER = "AWS::Region"


@dataclass
class BuildContext:
    """Everything a step module needs besides the config and the parameters."""

    config: Config
    session: PipelineSession
    sentinels: dict[str, str] = field(default_factory=dict)  # placeholder name -> what the SDK is given

    def placeholder(self, name: str) -> str:
        """The stand-in for the account value `name` (PLACEHOLDERS) that the SDK sees while rendering; the
        finished definition carries the real value or `${name}` in its place."""
        return self.sentinels[name]

    @property
    def role(self) -> str:
        return self.placeholder("SageMakerRoleArn")

    @property
    def kms_key(self) -> str:
        return self.placeholder("KmsKeyId")

    def execution_uri(self, *parts: Any) -> Join:
        """s3://<artifact bucket>/<pipeline>/<execution id>/<parts>: where one execution writes. Outputs are
        not part of SageMaker's cache keys, so a cached step's outputs keep the path of the run that made them."""
        from sagemaker.core.workflow.execution_variables import ExecutionVariables
        from sagemaker.core.workflow.functions import Join

        return Join(
            on="/", values=["s3:/", self.placeholder("ArtifactBucket"), self.config.pipeline_name, ExecutionVariables.PIPELINE_EXECUTION_ID, *parts]
        )
