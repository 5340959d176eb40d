"""moto for the drift monitor's functions: the deployment tests' (a fresh state per test, the model package group,
the handlers' own clients reaching it), and the artifacts and data buckets."""

from __future__ import annotations

import pytest

from tests.aws_fakes import REGION, client
from tests.containers.deploy.test_deploy import aws, server  # noqa: F401  (fixtures)

BUCKET = "artifacts"
DATA = "data"  # where label exports land (labels/)


@pytest.fixture
def clients(aws):  # noqa: F811  (the fixture imported above)
    sagemaker, _ = aws
    s3 = client("s3", sagemaker.meta.endpoint_url)
    for bucket in (BUCKET, DATA):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    return sagemaker, s3
