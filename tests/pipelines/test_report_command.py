"""A package's report page: the definition gives Evaluate PrepareData's reports, its list of photos and the
champion's data FindChampion names, and registers the page's URI (`ReportUri`), the local engine stages those
inputs as SageMaker does (the reports and lists, no training record; the champion's evaluation.json and kept
list, or the model archive FindChampion falls back to), and
`cardamage report` fetches the page on AWS (moto in server mode) and here (the local state's S3 mirror),
owner-only, or says why a package has none."""

from __future__ import annotations

import json
import stat

import pytest
from typer.testing import CliRunner

from containers.deploy import champion
from containers.evaluation.image_lists import IMAGE_LIST, ChampionData, read_kept, read_prepared, training_data
from containers.evaluation.package_report import read_data_reports
from pipelines.cli import app
from pipelines.config import load_config
from pipelines.definition import render_definition
from pipelines.local.state import State
from pipelines.local.storage import LocalS3
from steps.register import METADATA_REPORT
from tests.aws_fakes import client
from tests.containers.evaluation.test_package_report import a_data_report
from tests.pipelines.test_control_plane import (  # noqa: F401 (config, env and server are fixtures)
    ARTIFACTS,
    GROUP,
    assert_one_line_error,
    cli,
    config,
    env,
    register,
    s3_bucket,
    server,
)
from tests.pipelines.test_definition import step
from tests.support import ROOT

PAGE = b"<!DOCTYPE html>\n<html><body>the report</body></html>\n"
PREPARED = {"Get": "Steps.PrepareData.ProcessingOutputConfig.Outputs['prepared'].S3Output.S3Uri"}
EVALUATION = {"Get": "Steps.Evaluate.ProcessingOutputConfig.Outputs['evaluation'].S3Output.S3Uri"}


# The definition


@pytest.fixture(scope="module")
def definition():
    return json.loads(render_definition(load_config(ROOT / "pipeline.yaml")))


def test_evaluate_reads_prepare_datas_reports_and_register_records_the_pages_uri(definition):
    arguments = step(definition, "Evaluate")["Arguments"]
    inputs = {item["InputName"]: item["S3Input"] for item in arguments["ProcessingInputs"]}
    assert inputs["prepared"]["S3Uri"] == {"Std:Join": {"On": "/", "Values": [PREPARED, "report"]}}
    assert inputs["prepared"]["S3DataType"] == "S3Prefix"
    container = arguments["AppSpecification"]["ContainerArguments"]
    assert container[container.index("--prepared") + 1] == inputs["prepared"]["LocalPath"] == "/opt/ml/processing/input/prepared"
    assert arguments["NetworkConfig"]["EnableNetworkIsolation"] is True
    metadata = step(definition, "Register")["Arguments"]["CustomerMetadataProperties"]
    assert metadata[METADATA_REPORT] == {"Std:Join": {"On": "/", "Values": [EVALUATION, "report.html"]}}


def test_the_local_engine_stages_the_reports_and_no_training_record(tmp_path):
    s3 = LocalS3(tmp_path / "s3")
    prefix = "s3://local-artifacts/car-damage-pipeline/prepared-data/run-1"
    report = json.dumps(a_data_report()).encode()
    for name, body in (("report.json", report), ("report.png", b"png"), ("train/train-00000-of-00001.tfrecord", b"x"), ("images.jsonl", b"")):
        s3.path(f"{prefix}/{name}").parent.mkdir(parents=True, exist_ok=True)
        s3.path(f"{prefix}/{name}").write_bytes(body)
    staged = tmp_path / "prepared"
    assert s3.download(f"{prefix}/report", staged) == 2
    assert sorted(path.name for path in staged.iterdir()) == [".json", ".png"]  # named by what follows the prefix
    found = read_data_reports(staged)  # read under that name as under SageMaker's (report.json)
    assert found.files == (".json",) and found.reports == (a_data_report(),) and found.problems == ()


def test_evaluate_reads_the_photos_prepare_data_wrote_and_the_champions_data_findchampion_names(definition):
    arguments = step(definition, "Evaluate")["Arguments"]
    inputs = {item["InputName"]: item["S3Input"] for item in arguments["ProcessingInputs"]}
    assert inputs["images"]["S3Uri"] == {"Std:Join": {"On": "/", "Values": [PREPARED, "images"]}}
    assert inputs["champion-data"]["S3Uri"] == {"Get": "Steps.FindChampion.OutputParameters['data_uri']"}
    container = arguments["AppSpecification"]["ContainerArguments"]
    for name, flag in (("images", "--images"), ("champion-data", "--champion-data")):
        assert inputs[name]["S3DataType"] == "S3Prefix" and inputs[name]["S3DataDistributionType"] == "FullyReplicated"
        assert container[container.index(flag) + 1] == inputs[name]["LocalPath"] == f"/opt/ml/processing/input/{name}"
    assert container[container.index("--champion-data-missing") + 1] == {"Get": "Steps.FindChampion.OutputParameters['data_missing']"}
    assert arguments["NetworkConfig"]["EnableNetworkIsolation"] is True  # Evaluate still reads only its inputs


def staged(s3: LocalS3, files: dict[str, bytes], prefix: str, into) -> list[str]:
    """Write `files` (key -> body) into the local S3 and stage the prefix `prefix` into `into`, as a job's input."""
    for key, body in files.items():
        s3.path(key).parent.mkdir(parents=True, exist_ok=True)
        s3.path(key).write_bytes(body)
    s3.download(prefix, into)
    return sorted(path.name for path in into.iterdir())


def test_the_local_engine_stages_prepare_datas_lists_and_the_champions_evaluation_and_list(tmp_path):
    s3 = LocalS3(tmp_path / "s3")
    prepared = "s3://local-artifacts/car-damage-pipeline/prepared-data/run-2"
    line = json.dumps({"key": "a.jpg", "sha256": "ab" * 32, "split": "train"}) + "\n"
    files = {f"{prepared}/{name}": line.encode() for name in ("images-algo-1.jsonl", "images-algo-2.jsonl")}
    files[f"{prepared}/train/train-00000-of-00001.tfrecord"] = b"x"
    assert staged(s3, files, f"{prepared}/images", tmp_path / "images") == ["-algo-1.jsonl", "-algo-2.jsonl"]
    assert len(read_prepared(tmp_path / "images").photos) == 2
    # The champion's: FindChampion names its evaluation.json's URI less ".json"; evaluation.json and the list come, nothing else.
    evaluation = "s3://local-artifacts/car-damage-pipeline/run-1/evaluation"
    kept = {"snapshot": None, "labels_uri": None, "images": [{"key": "b.jpg", "sha256": "cd" * 32, "split": "validation"}]}
    files = {f"{evaluation}/evaluation.json": b"{}", f"{evaluation}/{IMAGE_LIST}": json.dumps(kept).encode(), f"{evaluation}/report.html": b"<html>"}
    data_uri = champion.champion_data(1, f"{evaluation}/evaluation.json", "s3://local-artifacts/car-damage-pipeline/run-1/model/m.tar.gz")[0]
    assert staged(s3, files, data_uri, tmp_path / "champion-data") == ["-images.json", ".json"]
    assert [photo.key for photo in read_kept(tmp_path / "champion-data").photos] == ["b.jpg"]
    # Or the model archive it falls back to, when the champion's data cannot be named: shown as not known, and why.
    model = "s3://local-artifacts/car-damage-pipeline/run-2/model/job/output/model.tar.gz"
    assert staged(s3, {model: b"archive"}, model, tmp_path / "fallback") == ["model.tar.gz"]
    output = tmp_path / "out"
    output.mkdir()
    section = training_data(output, tmp_path / "images", ChampionData(tmp_path / "fallback", "there is no endpoint e: nothing is served"), 0,
                            snapshot=None, labels_uri=None, log=lambda line: None)  # fmt: skip
    assert section["since_champion"] == {"known": False, "reason": "there is no endpoint e: nothing is served"}


# `cardamage report --local`

LOCAL_CONFIG = ROOT / "pipeline.yaml"


@pytest.fixture
def state_dir(tmp_path):
    """Version 1 registered before reports, version 2 with its page in the S3 mirror, version 3 whose page is gone."""
    group = load_config(LOCAL_CONFIG, profile="local").model_package_group
    state_dir = tmp_path / "state"
    state, s3 = State(state_dir), LocalS3(state_dir / "s3")
    for version in (1, 2, 3):
        uri = f"s3://local-artifacts/car-damage-pipeline/run-{version}/evaluation/report.html"
        if version == 2:
            s3.path(uri).parent.mkdir(parents=True)
            s3.path(uri).write_bytes(PAGE)
        metadata = {METADATA_REPORT: uri} if version > 1 else {}
        state.register(group, "PendingManualApproval", f"s3://local-artifacts/run-{version}/model.tar.gz", "i", None, 0.4, metadata, f"run-{version}")
    return state_dir


def local(state_dir, *arguments: str):
    return CliRunner().invoke(app, ["report", *arguments, "--local", "--state-dir", str(state_dir), "--config", str(LOCAL_CONFIG)])


def test_report_local_writes_the_page_for_its_owner_alone(state_dir, tmp_path, monkeypatch):
    target = tmp_path / "pages" / "v2.html"
    result = local(state_dir, "2", "--output", str(target))
    assert result.exit_code == 0, result.output
    assert target.read_bytes() == PAGE and stat.S_IMODE(target.stat().st_mode) == 0o600
    assert result.output == f"version 2: s3://local-artifacts/car-damage-pipeline/run-2/evaluation/report.html -> {target} (0 KiB)\n"
    monkeypatch.chdir(tmp_path)
    arn = State(state_dir).package("2", load_config(LOCAL_CONFIG, profile="local").model_package_group).arn
    assert local(state_dir, arn).exit_code == 0
    assert (tmp_path / "report-v2.html").read_bytes() == PAGE and stat.S_IMODE((tmp_path / "report-v2.html").stat().st_mode) == 0o600


def test_report_local_of_a_package_without_a_page_says_why(state_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(local(state_dir, "1"), 1, "version 1 has no report page: it was registered before packages carried one")
    assert_one_line_error(local(state_dir, "3"), 1, "version 3's report page s3://local-artifacts/", "is not in the local S3 mirror")
    assert_one_line_error(local(state_dir, "9"), 1, "no model package '9'")
    assert not list(tmp_path.glob("report-v*.html"))


# `cardamage report` on AWS


@pytest.fixture
def packages(env):  # noqa: F811
    """Version 1 registered before reports; version 2 with its page in S3; version 3 whose page is gone."""
    s3_bucket(env, ARTIFACTS)
    sagemaker = client("sagemaker", env.url)
    sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
    arns = [register(env) for _ in range(3)]
    for version, arn in enumerate(arns[1:], start=2):
        key = f"car-damage-pipeline/execution-{version}/evaluation/report.html"
        if version == 2:
            client("s3", env.url).put_object(Bucket=ARTIFACTS, Key=key, Body=PAGE)
        metadata = {METADATA_REPORT: f"s3://{ARTIFACTS}/{key}"}
        sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="PendingManualApproval", CustomerMetadataProperties=metadata)
    return arns


def test_report_on_aws_reads_the_page_its_metadata_names(env, config, packages, tmp_path, monkeypatch):  # noqa: F811
    target = tmp_path / "v2.html"
    result = cli(env, config, "report", "v2", "--output", str(target))
    assert result.exit_code == 0, result.output
    assert target.read_bytes() == PAGE and stat.S_IMODE(target.stat().st_mode) == 0o600
    assert result.output.startswith(f"version 2: s3://{ARTIFACTS}/car-damage-pipeline/execution-2/evaluation/report.html -> {target}")
    monkeypatch.chdir(tmp_path)
    assert cli(env, config, "report", packages[1]).exit_code == 0
    assert (tmp_path / "report-v2.html").read_bytes() == PAGE


def test_report_on_aws_of_a_package_without_a_page_says_why(env, config, packages, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(cli(env, config, "report", "1"), 1, "version 1 has no report page: it was registered before packages carried one")
    assert_one_line_error(cli(env, config, "report", "3"), 1, f"version 3's report page s3://{ARTIFACTS}/", "is not in S3 (NoSuchKey)")
    assert_one_line_error(cli(env, config, "report", "7"), 1, f"model package group {GROUP} has no version 7")
    assert not list(tmp_path.glob("report-v*.html"))
