"""Start the drift monitor over the last window of an endpoint's captured data.

EventBridge Scheduler invokes this function on `monitoring.schedule`, once per release stage's endpoint
(infra/drift.py), with {"endpoint_name": NAME}; a person may add "until" (an ISO 8601 time) to run a past
window again. The function:
- takes the window: the last WINDOW_HOURS full hours (UTC) before the invocation, or before "until";
- finds the endpoint's capture folders of those hours. SageMaker writes each capture file under
  <destination><endpoint>/<variant>/yyyy/mm/dd/hh/ ("Capture data from real-time endpoint", SageMaker
  Developer Guide). Only hours that hold objects become job inputs: a Processing input whose prefix holds no
  object fails the job (what containers/deploy/champion.py relies on too; AWS's API reference does not say it);
- reads which package the endpoint serves as the deployment function does (deploy.py's `describe_endpoint` and
  `served_package`: this module ships beside deploy.py as the Lambda's code), and the S3 URIs of its
  DriftCheckBaselines: ModelDataQuality.Statistics (data-baseline.json) and ModelQuality.Statistics
  (model-baseline.json);
- finds what the accuracy in service needs (containers/monitoring/quality.py), when the endpoint serves a package
  of this project: the label files under the labels prefix (not a YOLO set's images), and the capture files that
  review batches took photos from. A review batch's review.json (pipelines/review.py write_batch) names each
  photo's capture line as "s3://<bucket>/<key>:<line>"; the batches the scheduled job finds are the ones written
  under the review prefix of the artifacts bucket (`cardamage review --output s3://<artifacts>/review/<batch>/`,
  the one place the operators' policy lets a batch go, infra/people.py). A photo is labelled after it was
  answered, so those captures are older than the window: the job reads them for the accuracy in service only.
  Only captures since the served package's endpoint config was made count (--served-since): earlier answers
  were another package's;
- for an endpoint served from a release stage's own account (WORKFLOW_ACCOUNT set: infra/stage_stack.py), where
  captures and reports are that account's and the package, its baselines, the labels and the review batches are the
  workflow account's: describes the package in its ARN's account and region, copies its two baseline files into the
  window's report folder (reading them only from a bucket the workflow account owns: ExpectedBucketOwner), so that
  the job reads nothing outside its own account, and gives the job no labelled inputs (the answer says why);
- starts a Processing job on the processing image running containers/monitoring/monitor.py, network-isolated,
  its volume and output encrypted with the project's key: one input per hour folder, one for the baselines'
  folder, the label files and the reviewed capture files (each a manifest the function writes into the window's
  report folder), and its report written to s3://<artifacts>/<reports prefix><window start>/.

A window with no captures starts no job: the function writes that window's monitor.json itself (no photos, no
drift, and no accuracy in service: a job per idle hour would cost more than the figure is worth), so the latest
report says so; an endpoint that does not exist gets neither. The job's name is derived
from the window (`job_name`), so a repeated invocation for a window starts nothing more.

Standard library and boto3 only.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

try:  # imported as containers.deploy.monitor_start: the tests, the configuration, the CDK app
    from . import deploy
except ImportError:  # the Lambda: handler "monitor_start.handler", with this folder on sys.path
    import deploy  # type: ignore[no-redef]

# A Processing job takes at most 10 inputs ("ProcessingInputs: Maximum number of 10 items", the CreateProcessingJob
# API reference): one per hour of the window, one for the baselines, and two for the accuracy in service, which are
# left out (and the answer says so) when a window of more than 7 captured hours leaves no room for them.
MAX_INPUTS = 10
MAX_WINDOW_HOURS = MAX_INPUTS - 1
ACCURACY_INPUTS = 2  # the label files' input and the labelled capture files'
NAME_LIMIT = 63  # a processing job's name: [a-zA-Z0-9](-*[a-zA-Z0-9]){0,62} (the same reference)

# Where the job finds what it reads and writes (its program is the processing image's copy of containers/).
PROGRAM = "/opt/program/containers/monitoring/monitor.py"
PROCESSING = "/opt/ml/processing"
CAPTURES = f"{PROCESSING}/captures"
BASELINE = f"{PROCESSING}/baseline"
OUTPUT = f"{PROCESSING}/output"
LABELS = f"{PROCESSING}/labels"
LABELLED_CAPTURES = f"{PROCESSING}/labelled-captures"
# The manifests of those two inputs, written into the window's report folder (S3DataType ManifestFile: "a JSON
# file consisting of an array of elements. The first element is a prefix which is followed by one or more
# suffixes", S3DataSource, SageMaker API Reference). A manifest names objects, so no input is ever an empty prefix.
LABELS_MANIFEST = "labels.manifest"
CAPTURES_MANIFEST = "labelled-captures.manifest"
REVIEW = "review.json"  # a review batch's document (pipelines/review.py write_batch; a test holds them equal)
# A YOLO set's images under the labels prefix are not labels: left out (containers/processing/formats/yolo.py's
# IMAGE_SUFFIXES, lower case; a test holds them equal).
IMAGE_SUFFIXES = (".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")
BASELINE_COPIES = "baseline/"  # of a window's report folder: a stage account's copies of the package's baselines
OUTPUT_NAME = "monitor"  # the job's one output, which the metrics function reads
REPORT = "monitor.json"  # containers/monitoring/monitor.py's MONITOR; a test holds them equal
# The package's baselines as Evaluate names them (containers/monitoring/statistics.py; a test holds them equal),
# by the DriftCheckBaselines member Register records each in, and the kind the monitor compares it as.
BASELINES = {"ModelDataQuality": ("data-baseline.json", "input"), "ModelQuality": ("model-baseline.json", "output")}
WINDOW_FOLDER = "%Y%m%dT%H%MZ"  # a window's report folder, named by its start (ISO 8601's basic format)


class StartError(ValueError):
    """The function's settings or its event are not usable; the message names the variable or the field."""


# The function's environment: setting -> variable (infra/drift.py sets them from pipeline.yaml).
ENVIRONMENT = {
    "bucket": "ARTIFACT_BUCKET",
    "endpoints": "ENDPOINTS",
    "group": "MODEL_PACKAGE_GROUP",
    "role_arn": "ROLE_ARN",
    "image_uri": "IMAGE_URI",
    "kms_key_id": "KMS_KEY_ID",
    "instance_type": "INSTANCE_TYPE",
    "volume_size_gb": "VOLUME_SIZE_GB",
    "max_runtime_seconds": "MAX_RUNTIME_SECONDS",
    "window_hours": "WINDOW_HOURS",
    "atypical": "ATYPICAL",
    "job_prefix": "JOB_PREFIX",
    "baseline_prefix": "BASELINE_PREFIX",
    "baseline_folder": "BASELINE_FOLDER",
    "labels": "LABELS_PREFIX",
    "reviews": "REVIEW_PREFIX",
}
# LABEL_ATTRIBUTE: set only when pipeline.yaml names data.label_attribute. WORKFLOW_ACCOUNT: set only in a release
# stage's own account, where the workflow's account holds the package, its baselines, the labels and the review
# batches; the settings of the accuracy in service (ACCURACY) are then not set, since that account's are not read.
OPTIONAL_ENVIRONMENT = {"label_attribute": "LABEL_ATTRIBUTE", "workflow_account": "WORKFLOW_ACCOUNT"}
ACCURACY = ("labels", "reviews")


@dataclass(frozen=True)
class Place:
    """One monitored endpoint: its release stage, and its capture destination and report prefix (keys of the
    artifacts bucket, ending in /)."""

    stage: str
    captures: str
    reports: str


@dataclass(frozen=True)
class Settings:
    """What the stack tells the function (ENVIRONMENT): where things are, and how the job runs."""

    bucket: str
    endpoints: dict[str, Place]
    group: str
    role_arn: str
    image_uri: str
    kms_key_id: str
    instance_type: str
    volume_size_gb: int
    max_runtime_seconds: int
    window_hours: int
    atypical: int
    job_prefix: str
    # Where the monitoring job may read baselines: in a folder named `baseline_folder` under this key prefix of
    # the artifacts bucket (the executions' evaluation outputs; infra/drift.py grants exactly that).
    baseline_prefix: str
    baseline_folder: str
    labels: str = ""  # the labels prefix, an S3 URI ending in /: where label exports land (Config.labels_prefix)
    reviews: str = ""  # where review batches are written in the artifacts bucket (a key prefix ending in /)
    label_attribute: str = ""  # of Ground Truth manifests with several bounding-box attributes
    # The workflow's account, when it is not this function's: the baselines are read from a bucket of that account
    # and copied into `bucket`, and the accuracy in service is not computed.
    workflow_account: str = ""

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Settings:
        """The settings the stack gives the function; a missing or unusable variable is a StartError naming it."""
        raw = {name: (environ.get(variable) or "").strip() for name, variable in OPTIONAL_ENVIRONMENT.items()}
        elsewhere = raw["workflow_account"]
        if elsewhere and not re.fullmatch(r"\d{12}", elsewhere):
            raise StartError(f"environment variable WORKFLOW_ACCOUNT must be an account id of 12 digits (got {elsewhere!r})")
        for name, variable in ENVIRONMENT.items():
            value = (environ.get(variable) or "").strip()
            if elsewhere and name in ACCURACY:
                if value:
                    raise StartError(
                        f"environment variable {variable} is set with WORKFLOW_ACCOUNT: the labels and review batches are "
                        f"account {elsewhere}'s, which this function does not read"
                    )
                raw[name] = ""
                continue
            if not value:
                raise StartError(f"environment variable {variable} is not set")
            raw[name] = value
        if not elsewhere and not re.fullmatch(r"s3://[^/]+/(?:.+/)?", raw["labels"]):
            raise StartError(f"environment variable LABELS_PREFIX must be an S3 URI ending in / (got {raw['labels']!r})")
        try:
            places = {endpoint: Place(**place) for endpoint, place in json.loads(raw["endpoints"]).items()}
        except (ValueError, TypeError, AttributeError) as exc:
            raise StartError(f"environment variable ENDPOINTS must map each endpoint to its stage, captures and reports ({exc})") from None
        numbers = {}
        for name in ("volume_size_gb", "max_runtime_seconds", "window_hours", "atypical"):
            try:
                numbers[name] = int(raw[name])
            except ValueError:
                raise StartError(f"environment variable {ENVIRONMENT[name]} must be a whole number (got {raw[name]!r})") from None
        if not 1 <= numbers["window_hours"] <= MAX_WINDOW_HOURS:
            raise StartError(f"environment variable WINDOW_HOURS must be from 1 to {MAX_WINDOW_HOURS} (got {numbers['window_hours']})")
        return cls(**{**raw, **numbers, "endpoints": places})


# The window.


@dataclass(frozen=True)
class Window:
    """[since, until): whole hours, UTC."""

    since: datetime
    until: datetime

    @property
    def hours(self) -> list[datetime]:
        count = int((self.until - self.since) / timedelta(hours=1))
        return [self.since + timedelta(hours=index) for index in range(count)]

    @property
    def folder(self) -> str:
        return self.since.strftime(WINDOW_FOLDER)


def window_before(moment: datetime, hours: int) -> Window:
    """The last `hours` full hours before `moment` (UTC): at 13:27 with 1 hour, [12:00, 13:00)."""
    until = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return Window(until - timedelta(hours=hours), until)


def iso(moment: datetime) -> str:
    """A moment as the capture records and the monitor write it: UTC, to the second, with a Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_until(text: Any) -> datetime:
    """The event's "until": an ISO 8601 time (UTC when it names no zone)."""
    try:
        moment = datetime.fromisoformat(str(text).strip())
    except ValueError:
        raise StartError(f"until must be an ISO 8601 time such as 2026-01-02T03:00:00Z (got {text!r})") from None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def job_name(prefix: str, stage: str, endpoint: str, since: datetime) -> str:
    """`<prefix>-<window start, yyyymmddhh>-<stage>`; when that is over SageMaker's 63 characters, the stage
    gives way to as many hex digits of a hash of the endpoint's name as fit (pipelines/config.py refuses a
    configuration whose stages would then share a name)."""
    head = f"{prefix}-{since.astimezone(UTC):%Y%m%d%H}-"
    name = head + stage
    if len(name) <= NAME_LIMIT:
        return name
    return head + hashlib.sha256(endpoint.encode()).hexdigest()[: NAME_LIMIT - len(head)]


# Captures.


def hour_prefix(place: Place, endpoint: str, hour: datetime) -> str:
    return f"{place.captures}{endpoint}/{deploy.VARIANT}/{hour:%Y/%m/%d/%H}/"


def captured_hours(s3: Any, bucket: str, place: Place, endpoint: str, window: Window) -> list[datetime]:
    """The hours of the window whose capture folder holds at least one object."""
    found = []
    for hour in window.hours:
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=hour_prefix(place, endpoint, hour), MaxKeys=1)
        if listed.get("KeyCount", 0):
            found.append(hour)
    return found


# What is served, and its baselines.


@dataclass(frozen=True)
class Baselines:
    """What the job compares with: the served package ("<group>/<version>", or None), the S3 folder holding its
    baselines (None: none), the kinds without one, and why."""

    package: str | None = None
    folder: str | None = None
    missing: tuple[str, ...] = ("input", "output")
    notes: tuple[str, ...] = ()


def baselines_of(sagemaker: Any, settings: Settings, endpoint: Mapping[str, Any], registry: Any = None) -> Baselines:
    """The served package and the folder of its baselines that the monitoring job may read. `registry` describes the
    package (None: a client of the package's region, deploy.registry_for: the workflow's region may not be ours)."""
    served = deploy.served_package(sagemaker, endpoint)
    name = endpoint.get("EndpointName", "")
    if served is None:
        return Baselines(notes=(f"endpoint {name} serves no package of this project (no {deploy.TAG_ARN} tag): no baseline",))
    package = f"{served.group or settings.group}/{served.version}"
    if served.group and served.group != settings.group:
        return Baselines(package, notes=(f"endpoint {name} serves a package of another group, {served.group}: no baseline",))
    try:
        described = deploy.describe_package(registry or deploy.registry_for(served.arn, sagemaker), served.arn)
    except deploy.DeployError:  # not found; any other refusal is raised as it came
        return Baselines(package, notes=(f"the served package {package} was deleted: no baseline",))
    return usable_baselines(settings, package, described.get("DriftCheckBaselines") or {})


def usable_baselines(settings: Settings, package: str, recorded: Mapping[str, Any]) -> Baselines:
    """The folder of the recorded baselines that the job may read and the monitor finds by name: the first
    usable one's folder, which Register's two share (Evaluate's output); a baseline elsewhere is left out,
    and the monitor reports its kind as having no baseline. In a stage's own account the workflow's artifacts bucket
    is any bucket by name (this account does not know it): reading holds it to the workflow account (copy_baselines)."""
    bucket = "[^/]+" if settings.workflow_account else re.escape(settings.bucket)
    readable = re.compile(rf"^s3://{bucket}/{re.escape(settings.baseline_prefix)}(?:[^/]+/)+{re.escape(settings.baseline_folder)}/$")
    folder, missing, notes = None, [], []
    for member, (name, kind) in BASELINES.items():
        uri = str(((recorded.get(member) or {}).get("Statistics") or {}).get("S3Uri") or "")
        where, _, file = uri.rpartition("/")
        where += "/"
        reason = ""
        if not uri:
            reason = f"{package} records no {member} statistics"
        elif file != name:
            reason = f"{package}'s {member} statistics are {uri}, not a {name}"
        elif not readable.match(where):
            reason = f"{package}'s {member} statistics {uri} are not in an {settings.baseline_folder}/ folder of s3://{_artifacts(settings)}/{settings.baseline_prefix}"
        elif folder not in (None, where):
            reason = f"{package}'s {member} statistics {uri} are not beside the other baseline, in {folder}"
        if reason:
            missing.append(kind)
            notes.append(f"{reason}: its {kind} statistics are not compared")
        else:
            folder = where
    return Baselines(package, folder, tuple(missing), tuple(notes))


def _artifacts(settings: Settings) -> str:
    """The bucket of the executions' outputs, as the answer names it."""
    return f"<the artifacts bucket of account {settings.workflow_account}>" if settings.workflow_account else settings.bucket


def copy_baselines(s3: Any, settings: Settings, endpoint: str, window: Window, baselines: Baselines) -> Baselines:
    """In a stage's own account: the package's baselines copied from the workflow account's bucket into the window's
    report folder, which the job reads (its role reads nothing of another account). The read names the workflow's
    account as the bucket's owner (ExpectedBucketOwner: "If the account ID that you provide does not match the actual
    owner of the bucket, the request fails with the HTTP status code 403 Forbidden", GetObject, Amazon S3 API
    Reference). A baseline that cannot be read is left out, and the answer says why."""
    if not baselines.folder:
        return baselines
    source = baselines.folder.removeprefix("s3://")
    bucket, _, prefix = source.partition("/")
    place = f"{settings.endpoints[endpoint].reports}{window.folder}/{BASELINE_COPIES}"
    missing, notes, copied = list(baselines.missing), list(baselines.notes), 0
    for name, kind in BASELINES.values():
        if kind in baselines.missing:
            continue
        try:  # a bucket in another region is reached by botocore's own redirect (as deploy.py reads archives)
            body = s3.get_object(Bucket=bucket, Key=prefix + name, ExpectedBucketOwner=settings.workflow_account)["Body"].read()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "an error")
            missing.append(kind)
            why = f"could not be read from account {settings.workflow_account} ({code})"
            notes.append(f"{baselines.folder}{name} {why}: its {kind} statistics are not compared")
            continue
        s3.put_object(Bucket=settings.bucket, Key=place + name, Body=body, ContentType="application/json")
        copied += 1
    folder = f"s3://{settings.bucket}/{place}" if copied else None
    return Baselines(baselines.package, folder, tuple(missing), tuple(notes))


# The accuracy in service.


@dataclass(frozen=True)
class Labelled:
    """What the job reads for the accuracy in service: the label files (keys below the labels prefix), the capture
    files review batches took photos from (keys below the endpoint's variant folder, yyyy/mm/dd/hh/<file>), when
    the served package began answering (None: not known), and what was left out, with why."""

    labels: tuple[str, ...] = ()
    captures: tuple[str, ...] = ()
    served_since: datetime | None = None
    notes: tuple[str, ...] = ()


def served_since(sagemaker: Any, endpoint: Mapping[str, Any]) -> datetime | None:
    """When the endpoint's current config was made: the deployment function makes one for each package it deploys
    (deploy.py create_endpoint_config) just before the update, so no answer before it was the served package's.
    A config made earlier for the same package and settings is reused, and then its first making counts. None
    when the endpoint has no config that can be read."""
    name = endpoint.get("EndpointConfigName")
    if not name:
        return None
    try:
        created = sagemaker.describe_endpoint_config(EndpointConfigName=name).get("CreationTime")
    except ClientError as exc:
        if not deploy.is_not_found(exc):
            raise
        return None
    return created.astimezone(UTC) if isinstance(created, datetime) else None


def _listed(s3: Any, bucket: str, prefix: str) -> list[dict[str, Any]]:
    return [item for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix) for item in page.get("Contents", [])]


def label_files(s3: Any, labels: str) -> list[str]:
    """The keys below the labels prefix (an S3 URI) that may be labels: every object but a YOLO set's images."""
    bucket, _, prefix = labels.removeprefix("s3://").partition("/")
    keys = (item["Key"] for item in _listed(s3, bucket, prefix))
    return sorted(key[len(prefix) :] for key in keys if not key.endswith("/") and not key.lower().endswith(IMAGE_SUFFIXES))


def reviewed_captures(s3: Any, settings: Settings, endpoint: str, since: datetime | None) -> tuple[list[str], list[str]]:
    """The capture files of `endpoint` that the review batches under the review prefix took photos from, of hours
    that end after `since`; and the notes on what could not be read. A batch whose review.json was written before
    `since` took every photo earlier: it is not read."""
    base = variant_folder(settings, endpoint)
    found, notes = set(), []
    for item in _listed(s3, settings.bucket, settings.reviews):
        key = item["Key"]
        if key.rsplit("/", 1)[-1] != REVIEW or (since is not None and item["LastModified"] < since):
            continue
        try:
            entries = json.loads(s3.get_object(Bucket=settings.bucket, Key=key)["Body"].read())["images"]
            captured = [str(entry["captured"]) for entry in entries]
        except (ValueError, KeyError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
            notes.append(f"s3://{settings.bucket}/{key} is not a review batch's {REVIEW} ({type(exc).__name__}: {exc}): not read")
            continue
        for source in captured:
            uri = source.rpartition(":")[0] if re.search(r":\d+$", source) else source
            relative = uri[len(base) :] if uri.startswith(base) else ""
            hour = _hour(relative)
            if hour is not None and (since is None or hour + timedelta(hours=1) > since):
                found.add(relative)
    return sorted(found), notes


def variant_folder(settings: Settings, endpoint: str) -> str:
    """The S3 folder SageMaker writes `endpoint`'s capture files under, each at yyyy/mm/dd/hh/<file> below it."""
    return f"s3://{settings.bucket}/{settings.endpoints[endpoint].captures}{endpoint}/{deploy.VARIANT}/"


def _hour(relative: str) -> datetime | None:
    """The capture hour of a file below the variant folder (yyyy/mm/dd/hh/<file>), or None for another key."""
    match = re.fullmatch(r"(\d{4})/(\d{2})/(\d{2})/(\d{2})/[^/]+", relative)
    if not match:
        return None
    try:
        return datetime(*(int(part) for part in match.groups()), tzinfo=UTC)
    except ValueError:
        return None


def labelled_inputs(sagemaker: Any, s3: Any, settings: Settings, endpoint: str, described: Mapping[str, Any] | None, room: int) -> Labelled:
    """What the window's job reads for the accuracy in service, in at most `room` inputs."""
    where = settings.labels
    if room < 1:
        return Labelled(notes=("the window's captured hours and the baselines take every input a job may have: no accuracy in service",))
    labels = label_files(s3, where)
    if not labels:
        return Labelled(notes=(f"no label files under {where}: no accuracy in service",))
    since = served_since(sagemaker, described) if described else None
    captures, notes = reviewed_captures(s3, settings, endpoint, since)
    reviews = f"s3://{settings.bucket}/{settings.reviews}"
    if not captures:
        notes.append(f"no review batch under {reviews} took a photo from {endpoint}'s captures since its package: the window's own answers only")
    elif room < ACCURACY_INPUTS:
        notes.append(f"no input left for the {len(captures)} capture file(s) review batches took photos from: the window's own answers only")
        captures = []
    return Labelled(tuple(labels), tuple(captures), since, tuple(notes))


def accuracy_inputs(
    sagemaker: Any, s3: Any, settings: Settings, endpoint: str, described: Mapping[str, Any] | None, baselines: Baselines, room: int
) -> Labelled:
    """What the window's job reads for the accuracy in service of the package `baselines` names, in at most `room`
    inputs: nothing when the endpoint serves no package of the group (no labels of ours can score it), or in a stage's
    own account (its starter reads no labels or review batches of the workflow's). `cardamage monitor --since` on AWS
    (pipelines/backends/aws.py) fetches the same, through this function."""
    if settings.workflow_account:
        reason = f"the labels and review batches are in the workflow's account {settings.workflow_account}, not {endpoint}'s: no accuracy in service"
        return Labelled(notes=(reason,))
    if not (baselines.package or "").startswith(f"{settings.group}/"):
        return Labelled(notes=(f"{endpoint} serves no package of {settings.group}: no accuracy in service",))
    return labelled_inputs(sagemaker, s3, settings, endpoint, described, room)


def manifest(prefix: str, keys: list[str] | tuple[str, ...]) -> bytes:
    """A ManifestFile input's manifest: the prefix, then each object's key below it."""
    return (json.dumps([{"prefix": prefix}, *keys], indent=1) + "\n").encode("utf-8")


def write_manifests(s3: Any, settings: Settings, endpoint: str, window: Window, labelled: Labelled) -> None:
    """Put the manifests of the job's labelled inputs into the window's report folder, where the job role reads them."""
    folder = f"{settings.endpoints[endpoint].reports}{window.folder}/"
    variant = variant_folder(settings, endpoint)
    for name, prefix, keys in ((LABELS_MANIFEST, settings.labels, labelled.labels), (CAPTURES_MANIFEST, variant, labelled.captures)):
        if keys:
            s3.put_object(Bucket=settings.bucket, Key=folder + name, Body=manifest(prefix, keys), ContentType="application/json")


# The job.


def job_request(
    settings: Settings, endpoint: str, window: Window, hours: list[datetime], baselines: Baselines, labelled: Labelled | None = None
) -> dict[str, Any]:
    """The CreateProcessingJob request: one input per captured hour (at CAPTURES/yyyy/mm/dd/hh), the baselines'
    folder (at BASELINE), the label files (at LABELS) and the reviewed capture files (at LABELLED_CAPTURES) by
    their manifests in the window's report folder, the report to that folder."""
    place = settings.endpoints[endpoint]
    inputs = [
        _input(f"hour-{hour:%Y%m%d%H}", f"s3://{settings.bucket}/{hour_prefix(place, endpoint, hour)}", f"{CAPTURES}/{hour:%Y/%m/%d/%H}")
        for hour in hours
    ]
    if baselines.folder:
        inputs.append(_input("baseline", baselines.folder, BASELINE))
    labelled = labelled or Labelled()
    if labelled.labels:
        inputs.append(_input("labels", report_folder(settings, endpoint, window) + LABELS_MANIFEST, LABELS, "ManifestFile"))
    if labelled.labels and labelled.captures:
        inputs.append(_input("labelled-captures", report_folder(settings, endpoint, window) + CAPTURES_MANIFEST, LABELLED_CAPTURES, "ManifestFile"))
    arguments = [
        "--captures", CAPTURES,
        *(["--baseline", BASELINE] if baselines.folder else []),  # without one, each kind is reported as having none
        "--output", OUTPUT,
        "--since", iso(window.since),
        "--until", iso(window.until),
        "--endpoint", endpoint,
        "--atypical", str(settings.atypical),
        "--no-progress",
    ]  # fmt: skip
    if baselines.package:
        arguments += ["--package", baselines.package]
    if labelled.labels:
        arguments += ["--labels", LABELS, *(["--label-attribute", settings.label_attribute] if settings.label_attribute else [])]
        arguments += ["--served-since", iso(labelled.served_since)] if labelled.served_since else []
        arguments += ["--labelled-captures", LABELLED_CAPTURES] if labelled.captures else []
    return {
        "ProcessingJobName": job_name(settings.job_prefix, place.stage, endpoint, window.since),
        "ProcessingInputs": inputs,
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": OUTPUT_NAME,
                    "S3Output": {"S3Uri": report_folder(settings, endpoint, window), "LocalPath": OUTPUT, "S3UploadMode": "EndOfJob"},
                }
            ],
            "KmsKeyId": settings.kms_key_id,
        },
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": settings.instance_type,
                "VolumeSizeInGB": settings.volume_size_gb,
                "VolumeKmsKeyId": settings.kms_key_id,
            }
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": settings.max_runtime_seconds},
        "AppSpecification": {"ImageUri": settings.image_uri, "ContainerEntrypoint": ["python3", PROGRAM], "ContainerArguments": arguments},
        "Environment": {"PYTHONUNBUFFERED": "1"},
        # The monitor reads uploaded photos and calls nothing; SageMaker copies the inputs and outputs outside the
        # container (NetworkConfig.EnableNetworkIsolation, the API reference).
        "NetworkConfig": {"EnableNetworkIsolation": True},
        "RoleArn": settings.role_arn,
    }


def _input(name: str, uri: str, local_path: str, kind: str = "S3Prefix") -> dict[str, Any]:
    source = {"S3Uri": uri, "LocalPath": local_path, "S3DataType": kind, "S3InputMode": "File", "S3DataDistributionType": "FullyReplicated"}
    return {"InputName": name, "S3Input": source}


def report_folder(settings: Settings, endpoint: str, window: Window) -> str:
    return f"s3://{settings.bucket}/{settings.endpoints[endpoint].reports}{window.folder}/"


def empty_report(window: Window, baselines: Baselines) -> dict[str, Any]:
    """monitor.json for a window without captures, in the monitor's shape: no photos, no drift."""
    return {
        "drift": False,
        "window": {"since": iso(window.since), "until": iso(window.until), "images": 0},
        "baseline": {"package": baselines.package, "images": None, "missing": list(baselines.missing)},
        "statistics": [],
        "atypical": [],
        "unusable": [],
        "quality": None,
    }


def start(sagemaker: Any, s3: Any, settings: Settings, endpoint: str, now: datetime, registry: Any = None) -> dict[str, Any]:
    """Start the monitor over the window before `now` for `endpoint` (or write its empty report); the answer
    says what was done: status "started", "running" (the window's job exists already), "empty" or "skipped".
    `registry` describes the served package (baselines_of)."""
    if endpoint not in settings.endpoints:
        raise StartError(f"endpoint_name {endpoint!r} is not one this function monitors ({', '.join(sorted(settings.endpoints))})")
    window = window_before(now, settings.window_hours)
    answer: dict[str, Any] = {"endpoint_name": endpoint, "since": iso(window.since), "until": iso(window.until)}
    described = deploy.describe_endpoint(sagemaker, endpoint)
    hours = captured_hours(s3, settings.bucket, settings.endpoints[endpoint], endpoint, window)
    if described is None and not hours:
        return {**answer, "status": "skipped", "reason": f"there is no endpoint {endpoint} and nothing was captured in the window"}
    gone = Baselines(notes=(f"there is no endpoint {endpoint} now: no baseline",))
    baselines = baselines_of(sagemaker, settings, described, registry) if described else gone
    if hours and settings.workflow_account:
        baselines = copy_baselines(s3, settings, endpoint, window, baselines)
    answer |= {"package": baselines.package or "", "notes": list(baselines.notes), "report": report_folder(settings, endpoint, window) + REPORT}
    if not hours:
        place = settings.endpoints[endpoint]
        body = (json.dumps(empty_report(window, baselines), indent=2) + "\n").encode("utf-8")
        s3.put_object(Bucket=settings.bucket, Key=f"{place.reports}{window.folder}/{REPORT}", Body=body, ContentType="application/json")
        return {**answer, "status": "empty", "reason": "nothing was captured in the window: no job, an empty report"}
    labelled = accuracy_inputs(sagemaker, s3, settings, endpoint, described, baselines, MAX_INPUTS - len(hours) - bool(baselines.folder))
    write_manifests(s3, settings, endpoint, window, labelled)
    request = job_request(settings, endpoint, window, hours, baselines, labelled)
    answer |= {"job_name": request["ProcessingJobName"], "hours": [f"{hour:%Y-%m-%dT%H}" for hour in hours]}
    answer |= {"labels": len(labelled.labels), "labelled_captures": len(labelled.captures), "accuracy": list(labelled.notes)}
    try:
        sagemaker.create_processing_job(**request)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        if error.get("Code") != "ResourceInUse" and "already exist" not in str(error.get("Message", "")):
            raise
        return {**answer, "status": "running", "reason": "the window's job was started before"}
    return {**answer, "status": "started"}


def handler(event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
    """The Lambda entry point: {"endpoint_name": NAME, "until": ISO (optional)}."""
    import boto3

    if not isinstance(event, Mapping) or not isinstance(event.get("endpoint_name"), str):
        raise StartError(f"the event must be {{'endpoint_name': NAME}} (got {event!r})")
    settings = Settings.from_environment(os.environ)
    now = parse_until(event["until"]) if event.get("until") else datetime.now(UTC)
    answer = start(boto3.client("sagemaker"), boto3.client("s3"), settings, event["endpoint_name"], now)
    print(json.dumps(answer, sort_keys=True))  # the Lambda's log line
    return answer
