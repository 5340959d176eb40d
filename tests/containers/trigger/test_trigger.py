"""The new-manifest trigger (containers/trigger/trigger.py) against moto in server mode: an S3 event as
EventBridge delivers it starts the pipeline with the manifest's URI as InputManifestUri."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from containers.trigger import trigger
from containers.trigger.trigger import TriggerError, handler, start_request
from tests.aws_fakes import ROLE, client, isolate_aws, moto_server

PIPELINE = "car-damage-pipeline"
EVENT_ID = "17793124-05d4-b198-2fde-7ededc63b103"
KEY = "ground-truth/car-damage-2026-11-24/manifests/output/output.manifest"


def s3_event(key: str = KEY, bucket: str = "data-bucket", event_id: str = EVENT_ID) -> dict:
    """An "Object Created" event as S3 sends it to EventBridge (the documented example's shape)."""
    return {
        "version": "0",
        "id": event_id,
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "123456789012",
        "time": "2026-11-24T10:00:00Z",
        "region": "eu-west-1",
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {"key": key, "size": 2048, "etag": "b1946ac92492d2347c6235b4d2611184", "sequencer": "00617F08299329D189"},
            "request-id": "N4N7GDK58NMKJ12R",
            "requester": "123456789012",
            "reason": "PutObject",
        },
    }


def test_the_request_carries_the_manifest_uri_and_the_event_id_as_idempotency_token():
    request = start_request(s3_event(), PIPELINE)
    assert request["PipelineName"] == PIPELINE
    assert request["PipelineParameters"] == [{"Name": "InputManifestUri", "Value": f"s3://data-bucket/{KEY}"}]
    assert request["ClientRequestToken"] == EVENT_ID


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"detail-type": "Object Deleted", "detail": {}}, "expected an S3 'Object Created' event"),
        ({**s3_event(), "detail": {"bucket": {"name": "b"}}}, "no detail.bucket.name or detail.object.key"),
        (s3_event(key="ground-truth/job/annotations/worker-response/1.json"), "is not a Ground Truth output manifest"),
        ("not an event", "expected an S3"),
    ],
)
def test_other_events_are_refused_with_a_reason(event, message):
    with pytest.raises(TriggerError, match=message):
        start_request(event, PIPELINE)


def test_without_pipeline_name_the_handler_says_which_variable(monkeypatch):
    monkeypatch.delenv("PIPELINE_NAME", raising=False)
    with pytest.raises(TriggerError, match="PIPELINE_NAME"):
        handler(s3_event())


def test_the_handler_starts_the_pipeline_on_the_manifest(monkeypatch, tmp_path):
    with moto_server() as server:
        isolate_aws(monkeypatch, tmp_path)
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)  # boto3 inside the handler reaches moto
        monkeypatch.setenv("PIPELINE_NAME", PIPELINE)
        sagemaker = client("sagemaker", server.url)
        definition = {
            "Version": "2020-12-01",
            "Parameters": [{"Name": "InputManifestUri", "Type": "String", "DefaultValue": "s3://data-bucket/manifests/"}],
            "Steps": [],
        }
        sagemaker.create_pipeline(PipelineName=PIPELINE, PipelineDefinition=json.dumps(definition), RoleArn=ROLE)

        answer = handler(s3_event())

        (execution,) = sagemaker.list_pipeline_executions(PipelineName=PIPELINE)["PipelineExecutionSummaries"]
        assert execution["PipelineExecutionArn"] == answer["pipeline_execution_arn"]
        parameters = sagemaker.list_pipeline_parameters_for_execution(PipelineExecutionArn=answer["pipeline_execution_arn"])["PipelineParameters"]
        assert parameters == [{"Name": "InputManifestUri", "Value": f"s3://data-bucket/{KEY}"}]
        assert answer["input_manifest_uri"] == f"s3://data-bucket/{KEY}"


def test_the_lambda_module_imports_only_the_standard_library_and_boto3():
    import ast
    import sys

    tree = ast.parse(Path(trigger.__file__).read_text())
    modules = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    modules |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert modules - set(sys.stdlib_module_names) <= {"boto3"}
