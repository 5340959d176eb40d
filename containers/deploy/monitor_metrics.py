"""Publish a finished monitoring job's findings as CloudWatch metrics.

An EventBridge rule sends this function the "SageMaker Processing Job State Change" events of the monitoring
jobs (names starting with JOB_PREFIX) that completed (infra/drift.py; the event is listed in "Events that Amazon
SageMaker AI sends to Amazon EventBridge"). The function reads only the job's name and status from the event,
asks SageMaker for the rest (DescribeProcessingJob: the arguments the starter gave, and the report's folder),
reads the job's monitor.json and puts, in the namespace METRIC_NAMESPACE:

| metric | dimensions | value |
| --- | --- | --- |
| `Drift` | Endpoint | 1 when the window drifted, else 0 (what the drift alarm watches) |
| `Drift` | Endpoint, PackageVersion | the same, per served package |
| `Images` | Endpoint, PackageVersion | photos of the window the monitor measured |
| `Unusable` | Endpoint, PackageVersion | captured records it could not use |
| `Drift` | Endpoint, PackageVersion, Statistic | 1 when that statistic drifted, else 0 |
| `Value` | Endpoint, PackageVersion, Statistic | the statistic's test value (monitor.json `value`) |
| `PValue` | Endpoint, PackageVersion, Statistic | its p-value, when the test gives one |
| `ServiceMAP`, `ServiceMAP50` | Endpoint, PackageVersion | accuracy in service (monitor.json `quality`), when there is one |
| `ServiceImages` | Endpoint, PackageVersion | how many labelled photos that figure is of |

PackageVersion is the served package's version ("none" when the endpoint served none of this project's).
Data points carry the time they are published, just after the window's job ends. Standard library and boto3 only.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping
from typing import Any

try:  # imported as containers.deploy.monitor_metrics: the tests, the CDK app
    from . import monitor_start
except ImportError:  # the Lambda: handler "monitor_metrics.handler", with this folder on sys.path
    import monitor_start  # type: ignore[no-redef]

PROCESSING_EVENT = "SageMaker Processing Job State Change"
ENDPOINT, PACKAGE_VERSION, STATISTIC = "Endpoint", "PackageVersion", "Statistic"  # the dimensions
DRIFT, IMAGES, UNUSABLE, VALUE, P_VALUE = "Drift", "Images", "Unusable", "Value", "PValue"  # the metrics
SERVICE_MAP, SERVICE_MAP50, SERVICE_IMAGES = "ServiceMAP", "ServiceMAP50", "ServiceImages"
NO_PACKAGE = "none"
BATCH = 1000  # "Each request is also limited to no more than 1000 different metrics" (PutMetricData, API reference)
ENVIRONMENT = ("METRIC_NAMESPACE", "JOB_PREFIX")


def namespace(project: str) -> str:
    """The project's namespace: a role may put metrics in it and no other (the cloudwatch:namespace condition)."""
    return f"{project}/Monitoring"


def argument(arguments: list[str], name: str) -> str | None:
    """The value that follows `name` in a job's container arguments."""
    return arguments[arguments.index(name) + 1] if name in arguments[:-1] else None


def metric_data(document: Mapping[str, Any], endpoint: str, version: str) -> list[dict[str, Any]]:
    """The data points of one monitor.json (the module's table); values CloudWatch refuses (NaN, infinities,
    none) are left out."""
    window = {ENDPOINT: endpoint, PACKAGE_VERSION: version}

    def point(name: str, value: Any, dimensions: Mapping[str, str], unit: str = "None") -> dict[str, Any] | None:
        if isinstance(value, bool):
            value = int(value)
        if not isinstance(value, int | float) or not math.isfinite(value):
            return None
        return {"MetricName": name, "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()], "Value": float(value), "Unit": unit}

    drift = bool(document.get("drift"))
    points = [
        point(DRIFT, drift, {ENDPOINT: endpoint}),
        point(DRIFT, drift, window),
        point(IMAGES, (document.get("window") or {}).get("images", 0), window, "Count"),
        point(UNUSABLE, len(document.get("unusable") or []), window, "Count"),
    ]
    quality = document.get("quality") or {}
    if quality:
        points += [
            point(SERVICE_MAP, quality.get("map"), window),
            point(SERVICE_MAP50, quality.get("map50"), window),
            point(SERVICE_IMAGES, quality.get("images"), window, "Count"),
        ]
    for statistic in document.get("statistics") or []:
        each = {**window, STATISTIC: str(statistic.get("name", ""))}
        points += [
            point(DRIFT, bool(statistic.get("drifted")), each),
            point(VALUE, statistic.get("value"), each),
            point(P_VALUE, statistic.get("p_value"), each),
        ]
    return [found for found in points if found is not None]


def batches(items: list[dict[str, Any]], size: int = BATCH) -> Iterator[list[dict[str, Any]]]:
    for index in range(0, len(items), size):
        yield items[index : index + size]


def publish(sagemaker: Any, s3: Any, cloudwatch: Any, metric_namespace: str, job_name: str) -> dict[str, Any]:
    """Read the job's report and put its metrics; returns what was published."""
    job = sagemaker.describe_processing_job(ProcessingJobName=job_name)
    arguments = list((job.get("AppSpecification") or {}).get("ContainerArguments") or [])
    endpoint = argument(arguments, "--endpoint")
    if not endpoint:
        raise monitor_start.StartError(f"processing job {job_name} names no --endpoint: it is not a monitoring job the starter made")
    package = argument(arguments, "--package")
    version = package.rsplit("/", 1)[-1] if package else NO_PACKAGE
    (folder,) = [out["S3Output"]["S3Uri"] for out in job["ProcessingOutputConfig"]["Outputs"] if out["OutputName"] == monitor_start.OUTPUT_NAME]
    bucket, _, prefix = folder.removeprefix("s3://").partition("/")
    key = f"{prefix.rstrip('/')}/{monitor_start.REPORT}"
    document = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    data = metric_data(document, endpoint, version)
    for batch in batches(data):
        cloudwatch.put_metric_data(Namespace=metric_namespace, MetricData=batch)
    return {"status": "published", "job_name": job_name, "endpoint_name": endpoint, "package_version": version,
            "report": f"s3://{bucket}/{key}", "drift": bool(document.get("drift")), "metrics": len(data)}  # fmt: skip


def handler(event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
    """The Lambda entry point: a processing job's state change; anything but a completed monitoring job is skipped."""
    import boto3

    missing = [name for name in ENVIRONMENT if not os.environ.get(name)]
    if missing:
        raise monitor_start.StartError(f"environment variable {missing[0]} is not set")
    event = event if isinstance(event, Mapping) else {}
    detail = event.get("detail") if isinstance(event.get("detail"), Mapping) else {}
    name, status = str(detail.get("ProcessingJobName", "")), str(detail.get("ProcessingJobStatus", ""))
    if event.get("detail-type") != PROCESSING_EVENT or not name.startswith(os.environ["JOB_PREFIX"] + "-") or status != "Completed":
        reason = f"not a completed monitoring job ({event.get('detail-type')}, {status or 'no status'})"
        answer = {"status": "skipped", "job_name": name, "reason": reason}
    else:
        cloudwatch = boto3.client("cloudwatch")
        answer = publish(boto3.client("sagemaker"), boto3.client("s3"), cloudwatch, os.environ["METRIC_NAMESPACE"], name)
    print(json.dumps(answer, sort_keys=True))  # the Lambda's log line
    return answer
