"""A dataset snapshot: every labelled input at one moment, pinned, so an execution trains on all labelled data
and any model can be traced to, and retrained on, exactly its data.

The labelled inputs are every Ground Truth output manifest under the labelling output prefix
(`<prefix><job>/manifests/output/output.manifest`) and every file under the labels prefix (exports in any
format PrepareData reads). They are grouped into units: a Ground Truth job's manifest, or the first folder
under the labels prefix (`labels/<batch>/...`, so a YOLO or VOC export uploaded as one folder stays one
unit; a file directly under the prefix is a unit of its own). Units are ordered by their newest upload, and
where labellings cannot be compared by date the merge rule takes the one later in the input, so the newest
upload wins (containers/processing/labelling.py, newest_first).

A snapshot is written under `<snapshots prefix><id>/`:
- `inputs/<nnnn>-<unit>/...`: a copy of each input at its current version (CopyObject with the version id),
  the PrepareData input prefix (InputManifestUri): immutable, whatever later happens to the originals;
- `snapshot.json`: each input's source URI, version id, size, last-modified time and sha256, and its copy.
Its id is the newest upload's time and a hash of the listing, so two triggers that see the same labelled data make the same
snapshot (and the trigger's start request the same idempotency token).

Standard library and boto3-shaped S3 clients only (the trigger function runs it; `cardamage start` and the
local engine too, the latter with a client over its local S3 folder).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

GROUND_TRUTH_MANIFEST = re.compile(r"[^/]+/manifests/output/output\.manifest")  # relative to the labelling output prefix
SNAPSHOT_FILE = "snapshot.json"
INPUTS = "inputs/"


@dataclass(frozen=True)
class Prefixes:
    """Where labelled inputs are found and where snapshots go, in one bucket."""

    bucket: str  # the data bucket: labels and snapshots
    labels: str  # e.g. labels/
    labeling: str  # e.g. ground-truth/
    snapshots: str  # e.g. snapshots/
    labeling_bucket: str = ""  # where Ground Truth writes, when not the data bucket

    @property
    def ground_truth_bucket(self) -> str:
        return self.labeling_bucket or self.bucket


@dataclass(frozen=True)
class LabelledObject:
    bucket: str
    key: str
    version_id: str
    size: int
    last_modified: str  # ISO 8601, UTC
    unit: str


def is_labelled_input(key: str, prefixes: Prefixes, bucket: str | None = None) -> bool:
    """Whether an object is a labelled input: a Ground Truth output manifest, or a file under the labels prefix."""
    bucket = bucket or prefixes.bucket
    if (
        bucket == prefixes.ground_truth_bucket
        and key.startswith(prefixes.labeling)
        and GROUND_TRUTH_MANIFEST.fullmatch(key[len(prefixes.labeling) :])
    ):
        return True
    if bucket != prefixes.bucket or not key.startswith(prefixes.labels) or key.endswith("/"):
        return False
    return not any(part.startswith(".") for part in key[len(prefixes.labels) :].split("/"))


def unit_of(key: str, prefixes: Prefixes, bucket: str | None = None) -> str:
    if (bucket or prefixes.bucket) == prefixes.ground_truth_bucket and key.startswith(prefixes.labeling):
        return "ground-truth-" + key[len(prefixes.labeling) :].split("/", 1)[0]
    return key[len(prefixes.labels) :].split("/", 1)[0]


def labelled_objects(s3: Any, prefixes: Prefixes) -> list[LabelledObject]:
    """The current version of every labelled input (deleted objects are not), in key order."""
    found: dict[tuple[str, str], LabelledObject] = {}
    for bucket, prefix in ((prefixes.bucket, prefixes.labels), (prefixes.ground_truth_bucket, prefixes.labeling)):
        for version in _latest_versions(s3, bucket, prefix):
            key = version["Key"]
            if is_labelled_input(key, prefixes, bucket):
                found[(bucket, key)] = _object(bucket, key, version, unit_of(key, prefixes, bucket))
    return [found[k] for k in sorted(found)]


def named_objects(s3: Any, uris: list[str]) -> list[LabelledObject]:
    """The current version of the objects `uris` name (`cardamage start --manifest`): a URI ending in `/` stands
    for the objects under it. Each URI is a unit of its own, in the order given."""
    found = []
    for uri in uris:
        match = re.fullmatch(r"s3://([^/]+)/(.*)", uri)
        if not match:
            raise ValueError(f"{uri!r} is not an s3://bucket/key URI")
        bucket, key = match.groups()
        folder = not key or key.endswith("/")
        versions = [v for v in _latest_versions(s3, bucket, key) if (not v["Key"].endswith("/")) if folder or v["Key"] == key]
        if not versions:
            raise ValueError(f"{uri}: no such object (or no object under it)")
        found += [_object(bucket, v["Key"], v, f"{len(found):04d}") for v in versions]
    return found


def _object(bucket: str, key: str, version: dict, unit: str) -> LabelledObject:
    modified = version["LastModified"]
    moment = modified if isinstance(modified, datetime) else datetime.fromisoformat(str(modified))
    return LabelledObject(bucket, key, version.get("VersionId") or "null", int(version.get("Size", 0)), moment.astimezone(UTC).isoformat(), unit)


def _latest_versions(s3: Any, bucket: str, prefix: str) -> Iterator[dict]:
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for version in page.get("Versions", []):
            if version.get("IsLatest"):
                yield version


def ordered_units(objects: list[LabelledObject]) -> list[tuple[str, list[LabelledObject]]]:
    """The units with their objects, the unit holding the newest upload last (then by name)."""
    units: dict[str, list[LabelledObject]] = {}
    for item in objects:
        units.setdefault(item.unit, []).append(item)
    return sorted(units.items(), key=lambda pair: (max(o.last_modified for o in pair[1]), pair[0]))


def listing_hash(objects: list[LabelledObject]) -> str:
    text = "".join(f"{o.bucket}\t{o.key}\t{o.version_id}\t{o.size}\n" for o in objects)
    return hashlib.sha256(text.encode()).hexdigest()


def take(s3: Any, prefixes: Prefixes, *, now: datetime | None = None, objects: list[LabelledObject] | None = None) -> dict:
    """Take a snapshot of every labelled input (or of `objects`), copying them and writing snapshot.json;
    returns the snapshot document, whose `inputs_uri` is what the pipeline's InputManifestUri takes. An
    empty snapshot is an error: there is nothing to train on."""
    objects = labelled_objects(s3, prefixes) if objects is None else objects
    if not objects:
        raise ValueError(
            f"no labelled input in s3://{prefixes.bucket}/{prefixes.labels} or Ground Truth output manifests under "
            f"s3://{prefixes.ground_truth_bucket}/{prefixes.labeling}: nothing to train on"
        )
    # Named after the newest upload and the listing: the same labelled data always makes the same snapshot.
    moment = now or max(datetime.fromisoformat(o.last_modified) for o in objects)
    digest = listing_hash(objects)
    snapshot_id = f"{moment:%Y%m%dT%H%M%SZ}-{digest[:12]}"
    root = f"{prefixes.snapshots}{snapshot_id}/"
    inputs = []
    for position, (unit, members) in enumerate(ordered_units(objects), start=1):
        folder = f"{root}{INPUTS}{position:04d}-{_safe(unit)}/"
        for item in members:
            copy_key = folder + _relative(item, prefixes)
            sha256 = _copy(s3, prefixes.bucket, item, copy_key)
            inputs.append(asdict(item) | {"uri": f"s3://{item.bucket}/{item.key}", "sha256": sha256, "copy": f"s3://{prefixes.bucket}/{copy_key}"})
    document = {
        "snapshot_id": snapshot_id,
        "created": datetime.now(UTC).isoformat(),
        "newest_upload": moment.isoformat(),
        "listing_sha256": digest,
        "sources": {
            "labels": f"s3://{prefixes.bucket}/{prefixes.labels}",
            "ground_truth": f"s3://{prefixes.ground_truth_bucket}/{prefixes.labeling}",
        },
        "uri": f"s3://{prefixes.bucket}/{root}{SNAPSHOT_FILE}",
        "inputs_uri": f"s3://{prefixes.bucket}/{root}{INPUTS}",
        "inputs": inputs,
    }
    s3.put_object(Bucket=prefixes.bucket, Key=root + SNAPSHOT_FILE, Body=json.dumps(document, indent=2).encode(), ContentType="application/json")
    return document


def _relative(item: LabelledObject, prefixes: Prefixes) -> str:
    """Where an input goes inside its unit's folder: its path below the unit (the labels prefix's first folder),
    the Ground Truth job's path below the labelling prefix, or a named object's file name."""
    if item.bucket == prefixes.bucket and item.key.startswith(prefixes.labels):
        below = item.key[len(prefixes.labels) :]
        return below.split("/", 1)[1] if "/" in below else below
    if item.bucket == prefixes.ground_truth_bucket and item.key.startswith(prefixes.labeling):
        return item.key[len(prefixes.labeling) :]
    return item.key.rsplit("/", 1)[-1]


def _copy(s3: Any, bucket: str, item: LabelledObject, copy_key: str) -> str:
    """Copy one version to the snapshot, and hash what was copied (read back from the copy, which cannot change)."""
    source = {"Bucket": item.bucket, "Key": item.key}
    if item.version_id != "null":
        source["VersionId"] = item.version_id
    s3.copy_object(Bucket=bucket, Key=copy_key, CopySource=source)
    digest = hashlib.sha256()
    body = s3.get_object(Bucket=bucket, Key=copy_key)["Body"]
    for chunk in iter(lambda: body.read(1 << 20), b""):
        digest.update(chunk)
    return digest.hexdigest()


def _safe(unit: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", unit)[:100] or "unit"
