"""The drift monitor's starter (containers/deploy/monitor_start.py) against moto: the window's captured hours become
the job's inputs and no others, the served package's baselines become an input, the label files and the capture
files review batches took photos from (since the served package) become manifest inputs for the accuracy in
service, the request passes botocore's validation and the monitor's own argument parser, and an empty window gets
its report without a job. In a release stage's own account (WORKFLOW_ACCOUNT), the package is described in its ARN's
region, its baselines are copied from the workflow account's bucket into the stage's, and no labels are read."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import boto3
import botocore.session
import pytest
from botocore.validate import validate_parameters

from containers.deploy import deploy, monitor_start
from containers.deploy.monitor_start import Baselines, Labelled, Place, Settings
from tests.aws_fakes import ACCOUNT, REGION, ROLE, PackagedFunction, client, deleted_package, packaged_function, stub_operation
from tests.containers.deploy.conftest import BUCKET, DATA
from tests.containers.deploy.test_deploy import GROUP, account_clients
from tests.containers.deploy.test_stage_accounts import sent

ENDPOINT, STAGING = "car-damage-endpoint", "car-damage-endpoint-staging"
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/0a1b2c3d-4e5f-6789-abcd-ef0123456789"
EVALUATION = f"s3://{BUCKET}/car-damage-pipeline/exec-1/evaluation/"
NOW = datetime(2026, 1, 2, 13, 27, tzinfo=UTC)  # the window of 3 hours: [10:00, 13:00)
ENVIRONMENT = {
    "ARTIFACT_BUCKET": BUCKET,
    "ENDPOINTS": json.dumps(
        {
            ENDPOINT: {"stage": "production", "captures": f"data-capture/{ENDPOINT}/", "reports": f"monitoring/{ENDPOINT}/"},
            STAGING: {"stage": "staging", "captures": f"data-capture/{STAGING}/", "reports": f"monitoring/{STAGING}/"},
        }
    ),
    "MODEL_PACKAGE_GROUP": GROUP,
    "ROLE_ARN": ROLE,
    "IMAGE_URI": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/cdk-assets:processing",
    "KMS_KEY_ID": KEY,
    "INSTANCE_TYPE": "ml.m5.large",
    "VOLUME_SIZE_GB": "30",
    "MAX_RUNTIME_SECONDS": "3600",
    "WINDOW_HOURS": "3",
    "ATYPICAL": "20",
    "JOB_PREFIX": "car-damage-monitor",
    "BASELINE_PREFIX": "car-damage-pipeline/",
    "BASELINE_FOLDER": "evaluation",
    "LABELS_PREFIX": f"s3://{DATA}/labels/",
    "REVIEW_PREFIX": "review/",
}
SETTINGS = Settings.from_environment(ENVIRONMENT)
RECORDED = {
    "ModelDataQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": f"{EVALUATION}data-baseline.json"}},
    "ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": f"{EVALUATION}model-baseline.json"}},
}


def capture(s3, endpoint: str, *hours: int, day: int = 2, bucket: str = BUCKET) -> list[str]:
    """A capture file in each hour's folder of 2026-01-<day>, where SageMaker writes them; their keys."""
    keys = []
    for hour in hours:
        keys.append(f"data-capture/{endpoint}/{endpoint}/AllTraffic/2026/01/{day:02d}/{hour:02d}/{hour:02d}-00-000-event.jsonl")
        s3.put_object(Bucket=bucket, Key=keys[-1], Body=b'{"captureData": {}}\n')
    return keys


def register(sagemaker, baselines: dict | None = RECORDED, group: str = GROUP) -> str:
    """A package as Register makes it, with its drift baselines."""
    return sagemaker.create_model_package(
        ModelPackageGroupName=group,
        ModelApprovalStatus="Approved",
        InferenceSpecification={
            "Containers": [{"Image": "serving", "ModelDataUrl": f"s3://{BUCKET}/model.tar.gz"}],
            "SupportedContentTypes": ["image/jpeg"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        **({"DriftCheckBaselines": baselines} if baselines else {}),
    )["ModelPackageArn"]


def serve(sagemaker, endpoint: str, arn: str, version: int, group: str = GROUP) -> None:
    """The endpoint on a config tagged with the package, as the deployment function leaves it."""
    tags = [{"Key": deploy.TAG_ARN, "Value": arn}, {"Key": deploy.TAG_VERSION, "Value": str(version)}, {"Key": deploy.TAG_GROUP, "Value": group}]
    sagemaker.create_model(
        ModelName=f"{endpoint}-m", PrimaryContainer={"Image": "serving", "ModelDataUrl": f"s3://{BUCKET}/model.tar.gz"}, ExecutionRoleArn=ROLE
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName=f"{endpoint}-c",
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": f"{endpoint}-m", "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}],
        Tags=tags,
    )
    sagemaker.create_endpoint(EndpointName=endpoint, EndpointConfigName=f"{endpoint}-c")


def packaged(handler: str) -> PackagedFunction:
    """A drift function as Lambda runs it: the deployment function's packaged folder, containers/deploy/, with its own
    handler. infra/drift.py makes both drift functions of that folder through one helper, which packaged_function's
    scan of literal small_function calls does not follow; tests/infra/test_drift.py holds their code to the
    deployment function's asset and their handlers to these."""
    return replace(packaged_function("deploy.handler"), handler=handler)


def sent_jobs(sagemaker):
    """Record CreateProcessingJob requests as botocore builds them, and let moto answer."""
    return stub_operation(sagemaker.meta.events, "sagemaker", "CreateProcessingJob", lambda params: None)


def test_the_window_is_the_last_full_hours_in_utc():
    assert monitor_start.window_before(NOW, 3) == monitor_start.Window(datetime(2026, 1, 2, 10, tzinfo=UTC), datetime(2026, 1, 2, 13, tzinfo=UTC))
    assert monitor_start.window_before(datetime(2026, 1, 2, 0, 0, 0, tzinfo=UTC), 1).since == datetime(2026, 1, 1, 23, tzinfo=UTC)
    assert monitor_start.parse_until("2026-01-02T13:27:00+02:00") == datetime(2026, 1, 2, 11, 27, tzinfo=UTC)
    assert monitor_start.window_before(NOW, 3).folder == "20260102T1000Z"


def test_only_the_window_s_captured_hours_and_the_served_package_s_baselines_become_inputs(clients):
    sagemaker, s3 = clients
    serve(sagemaker, ENDPOINT, register(sagemaker), 1)
    capture(s3, ENDPOINT, 9, 10, 12, 13)  # 09 and 13 are outside the window; 11 has nothing
    capture(s3, STAGING, 11)  # another endpoint's
    sent = sent_jobs(sagemaker)

    answer = monitor_start.start(sagemaker, s3, SETTINGS, ENDPOINT, NOW)

    assert answer["status"] == "started" and answer["job_name"] == "car-damage-monitor-2026010210-production"
    assert answer["hours"] == ["2026-01-02T10", "2026-01-02T12"] and answer["notes"] == []
    assert answer["accuracy"] == [f"no label files under s3://{DATA}/labels/: no accuracy in service"] and answer["labels"] == 0
    (request,) = sent.calls
    prefix = f"s3://{BUCKET}/data-capture/{ENDPOINT}/{ENDPOINT}/AllTraffic/2026/01/02"
    assert [(i["InputName"], i["S3Input"]["S3Uri"], i["S3Input"]["LocalPath"]) for i in request["ProcessingInputs"]] == [
        ("hour-2026010210", f"{prefix}/10/", "/opt/ml/processing/captures/2026/01/02/10"),
        ("hour-2026010212", f"{prefix}/12/", "/opt/ml/processing/captures/2026/01/02/12"),
        ("baseline", EVALUATION, "/opt/ml/processing/baseline"),
    ]
    arguments = request["AppSpecification"]["ContainerArguments"]
    assert arguments[arguments.index("--since") + 1 :][:3] == ["2026-01-02T10:00:00Z", "--until", "2026-01-02T13:00:00Z"]
    assert arguments[arguments.index("--baseline") + 1] == "/opt/ml/processing/baseline"
    assert arguments[arguments.index("--package") + 1] == f"{GROUP}/1"
    assert request["NetworkConfig"] == {"EnableNetworkIsolation": True}
    assert request["ProcessingOutputConfig"]["KmsKeyId"] == request["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == KEY
    (output,) = request["ProcessingOutputConfig"]["Outputs"]
    assert output["S3Output"]["S3Uri"] == f"s3://{BUCKET}/monitoring/{ENDPOINT}/20260102T1000Z/"
    assert sagemaker.describe_processing_job(ProcessingJobName=answer["job_name"])["RoleArn"] == ROLE


def test_the_request_passes_botocore_s_validation_and_the_monitor_s_argument_parser(tmp_path):
    """What CreateProcessingJob accepts by its service model, and what containers/monitoring/monitor.py accepts."""
    from containers.monitoring import monitor, statistics
    from containers.processing.formats import yolo
    from pipelines.cli import review_commands
    from steps.common import CONTAINER_ROOT
    from tests.support import ROOT

    window = monitor_start.window_before(NOW, 3)
    hours = window.hours
    settings = replace(SETTINGS, label_attribute="review")
    labelled = Labelled(("export.json",), ("2026/01/01/15/f.jsonl",), datetime(2026, 1, 1, 12, tzinfo=UTC))
    for baselines, labels in ((Baselines(f"{GROUP}/4", EVALUATION, ()), labelled), (Baselines(), Labelled())):
        request = monitor_start.job_request(settings, STAGING, window, hours, baselines, labels)
        validate_parameters(request, botocore.session.get_session().get_service_model("sagemaker").operation_model("CreateProcessingJob").input_shape)
        assert len(request["ProcessingInputs"]) == len(hours) + bool(baselines.folder) + 2 * bool(labels.labels) <= monitor_start.MAX_INPUTS
        entry, program = request["AppSpecification"]["ContainerEntrypoint"]
        assert (entry, program) == ("python3", f"{CONTAINER_ROOT}/monitoring/monitor.py") and (ROOT / "containers/monitoring/monitor.py").is_file()
        local = [argument.replace(monitor_start.PROCESSING, str(tmp_path)) for argument in request["AppSpecification"]["ContainerArguments"]]
        for folder in ("captures", "baseline", "labels", "labelled-captures"):
            (tmp_path / folder).mkdir(exist_ok=True)
        options = monitor.parse_args(local)
        assert (options.window.since, options.window.until) == (window.since, window.until)
        assert (options.endpoint, options.package, options.atypical) == (STAGING, baselines.package, 20)
        assert options.baseline == (tmp_path / "baseline" if baselines.folder else None)  # none: no baseline of either kind
        given = (options.labels, options.labelled_captures, options.served_since, options.label_attribute)
        assert given == ((tmp_path / "labels", tmp_path / "labelled-captures", labels.served_since, "review") if labels.labels else (None,) * 4)
    assert monitor_start.REPORT == monitor.MONITOR
    assert set(monitor_start.IMAGE_SUFFIXES) == {suffix.lower() for suffix in yolo.IMAGE_SUFFIXES}
    assert monitor_start.REVIEW in review_commands.BATCH_FILES  # the document a review batch writes, whose captures it reads
    assert {name: kind for name, kind in monitor_start.BASELINES.values()} == {name: kind for kind, name in monitor.BASELINES.items()}
    assert [name for name, _ in monitor_start.BASELINES.values()] == [statistics.DATA_BASELINE, statistics.MODEL_BASELINE]


def configs_made_at(sagemaker, moment: datetime):
    """DescribeEndpointConfig as moto answers it, but made at `moment` (moto stamps the test's own clock)."""
    plain = client("sagemaker", sagemaker.meta.endpoint_url)
    return stub_operation(
        sagemaker.meta.events, "sagemaker", "DescribeEndpointConfig", lambda p: {**plain.describe_endpoint_config(**p), "CreationTime": moment}
    )


def review_batch(s3, key: str, *captured: str) -> None:
    """A review batch's review.json (pipelines/review.py write_batch) whose photos came from `captured` lines."""
    images = [{"image": f"{index:020x}.jpg", "captured": source, "score": 0.5, "reason": "uncertain"} for index, source in enumerate(captured)]
    s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps({"images_prefix": f"s3://{DATA}/images/review/b/", "images": images}).encode())


def test_label_files_and_the_captures_review_batches_took_photos_from_since_the_served_package_become_manifest_inputs(clients):
    sagemaker, s3 = clients
    serve(sagemaker, ENDPOINT, register(sagemaker), 1)
    configs_made_at(sagemaker, datetime(2026, 1, 1, 12, 30, tzinfo=UTC))  # the served package answers since then
    capture(s3, ENDPOINT, 12)  # the window's
    before, during, after = capture(s3, ENDPOINT, 11, 12, 15, day=1)  # the hour of 11 ended before the package was served
    (theirs,) = capture(s3, STAGING, 16, day=1)  # another endpoint's: not this job's
    review_batch(
        s3, "review/20260101T1600Z/review.json", *(f"s3://{BUCKET}/{key}:{line}" for key, line in ((before, 1), (during, 3), (after, 2), (theirs, 1)))
    )
    review_batch(s3, "review/older/nested/review.json", f"s3://{BUCKET}/{after}:5", f"s3://elsewhere/{after}:1")
    s3.put_object(Bucket=BUCKET, Key="review/20260101T1600Z/tasks.json", Body=b"[]")  # not a review.json: not read
    s3.put_object(Bucket=BUCKET, Key="review/broken/review.json", Body=b"{not json")
    for key in ("labels/labelstudio-review-1/export.json", "labels/yolo-set/labels/a.txt", "labels/yolo-set/images/a.JPG"):
        s3.put_object(Bucket=DATA, Key=key, Body=b"[]")
    sent = sent_jobs(sagemaker)

    answer = monitor_start.start(sagemaker, s3, SETTINGS, ENDPOINT, NOW)

    assert answer["status"] == "started" and (answer["labels"], answer["labelled_captures"]) == (2, 2)
    (note,) = answer["accuracy"]
    assert note.startswith(f"s3://{BUCKET}/review/broken/review.json is not a review batch's review.json (JSONDecodeError") and note.endswith(
        "not read"
    )
    (request,) = sent.calls
    folder = f"s3://{BUCKET}/monitoring/{ENDPOINT}/20260102T1000Z/"
    inputs = [(i["InputName"], i["S3Input"]["S3Uri"], i["S3Input"]["S3DataType"], i["S3Input"]["LocalPath"]) for i in request["ProcessingInputs"]]
    assert inputs[2:] == [
        ("labels", f"{folder}labels.manifest", "ManifestFile", "/opt/ml/processing/labels"),
        ("labelled-captures", f"{folder}labelled-captures.manifest", "ManifestFile", "/opt/ml/processing/labelled-captures"),
    ]
    arguments = request["AppSpecification"]["ContainerArguments"]
    assert arguments[arguments.index("--labels") :] == [
        "--labels", "/opt/ml/processing/labels",
        "--served-since", "2026-01-01T12:30:00Z",
        "--labelled-captures", "/opt/ml/processing/labelled-captures",
    ]  # fmt: skip
    assert "--label-attribute" not in arguments  # pipeline.yaml names none

    def manifest(name):
        return json.loads(s3.get_object(Bucket=BUCKET, Key=f"monitoring/{ENDPOINT}/20260102T1000Z/{name}")["Body"].read())

    assert manifest("labels.manifest") == [{"prefix": f"s3://{DATA}/labels/"}, "labelstudio-review-1/export.json", "yolo-set/labels/a.txt"]
    variant = f"s3://{BUCKET}/data-capture/{ENDPOINT}/{ENDPOINT}/AllTraffic/"
    reviewed = ["2026/01/01/12/12-00-000-event.jsonl", "2026/01/01/15/15-00-000-event.jsonl"]  # not the hour of 11, nor staging's
    assert manifest("labelled-captures.manifest") == [{"prefix": variant}, *reviewed]
    assert [f"s3://{BUCKET}/{key}" for key in (during, after)] == [variant + key for key in reviewed]


@pytest.mark.parametrize(
    ("room", "labels", "captures", "note"),
    [
        (2, 1, 1, None),
        (1, 1, 0, "no input left for the 1 capture file(s) review batches took photos from: the window's own answers only"),
        (0, 0, 0, "the window's captured hours and the baselines take every input a job may have: no accuracy in service"),
    ],
)
def test_the_accuracy_in_service_gives_way_to_the_window_s_hours_when_inputs_run_out(clients, room, labels, captures, note):
    sagemaker, s3 = clients
    (key,) = capture(s3, ENDPOINT, 15, day=1)
    review_batch(s3, "review/b/review.json", f"s3://{BUCKET}/{key}:1")
    s3.put_object(Bucket=DATA, Key="labels/b/export.json", Body=b"[]")
    found = monitor_start.labelled_inputs(sagemaker, s3, SETTINGS, ENDPOINT, None, room)
    assert (len(found.labels), len(found.captures), list(found.notes)) == (labels, captures, [note] if note else [])
    window = monitor_start.window_before(NOW, 9)
    request = monitor_start.job_request(
        SETTINGS, ENDPOINT, window, window.hours[: monitor_start.MAX_INPUTS - 1 - room], Baselines("g/1", EVALUATION, ()), found
    )
    assert len(request["ProcessingInputs"]) <= monitor_start.MAX_INPUTS


def test_a_window_without_captures_gets_an_empty_report_and_no_job(clients):
    sagemaker, s3 = clients
    serve(sagemaker, ENDPOINT, register(sagemaker), 1)
    capture(s3, ENDPOINT, 9)

    answer = monitor_start.start(sagemaker, s3, SETTINGS, ENDPOINT, NOW)

    assert answer["status"] == "empty" and "job_name" not in answer
    assert sagemaker.list_processing_jobs()["ProcessingJobSummaries"] == []
    written = s3.get_object(Bucket=BUCKET, Key=f"monitoring/{ENDPOINT}/20260102T1000Z/monitor.json")
    report = json.loads(written["Body"].read())
    assert report == {
        "drift": False,
        "window": {"since": "2026-01-02T10:00:00Z", "until": "2026-01-02T13:00:00Z", "images": 0},
        "baseline": {"package": f"{GROUP}/1", "images": None, "missing": []},
        "statistics": [],
        "atypical": [],
        "unusable": [],
        "quality": None,
    }
    assert answer["report"] == f"s3://{BUCKET}/monitoring/{ENDPOINT}/20260102T1000Z/monitor.json"


def test_an_endpoint_that_does_not_exist_and_captured_nothing_gets_nothing(clients):
    sagemaker, s3 = clients
    answer = monitor_start.start(sagemaker, s3, SETTINGS, STAGING, NOW)
    assert answer["status"] == "skipped" and "no endpoint" in answer["reason"]
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="monitoring/").get("KeyCount") == 0


def test_captures_of_an_endpoint_deleted_since_are_monitored_without_a_baseline(clients):
    sagemaker, s3 = clients
    capture(s3, STAGING, 11)
    sent = sent_jobs(sagemaker)
    answer = monitor_start.start(sagemaker, s3, SETTINGS, STAGING, NOW)
    assert answer["status"] == "started" and answer["job_name"] == "car-damage-monitor-2026010210-staging"
    (request,) = sent.calls
    assert [i["InputName"] for i in request["ProcessingInputs"]] == ["hour-2026010211"]
    arguments = request["AppSpecification"]["ContainerArguments"]
    assert "--package" not in arguments and "--baseline" not in arguments
    assert answer["notes"] == [f"there is no endpoint {STAGING} now: no baseline"]


def test_the_window_s_job_is_started_once(clients):
    sagemaker, s3 = clients
    capture(s3, ENDPOINT, 12)
    serve(sagemaker, ENDPOINT, register(sagemaker), 1)
    assert monitor_start.start(sagemaker, s3, SETTINGS, ENDPOINT, NOW)["status"] == "started"
    name = "car-damage-monitor-2026010210-production"
    stub_operation(
        sagemaker.meta.events,
        "sagemaker",
        "CreateProcessingJob",
        {"Error": {"Code": "ResourceInUse", "Message": f"Processing job {name} already exists"}},  # what moto does not say
    )
    again = monitor_start.start(sagemaker, s3, SETTINGS, ENDPOINT, NOW)
    assert (again["status"], again["job_name"]) == ("running", name)


@pytest.mark.parametrize(
    ("served", "note"),
    [
        ("theirs", "serves a package of another group, other-models: no baseline"),
        ("deleted", f"the served package {GROUP}/1 was deleted: no baseline"),
        ("untagged", f"endpoint {ENDPOINT} serves no package of this project"),
        ("no baselines", f"{GROUP}/1 records no ModelDataQuality statistics"),
    ],
)
def test_without_usable_baselines_the_job_runs_and_the_answer_says_why(clients, served, note):
    sagemaker, s3 = clients
    capture(s3, ENDPOINT, 12)
    if served == "theirs":
        sagemaker.create_model_package_group(ModelPackageGroupName="other-models")
        serve(sagemaker, ENDPOINT, register(sagemaker, group="other-models"), 1, group="other-models")
    elif served == "untagged":
        serve(sagemaker, ENDPOINT, register(sagemaker), 1)
        config = sagemaker.describe_endpoint_config(EndpointConfigName=f"{ENDPOINT}-c")["EndpointConfigArn"]
        sagemaker.delete_tags(ResourceArn=config, TagKeys=[deploy.TAG_ARN, deploy.TAG_VERSION, deploy.TAG_GROUP])
    else:
        arn = register(sagemaker, baselines=None if served == "no baselines" else RECORDED)
        serve(sagemaker, ENDPOINT, arn, 1)
        if served == "deleted":
            stub_operation(sagemaker.meta.events, "sagemaker", "DescribeModelPackage", deleted_package(arn))
    sent = sent_jobs(sagemaker)
    answer = monitor_start.start(sagemaker, s3, SETTINGS, ENDPOINT, NOW)
    assert answer["status"] == "started" and any(note in text for text in answer["notes"]), answer["notes"]
    (request,) = sent.calls
    assert "baseline" not in [i["InputName"] for i in request["ProcessingInputs"]]


@pytest.mark.parametrize(
    ("data", "model", "folder", "missing"),
    [
        (f"{EVALUATION}data-baseline.json", f"{EVALUATION}model-baseline.json", EVALUATION, ()),
        (f"{EVALUATION}data-baseline.json", None, EVALUATION, ("output",)),
        (None, f"{EVALUATION}model-baseline.json", EVALUATION, ("input",)),
        (f"{EVALUATION}data.json", f"{EVALUATION}model-baseline.json", EVALUATION, ("input",)),  # not the monitor's name
        ("s3://elsewhere/p/x/evaluation/data-baseline.json", None, None, ("input", "output")),  # the job may not read it
        (f"s3://{BUCKET}/car-damage-pipeline/x/other/data-baseline.json", None, None, ("input", "output")),
        (f"{EVALUATION}data-baseline.json", f"s3://{BUCKET}/car-damage-pipeline/exec-2/evaluation/model-baseline.json", EVALUATION, ("output",)),
    ],
    ids=["both", "data only", "model only", "misnamed", "another bucket", "not an evaluation folder", "two folders"],
)
def test_the_baselines_folder_is_one_the_job_may_read_holding_the_names_the_monitor_reads(data, model, folder, missing):
    recorded = {member: {"Statistics": {"S3Uri": uri}} for member, uri in (("ModelDataQuality", data), ("ModelQuality", model)) if uri}
    found = monitor_start.usable_baselines(SETTINGS, f"{GROUP}/3", recorded)
    assert (found.package, found.folder, found.missing) == (f"{GROUP}/3", folder, missing)
    assert len(found.notes) == len(missing)


def test_the_settings_name_a_missing_or_unusable_variable():
    with pytest.raises(monitor_start.StartError, match="ARTIFACT_BUCKET is not set"):
        Settings.from_environment({**ENVIRONMENT, "ARTIFACT_BUCKET": ""})
    with pytest.raises(monitor_start.StartError, match="WINDOW_HOURS must be from 1 to 9"):
        Settings.from_environment({**ENVIRONMENT, "WINDOW_HOURS": "10"})
    with pytest.raises(monitor_start.StartError, match="ENDPOINTS must map each endpoint"):
        Settings.from_environment({**ENVIRONMENT, "ENDPOINTS": json.dumps({ENDPOINT: {"stage": "production"}})})
    with pytest.raises(monitor_start.StartError, match="endpoint_name 'x' is not one this function monitors"):
        monitor_start.start(None, None, SETTINGS, "x", NOW)
    assert SETTINGS.endpoints[STAGING] == Place("staging", f"data-capture/{STAGING}/", f"monitoring/{STAGING}/")


def test_a_long_project_name_gives_way_to_a_hash_of_the_endpoint_and_stays_within_sagemaker_s_limit():
    since = datetime(2026, 1, 2, 10, tzinfo=UTC)
    prefix = "p" * 41 + "-monitor"
    name = monitor_start.job_name(prefix, "production", ENDPOINT, since)
    assert len(name) == 63 and name.startswith(f"{prefix}-2026010210-")
    assert monitor_start.job_name(prefix, "staging", STAGING, since) != name
    assert monitor_start.job_name("car-damage-monitor", "staging", STAGING, since) == "car-damage-monitor-2026010210-staging"


def test_the_packaged_function_starts_the_job_from_the_schedule_s_event(clients, tmp_path):
    """The function as the CDK app packages it (containers/deploy/, without the project's tree on sys.path, so
    monitor_start.py finds deploy.py beside it), with the event the schedule sends."""
    import sys

    from tests.support import ROOT

    sagemaker, s3 = clients
    capture(s3, ENDPOINT, 12)
    serve(sagemaker, ENDPOINT, register(sagemaker), 1)
    function = packaged("monitor_start.handler")

    answer, modules = function.invoke({"endpoint_name": ENDPOINT, "until": "2026-01-02T13:27:00Z"}, ENVIRONMENT, tmp_path)

    assert (answer["status"], answer["job_name"], answer["package"]) == ("started", "car-damage-monitor-2026010210-production", f"{GROUP}/1")
    assert sagemaker.describe_processing_job(ProcessingJobName=answer["job_name"])["ProcessingInputs"][-1]["InputName"] == "baseline"
    loaded = {name: file for name, file in modules.items() if file.startswith(str(function.code))}
    assert loaded == {"monitor_start": str(function.code / "monitor_start.py"), "deploy": str(function.code / "deploy.py")}
    assert [file for file in modules.values() if file.startswith(str(ROOT)) and not file.startswith(sys.prefix)] == []


# A release stage in an account of its own: production in 111111111111, in this region (eu-west-1); the workflow in
# moto's default account (the tests' own keys), its registry in us-east-1.
STAGE_ACCOUNT, STAGE_BUCKET, WORKFLOW_REGION = "111111111111", "car-damage-production-stage", "us-east-1"
STAGE_ENVIRONMENT = {
    **{name: value for name, value in ENVIRONMENT.items() if name not in ("LABELS_PREFIX", "REVIEW_PREFIX")},
    "ARTIFACT_BUCKET": STAGE_BUCKET,
    "ENDPOINTS": json.dumps({ENDPOINT: {"stage": "production", "captures": f"data-capture/{ENDPOINT}/", "reports": f"monitoring/{ENDPOINT}/"}}),
    "ROLE_ARN": f"arn:aws:iam::{STAGE_ACCOUNT}:role/monitoring-job",
    "WORKFLOW_ACCOUNT": ACCOUNT,
}
BASELINE_BODIES = {"data-baseline.json": b'{"kind": "input"}', "model-baseline.json": b'{"kind": "output"}'}
COPIES = f"monitoring/{ENDPOINT}/20260102T1000Z/baseline/"  # the window's folder in the stage's bucket


@pytest.fixture
def stage(clients, server):
    """The workflow's package, registered in us-east-1 with its baselines in the workflow's artifacts bucket, served
    by the stage's endpoint in the stage's account, which captured in hours 10 and 12 into the stage's own bucket.
    Returns the stage's clients."""
    workflow = boto3.client("sagemaker", endpoint_url=server.url, region_name=WORKFLOW_REGION)
    workflow.create_model_package_group(ModelPackageGroupName=GROUP)
    arn = register(workflow)
    assert arn.split(":")[3:5] == [WORKFLOW_REGION, ACCOUNT]
    _, s3 = clients
    for name, body in BASELINE_BODIES.items():
        s3.put_object(Bucket=BUCKET, Key=f"car-damage-pipeline/exec-1/evaluation/{name}", Body=body)
    s3.put_object(Bucket=DATA, Key="labels/b/export.json", Body=b"[]")  # the workflow's labels: not read from the stage
    make = account_clients(server.url, f"arn:aws:iam::{STAGE_ACCOUNT}:role/car-damage-production-monitor")
    sagemaker, stage_s3 = make("sagemaker"), make("s3")
    stage_s3.create_bucket(Bucket=STAGE_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    serve(sagemaker, ENDPOINT, arn, 1)
    capture(stage_s3, ENDPOINT, 10, 12, bucket=STAGE_BUCKET)
    return sagemaker, stage_s3


def test_in_a_stage_account_the_baselines_are_copied_from_the_workflow_account_s_bucket_and_no_labels_are_read(stage):
    sagemaker, s3 = stage
    assert BUCKET not in [bucket["Name"] for bucket in s3.list_buckets()["Buckets"]]  # the artifacts bucket is another account's
    reads, sent_requests = sent(s3.meta.events, "GetObject", "s3"), sent_jobs(sagemaker)

    answer = monitor_start.start(sagemaker, s3, Settings.from_environment(STAGE_ENVIRONMENT), ENDPOINT, NOW)

    assert (answer["status"], answer["package"], answer["notes"]) == ("started", f"{GROUP}/1", [])  # described in us-east-1
    assert (answer["labels"], answer["labelled_captures"]) == (0, 0)
    reason = f"the labels and review batches are in the workflow's account {ACCOUNT}, not {ENDPOINT}'s: no accuracy in service"
    assert answer["accuracy"] == [reason]
    evaluation = "car-damage-pipeline/exec-1/evaluation/"
    assert [(r["Bucket"], r["Key"], r["ExpectedBucketOwner"]) for r in reads] == [(BUCKET, evaluation + name, ACCOUNT) for name in BASELINE_BODIES]
    assert {name: s3.get_object(Bucket=STAGE_BUCKET, Key=COPIES + name)["Body"].read() for name in BASELINE_BODIES} == BASELINE_BODIES
    (request,) = sent_requests.calls
    inputs = [(i["InputName"], i["S3Input"]["S3Uri"]) for i in request["ProcessingInputs"]]
    hours = f"s3://{STAGE_BUCKET}/data-capture/{ENDPOINT}/{ENDPOINT}/AllTraffic/2026/01/02"
    assert inputs == [("hour-2026010210", f"{hours}/10/"), ("hour-2026010212", f"{hours}/12/"), ("baseline", f"s3://{STAGE_BUCKET}/{COPIES}")]
    (output,) = request["ProcessingOutputConfig"]["Outputs"]
    assert output["S3Output"]["S3Uri"] == f"s3://{STAGE_BUCKET}/monitoring/{ENDPOINT}/20260102T1000Z/"
    arguments = request["AppSpecification"]["ContainerArguments"]
    assert "--labels" not in arguments and arguments[arguments.index("--baseline") + 1] == monitor_start.BASELINE
    assert request["RoleArn"] == STAGE_ENVIRONMENT["ROLE_ARN"]


def test_in_a_stage_account_a_baseline_the_workflow_account_refuses_is_left_out_and_the_answer_says_why(stage, monkeypatch):
    """moto refuses a bucket of another account when MOTO_S3_ALLOW_CROSSACCOUNT_ACCESS is false (read at each request)."""
    sagemaker, s3 = stage
    monkeypatch.setenv("MOTO_S3_ALLOW_CROSSACCOUNT_ACCESS", "false")
    sent_requests = sent_jobs(sagemaker)

    answer = monitor_start.start(sagemaker, s3, Settings.from_environment(STAGE_ENVIRONMENT), ENDPOINT, NOW)

    assert answer["status"] == "started"
    assert [note.rpartition(": ")[0] for note in answer["notes"]] == [
        f"{EVALUATION}{name} could not be read from account {ACCOUNT} (AccessDenied)" for name in BASELINE_BODIES
    ]
    (request,) = sent_requests.calls
    assert "baseline" not in [i["InputName"] for i in request["ProcessingInputs"]]
    assert s3.list_objects_v2(Bucket=STAGE_BUCKET, Prefix=COPIES).get("KeyCount") == 0


def test_a_stage_account_s_settings_have_no_labels_and_name_the_workflow_s_account():
    settings = Settings.from_environment(STAGE_ENVIRONMENT)
    assert (settings.workflow_account, settings.labels, settings.reviews, settings.bucket) == (ACCOUNT, "", "", STAGE_BUCKET)
    with pytest.raises(monitor_start.StartError, match="LABELS_PREFIX is set with WORKFLOW_ACCOUNT"):
        Settings.from_environment({**STAGE_ENVIRONMENT, "LABELS_PREFIX": f"s3://{DATA}/labels/"})
    with pytest.raises(monitor_start.StartError, match="WORKFLOW_ACCOUNT must be an account id of 12 digits"):
        Settings.from_environment({**STAGE_ENVIRONMENT, "WORKFLOW_ACCOUNT": "1234"})
    with pytest.raises(monitor_start.StartError, match="LABELS_PREFIX is not set"):
        Settings.from_environment({**STAGE_ENVIRONMENT, "WORKFLOW_ACCOUNT": ""})
    # The workflow's artifacts bucket is not known by name there: a baseline in any bucket's evaluation folder is used.
    found = monitor_start.usable_baselines(settings, f"{GROUP}/3", RECORDED)
    assert (found.folder, found.missing) == (EVALUATION, ())
