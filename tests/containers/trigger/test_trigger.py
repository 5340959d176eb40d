"""The new-labels trigger (containers/trigger/) against moto in server mode: an S3 event as EventBridge delivers
it takes a snapshot of every labelled input and starts the pipeline on it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from containers.processing import formats
from containers.trigger import snapshot, trigger
from containers.trigger.trigger import TriggerError, handle, handler
from tests.aws_fakes import REGION, ROLE, TickingS3Clock, client, isolate_aws, moto_server, packaged_function
from tests.support import ROOT

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


ENVIRONMENT = {
    "PIPELINE_NAME": PIPELINE,
    "DATA_BUCKET": "data-bucket",
    "LABELS_PREFIX": "labels/",
    "LABELING_BUCKET": "data-bucket",
    "LABELING_PREFIX": "ground-truth/",
    "SNAPSHOTS_PREFIX": "snapshots/",
}
PREFIXES = snapshot.Prefixes("data-bucket", "labels/", "ground-truth/", "snapshots/")


NOT_LABELLED = (
    "is not a labelled input (a Ground Truth output manifest under s3://data-bucket/ground-truth/, or a file under s3://data-bucket/labels/)"
)


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"detail-type": "Object Deleted", "detail": {}}, "expected an S3 'Object Created' event, got 'Object Deleted'"),
        ({**s3_event(), "detail": {"bucket": {"name": "b"}}}, "the event has no detail.bucket.name or detail.object.key"),
        (
            s3_event(key="ground-truth/job/annotations/worker-response/1.json"),
            f"s3://data-bucket/ground-truth/job/annotations/worker-response/1.json {NOT_LABELLED}",
        ),
        (s3_event(key="labels/.hidden/x.json"), f"s3://data-bucket/labels/.hidden/x.json {NOT_LABELLED}"),
        (s3_event(bucket="other-bucket"), f"s3://other-bucket/{KEY} {NOT_LABELLED}"),
        ("not an event", "expected an S3 'Object Created' event, got 'str'"),
    ],
)
def test_other_events_are_refused_with_a_reason(event, message):
    with pytest.raises(TriggerError) as caught:
        handle(event, ENVIRONMENT, s3=None, sagemaker=None)
    assert str(caught.value) == message


def test_without_its_environment_the_handler_says_which_variables(monkeypatch):
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PIPELINE_NAME", PIPELINE)
    with pytest.raises(TriggerError) as caught:
        handler(s3_event())
    assert str(caught.value) == (
        "environment variable(s) DATA_BUCKET, LABELS_PREFIX, LABELING_BUCKET, LABELING_PREFIX, SNAPSHOTS_PREFIX not set "
        "(the pipeline and where labels are)"
    )


def test_what_counts_as_a_labelled_input():
    assert snapshot.is_labelled_input(KEY, PREFIXES)
    assert snapshot.is_labelled_input("labels/batch-1/export.json", PREFIXES)
    assert snapshot.is_labelled_input("labels/x.xml", PREFIXES)
    assert not snapshot.is_labelled_input("labels/batch-1/", PREFIXES)  # a folder marker
    assert not snapshot.is_labelled_input("ground-truth/job/manifests/intermediate/1/output.manifest", PREFIXES)
    assert not snapshot.is_labelled_input("images/a.jpg", PREFIXES)


COCO = json.dumps({"images": [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48}], "annotations": [], "categories": []})


def upload(s3, key: str, body: str) -> None:
    s3.put_object(Bucket="data-bucket", Key=key, Body=body.encode())  # a second after the one before (the aws fixture's clock)


@pytest.fixture
def aws(monkeypatch, tmp_path):
    with moto_server() as server:
        isolate_aws(monkeypatch, tmp_path)
        monkeypatch.setattr("moto.s3.models.utcnow", TickingS3Clock())  # the newest upload is what starts an execution
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)  # boto3 inside the handler reaches moto
        for name, value in ENVIRONMENT.items():
            monkeypatch.setenv(name, value)
        server.reset()
        s3, sagemaker = client("s3", server.url), client("sagemaker", server.url)
        s3.create_bucket(Bucket="data-bucket", CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_bucket_versioning(Bucket="data-bucket", VersioningConfiguration={"Status": "Enabled"})
        definition = {
            "Version": "2020-12-01",
            "Parameters": [{"Name": "InputManifestUri", "Type": "String", "DefaultValue": "s3://data-bucket/manifests/"}],
            "Steps": [],
        }
        sagemaker.create_pipeline(PipelineName=PIPELINE, PipelineDefinition=json.dumps(definition), RoleArn=ROLE)
        yield s3, sagemaker


class Recording:
    """A SageMaker client that records the start requests it forwards."""

    def __init__(self, sagemaker) -> None:
        self.sagemaker, self.requests = sagemaker, []

    def start_pipeline_execution(self, **request):
        self.requests.append(request)
        return self.sagemaker.start_pipeline_execution(**request)


def executions(sagemaker) -> list[dict]:
    return sagemaker.list_pipeline_executions(PipelineName=PIPELINE)["PipelineExecutionSummaries"]


@pytest.mark.parametrize("newest", ["groundtruth", "coco", "yolo"])
def test_an_upload_of_each_kind_starts_one_execution_on_a_snapshot_of_all_labelled_inputs(aws, tmp_path, newest):
    s3, sagemaker = aws
    kinds = {
        "groundtruth": [(KEY, '{"source-ref": "s3://data-bucket/images/a.jpg"}')],
        "coco": [("labels/2026-11-roboflow/coco.json", COCO)],
        "yolo": [("labels/2026-12-cvat/labels/a.txt", "0 0.5 0.5 0.1 0.1\n"), ("labels/2026-12-cvat/data.yaml", "names: [dent, scratch]\n")],
    }
    s3.put_object(Bucket="data-bucket", Key=KEY, Body=b"an older version of the manifest")  # versions: the latest is used
    order = [kind for kind in kinds if kind != newest] + [newest]
    for kind in order:
        for key, body in kinds[kind]:
            upload(s3, key, body)
    last_key = kinds[newest][-1][0]

    older_key = kinds[order[0]][0][0]
    skipped = handler(s3_event(key=older_key))  # an older upload's event: the newest one starts
    assert skipped == {"skipped": f"s3://data-bucket/{older_key}: s3://data-bucket/{last_key} is newer and starts the execution"}
    answer = handler(s3_event(key=last_key))
    (execution,) = executions(sagemaker)
    assert (answer["pipeline_execution_arn"], answer["inputs"]) == (execution["PipelineExecutionArn"], 4)
    # A second delivery sees the same labelled data: the same snapshot and the same idempotency token, which
    # makes SageMaker start no second execution (API reference, StartPipelineExecution, ClientRequestToken;
    # moto does not model that, so the requests are compared).
    recorded = Recording(sagemaker)
    for event_id in ("another-delivery-of-the-same-upload-0001", "and-yet-another-delivery-of-it-0002"):
        again = handle(s3_event(key=last_key, event_id=event_id), ENVIRONMENT, s3, recorded)
        assert again["input_manifest_uri"] == answer["input_manifest_uri"]
    assert recorded.requests[0] == recorded.requests[1]
    assert len(recorded.requests[0]["ClientRequestToken"]) == 64
    parameters = sagemaker.list_pipeline_parameters_for_execution(PipelineExecutionArn=execution["PipelineExecutionArn"])["PipelineParameters"]
    assert parameters == [{"Name": "InputManifestUri", "Value": answer["input_manifest_uri"]}]

    document = json.loads(s3.get_object(Bucket="data-bucket", Key=answer["snapshot"].removeprefix("s3://data-bucket/"))["Body"].read())
    listed = {entry["key"] for entry in document["inputs"]}
    assert listed == {key for files in kinds.values() for key, _ in files}
    for entry in document["inputs"]:
        body = s3.get_object(Bucket="data-bucket", Key=entry["key"], VersionId=entry["version_id"])["Body"].read()
        assert entry["sha256"] == hashlib.sha256(body).hexdigest() and entry["size"] == len(body)
        assert entry["copy"].startswith(answer["input_manifest_uri"])
    units = [entry["copy"].removeprefix(answer["input_manifest_uri"]).split("/")[0] for entry in document["inputs"]]
    assert units[-1].startswith(f"{len(kinds):04d}-")  # the newest upload's unit comes last: it wins the merge's tie-break

    # What PrepareData gets: the snapshot's inputs prefix, downloaded as a Processing input is.
    folder = tmp_path / "inputs"
    prefix = answer["input_manifest_uri"].removeprefix("s3://data-bucket/")
    for item in s3.list_objects_v2(Bucket="data-bucket", Prefix=prefix)["Contents"]:
        target = folder / item["Key"][len(prefix) :]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(s3.get_object(Bucket="data-bucket", Key=item["Key"])["Body"].read())
    assert sorted(source.format for source in formats.inputs([folder])) == ["coco", "groundtruth", "yolo"]


def test_cardamage_start_without_manifest_takes_the_same_snapshot_with_named_objects_too(aws):
    s3, _ = aws
    upload(s3, "labels/a/coco.json", COCO)
    whole = snapshot.take(s3, PREFIXES)
    assert [entry["key"] for entry in whole["inputs"]] == ["labels/a/coco.json"]
    assert snapshot.take(s3, PREFIXES)["snapshot_id"] == whole["snapshot_id"]  # the same data, the same snapshot
    upload(s3, "manifests/old.manifest", '{"source-ref": "s3://data-bucket/images/a.jpg"}')
    named = snapshot.take(s3, PREFIXES, objects=snapshot.named_objects(s3, ["s3://data-bucket/manifests/"]))
    assert [entry["copy"].rsplit("/", 1)[-1] for entry in named["inputs"]] == ["old.manifest"]
    with pytest.raises(ValueError, match="no such object"):
        snapshot.named_objects(s3, ["s3://data-bucket/nothing.json"])
    s3.delete_object(Bucket="data-bucket", Key="labels/a/coco.json")
    with pytest.raises(ValueError, match=r"no labelled input .* nothing to train on"):
        snapshot.take(s3, PREFIXES)


def test_the_function_runs_from_its_packaged_code_alone(aws, tmp_path):
    """As Lambda runs it: trigger.handler imported from the code the CDK app packages, without the project's
    tree on sys.path, so trigger.py finds snapshot.py beside it (its import fallback); it starts an execution in moto."""
    import sys

    s3, sagemaker = aws
    upload(s3, "labels/2026-11-roboflow/coco.json", COCO)
    function = packaged_function("trigger.handler")

    answer, modules = function.invoke(s3_event(key="labels/2026-11-roboflow/coco.json"), {}, tmp_path)

    (execution,) = executions(sagemaker)
    assert (answer["pipeline_execution_arn"], answer["inputs"]) == (execution["PipelineExecutionArn"], 1)
    assert answer["input_manifest_uri"].startswith("s3://data-bucket/snapshots/") and answer["input_manifest_uri"].endswith("/inputs/")
    packaged = {name: file for name, file in modules.items() if file.startswith(str(function.code))}
    assert packaged == {"trigger": str(function.code / "trigger.py"), "snapshot": str(function.code / "snapshot.py")}
    project = [file for file in modules.values() if file.startswith(str(ROOT)) and not file.startswith(sys.prefix)]
    assert project == []


def test_the_lambda_module_imports_only_the_standard_library_and_boto3():
    import ast
    import sys

    for module in (trigger, snapshot):
        tree = ast.parse(Path(module.__file__).read_text())
        modules = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        modules |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        # The function's folder is its code's root: the snapshot module is imported there as `snapshot`.
        assert modules - set(sys.stdlib_module_names) <= {"boto3", "snapshot", "containers"}
