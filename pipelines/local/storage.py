"""S3 on this machine: `s3://bucket/key` is the file `<state>/s3/bucket/key`.

Downloads and uploads follow what SageMaker jobs do with S3: an S3Prefix input brings every object whose
key starts with the prefix, each at its key relative to the prefix (an exact object key brings that one
file); an output uploads every file under the local folder to the prefix.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from containers.common import archives
from containers.common.s3 import S3Location, parse_s3_uri
from pipelines.local.expressions import DefinitionProblem

# Customers' photos pass through the local S3 (captures, review copies): every file is its owner's alone.
PRIVATE_FILE, PRIVATE_FOLDER = 0o600, 0o700


def private_folder(folder: Path) -> Path:
    """`folder`, owner-only (0o700), with every missing parent created owner-only too. The modes are set with
    chmod: mkdir's mode is narrowed by the umask, and `mkdir(parents=True)` gives parents the default mode."""
    for level in reversed([level for level in (folder, *folder.parents) if not level.exists()]):
        level.mkdir(mode=PRIVATE_FOLDER, exist_ok=True)  # exist_ok: another request's thread may have just made it
        os.chmod(level, PRIVATE_FOLDER)
    os.chmod(folder, PRIVATE_FOLDER)
    return folder


def write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path`, readable by its owner alone (0o600): created so, never readable by others for a
    moment; a file already there is narrowed before the data goes in."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    with os.fdopen(descriptor, "wb") as handle:
        os.fchmod(handle.fileno(), PRIVATE_FILE)
        handle.write(data)


class LocalS3:
    def __init__(self, root: Path):
        self.root = root

    def path(self, uri: str) -> Path:
        """The local file or folder for an S3 URI: every S3 URI or key becomes a path here, and only here. It must
        stay inside its bucket's folder: s3://bucket//etc/passwd (the key `/etc/passwd`) would otherwise be that file."""
        bucket, key = _location(uri)
        path = archives.inside(self.root / bucket, key)
        if path is None:
            raise DefinitionProblem(
                f"{uri!r}: the key {key!r} leads out of the bucket's folder {self.root / bucket}; the local S3 keeps every key inside it"
            )
        return path

    def objects(self, uri: str) -> list[tuple[str, Path]]:
        """(relative name, file) of every object under the prefix `uri`, in key order."""
        base = self.path(uri)
        if base.is_file():
            return [(base.name, base)]
        bucket, prefix = _location(uri)
        bucket_root = self.root / bucket
        folder = base if base.is_dir() else base.parent
        found = []
        if folder.is_dir():
            for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                key = path.relative_to(bucket_root).as_posix()
                if key.startswith(prefix):
                    relative = key[len(prefix) :].lstrip("/") or path.name
                    found.append((relative, path))
        return found

    def download(self, uri: str, destination: Path, *, shard: tuple[int, int] | None = None) -> int:
        """Copy the objects under `uri` into `destination` (only slice `shard` = (index, count) of them, as
        ShardedByS3Key gives each instance its part); returns how many."""
        objects = self.objects(uri)
        if shard is not None:
            index, count = shard
            objects = objects[index::count]
        destination.mkdir(parents=True, exist_ok=True)
        for relative, source in objects:
            _link_or_copy(source, destination / relative)
        return len(objects)

    def upload(self, source: Path, uri: str, *, mirror: bool = False) -> int:
        """Copy every file under the folder `source` to the prefix `uri` (with `mirror`, also delete the objects
        under it that `source` no longer has); returns how many were copied."""
        target = self.path(uri)
        files = sorted(p.relative_to(source) for p in source.rglob("*") if p.is_file())
        if mirror and target.is_dir():
            kept = set(files)
            for path in sorted(p for p in target.rglob("*") if p.is_file()):
                if path.relative_to(target) not in kept:
                    path.unlink()
        for relative in files:
            _link_or_copy(source / relative, target / relative)
        return len(files)

    def put_file(self, source: Path, uri: str) -> None:
        _link_or_copy(source, self.path(uri))


def _location(uri: str) -> S3Location:
    try:
        location = parse_s3_uri(uri)
    except ValueError as exc:
        raise DefinitionProblem(str(exc)) from None
    if ".." in location.key.split("/"):
        raise DefinitionProblem(f"{uri!r}: a key with '..' would leave the bucket's folder")
    return location


def _link_or_copy(source: Path, target: Path) -> None:
    """A hard link where possible (instant, no space: the programs never write into their inputs), else a copy."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        target.unlink()
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


class LocalS3Client:
    """The few S3 client calls a dataset snapshot (containers/trigger/snapshot.py) and a review (pipelines/review.py)
    make, over the local S3: the same code runs here as against S3. The local S3 keeps no versions: each object's
    version id is "null", as S3 reports for an unversioned object, and its time is its file's."""

    def __init__(self, s3: LocalS3):
        self.s3 = s3

    def get_paginator(self, operation: str) -> _Paginator:
        if operation not in ("list_object_versions", "list_objects_v2"):
            raise NotImplementedError(operation)
        return _Paginator(self, operation)

    def list_objects(self, bucket: str, prefix: str, delimiter: str = "") -> dict:
        """ListObjectsV2's one page: Contents, and CommonPrefixes when a delimiter groups keys."""
        contents, common = [], set()
        for version in self.list_versions(bucket, prefix):
            rest = version["Key"][len(prefix) :]
            if delimiter and delimiter in rest:
                common.add(prefix + rest.split(delimiter, 1)[0] + delimiter)
            else:
                contents.append({key: version[key] for key in ("Key", "Size", "LastModified")})
        return {"Contents": contents, "CommonPrefixes": [{"Prefix": p} for p in sorted(common)]}

    def list_versions(self, bucket: str, prefix: str) -> list[dict]:
        from datetime import UTC, datetime

        versions = []
        for relative, path in self.s3.objects(f"s3://{bucket}/{prefix}"):
            key = prefix + relative if not prefix or prefix.endswith("/") else path.relative_to(self.s3.root / bucket).as_posix()
            stat = path.stat()
            modified = datetime.fromtimestamp(stat.st_mtime, UTC)
            versions.append({"Key": key, "VersionId": "null", "IsLatest": True, "Size": stat.st_size, "LastModified": modified})
        return versions

    def copy_object(self, Bucket: str, Key: str, CopySource: dict) -> dict:
        _link_or_copy(self.s3.path(f"s3://{CopySource['Bucket']}/{CopySource['Key']}"), self.s3.path(f"s3://{Bucket}/{Key}"))
        return {}

    def get_object(self, Bucket: str, Key: str, **_: object) -> dict:
        import io

        return {"Body": io.BytesIO(self.s3.path(f"s3://{Bucket}/{Key}").read_bytes())}

    def put_object(self, Bucket: str, Key: str, Body: bytes, **_: object) -> dict:
        target = self.s3.path(f"s3://{Bucket}/{Key}")
        private_folder(target.parent)
        write_private(target, Body)
        return {}


class _Paginator:
    def __init__(self, client: LocalS3Client, operation: str):
        self.client, self.operation = client, operation

    def paginate(self, Bucket: str, Prefix: str = "", Delimiter: str = "") -> list[dict]:
        if self.operation == "list_objects_v2":
            return [self.client.list_objects(Bucket, Prefix, Delimiter)]
        return [{"Versions": self.client.list_versions(Bucket, Prefix)}]
