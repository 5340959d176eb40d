"""The control-plane commands of `cardamage` (pipelines/cli/, pipelines/backends/aws.py, pipelines/aws.py) against moto in server mode.

Every command runs through typer's CliRunner with `--endpoint-url` pointing at moto on 127.0.0.1 and fake
credentials. What moto does not implement is stubbed, one operation at a time (tests/aws_fakes.py), and
each such test says so: ListPipelineExecutionSteps (executions, wait), UpdateEndpoint (deploy) and
CreateLabelingJob (label); DescribePipelineExecution is stubbed where an execution must run or fail,
because moto's executions succeed at once. Except for one test of `definition`, the definition is a small
stand-in: rendering the real one takes seconds and is tested in test_definition.py.
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta

import botocore.session
import pytest
from botocore.validate import validate_parameters
from typer.testing import CliRunner

from pipelines import aws, review
from pipelines.cli import app
from pipelines.config import load_config, parse_config
from tests.aws_fakes import ACCOUNT, REGION, ROLE, Stub, applied_update, client, isolate_aws, moto_server
from tests.support import ROOT

runner = CliRunner()
PIPELINE = "car-damage-pipeline"
GROUP = "car-damage-models"
ENDPOINT = "car-damage-endpoint"
DATA, ARTIFACTS = "cardamage-data", "cardamage-artifacts"
WORKTEAM = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:workteam/private-crowd/car-damage"
CONFIG = f"""
project:
  name: car-damage
aws:
  role_arn: {ROLE}
  data_bucket: {DATA}
  artifact_bucket: {ARTIFACTS}
  kms_key_id: alias/cardamage
labeling:
  workteam_arn: {WORKTEAM}
"""
# The parameters the real definition declares (steps/parameters.py), in a stand-in definition.
PARAMETERS = [
    {"Name": "InputManifestUri", "Type": "String", "DefaultValue": f"s3://{DATA}/manifests/"},
    {"Name": "ImagesS3Prefix", "Type": "String", "DefaultValue": f"s3://{DATA}/images/"},
    {"Name": "ProcessingInstanceCount", "Type": "Integer", "DefaultValue": 1},
    {"Name": "ProcessingInstanceType", "Type": "String", "DefaultValue": "ml.m5.xlarge"},
    {"Name": "TrainingInstanceType", "Type": "String", "DefaultValue": "ml.p3.2xlarge"},
    {"Name": "TrainingInstanceCount", "Type": "Integer", "DefaultValue": 1},
    {"Name": "ModelVariant", "Type": "String", "DefaultValue": "efficientdet-d0"},
    {"Name": "TrainingSteps", "Type": "Integer", "DefaultValue": 2000},
    {"Name": "BatchSize", "Type": "Integer", "DefaultValue": 8},
    {"Name": "ImageSize", "Type": "Integer", "DefaultValue": 512},
    {"Name": "EvaluationInstanceType", "Type": "String", "DefaultValue": "ml.m5.xlarge"},
    {"Name": "MapThreshold", "Type": "Float", "DefaultValue": 0.3},
    {"Name": "ChampionTolerance", "Type": "Float", "DefaultValue": 0.0},
]


@pytest.fixture(scope="module")
def server():
    with moto_server() as running:
        yield running


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "pipeline.yaml"
    path.write_text(CONFIG)
    return path


LABELS = "labels/2026-11-batch/coco.json"
COCO = json.dumps({"images": [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48}], "annotations": [], "categories": []})


@pytest.fixture
def env(server, monkeypatch, tmp_path):
    """Fresh moto state and an AWS environment with fake credentials and nothing of the developer's; a versioned
    data bucket holds one label export (what `start` snapshots)."""
    server.reset()
    isolate_aws(monkeypatch, tmp_path)
    s3 = client("s3", server.url)
    s3.create_bucket(Bucket=DATA, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_versioning(Bucket=DATA, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=DATA, Key=LABELS, Body=COCO.encode())
    return server


@pytest.fixture
def stubs(monkeypatch):
    """Stubs installed on every session the CLI opens: `stubs("sagemaker", "UpdateEndpoint", respond)`."""
    wanted: list[Stub] = []
    connect = aws.connect

    def connect_with_stubs(region=None, endpoint_url=None):
        session = connect(region, endpoint_url)
        for stub in wanted:
            stub.install(session.session.events)
        return session

    monkeypatch.setattr(aws, "connect", connect_with_stubs)

    def add(service_id, operation, respond):
        stub = Stub(service_id, operation, respond if callable(respond) else (lambda params: respond))
        wanted.append(stub)
        return stub

    return add


@pytest.fixture
def rendered(monkeypatch):
    """A stand-in for pipelines.definition.render_definition; keeps what it was given."""
    given = {}

    def render(config, values=None):
        given.update(config=config, values=dict(values or {}))
        return json.dumps({"Version": "2020-12-01", "Parameters": PARAMETERS, "Steps": []}, sort_keys=True)

    monkeypatch.setattr("pipelines.definition.render_definition", render)
    return given


def cli(env, config, *args):
    """Run `cardamage ARGS --config CONFIG --endpoint-url MOTO`."""
    return runner.invoke(app, [*args, "--config", str(config), "--endpoint-url", env.url])


def assert_one_line_error(result, code, *fragments):
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()  # progress lines may come first; the error is one line, the last
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


# definition and upsert


def test_definition_renders_the_real_definition_offline_with_values(tmp_path):
    output = tmp_path / "definition.json"
    result = runner.invoke(
        app,
        ["definition", "--config", str(ROOT / "pipeline.yaml"), "--value", "DataBucket=my-data", "--region", REGION, "--output", str(output)],
    )
    assert result.exit_code == 0, result.output
    definition = json.loads(output.read_text())
    assert [p["Name"] for p in definition["Parameters"]][:2] == ["InputManifestUri", "ImagesS3Prefix"]
    text = output.read_text()
    assert "s3://my-data/manifests/" in text and "${DataBucket}" not in text and "${ArtifactBucket}" in text
    assert "${AWS::Region}" not in text


@pytest.mark.parametrize(("value", "message"), [("Nope=1", "unknown value name"), ("no-equals", "--value expects NAME=VALUE")])
def test_definition_refuses_an_unknown_value(value, message):
    result = runner.invoke(app, ["definition", "--config", str(ROOT / "pipeline.yaml"), "--value", value])
    assert_one_line_error(result, 2, message)


def test_upsert_creates_then_updates_the_pipeline(env, config, rendered):
    created = cli(env, config, "upsert")
    assert created.exit_code == 0, created.output
    assert created.stdout.strip() == f"created pipeline {PIPELINE} in {REGION}"
    assert rendered["values"]["SageMakerRoleArn"] == ROLE and rendered["config"].aws.region == REGION
    stored = client("sagemaker", env.url).describe_pipeline(PipelineName=PIPELINE)
    assert stored["RoleArn"] == ROLE and json.loads(stored["PipelineDefinition"])["Parameters"] == PARAMETERS

    other_role = f"arn:aws:iam::{ACCOUNT}:role/other"
    updated = cli(env, config, "upsert", "--role-arn", other_role, "--value", "DataBucket=other-data")
    assert updated.stdout.strip() == f"updated pipeline {PIPELINE} in {REGION}"
    assert rendered["values"] == {"SageMakerRoleArn": other_role, "DataBucket": "other-data"}
    assert client("sagemaker", env.url).describe_pipeline(PipelineName=PIPELINE)["RoleArn"] == other_role


def test_upsert_refuses_a_definition_with_placeholders(env, monkeypatch, tmp_path):
    monkeypatch.setattr("pipelines.definition.render_definition", lambda config, values=None: '{"Bucket": "${DataBucket}"}')
    bare = tmp_path / "bare.yaml"
    bare.write_text("project:\n  name: car-damage\n")
    result = cli(env, bare, "upsert", "--role-arn", ROLE)
    assert_one_line_error(result, 2, "placeholders for DataBucket", "--value")
    assert client("sagemaker", env.url).list_pipelines()["PipelineSummaries"] == []


def test_upsert_needs_a_role(env, tmp_path, rendered):
    bare = tmp_path / "bare.yaml"
    bare.write_text("project:\n  name: car-damage\n")
    assert_one_line_error(cli(env, bare, "upsert"), 2, "--role-arn")


# start, executions, wait


def execution_parameters(env, arn):
    page = client("sagemaker", env.url).list_pipeline_parameters_for_execution(PipelineExecutionArn=arn)
    return {p["Name"]: p["Value"] for p in page["PipelineParameters"]}


def snapshot_of(env, inputs_uri: str) -> dict:
    key = inputs_uri.removeprefix(f"s3://{DATA}/").removesuffix("inputs/") + "snapshot.json"
    return json.loads(client("s3", env.url).get_object(Bucket=DATA, Key=key)["Body"].read())


def test_start_sends_the_checked_overrides_and_trains_on_a_snapshot_of_the_named_labels(env, config, rendered):
    cli(env, config, "upsert")
    key = "ground-truth/job-1/manifests/output/output.manifest"
    client("s3", env.url).put_object(Bucket=DATA, Key=key, Body=b'{"source-ref": "s3://cardamage-data/images/a.jpg"}\n')
    manifest = f"s3://{DATA}/{key}"
    result = cli(env, config, "start", "--manifest", manifest, "--param", "TrainingSteps=500", "-p", "MapThreshold=0.45", "-p", "ImageSize=640")
    assert result.exit_code == 0, result.output
    arn = result.stdout.strip()
    assert re.fullmatch(rf"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/{PIPELINE}/execution/\w+", arn)
    parameters = execution_parameters(env, arn)
    inputs = parameters.pop("InputManifestUri")
    assert parameters == {"TrainingSteps": "500", "MapThreshold": "0.45", "ImageSize": "640"}
    assert re.fullmatch(rf"s3://{DATA}/snapshots/\d{{8}}T\d{{6}}Z-[0-9a-f]{{12}}/inputs/", inputs)
    assert [entry["uri"] for entry in snapshot_of(env, inputs)["inputs"]] == [manifest]
    assert f"dataset snapshot {inputs.removesuffix('inputs/')}snapshot.json: 1 labelled input(s)" in result.stderr.splitlines()


def test_start_without_manifest_trains_on_all_labelled_data_and_a_given_prefix_as_it_is(env, config, rendered):
    cli(env, config, "upsert")
    client("s3", env.url).put_object(Bucket=DATA, Key="ground-truth/job-2/manifests/output/output.manifest", Body=b"{}\n")
    arn = cli(env, config, "start").stdout.strip()
    inputs = execution_parameters(env, arn)["InputManifestUri"]
    assert sorted(entry["key"] for entry in snapshot_of(env, inputs)["inputs"]) == ["ground-truth/job-2/manifests/output/output.manifest", LABELS]
    again = cli(env, config, "start", "-p", f"InputManifestUri={inputs}").stdout.strip()  # retrain on exactly that data
    assert execution_parameters(env, again)["InputManifestUri"] == inputs


def test_start_with_nothing_labelled_says_so(env, config, rendered):
    cli(env, config, "upsert")
    client("s3", env.url).delete_object(Bucket=DATA, Key=LABELS)
    assert_one_line_error(cli(env, config, "start"), 1, "no labelled input in s3://cardamage-data/labels/", "nothing to train on")


@pytest.mark.parametrize(
    ("arguments", "fragments"),
    [
        (["-p", "TrainingSteps=many"], ["TrainingSteps='many' must be a whole number"]),
        (["-p", "ImageSize=300"], ["ImageSize='300' must be a multiple of 128"]),
        (["-p", "ImageSize=128"], ["ImageSize='128' must be at least 256"]),
        (["-p", "BatchSize=0"], ["BatchSize='0' must be at least 1"]),
        (["-p", "ProcessingInstanceCount=1.5"], ["ProcessingInstanceCount='1.5' must be a whole number"]),
        (["-p", "MapThreshold=1.5"], ["MapThreshold='1.5' must be at most 1.0"]),
        # No run chooses the approval status any more (whoever may start one may not approve its model).
        (["-p", "ModelApprovalStatus=Approved"], ["ModelApprovalStatus: the approval status packages are registered with is pipeline.yaml's"]),
        (["-p", "TrainingInstanceType=p3.2xlarge"], ["TrainingInstanceType='p3.2xlarge' must be a SageMaker instance type"]),
        (["--images-prefix", "/data/images"], ["ImagesS3Prefix='/data/images' must be an S3 URI"]),
        (["-p", "LearningRate=0.1"], ["unknown parameter(s) LearningRate", "InputManifestUri, ImagesS3Prefix, ProcessingInstanceCount"]),
        (["-p", "TrainingSteps"], ["--param expects NAME=VALUE"]),
        (["-p", "BatchSize=x", "-p", "ImageSize=1"], ["BatchSize='x'", "ImageSize='1'"]),
        # The global batch splits across every GPU of every instance (containers/training/hyperparameters.py replicas).
        (["-p", "TrainingInstanceCount=3"], ["BatchSize=8 with TrainingInstanceCount=3 of ml.p3.2xlarge", "across 3 replicas"]),
        (
            ["-p", "TrainingInstanceType=ml.p3.8xlarge", "-p", "BatchSize=6"],
            ["BatchSize=6 with TrainingInstanceCount=1 of ml.p3.8xlarge: the batch size 6 does not divide evenly across 4 replicas"],
        ),
        (["-p", "TrainingInstanceCount=0"], ["TrainingInstanceCount='0' must be at least 1"]),
        (["--manifest", "s3://a-bucket/x", "-p", "InputManifestUri=s3://b-bucket/y"], ["--manifest and --param InputManifestUri"]),
    ],
)
def test_start_refuses_invalid_parameters_before_starting(env, config, rendered, arguments, fragments):
    cli(env, config, "upsert")
    assert_one_line_error(cli(env, config, "start", *arguments), 2, *fragments)
    assert client("sagemaker", env.url).list_pipeline_executions(PipelineName=PIPELINE)["PipelineExecutionSummaries"] == []
    assert "Contents" not in client("s3", env.url).list_objects_v2(Bucket=DATA, Prefix="snapshots/")  # nor a snapshot taken


def test_start_on_an_unknown_pipeline(env, config):
    assert_one_line_error(cli(env, config, "start"), 1, f"no pipeline named '{PIPELINE}' in {REGION}", "cardamage upsert")


def steps_answer(failed: bool = False):
    """ListPipelineExecutionSteps as SageMaker answers it (moto does not implement it)."""
    t0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    steps = [
        {
            "StepName": "PrepareData",
            "StepStatus": "Succeeded",
            "StartTime": t0,
            "EndTime": t0 + timedelta(minutes=2, seconds=5),
            "Metadata": {"ProcessingJob": {"Arn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:processing-job/pipelines-abc-preparedata"}},
        },
        {
            "StepName": "Train",
            "StepStatus": "Failed" if failed else "Succeeded",
            "StartTime": t0 + timedelta(minutes=3),
            "EndTime": t0 + timedelta(hours=1, minutes=4),
            "Metadata": {"TrainingJob": {"Arn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/pipelines-abc-train"}},
            **({"FailureReason": "ClientError: image_size: must be a multiple of 128"} if failed else {}),
        },
    ]
    return lambda params: {"PipelineExecutionSteps": steps}


def test_executions_lists_and_describes_with_steps(env, config, rendered, stubs):
    steps = stubs("sagemaker", "ListPipelineExecutionSteps", steps_answer(failed=True))  # not in moto
    cli(env, config, "upsert")
    first = cli(env, config, "start").stdout.strip()
    second = cli(env, config, "start", "-p", "TrainingSteps=10").stdout.strip()

    listing = cli(env, config, "executions")
    assert listing.exit_code == 0, listing.output
    lines = listing.stdout.splitlines()
    assert lines[0].split()[:3] == ["execution", "status", "started"]
    assert [line.split()[0] for line in lines[1:]] == [second.rsplit("/", 1)[-1], first.rsplit("/", 1)[-1]]  # newest first
    assert all("Succeeded" in line for line in lines[1:])
    assert len(cli(env, config, "executions", "--limit", "1").stdout.splitlines()) == 2

    detail = cli(env, config, "executions", "--execution", second.rsplit("/", 1)[-1])  # an id is enough
    assert detail.exit_code == 0, detail.output
    assert steps.calls == [{"PipelineExecutionArn": second, "SortOrder": "Ascending"}]
    assert f"execution  {second}" in detail.stdout
    assert re.search(r"^parameters .*\bTrainingSteps=10(,|$)", detail.stdout, re.M), detail.stdout
    prepare = next(line for line in detail.stdout.splitlines() if line.startswith("PrepareData"))
    train = next(line for line in detail.stdout.splitlines() if line.startswith("Train"))
    assert "Succeeded" in prepare and "2m05s" in prepare and "pipelines-abc-preparedata" in prepare
    assert "Failed" in train and "1h01m" in train and "image_size: must be a multiple of 128" in train


def test_executions_of_an_unknown_execution_or_pipeline(env, config, rendered, stubs):
    stubs("sagemaker", "ListPipelineExecutionSteps", steps_answer())
    assert_one_line_error(cli(env, config, "executions"), 1, "no pipeline named")
    cli(env, config, "upsert")
    assert cli(env, config, "executions").stdout.strip() == f"pipeline {PIPELINE} has no execution yet in AWS ({REGION})"
    assert_one_line_error(cli(env, config, "executions", "-e", "nosuchid"), 1, "no pipeline execution", "nosuchid")


def test_wait_for_the_newest_execution_that_succeeds(env, config, rendered):
    cli(env, config, "upsert")
    arn = cli(env, config, "start").stdout.strip()
    result = cli(env, config, "wait", "--poll", "0.01")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"execution {arn} Succeeded"
    assert f"waiting for {arn}" in result.stderr


def running_then(final: str, reason: str = ""):
    """DescribePipelineExecution for an execution that runs for two polls, then ends (moto's end at once)."""
    polls = []

    def answer(params):
        polls.append(params)
        status = "Executing" if len(polls) <= 2 else final
        return {"PipelineExecutionArn": params["PipelineExecutionArn"], "PipelineExecutionStatus": status, "FailureReason": reason}

    return answer


def test_wait_fails_with_the_reason_and_the_failed_steps(env, config, rendered, stubs):
    stubs("sagemaker", "DescribePipelineExecution", running_then("Failed", "Step failure: One or multiple steps failed."))
    stubs("sagemaker", "ListPipelineExecutionSteps", steps_answer(failed=True))  # not in moto
    cli(env, config, "upsert")
    arn = cli(env, config, "start").stdout.strip()
    result = cli(env, config, "wait", "-e", arn, "--poll", "0.01")
    assert_one_line_error(result, 1, f"execution {arn} Failed", "One or multiple steps failed", "step Train: ClientError: image_size")
    assert [line.split()[-1] for line in result.stderr.splitlines() if not line.startswith(("waiting", "error"))] == ["Executing", "Failed"]


def test_start_wait_exits_1_when_the_execution_stops(env, config, rendered, stubs):
    stubs("sagemaker", "DescribePipelineExecution", running_then("Stopped"))
    stubs("sagemaker", "ListPipelineExecutionSteps", lambda params: {"PipelineExecutionSteps": []})
    cli(env, config, "upsert")
    result = cli(env, config, "start", "--wait", "--poll", "0.01")
    assert_one_line_error(result, 1, "Stopped")


def test_wait_gives_up_after_the_timeout(env, config, rendered, stubs):
    stubs("sagemaker", "DescribePipelineExecution", lambda params: {**params, "PipelineExecutionStatus": "Executing"})
    cli(env, config, "upsert")
    cli(env, config, "start")
    result = cli(env, config, "wait", "--timeout", "0.02", "--poll", "0.01")
    assert_one_line_error(result, 124, "still Executing after 0.02 s")


def test_wait_without_executions_or_for_an_unknown_one(env, config, rendered):
    cli(env, config, "upsert")
    assert_one_line_error(cli(env, config, "wait"), 1, "has no execution yet", "cardamage start")
    unknown = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/{PIPELINE}/execution/nosuch"
    assert_one_line_error(cli(env, config, "wait", "-e", unknown), 1, f"no pipeline execution {unknown}")


# The Model Registry: models, approve, reject


def s3_bucket(env, name):
    client("s3", env.url).create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})


def register(
    env,
    status="PendingManualApproval",
    evaluation: dict | None = None,
    metadata_map: str | None = None,
    baselines: dict | None = None,
    champion: dict | None = None,
    metadata: dict | None = None,
) -> str:
    """A package as the Register step makes it: ModelMetrics pointing at the evaluation report in S3 and, with
    `baselines` ({file name: whether Evaluate wrote it}), DriftCheckBaselines pointing at the files beside it;
    `champion`: the champion's metadata (ChampionVersion, ChampionMAP); `metadata`: more of it."""
    sagemaker = client("sagemaker", env.url)
    version = len(sagemaker.list_model_packages(ModelPackageGroupName=GROUP)["ModelPackageSummaryList"]) + 1
    key = f"{PIPELINE}/execution-{version}/evaluation/evaluation.json"
    if evaluation is not None:
        client("s3", env.url).put_object(Bucket=ARTIFACTS, Key=key, Body=json.dumps(evaluation).encode())
    drift = {}
    for name, written in (baselines or {}).items():
        uri = f"s3://{ARTIFACTS}/{key.rsplit('/', 1)[0]}/{name}"
        if written:
            client("s3", env.url).put_object(Bucket=ARTIFACTS, Key=uri.split("/", 3)[3], Body=b'{"version": 1}')
        drift["ModelDataQuality" if name == "data-baseline.json" else "ModelQuality"] = {
            "Statistics": {"ContentType": "application/json", "S3Uri": uri}
        }
    metadata = {**({"mAP": metadata_map, "TrainingData": SNAPSHOT_INPUTS} if metadata_map else {}), **(champion or {}), **(metadata or {})}
    arn = sagemaker.create_model_package(
        ModelPackageGroupName=GROUP,
        ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification={
            "Containers": [{"Image": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/inference:1", "ModelDataUrl": f"s3://{ARTIFACTS}/model.tar.gz"}],
            "SupportedContentTypes": ["image/jpeg"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        ModelMetrics={"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": f"s3://{ARTIFACTS}/{key}"}}},
        CustomerMetadataProperties=metadata,
        **({"DriftCheckBaselines": drift} if drift else {}),
    )["ModelPackageArn"]
    if status != "PendingManualApproval":  # a person sets it (the metadata again: moto's update drops what it is not given)
        sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus=status, CustomerMetadataProperties=metadata)
    return arn


SNAPSHOT_INPUTS = f"s3://{DATA}/snapshots/20261130T101500Z-0123456789ab/inputs/"


@pytest.fixture
def registry(env):
    """Three packages: v1 Approved with its report (mAP 0.421), v2 whose report is gone (metadata 0.35), v3 with neither."""
    s3_bucket(env, ARTIFACTS)
    client("sagemaker", env.url).create_model_package_group(ModelPackageGroupName=GROUP)
    return [
        register(env, "Approved", evaluation={"metrics": {"mAP": {"value": 0.421}, "mAP_50": {"value": 0.7}}}),
        register(env, metadata_map="0.35"),
        register(env, "Rejected"),
    ]


def table_rows(output: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split() for line in output.splitlines()[1:] if line.strip()}


def test_models_show_status_and_map(env, config, registry):
    result = cli(env, config, "models")
    assert result.exit_code == 0, result.output
    rows = table_rows(result.stdout)
    assert list(rows) == ["3", "2", "1"]
    assert (rows["1"][1], rows["1"][4]) == ("Approved", "0.4210")
    assert (rows["2"][1], rows["2"][4]) == ("PendingManualApproval", "0.3500")
    assert (rows["3"][1], rows["3"][4]) == ("Rejected", "-")
    assert "trained on" in result.stdout.splitlines()[0]
    assert "20261130T101500Z-0123456789ab" in rows["2"]  # the dataset snapshot it was trained on
    assert list(table_rows(cli(env, config, "models", "-n", "1").stdout)) == ["3"]


def test_models_show_the_intervals_of_the_evaluation_report(env, config):
    s3_bucket(env, ARTIFACTS)
    client("sagemaker", env.url).create_model_package_group(ModelPackageGroupName=GROUP)
    evaluation = {
        "metrics": {"mAP": {"value": 0.4083}},
        "intervals": {"method": "percentile bootstrap over validation images", "metrics": {"mAP": [0.3301, 0.4902]}},
        "champion": {"version": 1, "map_lead": 0.0524, "lead_interval": [0.012, 0.09], "intervals": {"metrics": {"mAP": [0.40, 0.52]}}},
    }
    register(env, evaluation={"metrics": {"mAP": {"value": 0.35}}})  # evaluated before intervals
    register(env, evaluation=evaluation, champion={"ChampionVersion": "1", "ChampionMAP": "0.460700"})
    result = cli(env, config, "models")
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[1:] if line.strip()}
    assert "0.41 (0.33-0.49)" in rows["2"] and "v1: 0.46 (0.40-0.52), lead 0.05 (0.01-0.09)" in rows["2"], result.stdout
    assert table_rows(result.stdout)["1"][4] == "0.3500"


def test_models_show_whether_each_package_has_its_drift_baselines(env, config):
    s3_bucket(env, ARTIFACTS)
    client("sagemaker", env.url).create_model_package_group(ModelPackageGroupName=GROUP)
    register(env)  # registered before drift baselines
    register(env, baselines={"data-baseline.json": False, "model-baseline.json": True})  # its PrepareData had no statistics
    register(env, baselines={"data-baseline.json": True, "model-baseline.json": True})
    result = cli(env, config, "models")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].split()[-4:-2] == ["endpoint", "baseline"]
    rows = table_rows(result.stdout)  # nothing is served: the baseline is the column after the champion's mAP
    assert (rows["3"][6], rows["2"][6:8], rows["1"][6]) == ("yes", ["model", "only"], "no")


def test_models_of_an_unknown_group(env, config):
    assert_one_line_error(cli(env, config, "models"), 1, f"no model package group '{GROUP}'")


def test_approve_and_reject_record_the_identity_and_the_comment(env, config, registry):
    sagemaker = client("sagemaker", env.url)
    approved = cli(env, config, "approve", "2", "--comment", "mAP above the bar on the new batch")
    assert approved.exit_code == 0, approved.output
    package = sagemaker.describe_model_package(ModelPackageName=registry[1])
    identity = client("sts", env.url).get_caller_identity()["Arn"]
    assert package["ModelApprovalStatus"] == "Approved"
    assert package["ApprovalDescription"] == f"Approved by {identity}: mAP above the bar on the new batch"
    assert approved.stdout.startswith("version 2: PendingManualApproval -> Approved")

    rejected = cli(env, config, "reject", registry[0], "-m", "misses scratches")
    assert rejected.exit_code == 0, rejected.output
    package = sagemaker.describe_model_package(ModelPackageName=registry[0])
    assert (package["ModelApprovalStatus"], package["ApprovalDescription"]) == ("Rejected", f"Rejected by {identity}: misses scratches")
    assert rejected.stdout.startswith("version 1: Approved -> Rejected")
    rows = table_rows(cli(env, config, "models").stdout)
    assert (rows["1"][1], rows["2"][1]) == ("Rejected", "Approved")
    assert " ".join(rows["2"]).endswith(f"Approved by {identity}: mAP above the bar on the new batch")


@pytest.mark.parametrize(
    ("package", "code", "fragment"),
    [
        ("9", 1, f"model package group {GROUP} has no version 9 (versions 1 to 3)"),
        (f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{GROUP}/9", 1, "no model package arn:"),
        ("latest", 2, "PACKAGE must be a model package ARN or a version number"),
    ],
)
def test_approve_an_unknown_package(env, config, registry, package, code, fragment):
    assert_one_line_error(cli(env, config, "approve", package), code, fragment)


# deploy


def test_deploy_creates_then_updates_the_endpoint(env, config, registry, stubs):
    update = stubs("sagemaker", "UpdateEndpoint", applied_update(env.url))  # moto lacks it: applied here
    sagemaker = client("sagemaker", env.url)

    created = cli(env, config, "deploy")  # the newest Approved package: version 1
    assert created.exit_code == 0, created.output
    assert created.stdout.startswith(f"created endpoint {ENDPOINT} with version 1 ({registry[0]})")
    assert "endpoint status  InService" in created.stdout and "autoscaling      1 to 2 instances" in created.stdout
    endpoint = sagemaker.describe_endpoint(EndpointName=ENDPOINT)
    capture = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])["DataCaptureConfig"]
    assert capture["DestinationS3Uri"] == f"s3://{ARTIFACTS}/data-capture/{ENDPOINT}/"
    assert table_rows(cli(env, config, "models").stdout)["1"][6] == "serving"

    assert cli(env, config, "approve", "2").exit_code == 0
    updated = cli(env, config, "deploy")  # UpdateEndpoint: stubbed, moto lacks it
    assert updated.exit_code == 0, updated.output
    assert updated.stdout.startswith(f"updated endpoint {ENDPOINT} with version 2")
    (call,) = update.calls
    assert call["EndpointName"] == ENDPOINT and call["EndpointConfigName"] != endpoint["EndpointConfigName"]
    assert table_rows(cli(env, config, "models").stdout)["2"][6] == "serving"


def test_after_a_rolled_back_update_models_shows_the_package_really_served(env, config, registry, stubs):
    """An update SageMaker rolled back leaves the endpoint on its old config, while the endpoint's tags (set when
    the update was asked for) name the new package: what is served is read from the config."""
    stubs("sagemaker", "UpdateEndpoint", {"EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{ENDPOINT}"})  # never lands
    assert cli(env, config, "deploy").exit_code == 0  # version 1
    assert cli(env, config, "approve", "2").exit_code == 0
    assert cli(env, config, "deploy").stdout.startswith(f"updated endpoint {ENDPOINT} with version 2")
    sagemaker = client("sagemaker", env.url)
    arn = sagemaker.describe_endpoint(EndpointName=ENDPOINT)["EndpointArn"]
    assert {tag["Key"]: tag["Value"] for tag in sagemaker.list_tags(ResourceArn=arn)["Tags"]}["cardamage:model-package-version"] == "2"
    rows = table_rows(cli(env, config, "models").stdout)
    assert rows["1"][6] == "serving" and "serving" not in rows["2"]


def test_deploy_an_older_version_only_when_forced(env, config, registry, stubs):
    update = stubs("sagemaker", "UpdateEndpoint", lambda params: {"EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{ENDPOINT}"})
    assert cli(env, config, "approve", "2").exit_code == 0
    assert cli(env, config, "deploy").stdout.startswith(f"created endpoint {ENDPOINT} with version 2")

    again = cli(env, config, "deploy", "--package", "1")
    assert again.exit_code == 0 and again.stdout.startswith("nothing to do: version 1 is older than the served version 2")
    assert update.calls == []
    forced = cli(env, config, "deploy", "--package", "1", "--force", "--reason", "v2 misses scratches")  # UpdateEndpoint: stubbed
    assert forced.exit_code == 0 and forced.stdout.startswith(f"updated endpoint {ENDPOINT} with version 1")
    assert len(update.calls) == 1


# promote


def runtime_answer(body: bytes, **_) -> dict:
    """An InvokeEndpoint answer, as the stub gives it: a sound one for every photo."""
    answer = {"predictions": [{"image": {"width": 64, "height": 48}, "detections": [{"class": "dent", "score": 0.8, "box": BOX}]}]}
    return {"Body": io.BytesIO(json.dumps(answer).encode()), "ContentType": "application/json"}


BOX = {"xmin": 1, "ymin": 1, "xmax": 30, "ymax": 20}


def test_promote_smoke_tests_staging_through_the_runtime_then_deploys_to_production(env, tmp_path, registry, stubs):
    staged = tmp_path / "staged.yaml"
    staged.write_text(CONFIG + "deployment:\n  stages: [staging, production]\n")
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a.jpg", "b.jpg"):
        (photos / name).write_bytes(b"jpeg bytes")
    answers = iter([runtime_answer(b""), {"Error": {"Code": "ModelError", "Message": "bad"}, "OriginalStatusCode": 400, "OriginalMessage": "no"}])
    invoke = stubs("sagemaker-runtime", "InvokeEndpoint", lambda params: next(answers, None) or runtime_answer(b""))
    assert cli(env, staged, "deploy").stdout.startswith(f"created endpoint {ENDPOINT}-staging with version 1")
    sagemaker = client("sagemaker", env.url)

    refused = cli(env, staged, "promote", "--images", str(photos))  # the second photo's answer is the container's 400
    assert refused.exit_code == 1, refused.output
    assert "BAD b.jpg: HTTP 400: no" in refused.stdout and "not promoted to production" in refused.stderr
    assert [call["EndpointName"] for call in invoke.calls] == [f"{ENDPOINT}-staging"] * 2
    assert invoke.calls[0]["ContentType"] == "application/x-image" and invoke.calls[0]["Body"] == b"jpeg bytes"
    assert [e["EndpointName"] for e in sagemaker.list_endpoints()["Endpoints"]] == [f"{ENDPOINT}-staging"]  # production untouched

    promoted = cli(env, staged, "promote", "--images", str(photos))
    assert promoted.exit_code == 0, promoted.output
    assert f"created endpoint {ENDPOINT} with version 1" in promoted.stdout
    endpoint = sagemaker.describe_endpoint(EndpointName=ENDPOINT)
    capture = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])["DataCaptureConfig"]
    assert capture["DestinationS3Uri"] == f"s3://{ARTIFACTS}/data-capture/{ENDPOINT}/"
    assert re.search(r"^1\s.*staging, production", cli(env, staged, "models").stdout, re.M)
    unrecorded = cli(env, staged, "promote")  # no --images: the package's validation records, which v1 does not name
    assert_one_line_error(unrecorded, 2, "does not record its validation data (ValidationData): pass --images DIR")


def test_deploy_refuses_a_package_that_is_not_approved(env, config, registry):
    assert_one_line_error(cli(env, config, "deploy", "--package", "3"), 1, "not deployed: version 3 is Rejected, not Approved")
    assert client("sagemaker", env.url).list_endpoints()["Endpoints"] == []


def test_approving_an_older_package_with_force_deploys_it_and_records_why(env, config, registry, stubs):
    """On AWS the approval rule would skip an older package; `approve --force -m WHY` deploys it through the
    deployment function's code, and the reason is in the approval and the endpoint's tags."""
    stubs("sagemaker", "UpdateEndpoint", lambda params: {"EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{ENDPOINT}"})
    assert cli(env, config, "approve", "2").exit_code == 0
    assert cli(env, config, "deploy").stdout.startswith(f"created endpoint {ENDPOINT} with version 2")
    assert_one_line_error(cli(env, config, "approve", "1", "--force"), 2, "--force needs a reason")
    forced = cli(env, config, "approve", "1", "--force", "-m", "v2 misses scratches")
    assert forced.exit_code == 0, forced.output
    assert "updated (forced: version 1 is older than the served version 2; reason: v2 misses scratches" in forced.stdout
    sagemaker = client("sagemaker", env.url)
    arn = sagemaker.describe_endpoint(EndpointName=ENDPOINT)["EndpointArn"]
    tags = {tag["Key"]: tag["Value"] for tag in sagemaker.list_tags(ResourceArn=arn)["Tags"]}
    assert (tags["cardamage:model-package-version"], tags["cardamage:forced-because"]) == ("1", "v2 misses scratches")
    assert sagemaker.describe_model_package(ModelPackageName=registry[0])["ApprovalDescription"].endswith("v2 misses scratches")


def test_deploy_without_an_approved_package(env, config):
    client("sagemaker", env.url).create_model_package_group(ModelPackageGroupName=GROUP)
    assert_one_line_error(cli(env, config, "deploy"), 1, f"no Approved package in {GROUP}", "cardamage approve")


def test_rejecting_the_served_version_warns(env, config, registry):
    assert cli(env, config, "deploy").exit_code == 0
    result = cli(env, config, "reject", "1")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("version 1: Approved -> Rejected")
    assert "warning: endpoint car-damage-endpoint still serves version 1" in result.stderr


def test_deploy_needs_the_artifact_bucket_for_data_capture(env, tmp_path):
    bare = tmp_path / "bare.yaml"
    bare.write_text(f"aws:\n  role_arn: {ROLE}\n")
    assert_one_line_error(cli(env, bare, "deploy"), 2, "aws.artifact_bucket")


# label


def test_label_creates_a_bounding_box_job_for_the_classes(env, config, stubs):
    job = stubs(
        "sagemaker", "CreateLabelingJob", lambda params: {"LabelingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:labeling-job/x"}
    )  # not in moto
    s3_bucket(env, ARTIFACTS)
    manifest = f"s3://{DATA}/incoming/batch-3.manifest"
    result = cli(env, config, "label", "--manifest", manifest, "--job-name", "car-damage-batch-3")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith("labeling-job/x")
    assert f"s3://{DATA}/ground-truth/car-damage-batch-3/manifests/output/output.manifest" in result.stderr

    (request,) = job.calls  # botocore validated it against CreateLabelingJob's input shape before the stub answered
    account = aws.GROUND_TRUTH_ACCOUNTS[REGION]
    assert request["HumanTaskConfig"]["PreHumanTaskLambdaArn"] == f"arn:aws:lambda:{REGION}:{account}:function:PRE-BoundingBox"
    assert (
        request["HumanTaskConfig"]["AnnotationConsolidationConfig"]["AnnotationConsolidationLambdaArn"]
        == f"arn:aws:lambda:{REGION}:{account}:function:ACS-BoundingBox"
    )
    assert request["HumanTaskConfig"]["WorkteamArn"] == WORKTEAM
    assert request["InputConfig"] == {"DataSource": {"S3DataSource": {"ManifestS3Uri": manifest}}}
    assert request["OutputConfig"] == {"S3OutputPath": f"s3://{DATA}/ground-truth/", "KmsKeyId": "alias/cardamage"}
    assert (request["LabelingJobName"], request["LabelAttributeName"], request["RoleArn"]) == ("car-damage-batch-3", "car-damage", ROLE)
    labeling = load_config(config).labeling
    assert request["HumanTaskConfig"]["TaskTitle"] == labeling.task_title
    assert request["HumanTaskConfig"]["NumberOfHumanWorkersPerDataObject"] == labeling.workers_per_object
    assert request["HumanTaskConfig"]["TaskTimeLimitInSeconds"] == labeling.task_time_limit_seconds
    assert request["HumanTaskConfig"]["MaxConcurrentTaskCount"] == labeling.max_concurrent_tasks

    s3 = client("s3", env.url)
    categories = request["LabelCategoryConfigS3Uri"]
    assert categories == f"s3://{ARTIFACTS}/labeling/car-damage-batch-3/label-categories.json"
    body = json.loads(s3.get_object(Bucket=ARTIFACTS, Key=categories.split("/", 3)[3])["Body"].read())
    assert body["labels"] == [{"label": "dent"}, {"label": "scratch"}]
    template_key = request["HumanTaskConfig"]["UiConfig"]["UiTemplateS3Uri"].split("/", 3)[3]
    template = s3.get_object(Bucket=ARTIFACTS, Key=template_key)["Body"].read().decode()
    assert "<crowd-bounding-box" in template and "task.input.taskObject | grant_read_access" in template
    assert "A dent is a deformation of a panel" in template and "Labels: dent, scratch." in template and "${" not in template


def test_label_needs_a_supported_region_and_a_work_team(env, config, tmp_path):
    assert_one_line_error(cli(env, config, "label", "--manifest", f"s3://{DATA}/m", "--region", "sa-east-1"), 2, "not available in sa-east-1")
    bare = tmp_path / "bare.yaml"
    bare.write_text(f"aws:\n  role_arn: {ROLE}\n  artifact_bucket: {ARTIFACTS}\n  data_bucket: {DATA}\n")
    assert_one_line_error(cli(env, bare, "label", "--manifest", f"s3://{DATA}/m"), 2, "--workteam-arn")
    assert_one_line_error(cli(env, config, "label", "--manifest", "local.manifest"), 2, "not an S3 URI")


def labeling_request(**changes):
    config = parse_config(CONFIG)
    arguments = dict(
        job_name="car-damage-20260105-100000",
        label_attribute="car-damage",
        manifest_uri=f"s3://{DATA}/incoming/batch.manifest",
        output_path=f"s3://{DATA}/ground-truth/",
        categories_uri=f"s3://{ARTIFACTS}/labeling/job/label-categories.json",
        template_uri=f"s3://{ARTIFACTS}/labeling/job/bounding-box.liquid.html",
        role_arn=ROLE,
        workteam_arn=WORKTEAM,
        region=REGION,
        labeling=config.labeling,
        kms_key_id=None,
        tags={"cardamage:project": "car-damage"},
    )
    return aws.labeling_job_request(**{**arguments, **changes})


def test_the_labeling_request_is_valid_for_create_labeling_job():
    shape = botocore.session.get_session().get_service_model("sagemaker").operation_model("CreateLabelingJob").input_shape
    validate_parameters(labeling_request(), shape)  # raises ParamValidationError when it is not
    validate_parameters(labeling_request(adjust=True), shape)
    broken = labeling_request()
    del broken["HumanTaskConfig"]["WorkteamArn"]
    with pytest.raises(Exception, match="WorkteamArn"):
        validate_parameters(broken, shape)
    with pytest.raises(aws.ControlPlaneError, match="1-63 letters"):
        labeling_request(job_name="not_valid")


def test_the_ground_truth_lambda_table_matches_the_api_reference():
    """The table in pipelines/aws.py against the ARNs listed in botocore's copy of the SageMaker API Reference."""
    model = botocore.session.get_session().get_service_model("sagemaker")
    for shape, member, function in (
        ("HumanTaskConfig", "PreHumanTaskLambdaArn", "PRE-BoundingBox"),
        ("AnnotationConsolidationConfig", "AnnotationConsolidationLambdaArn", "ACS-BoundingBox"),
        ("HumanTaskConfig", "PreHumanTaskLambdaArn", "PRE-AdjustmentBoundingBox"),
        ("AnnotationConsolidationConfig", "AnnotationConsolidationLambdaArn", "ACS-AdjustmentBoundingBox"),
    ):
        documented = dict(
            re.findall(rf"arn:aws:lambda:([a-z0-9-]+):(\d{{12}}):function:{function}\b", model.shape_for(shape).members[member].documentation)
        )
        assert documented == aws.GROUND_TRUTH_ACCOUNTS, function
    for adjust in (False, True):  # the ARNs the requests carry are of those names
        pre, consolidation = aws.bounding_box_lambdas(REGION, adjust)
        assert pre.endswith(":function:PRE-AdjustmentBoundingBox" if adjust else ":function:PRE-BoundingBox")
        assert consolidation.endswith(":function:ACS-AdjustmentBoundingBox" if adjust else ":function:ACS-BoundingBox")


# label --adjust: a bounding-box adjustment job on `cardamage review`'s adjustment.manifest

ADJUSTMENT_KEY = "review/20261201T100000Z/adjustment.manifest"


def reviewed(name, *detections):
    """A line of adjustment.manifest as `cardamage review` writes it (pipelines/review.py): the model's boxes."""
    photo = review.Captured(f"captures.jsonl:{name}", name.encode(), "image/jpeg", tuple(detections), 640, 480, "2026-12-01T10:00:00Z")
    url = f"s3://{DATA}/images/review/20261201T100000Z/{name}.jpg"
    return review.adjustment_line(url, review.Scored(photo, 0.5, "ambiguous"), ["dent", "scratch"], "20261201T100000Z")


def upload_manifest(env, *lines):
    body = "".join(line if isinstance(line, str) else json.dumps(line) + "\n" for line in lines)
    client("s3", env.url).put_object(Bucket=DATA, Key=ADJUSTMENT_KEY, Body=body.encode())
    return f"s3://{DATA}/{ADJUSTMENT_KEY}"


DENT = {"class": "dent", "score": 0.41, "box": {"xmin": 10, "ymin": 20, "xmax": 110, "ymax": 80}}
SCRATCH = {"class": "scratch", "score": 0.55, "box": {"xmin": 200, "ymin": 100, "xmax": 260, "ymax": 130}}


def test_label_adjust_creates_an_adjustment_job_showing_the_prior_boxes(env, config, stubs):
    job = stubs(
        "sagemaker", "CreateLabelingJob", lambda params: {"LabelingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:labeling-job/adjust"}
    )  # not in moto
    s3_bucket(env, ARTIFACTS)
    manifest = upload_manifest(env, reviewed("a", DENT, SCRATCH), "\n", reviewed("b"))  # a blank line is skipped
    result = cli(env, config, "label", "--adjust", manifest, "--job-name", "car-damage-review-1")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith("labeling-job/adjust")

    (request,) = job.calls  # validated by botocore against CreateLabelingJob's input shape
    account = aws.GROUND_TRUTH_ACCOUNTS[REGION]
    task = request["HumanTaskConfig"]
    assert task["PreHumanTaskLambdaArn"] == f"arn:aws:lambda:{REGION}:{account}:function:PRE-AdjustmentBoundingBox"
    assert (
        task["AnnotationConsolidationConfig"]["AnnotationConsolidationLambdaArn"]
        == f"arn:aws:lambda:{REGION}:{account}:function:ACS-AdjustmentBoundingBox"
    )
    assert request["InputConfig"] == {"DataSource": {"S3DataSource": {"ManifestS3Uri": manifest}}}
    assert request["LabelAttributeName"] == "car-damage" != review.ADJUSTMENT_ATTRIBUTE  # a new attribute for the adjusted boxes

    s3 = client("s3", env.url)
    categories = json.loads(s3.get_object(Bucket=ARTIFACTS, Key=request["LabelCategoryConfigS3Uri"].split("/", 3)[3])["Body"].read())
    assert categories["labels"] == [{"label": "dent"}, {"label": "scratch"}]  # the prior job's labels, as Ground Truth requires
    assert task["UiConfig"]["UiTemplateS3Uri"] == f"s3://{ARTIFACTS}/labeling/car-damage-review-1/adjust-bounding-box.liquid.html"
    template = s3.get_object(Bucket=ARTIFACTS, Key="labeling/car-damage-review-1/adjust-bounding-box.liquid.html")["Body"].read().decode()
    assert "<crowd-bounding-box" in template and "initial-value=" in template and "${" not in template
    assert "{% for box in task.input.manifestLine.review.annotations %}" in template
    assert "{% assign label = task.input.manifestLine.review-metadata.class-map[class_id] %}" in template
    assert "A dent is a deformation of a panel" in template and "Labels: dent, scratch." in template


@pytest.mark.parametrize(
    ("second", "fragments"),
    [
        (
            {**reviewed("b"), "review-metadata": {**reviewed("b")["review-metadata"], "class-map": {"0": "scratch", "1": "dent"}}},
            ["line 2: review-metadata.class-map is", 'expected {"0": "dent", "1": "scratch"}', "data.classes"],
        ),
        ({"source-ref": f"s3://{DATA}/images/c.jpg"}, ["line 2: expected bounding boxes under 'review'"]),
        ({**reviewed("b"), "review": {"annotations": [{"class_id": 2, "left": 1, "top": 1, "width": 5, "height": 5}]}}, ["review.annotations[0]"]),
        ("{not json\n", ["line 2 is not JSON"]),
    ],
)
def test_label_adjust_checks_every_line_of_the_manifest(env, config, stubs, second, fragments):
    job = stubs("sagemaker", "CreateLabelingJob", {"LabelingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:labeling-job/x"})
    manifest = upload_manifest(env, reviewed("a", DENT), second)
    assert_one_line_error(cli(env, config, "label", "--adjust", manifest), 2, f"{manifest} line 2", *fragments)
    assert job.calls == []


def test_label_adjust_needs_a_manifest_with_one_prior_labelling(env, config, stubs):
    job = stubs("sagemaker", "CreateLabelingJob", {"LabelingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:labeling-job/x"})
    plain = upload_manifest(env, {"source-ref": f"s3://{DATA}/images/a.jpg"})
    assert_one_line_error(cli(env, config, "label", "--adjust", plain), 2, f"{plain} line 1", "one prior labelling", "found none")
    assert_one_line_error(cli(env, config, "label", "--adjust", upload_manifest(env)), 2, "has no lines")
    missing = f"s3://{DATA}/review/none/adjustment.manifest"
    assert_one_line_error(cli(env, config, "label", "--adjust", missing), 1, f"no manifest at {missing}")
    assert job.calls == []


def test_label_adjust_needs_a_new_label_attribute(env, tmp_path, stubs):
    job = stubs("sagemaker", "CreateLabelingJob", {"LabelingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:labeling-job/x"})
    same = tmp_path / "same.yaml"
    same.write_text(CONFIG + f"data:\n  label_attribute: {review.ADJUSTMENT_ATTRIBUTE}\n")
    manifest = upload_manifest(env, reviewed("a", DENT))
    assert_one_line_error(cli(env, same, "label", "--adjust", manifest), 2, "other than 'review'", manifest, "data.label_attribute")
    assert job.calls == []


@pytest.mark.parametrize("options", [[], ["--manifest", f"s3://{DATA}/m", "--adjust", f"s3://{DATA}/{ADJUSTMENT_KEY}"]])
def test_label_takes_exactly_one_of_manifest_and_adjust(env, config, options):
    assert_one_line_error(cli(env, config, "label", *options), 2, "exactly one of --manifest", "--adjust")


# The environment


def test_a_missing_region_is_one_line(server, tmp_path, monkeypatch):
    isolate_aws(monkeypatch, tmp_path, region=None)
    bare = tmp_path / "bare.yaml"
    bare.write_text("project:\n  name: car-damage\n")
    assert_one_line_error(cli(server, bare, "executions"), 2, "no AWS region", "--region")


def test_the_config_region_is_used(env, tmp_path, monkeypatch):
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    other = tmp_path / "other.yaml"
    other.write_text("aws:\n  region: us-west-2\n")
    result = cli(env, other, "start")
    assert_one_line_error(result, 1, "no pipeline named 'car-damage-pipeline' in us-west-2")


def test_batch_predict_runs_a_transform_job_on_the_approved_package_and_summarises_it(env, config, registry):
    """moto keeps the CreateTransformJob request (botocore validated it) and reports the job Completed at once;
    the answers a real job would write are put in its output here, one photo left unanswered."""
    s3, sagemaker = client("s3", env.url), client("sagemaker", env.url)
    photos = {"claims/a.jpg": b"jpeg-a", "claims/b.jpg": b"jpeg-b", "claims/sub/c.png": b"png-c"}
    for key, body in photos.items():
        s3.put_object(Bucket=DATA, Key=key, Body=body)
    answer = {"predictions": [{"image": {"width": 100, "height": 50}, "detections": [
        {"class": "dent", "class_id": 1, "score": 0.9, "box": {"xmin": 0, "ymin": 0, "xmax": 50, "ymax": 25}},
    ]}]}  # fmt: skip
    for name in ("a.jpg", "sub/c.png"):
        s3.put_object(Bucket=ARTIFACTS, Key=f"batch/out/{name}.out", Body=json.dumps(answer).encode())

    result = cli(
        env, config, "batch-predict", "--input", f"s3://{DATA}/claims/", "--output", f"s3://{ARTIFACTS}/batch/out/", "--score-threshold", "0.4"
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert re.fullmatch(r"started Batch Transform job car-damage-batch-v1-\S+ on package version 1 \(ml\.m5\.xlarge\)", lines[0]), lines
    assert "3 file(s): 2 answered, 1 refused" in lines
    (summary,) = sagemaker.list_transform_jobs()["TransformJobSummaries"]
    job = sagemaker.describe_transform_job(TransformJobName=summary["TransformJobName"])
    assert job["TransformJobName"].startswith("car-damage-batch-v1-")
    assert job["TransformInput"]["DataSource"]["S3DataSource"] == {"S3DataType": "S3Prefix", "S3Uri": f"s3://{DATA}/claims/"}
    assert job["TransformInput"]["ContentType"] == "application/x-image" and job["BatchStrategy"] == "SingleRecord"
    assert job["TransformOutput"]["KmsKeyId"] == "alias/cardamage" and job["TransformResources"]["VolumeKmsKeyId"] == "alias/cardamage"
    assert job["Environment"] == {"SCORE_THRESHOLD": "0.4"}
    model = sagemaker.describe_model(ModelName=job["ModelName"])
    assert model["PrimaryContainer"]["ModelPackageName"] == registry[0]

    text = s3.get_object(Bucket=ARTIFACTS, Key="batch/out/summary.csv")["Body"].read().decode()
    rows = {row["image"]: row for row in csv.DictReader(io.StringIO(text))}
    assert sorted(rows) == ["a.jpg", "b.jpg", "sub/c.png"]
    assert rows["a.jpg"]["boxes_dent"] == "1" and rows["a.jpg"]["area_share_dent"] == "0.2500" and rows["a.jpg"]["error"] == ""
    assert rows["b.jpg"]["error"].startswith("no answer in the job's output")


def test_the_transform_job_request_is_valid_for_create_transform_job():
    shape = botocore.session.get_session().get_service_model("sagemaker").operation_model("CreateTransformJob").input_shape
    request = aws.transform_job_request(
        job_name="car-damage-batch-v3-20261201-120000",
        model_name="car-damage-models-v3-0123abcd",
        input_uri="s3://data/claims/",
        output_uri="s3://artifacts/batch/",
        instance_type="ml.g5.xlarge",
        kms_key_id="alias/cardamage",
        instance_storage=True,
        environment={"MAX_DETECTIONS": "10"},
        tags={"project": "car-damage"},
    )
    validate_parameters(request, shape)
    assert "VolumeKmsKeyId" not in request["TransformResources"]  # SageMaker refuses one on NVMe instance storage
    create_model = botocore.session.get_session().get_service_model("sagemaker").operation_model("CreateModel").input_shape
    validate_parameters(
        {"ModelName": "m", "PrimaryContainer": {"ModelPackageName": "arn:aws:sagemaker:eu-west-1:1:model-package/g/1"}, "ExecutionRoleArn": ROLE,
         "EnableNetworkIsolation": True},
        create_model,
    )  # fmt: skip


# The account values from the deployed stack


def deploy_stack(env, outputs: dict[str, str], name: str = "car-damage") -> None:
    """A stack named as the CDK app names the workflow stack, with its outputs (moto's CloudFormation)."""
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    client("cloudformation", env.url).create_stack(StackName=name, TemplateBody=json.dumps(template))


def test_the_cli_reads_unset_account_values_from_the_stack_and_pipeline_yaml_wins(env, registry, tmp_path, stubs):
    """`deploy` with a pipeline.yaml that names no role or bucket: the workflow stack's outputs give them."""
    stack_role = f"arn:aws:iam::{ACCOUNT}:role/car-damage-SageMakerExecution"
    deploy_stack(env, {"SageMakerRoleArn": stack_role, "ArtifactBucket": ARTIFACTS, "KmsKeyId": "alias/from-stack", "DataBucket": DATA})
    bare = tmp_path / "bare.yaml"
    bare.write_text("project:\n  name: car-damage\n")
    created = cli(env, bare, "deploy")
    assert created.exit_code == 0, created.output
    sagemaker = client("sagemaker", env.url)
    endpoint = sagemaker.describe_endpoint(EndpointName=ENDPOINT)
    model_name = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])["ProductionVariants"][0]["ModelName"]
    assert sagemaker.describe_model(ModelName=model_name)["ExecutionRoleArn"] == stack_role
    capture = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])["DataCaptureConfig"]
    assert capture["DestinationS3Uri"] == f"s3://{ARTIFACTS}/data-capture/{ENDPOINT}/" and capture["KmsKeyId"] == "alias/from-stack"

    config = parse_config("project:\n  name: car-damage\naws:\n  kms_key_id: alias/mine\n")
    filled = aws.with_stack_values(aws.connect(REGION, env.url), config)
    assert (filled.aws.role_arn, filled.aws.data_bucket, filled.aws.kms_key_id) == (stack_role, DATA, "alias/mine")  # the file's value wins


def test_batch_predict_with_the_stacks_role_reads_and_writes_only_its_batch_prefixes(env, registry, tmp_path):
    """The transform job runs as the stack's SageMaker role, which may read photos under s3://<data>/batch/ and write
    answers under s3://<artifacts>/batch/ only (infra/roles.py): elsewhere the job would fail with AccessDenied
    after starting, so the command refuses first. A role of the team's own (aws.role_arn) is not held to them."""
    stack_role = f"arn:aws:iam::{ACCOUNT}:role/car-damage-SageMakerExecution"
    deploy_stack(env, {"SageMakerRoleArn": stack_role, "ArtifactBucket": ARTIFACTS, "KmsKeyId": "alias/from-stack", "DataBucket": DATA})
    bare = tmp_path / "bare.yaml"
    bare.write_text("project:\n  name: car-damage\n")
    refused = cli(env, bare, "batch-predict", "--input", f"s3://{DATA}/claims/", "--output", f"s3://{ARTIFACTS}/batch/out/")
    wanted = (
        f"the transform job runs as the stack's SageMaker role, which reads photos under s3://{DATA}/batch/ and writes answers under "
        f"s3://{ARTIFACTS}/batch/ only: upload the photos to s3://{DATA}/batch/<name>/, then --input s3://{DATA}/batch/<name>/ "
        f"--output s3://{ARTIFACTS}/batch/<name>/ (or set aws.role_arn to a role of your own that reads and writes where you want)"
    )
    assert_one_line_error(refused, 2, wanted)
    sagemaker = client("sagemaker", env.url)
    assert sagemaker.list_transform_jobs()["TransformJobSummaries"] == [] and sagemaker.list_models()["Models"] == []
    started = cli(env, bare, "batch-predict", "--input", f"s3://{DATA}/batch/claims/", "--output", f"s3://{ARTIFACTS}/batch/claims/", "--no-wait")
    assert started.exit_code == 0, started.output
    (job,) = sagemaker.list_transform_jobs()["TransformJobSummaries"]
    model = sagemaker.describe_transform_job(TransformJobName=job["TransformJobName"])["ModelName"]
    assert sagemaker.describe_model(ModelName=model)["ExecutionRoleArn"] == stack_role


def test_without_the_stack_the_command_says_what_to_set(env, tmp_path):
    bare = tmp_path / "bare.yaml"
    bare.write_text("project:\n  name: elsewhere\n")
    result = cli(env, bare, "deploy")
    assert result.exit_code == 2
    assert f"note: no stack elsewhere in {REGION}: deploy it (cdk deploy) or set pipeline.yaml's aws values" in result.stderr
    assert "aws.role_arn" in result.stderr
