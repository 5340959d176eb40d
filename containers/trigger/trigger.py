"""Start a pipeline execution when a new Ground Truth output manifest lands in S3.

The EventBridge rule (infra/triggers.py) matches S3 "Object Created" events for `output.manifest` under the
labelling output prefix and invokes this function, which starts the SageMaker pipeline with the manifest's
`s3://bucket/key` as InputManifestUri. Why a function and not the rule's SageMaker pipeline target: a rule
target's parameter value may be a JSON path of the event (`$.detail.object.key`) only as a whole, never
part of a string, and the S3 event holds the bucket and the key apart; no rule can make the URI. The
function also makes starts idempotent: the event's id is the ClientRequestToken, so an event that
EventBridge delivers twice (it delivers at least once) starts one execution.

Standard library and boto3 only, like the deployment function; configured by PIPELINE_NAME.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from typing import Any

LOG = logging.getLogger("cardamage.trigger")

PARAMETER = "InputManifestUri"  # steps/parameters.py
EVENT = "Object Created"
MANIFEST = "output.manifest"  # what Ground Truth writes under <prefix>/<job>/manifests/output/


class TriggerError(ValueError):
    """The event or the environment is not what the rule sends; the message says what was expected."""


def manifest_uri(event: Mapping[str, Any]) -> str:
    """The s3:// URI of the object an S3 "Object Created" event is about."""
    if not isinstance(event, Mapping) or event.get("detail-type") != EVENT:
        raise TriggerError(
            f"expected an S3 {EVENT!r} event, got {event.get('detail-type') if isinstance(event, Mapping) else type(event).__name__!r}"
        )
    detail = event.get("detail") or {}
    bucket, key = (detail.get("bucket") or {}).get("name"), (detail.get("object") or {}).get("key")
    if not bucket or not key:
        raise TriggerError("the event has no detail.bucket.name or detail.object.key")
    if not key.endswith(MANIFEST):
        raise TriggerError(f"s3://{bucket}/{key} is not a Ground Truth output manifest ({MANIFEST})")
    return f"s3://{bucket}/{key}"


def start_request(event: Mapping[str, Any], pipeline_name: str) -> dict[str, Any]:
    """StartPipelineExecution's arguments for the event."""
    uri = manifest_uri(event)
    request: dict[str, Any] = {
        "PipelineName": pipeline_name,
        "PipelineParameters": [{"Name": PARAMETER, "Value": uri}],
        "PipelineExecutionDescription": f"New Ground Truth output manifest {uri}"[:3072],
    }
    event_id = str(event.get("id") or "")
    if 32 <= len(event_id) <= 128:  # SageMaker's limits for the token; EventBridge ids are UUIDs (36)
        request["ClientRequestToken"] = event_id
    return request


def handler(event: Mapping[str, Any], context: Any = None) -> dict[str, str]:
    """The Lambda entry point: start the pipeline on the manifest; returns the execution's ARN."""
    pipeline_name = (os.environ.get("PIPELINE_NAME") or "").strip()
    if not pipeline_name:
        raise TriggerError("environment variable PIPELINE_NAME is not set (the pipeline to start)")
    request = start_request(event, pipeline_name)
    import boto3

    arn = boto3.client("sagemaker").start_pipeline_execution(**request)["PipelineExecutionArn"]
    answer = {"pipeline_execution_arn": arn, "input_manifest_uri": request["PipelineParameters"][0]["Value"]}
    print(json.dumps(answer, sort_keys=True))  # the Lambda's log line
    return answer
