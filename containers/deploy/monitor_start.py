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
- starts a Processing job on the processing image running containers/monitoring/monitor.py, network-isolated,
  its volume and output encrypted with the project's key: one input per hour folder, one for the baselines'
  folder, and its report written to s3://<artifacts>/<reports prefix><window start>/.

A window with no captures starts no job: the function writes that window's monitor.json itself (no photos, no
drift), so the latest report says so; an endpoint that does not exist gets neither. The job's name is derived
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
# API reference): one per hour of the window, and one for the baselines.
MAX_INPUTS = 10
MAX_WINDOW_HOURS = MAX_INPUTS - 1
NAME_LIMIT = 63  # a processing job's name: [a-zA-Z0-9](-*[a-zA-Z0-9]){0,62} (the same reference)

# Where the job finds what it reads and writes (its program is the processing image's copy of containers/).
PROGRAM = "/opt/program/containers/monitoring/monitor.py"
PROCESSING = "/opt/ml/processing"
CAPTURES = f"{PROCESSING}/captures"
BASELINE = f"{PROCESSING}/baseline"
OUTPUT = f"{PROCESSING}/output"
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
}


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

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Settings:
        """The settings the stack gives the function; a missing or unusable variable is a StartError naming it."""
        raw = {}
        for name, variable in ENVIRONMENT.items():
            value = (environ.get(variable) or "").strip()
            if not value:
                raise StartError(f"environment variable {variable} is not set")
            raw[name] = value
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


def baselines_of(sagemaker: Any, settings: Settings, endpoint: Mapping[str, Any]) -> Baselines:
    """The served package and the folder of its baselines that the monitoring job may read."""
    served = deploy.served_package(sagemaker, endpoint)
    name = endpoint.get("EndpointName", "")
    if served is None:
        return Baselines(notes=(f"endpoint {name} serves no package of this project (no {deploy.TAG_ARN} tag): no baseline",))
    package = f"{served.group or settings.group}/{served.version}"
    if served.group and served.group != settings.group:
        return Baselines(package, notes=(f"endpoint {name} serves a package of another group, {served.group}: no baseline",))
    try:
        described = sagemaker.describe_model_package(ModelPackageName=served.arn)
    except ClientError as exc:
        if not deploy.is_not_found(exc):
            raise
        return Baselines(package, notes=(f"the served package {package} was deleted: no baseline",))
    return usable_baselines(settings, package, described.get("DriftCheckBaselines") or {})


def usable_baselines(settings: Settings, package: str, recorded: Mapping[str, Any]) -> Baselines:
    """The folder of the recorded baselines that the job may read and the monitor finds by name: the first
    usable one's folder, which Register's two share (Evaluate's output); a baseline elsewhere is left out,
    and the monitor reports its kind as having no baseline."""
    readable = re.compile(
        rf"^s3://{re.escape(settings.bucket)}/{re.escape(settings.baseline_prefix)}(?:[^/]+/)+{re.escape(settings.baseline_folder)}/$"
    )
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
            reason = f"{package}'s {member} statistics {uri} are not in an {settings.baseline_folder}/ folder of s3://{settings.bucket}/{settings.baseline_prefix}"
        elif folder not in (None, where):
            reason = f"{package}'s {member} statistics {uri} are not beside the other baseline, in {folder}"
        if reason:
            missing.append(kind)
            notes.append(f"{reason}: its {kind} statistics are not compared")
        else:
            folder = where
    return Baselines(package, folder, tuple(missing), tuple(notes))


# The job.


def job_request(settings: Settings, endpoint: str, window: Window, hours: list[datetime], baselines: Baselines) -> dict[str, Any]:
    """The CreateProcessingJob request: one input per captured hour (at CAPTURES/yyyy/mm/dd/hh), the baselines'
    folder (at BASELINE), the report to the window's folder under the endpoint's reports prefix."""
    place = settings.endpoints[endpoint]
    inputs = [
        _input(f"hour-{hour:%Y%m%d%H}", f"s3://{settings.bucket}/{hour_prefix(place, endpoint, hour)}", f"{CAPTURES}/{hour:%Y/%m/%d/%H}")
        for hour in hours
    ]
    if baselines.folder:
        inputs.append(_input("baseline", baselines.folder, BASELINE))
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


def _input(name: str, uri: str, local_path: str) -> dict[str, Any]:
    source = {"S3Uri": uri, "LocalPath": local_path, "S3DataType": "S3Prefix", "S3InputMode": "File", "S3DataDistributionType": "FullyReplicated"}
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


def start(sagemaker: Any, s3: Any, settings: Settings, endpoint: str, now: datetime) -> dict[str, Any]:
    """Start the monitor over the window before `now` for `endpoint` (or write its empty report); the answer
    says what was done: status "started", "running" (the window's job exists already), "empty" or "skipped"."""
    if endpoint not in settings.endpoints:
        raise StartError(f"endpoint_name {endpoint!r} is not one this function monitors ({', '.join(sorted(settings.endpoints))})")
    window = window_before(now, settings.window_hours)
    answer: dict[str, Any] = {"endpoint_name": endpoint, "since": iso(window.since), "until": iso(window.until)}
    described = deploy.describe_endpoint(sagemaker, endpoint)
    hours = captured_hours(s3, settings.bucket, settings.endpoints[endpoint], endpoint, window)
    if described is None and not hours:
        return {**answer, "status": "skipped", "reason": f"there is no endpoint {endpoint} and nothing was captured in the window"}
    baselines = baselines_of(sagemaker, settings, described) if described else Baselines(notes=(f"there is no endpoint {endpoint} now: no baseline",))
    answer |= {"package": baselines.package or "", "notes": list(baselines.notes), "report": report_folder(settings, endpoint, window) + REPORT}
    if not hours:
        place = settings.endpoints[endpoint]
        body = (json.dumps(empty_report(window, baselines), indent=2) + "\n").encode("utf-8")
        s3.put_object(Bucket=settings.bucket, Key=f"{place.reports}{window.folder}/{REPORT}", Body=body, ContentType="application/json")
        return {**answer, "status": "empty", "reason": "nothing was captured in the window: no job, an empty report"}
    request = job_request(settings, endpoint, window, hours, baselines)
    answer |= {"job_name": request["ProcessingJobName"], "hours": [f"{hour:%Y-%m-%dT%H}" for hour in hours]}
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
