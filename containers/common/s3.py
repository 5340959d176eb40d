"""S3 URIs: the one pattern and parser of `s3://bucket/key` that the project uses (the configuration, the
pipeline's parameters, the CLI, the local S3 mirror, the manifests, the infrastructure).

Standard library only. The deployment function ships as a single file and keeps a copy of the pattern;
a test holds the two equal.
"""

from __future__ import annotations

import re
from typing import NamedTuple

# S3's bucket naming rules: 3-63 lowercase letters, digits, dots and hyphens, starting and ending with a
# letter or digit (https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html).
BUCKET_PATTERN = r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]"
S3_URI_PATTERN = rf"^s3://{BUCKET_PATTERN}(/.*)?$"
S3_URI_EXAMPLE = "s3://bucket/prefix/"
_S3_URI = re.compile(rf"^s3://(?P<bucket>{BUCKET_PATTERN})(?:/(?P<key>.*))?$", re.DOTALL)


class S3Location(NamedTuple):
    """A bucket and a key (or key prefix) in it."""

    bucket: str
    key: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def parse_s3_uri(uri: object) -> S3Location:
    """The bucket and key of `s3://bucket/key`; ValueError saying what was expected otherwise."""
    match = _S3_URI.match(uri) if isinstance(uri, str) else None
    if match is None:
        raise ValueError(f"not an S3 URI: {uri!r} (expected s3://bucket/key, the bucket named as S3 allows)")
    return S3Location(match["bucket"], match["key"] or "")


def is_s3_uri(text: object) -> bool:
    return isinstance(text, str) and _S3_URI.match(text) is not None
