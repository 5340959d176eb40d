"""What several steps share: the cache setting and the retry policies."""

from __future__ import annotations

from typing import Any

from steps.context import BuildContext

CONTAINER_ROOT = "/opt/program/containers"  # where the images put containers/ (see containers/*/Dockerfile)


def cache(context: BuildContext):
    """Step caching as pipeline.yaml sets it: an unchanged step within the expiry reuses its last success."""
    from sagemaker.mlops.workflow.steps import CacheConfig

    pipeline = context.config.pipeline
    return CacheConfig(enable_caching=pipeline.caching, expire_after=pipeline.cache_expire_after if pipeline.caching else None)


def isolated():
    """No network for a Processing job that parses uploaded files (label exports, photos, model archives): its
    program calls neither AWS nor anything else; SageMaker copies its S3 inputs and outputs outside the container.
    The API reference's NetworkConfig.EnableNetworkIsolation: "Whether to allow inbound and outbound network
    calls to and from the containers used for the processing job."
    """
    from sagemaker.core.network import NetworkConfig

    return NetworkConfig(enable_network_isolation=True)


def service_retries() -> list:
    """Retries for every step that calls the SageMaker API: throttling and service faults."""
    from sagemaker.mlops.workflow.retry import StepExceptionTypeEnum, StepRetryPolicy

    return [
        StepRetryPolicy(
            exception_types=[StepExceptionTypeEnum.SERVICE_FAULT, StepExceptionTypeEnum.THROTTLING],
            interval_seconds=10,
            backoff_rate=2.0,
            max_attempts=5,
        )
    ]


def job_retries() -> list:
    """Retries for steps that start SageMaker jobs: the service's, and the job failing for capacity (spot and
    GPU instances run out), account limits or an internal error. Not for the job's own errors: a bad input
    fails the same way twice."""
    from sagemaker.mlops.workflow.retry import SageMakerJobExceptionTypeEnum, SageMakerJobStepRetryPolicy

    return [
        *service_retries(),
        SageMakerJobStepRetryPolicy(
            exception_types=[
                SageMakerJobExceptionTypeEnum.CAPACITY_ERROR,
                SageMakerJobExceptionTypeEnum.RESOURCE_LIMIT,
                SageMakerJobExceptionTypeEnum.INTERNAL_ERROR,
            ],
            interval_seconds=300,
            backoff_rate=2.0,
            max_attempts=3,
        ),
    ]


def s3_input(name: str, uri: Any, local_path: str, *, distribution: str = "FullyReplicated") -> Any:
    """A Processing job's input: everything under the S3 prefix `uri`, copied to `local_path` before the
    program starts (ShardedByS3Key: each instance gets its share of the objects)."""
    from sagemaker.core.shapes import ProcessingInput, ProcessingS3Input

    return ProcessingInput(
        input_name=name,
        s3_input=ProcessingS3Input(
            s3_uri=uri, local_path=local_path, s3_data_type="S3Prefix", s3_input_mode="File", s3_data_distribution_type=distribution
        ),
    )
