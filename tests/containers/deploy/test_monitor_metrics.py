"""The drift monitor's metrics function (containers/deploy/monitor_metrics.py) against moto: a completed monitoring
job's monitor.json becomes CloudWatch metrics in the project's namespace, with the documented dimensions."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import pytest

from containers.deploy import monitor_metrics, monitor_start
from containers.deploy.monitor_start import Baselines, Labelled
from tests.aws_fakes import REGION, client
from tests.containers.deploy.test_monitor_start import BUCKET, ENDPOINT, ENVIRONMENT, GROUP, NOW, SETTINGS, packaged

NAMESPACE = monitor_metrics.namespace("car-damage")
REPORT = {  # a monitor.json of the contract, as containers/monitoring/monitor.py writes it
    "drift": True,
    "window": {"since": "2026-01-02T10:00:00Z", "until": "2026-01-02T13:00:00Z", "images": 57},
    "baseline": {"package": f"{GROUP}/4", "images": 800, "missing": []},
    "statistics": [
        {"name": "brightness", "kind": "input", "test": "ks", "value": 0.41, "p_value": 1e-7, "threshold": 0.0007, "drifted": True},
        {"name": "format", "kind": "input", "test": "chi2", "value": 0.02, "p_value": 0.8, "threshold": 0.0007, "drifted": False},
        {"name": "area_share:dent", "kind": "output", "test": "ks", "value": 0.05, "p_value": None, "threshold": 0.0007, "drifted": False},
    ],
    "atypical": [{"capture": "a.jsonl:1", "score": 3.2, "why": "brightness"}],
    "unusable": [{"capture": "a.jsonl:7", "reason": "not an image"}, {"capture": "a.jsonl:9", "reason": "no answer"}],
    "quality": None,
}
EVENT = {  # "SageMaker Processing Job State Change" (Events that Amazon SageMaker AI sends to Amazon EventBridge)
    "version": "0",
    "detail-type": monitor_metrics.PROCESSING_EVENT,
    "source": "aws.sagemaker",
    "region": REGION,
    "detail": {"ProcessingJobName": "car-damage-monitor-2026010210-production", "ProcessingJobStatus": "Completed"},
}


@pytest.fixture
def job(clients):
    """A monitoring job the starter's request made (moto completes it at once) and its report."""
    sagemaker, s3 = clients
    cloudwatch = client("cloudwatch", sagemaker.meta.endpoint_url)
    window = monitor_start.window_before(NOW, 3)
    sagemaker.create_processing_job(
        **monitor_start.job_request(SETTINGS, ENDPOINT, window, window.hours, Baselines(f"{GROUP}/4", "s3://artifacts/e/evaluation/", ()))
    )
    s3.put_object(Bucket=BUCKET, Key=f"monitoring/{ENDPOINT}/{window.folder}/monitor.json", Body=json.dumps(REPORT).encode())
    return sagemaker, s3, cloudwatch


def published(cloudwatch) -> dict[tuple, float]:
    """(metric, ((dimension, value), ...)) -> the latest value, as CloudWatch keeps them."""
    found = {}
    for metric in cloudwatch.list_metrics(Namespace=NAMESPACE)["Metrics"]:
        dimensions = metric["Dimensions"]
        points = cloudwatch.get_metric_statistics(
            Namespace=NAMESPACE,
            MetricName=metric["MetricName"],
            Dimensions=dimensions,
            StartTime=datetime.now(UTC) - timedelta(hours=1),
            EndTime=datetime.now(UTC) + timedelta(hours=1),
            Period=3600,
            Statistics=["Maximum"],
        )["Datapoints"]
        found[(metric["MetricName"], tuple(sorted((d["Name"], d["Value"]) for d in dimensions)))] = points[0]["Maximum"]
    return found


def test_a_completed_job_s_report_becomes_the_documented_metrics(job):
    sagemaker, s3, cloudwatch = job
    answer = monitor_metrics.publish(sagemaker, s3, cloudwatch, NAMESPACE, EVENT["detail"]["ProcessingJobName"])
    assert (answer["endpoint_name"], answer["package_version"], answer["drift"]) == (ENDPOINT, "4", True)

    window = (("Endpoint", ENDPOINT), ("PackageVersion", "4"))

    def each(name):
        return tuple(sorted((*window, ("Statistic", name))))

    assert published(cloudwatch) == {
        ("Drift", (("Endpoint", ENDPOINT),)): 1.0,  # what the alarm watches, whatever package is served
        ("Drift", window): 1.0,
        ("Images", window): 57.0,
        ("Unusable", window): 2.0,
        ("Drift", each("brightness")): 1.0,
        ("Value", each("brightness")): 0.41,
        ("PValue", each("brightness")): 1e-7,
        ("Drift", each("format")): 0.0,
        ("Value", each("format")): 0.02,
        ("PValue", each("format")): 0.8,
        ("Drift", each("area_share:dent")): 0.0,  # no p-value: none published
        ("Value", each("area_share:dent")): 0.05,
    }
    assert answer["metrics"] == 12


def test_values_cloudwatch_refuses_are_left_out_and_a_package_less_window_says_none():
    document = {
        "drift": False,
        "window": {"images": 0},
        "statistics": [{"name": "sharpness", "value": math.nan, "p_value": math.inf, "drifted": False}],
    }
    data = monitor_metrics.metric_data(document, ENDPOINT, monitor_metrics.NO_PACKAGE)
    assert [(point["MetricName"], point["Value"]) for point in data] == [
        ("Drift", 0.0),
        ("Drift", 0.0),
        ("Images", 0.0),
        ("Unusable", 0.0),
        ("Drift", 0.0),
    ]
    assert {"Name": "PackageVersion", "Value": "none"} in data[1]["Dimensions"]
    assert [len(batch) for batch in monitor_metrics.batches(list(range(2500)))] == [1000, 1000, 500]  # PutMetricData takes at most 1000


def test_accuracy_in_service_becomes_its_own_metrics_when_the_window_has_labelled_photos():
    document = {"drift": False, "window": {"images": 40}, "statistics": [], "quality": {"images": 12, "map": 0.41, "map50": 0.66}}
    data = monitor_metrics.metric_data(document, ENDPOINT, "3")
    service = {point["MetricName"]: point for point in data if point["MetricName"].startswith("Service")}
    assert {name: point["Value"] for name, point in service.items()} == {"ServiceMAP": 0.41, "ServiceMAP50": 0.66, "ServiceImages": 12.0}
    assert service["ServiceMAP"]["Dimensions"] == [{"Name": "Endpoint", "Value": ENDPOINT}, {"Name": "PackageVersion", "Value": "3"}]
    no_boxes = {**document, "quality": {"images": 2, "map": None, "map50": None}}  # labelled photos, no labelled box: no figure
    names = [point["MetricName"] for point in monitor_metrics.metric_data(no_boxes, ENDPOINT, "3")]
    assert [name for name in names if name.startswith("Service")] == ["ServiceImages"]


def test_a_job_started_with_labels_publishes_its_accuracy_in_service_for_the_served_package(clients):
    """The starter's request with the labelled inputs (their arguments after --package): the report's quality becomes
    ServiceMAP, ServiceMAP50 and ServiceImages of the package the job names."""
    sagemaker, s3 = clients
    cloudwatch = client("cloudwatch", sagemaker.meta.endpoint_url)
    window = monitor_start.window_before(NOW, 3)
    labelled = Labelled(("review-1/export.json",), ("2026/01/01/15/f.jsonl",), datetime(2026, 1, 1, 12, tzinfo=UTC))
    request = monitor_start.job_request(
        SETTINGS, ENDPOINT, window, window.hours, Baselines(f"{GROUP}/4", "s3://artifacts/e/evaluation/", ()), labelled
    )
    assert "--labelled-captures" in request["AppSpecification"]["ContainerArguments"]
    sagemaker.create_processing_job(**request)
    quality = {"images": 12, "boxes": 30, "map": 0.41, "map50": 0.66, "package": f"{GROUP}/4"}
    s3.put_object(Bucket=BUCKET, Key=f"monitoring/{ENDPOINT}/{window.folder}/monitor.json", Body=json.dumps({**REPORT, "quality": quality}).encode())

    answer = monitor_metrics.publish(sagemaker, s3, cloudwatch, NAMESPACE, request["ProcessingJobName"])

    assert answer["package_version"] == "4" and answer["metrics"] == 15
    found = published(cloudwatch)
    window_dimensions = (("Endpoint", ENDPOINT), ("PackageVersion", "4"))
    assert {name: found[(name, window_dimensions)] for name in ("ServiceMAP", "ServiceMAP50", "ServiceImages")} == {
        "ServiceMAP": 0.41,
        "ServiceMAP50": 0.66,
        "ServiceImages": 12.0,
    }


def test_the_packaged_function_publishes_on_the_completed_event_and_skips_others(job, tmp_path):
    _, _, cloudwatch = job
    function = packaged("monitor_metrics.handler")
    environment = {"METRIC_NAMESPACE": NAMESPACE, "JOB_PREFIX": ENVIRONMENT["JOB_PREFIX"]}
    failed = {**EVENT, "detail": {**EVENT["detail"], "ProcessingJobStatus": "Failed"}}
    theirs = {**EVENT, "detail": {"ProcessingJobName": "pipelines-abc-PrepareData-x", "ProcessingJobStatus": "Completed"}}
    for event in (failed, theirs):
        answer, _ = function.invoke(event, environment, tmp_path)
        assert answer["status"] == "skipped"
    assert cloudwatch.list_metrics(Namespace=NAMESPACE)["Metrics"] == []

    answer, modules = function.invoke(EVENT, environment, tmp_path)

    assert (answer["status"], answer["metrics"]) == ("published", 12)
    assert answer["report"] == f"s3://{BUCKET}/monitoring/{ENDPOINT}/20260102T1000Z/monitor.json"
    assert ("Drift", (("Endpoint", ENDPOINT),)) in published(cloudwatch)
    assert {name for name, file in modules.items() if file.startswith(str(function.code))} == {"monitor_metrics", "monitor_start", "deploy"}
