"""Keys listed from a bucket stay inside the local folder they are downloaded to (pipelines/backends/aws.py): the
smoke test's validation records, against moto in server mode."""

from __future__ import annotations

import tempfile

import pytest

from pipelines.aws import ControlPlaneError
from pipelines.backends.aws import AwsBackend
from pipelines.config import load_config
from pipelines.promote import VALIDATION_METADATA
from tests.aws_fakes import REGION, client, isolate_aws, moto_server
from tests.support import ROOT

BUCKET = "cardamage-data-test"


@pytest.fixture(scope="module")
def server():
    with moto_server() as running:
        yield running


@pytest.mark.parametrize("shape", ["leading-slash", "dot-dot"])
def test_a_listed_key_leading_out_of_the_download_folder_is_refused_by_name(server, monkeypatch, tmp_path, shape):
    server.reset()
    isolate_aws(monkeypatch, tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # the download folder: tmp_path/tmp/cardamage-smoke-*
    (tmp_path / "tmp").mkdir()
    relative = str(tmp_path / "outside.tfrecord") if shape == "leading-slash" else "../../outside.tfrecord"
    key = f"prepared/validation/{relative}"
    s3 = client("s3", server.url)
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"not a record")
    backend = AwsBackend(load_config(ROOT / "pipeline.yaml"), region=REGION, endpoint_url=server.url)
    package = {"ModelPackageVersion": 1, "CustomerMetadataProperties": {VALIDATION_METADATA: f"s3://{BUCKET}/prepared/validation"}}
    with pytest.raises(ControlPlaneError, match="leads out of the local folder") as refused:
        backend._validation_images(package, 3)
    assert str(refused.value).startswith(f"s3://{BUCKET}/{key}: refused")
    assert not (tmp_path / "outside.tfrecord").exists()
