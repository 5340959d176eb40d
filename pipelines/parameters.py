"""The pipeline's parameters: what a run may set without editing code, with defaults from pipeline.yaml.

The names are an interface: the CLI (`cardamage start --param NAME=VALUE`), the local engine, the
EventBridge trigger (InputManifestUri) and the acceptance checks use them as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from pipelines.config import Config


@dataclass(frozen=True)
class Parameters:
    input_manifest_uri: Any  # sagemaker.core.workflow.parameters.Parameter* objects
    images_prefix: Any
    processing_instance_count: Any
    processing_instance_type: Any
    training_instance_type: Any
    model_variant: Any
    training_steps: Any
    batch_size: Any
    image_size: Any
    evaluation_instance_type: Any
    map_threshold: Any
    model_approval_status: Any

    def all(self) -> list:
        return [getattr(self, f.name) for f in fields(self)]


def build_parameters(config: Config, data_bucket: str) -> Parameters:
    """The parameters with their defaults; `data_bucket` is the data bucket's name (or its sentinel)."""
    from sagemaker.core.workflow.parameters import ParameterFloat, ParameterInteger, ParameterString

    training = config.training
    return Parameters(
        input_manifest_uri=ParameterString("InputManifestUri", default_value=config.pipeline.input_manifest_uri or f"s3://{data_bucket}/manifests/"),
        images_prefix=ParameterString("ImagesS3Prefix", default_value=config.pipeline.images_prefix or f"s3://{data_bucket}/images/"),
        processing_instance_count=ParameterInteger("ProcessingInstanceCount", default_value=config.data.processing.instance_count),
        processing_instance_type=ParameterString("ProcessingInstanceType", default_value=config.data.processing.instance_type),
        training_instance_type=ParameterString("TrainingInstanceType", default_value=training.instance_type),
        model_variant=ParameterString("ModelVariant", default_value=training.model),
        training_steps=ParameterInteger("TrainingSteps", default_value=training.steps),
        batch_size=ParameterInteger("BatchSize", default_value=training.batch_size),
        image_size=ParameterInteger("ImageSize", default_value=training.input_size),
        evaluation_instance_type=ParameterString("EvaluationInstanceType", default_value=config.evaluation.instance_type),
        map_threshold=ParameterFloat("MapThreshold", default_value=config.evaluation.map_threshold),
        model_approval_status=ParameterString("ModelApprovalStatus", default_value=config.registry.approval_status),
    )


def as_string(parameter) -> Any:
    """A parameter as a string expression (hyperparameters and environment values must be strings)."""
    from sagemaker.core.workflow.functions import Join

    return Join(on="", values=[parameter])
