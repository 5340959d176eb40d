"""What several steps share: the cache setting and the retry policies."""

from __future__ import annotations

from pipelines.context import BuildContext

CONTAINER_ROOT = "/opt/program/containers"  # where the images put containers/ (see containers/*/Dockerfile)


def cache(context: BuildContext):
    """Step caching as pipeline.yaml sets it: an unchanged step within the expiry reuses its last success."""
    from sagemaker.mlops.workflow.steps import CacheConfig

    pipeline = context.config.pipeline
    return CacheConfig(enable_caching=pipeline.caching, expire_after=pipeline.cache_expire_after if pipeline.caching else None)


def job_retries() -> list:
    """Retries for steps that start SageMaker jobs: the service throttling or failing on its side, and the job
    failing for capacity (spot and GPU instances run out), account limits or an internal error. Not for the
    job's own errors: a bad input fails the same way twice."""
    from sagemaker.mlops.workflow.retry import (
        SageMakerJobExceptionTypeEnum,
        SageMakerJobStepRetryPolicy,
        StepExceptionTypeEnum,
        StepRetryPolicy,
    )

    return [
        StepRetryPolicy(
            exception_types=[StepExceptionTypeEnum.SERVICE_FAULT, StepExceptionTypeEnum.THROTTLING],
            interval_seconds=10,
            backoff_rate=2.0,
            max_attempts=5,
        ),
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


def service_retries() -> list:
    """Retries for steps that only call the SageMaker API (registration): throttling and service faults."""
    from sagemaker.mlops.workflow.retry import StepExceptionTypeEnum, StepRetryPolicy

    return [
        StepRetryPolicy(
            exception_types=[StepExceptionTypeEnum.SERVICE_FAULT, StepExceptionTypeEnum.THROTTLING],
            interval_seconds=10,
            backoff_rate=2.0,
            max_attempts=5,
        )
    ]
