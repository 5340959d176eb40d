"""Start a pipeline execution on all labelled data when new labels land in S3.

The EventBridge rule (infra/triggers.py) matches S3 "Object Created" events for Ground Truth output
manifests under the labelling output prefix and for any file under the labels prefix (exports from Label
Studio, CVAT, Roboflow: COCO, VOC, YOLO, ...), and invokes this function. It takes a dataset snapshot of
every labelled input (snapshot.py) and starts the pipeline with the snapshot's inputs prefix as
InputManifestUri, so the execution trains on everything labelled so far, not only the batch that landed.

An export uploaded as many files (a VOC or YOLO folder) sends one event per file. The function starts an
execution only for the newest labelled upload it sees, so a folder that landed before the function ran
starts one execution; and the snapshot's listing hash is the start's idempotency token, so events that see
the same labelled data (or one event EventBridge delivers twice: it delivers at least once) start one.

Why a function and not the rule's SageMaker pipeline target: a target's parameter value may be a JSON path
of the event only as a whole (`$.detail.object.key`), and no rule can list the bucket or copy objects.

Standard library and boto3 only, like the deployment function; configured by PIPELINE_NAME, DATA_BUCKET,
LABELS_PREFIX, LABELING_BUCKET, LABELING_PREFIX and SNAPSHOTS_PREFIX (ENVIRONMENT below).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from typing import Any

if __package__:  # imported as containers.trigger.trigger (the tests, the CLI)
    from containers.trigger import snapshot
else:  # the function: this folder is the code's root
    import snapshot  # type: ignore[no-redef]

LOG = logging.getLogger("cardamage.trigger")

PARAMETER = "InputManifestUri"  # steps/parameters.py
EVENT = "Object Created"
ENVIRONMENT = ("PIPELINE_NAME", "DATA_BUCKET", "LABELS_PREFIX", "LABELING_BUCKET", "LABELING_PREFIX", "SNAPSHOTS_PREFIX")


class TriggerError(ValueError):
    """The event or the environment is not what the rule sends; the message says what was expected."""


def event_object(event: Mapping[str, Any]) -> tuple[str, str]:
    """The bucket and key of the object an S3 "Object Created" event is about."""
    if not isinstance(event, Mapping) or event.get("detail-type") != EVENT:
        raise TriggerError(
            f"expected an S3 {EVENT!r} event, got {event.get('detail-type') if isinstance(event, Mapping) else type(event).__name__!r}"
        )
    detail = event.get("detail") or {}
    bucket, key = (detail.get("bucket") or {}).get("name"), (detail.get("object") or {}).get("key")
    if not bucket or not key:
        raise TriggerError("the event has no detail.bucket.name or detail.object.key")
    return bucket, key


def prefixes_from(environ: Mapping[str, str]) -> tuple[str, snapshot.Prefixes]:
    missing = [name for name in ENVIRONMENT if not (environ.get(name) or "").strip()]
    if missing:
        raise TriggerError(f"environment variable(s) {', '.join(missing)} not set (the pipeline and where labels are)")
    prefixes = snapshot.Prefixes(
        environ["DATA_BUCKET"], environ["LABELS_PREFIX"], environ["LABELING_PREFIX"], environ["SNAPSHOTS_PREFIX"], environ["LABELING_BUCKET"]
    )
    return environ["PIPELINE_NAME"], prefixes


def newest(objects: list[snapshot.LabelledObject]) -> snapshot.LabelledObject:
    return max(objects, key=lambda o: (o.last_modified, o.key))


def start_request(document: dict, pipeline_name: str, trigger_key: str) -> dict[str, Any]:
    """StartPipelineExecution's arguments for a snapshot."""
    return {
        "PipelineName": pipeline_name,
        "PipelineParameters": [{"Name": PARAMETER, "Value": document["inputs_uri"]}],
        "PipelineExecutionDescription": (
            f"Dataset snapshot {document['snapshot_id']}: {len(document['inputs'])} labelled input(s); new: {trigger_key}"
        )[:3072],
        "ClientRequestToken": document["listing_sha256"],  # 64 characters, within SageMaker's 32 to 128
    }


def handle(event: Mapping[str, Any], environ: Mapping[str, str], s3: Any, sagemaker: Any) -> dict[str, Any]:
    pipeline_name, prefixes = prefixes_from(environ)
    bucket, key = event_object(event)
    if not snapshot.is_labelled_input(key, prefixes, bucket):
        raise TriggerError(
            f"s3://{bucket}/{key} is not a labelled input (a Ground Truth output manifest under "
            f"s3://{prefixes.ground_truth_bucket}/{prefixes.labeling}, "
            f"or a file under s3://{prefixes.bucket}/{prefixes.labels})"
        )
    objects = snapshot.labelled_objects(s3, prefixes)
    latest = newest(objects) if objects else None
    if latest is None or (latest.bucket, latest.key) != (bucket, key):
        reason = f"s3://{latest.bucket}/{latest.key} is newer and starts the execution" if latest else "the object is gone"
        answer = {"skipped": f"s3://{bucket}/{key}: {reason}"}
        print(json.dumps(answer, sort_keys=True))  # the function's log line
        return answer
    document = snapshot.take(s3, prefixes, objects=objects)
    arn = sagemaker.start_pipeline_execution(**start_request(document, pipeline_name, key))["PipelineExecutionArn"]
    answer = {
        "pipeline_execution_arn": arn,
        "input_manifest_uri": document["inputs_uri"],
        "snapshot": document["uri"],
        "inputs": len(document["inputs"]),
    }
    print(json.dumps(answer, sort_keys=True))
    return answer


def handler(event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
    """The Lambda entry point: snapshot the labelled data and start the pipeline on it."""
    prefixes_from(os.environ)  # a missing variable is reported before any AWS call
    import boto3

    return handle(event, os.environ, boto3.client("s3"), boto3.client("sagemaker"))
