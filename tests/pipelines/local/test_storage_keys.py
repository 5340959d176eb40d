"""The local S3 keeps every key inside its bucket's folder (pipelines/local/storage.py): a key that leads out is
refused by name, whichever call turns it into a path."""

from __future__ import annotations

import re

import pytest

from pipelines.local.expressions import DefinitionProblem
from pipelines.local.storage import LocalS3, LocalS3Client


@pytest.fixture
def s3(tmp_path):
    s3 = LocalS3(tmp_path / "s3")
    (tmp_path / "s3" / "bucket").mkdir(parents=True)
    (tmp_path / "secret.txt").write_text("not the bucket's")
    return s3


def test_a_key_with_a_leading_slash_is_refused_not_read_from_the_root(s3, tmp_path):
    outside = str(tmp_path / "secret.txt")  # s3://bucket//tmp/.../secret.txt: the key is an absolute path
    uri = f"s3://bucket/{outside}"
    with pytest.raises(DefinitionProblem, match=re.escape(f"'{uri}': the key '{outside}' leads out of the bucket's folder")):
        s3.path(uri)
    with pytest.raises(DefinitionProblem, match="leads out of the bucket's folder"):
        s3.path("s3://bucket//etc/passwd")
    client = LocalS3Client(s3)
    with pytest.raises(DefinitionProblem, match="leads out"):
        client.get_object(Bucket="bucket", Key=outside)
    with pytest.raises(DefinitionProblem, match="leads out"):
        client.put_object(Bucket="bucket", Key=str(tmp_path / "written.txt"), Body=b"x")
    assert not (tmp_path / "written.txt").exists()


def test_a_key_through_a_link_out_of_the_bucket_is_refused(s3, tmp_path):
    (tmp_path / "s3" / "bucket" / "images").symlink_to(tmp_path)
    with pytest.raises(DefinitionProblem, match=r"'s3://bucket/images/secret.txt': the key 'images/secret.txt' leads out"):
        s3.path("s3://bucket/images/secret.txt")


def test_keys_inside_the_bucket_are_its_files(s3, tmp_path):
    assert s3.path("s3://bucket/a//b/model.tar.gz") == tmp_path / "s3" / "bucket" / "a" / "b" / "model.tar.gz"
    assert s3.path("s3://bucket") == tmp_path / "s3" / "bucket"
