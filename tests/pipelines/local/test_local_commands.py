"""The `--local` commands on a hand-made state directory: a registry with packages whose model is the fake
detector (tests/fake_model.py), so approvals, deployments, predictions and the HTTP endpoint are checked in
seconds. The whole pipeline through these commands is in test_local_pipeline.py."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.config import load_config
from pipelines.local.endpoint import LocalDeployer
from pipelines.local.state import State
from pipelines.local.storage import LocalS3, LocalS3Client
from pipelines.review import read_captures
from tests.fake_model import write_model_archive
from tests.support import ROOT, SAMPLE

CONFIG = ROOT / "pipeline.yaml"
DETECTIONS = [(1, 0.9, 0.1, 0.1, 0.5, 0.5), (2, 0.6, 0.5, 0.5, 0.9, 0.8)]
IMAGE = sorted((SAMPLE / "images").rglob("*.jpg"))[0]


def cli(*arguments: str):
    return CliRunner().invoke(app, [*arguments, "--config", str(CONFIG)])


@pytest.fixture(scope="module")
def model_archive(tmp_path_factory):
    return write_model_archive(tmp_path_factory.mktemp("fake"), DETECTIONS)


@pytest.fixture
def state_dir(tmp_path, model_archive):
    """Two pending packages of the local profile's group, their model the fake detector."""
    config = load_config(CONFIG, profile="local")
    state_dir = tmp_path / "state"
    state, s3 = State(state_dir), LocalS3(state_dir / "s3")
    for version, map_value in ((1, 0.21), (2, 0.34)):
        uri = f"s3://local-artifacts/run-{version}/model.tar.gz"
        s3.put_file(model_archive, uri)
        state.register(config.model_package_group, "PendingManualApproval", uri, "i", None, map_value, {}, f"run-{version}")
    return state_dir


def deployed_version(state_dir):
    config = load_config(CONFIG, profile="local")
    record = LocalDeployer(State(state_dir), LocalS3(state_dir / "s3"), state_dir / "endpoints").record(config.endpoint_name)
    return record.version if record else None


def test_models_lists_versions_status_and_map(state_dir):
    result = cli("models", "--local", "--state-dir", str(state_dir))
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.output.splitlines()[1:]]
    assert [(r[0], r[1], r[4]) for r in rows] == [("2", "PendingManualApproval", "0.3400"), ("1", "PendingManualApproval", "0.2100")]


def test_models_shows_the_map_and_the_champions_lead_with_their_intervals(state_dir):
    """A package whose evaluation.json has the bootstrap intervals (containers/evaluation/intervals.py) shows them;
    one evaluated before them keeps its figures alone."""
    config = load_config(CONFIG, profile="local")
    state, s3 = State(state_dir), LocalS3(state_dir / "s3")
    uri = "s3://local-artifacts/run-3/evaluation/evaluation.json"
    s3.path(uri).parent.mkdir(parents=True, exist_ok=True)
    s3.path(uri).write_text(
        json.dumps(
            {
                "metrics": {"mAP": {"value": 0.4083}},
                "intervals": {"method": "percentile bootstrap over validation images", "metrics": {"mAP": [0.3301, 0.4902]}},
                "champion": {"version": 1, "map_lead": 0.0524, "lead_interval": [-0.041, 0.152], "intervals": {"metrics": {"mAP": [0.40, 0.52]}}},
            }
        )
    )
    metadata = {"ChampionVersion": "1", "ChampionMAP": "0.460700"}
    state.register(config.model_package_group, "PendingManualApproval", "s3://local-artifacts/m.tar.gz", "i", uri, 0.4083, metadata, "run-3")
    result = cli("models", "--local", "--state-dir", str(state_dir))
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.output.splitlines()[1:]}
    assert "0.41 (0.33-0.49)" in rows["3"] and "v1: 0.46 (0.40-0.52), lead 0.05 (-0.04 to 0.15)" in rows["3"], result.output
    assert "0.3400" in rows["2"] and "(" not in rows["2"]  # evaluated before intervals


def test_models_shows_whether_each_package_has_its_drift_baselines(state_dir):
    config = load_config(CONFIG, profile="local")
    state, s3 = State(state_dir), LocalS3(state_dir / "s3")
    for version, written in ((3, ("model",)), (4, ("data", "model"))):
        baselines = {}
        for kind, field, name in (("data", "ModelDataQuality", "data-baseline.json"), ("model", "ModelQuality", "model-baseline.json")):
            uri = f"s3://local-artifacts/run-{version}/evaluation/{name}"
            baselines[field] = {"Statistics": {"ContentType": "application/json", "S3Uri": uri}}
            if kind in written:
                s3.path(uri).parent.mkdir(parents=True, exist_ok=True)
                s3.path(uri).write_text('{"version": 1}')
        metadata = {"DriftCheckBaselines": baselines}
        state.register(
            config.model_package_group, "PendingManualApproval", "s3://local-artifacts/m.tar.gz", "i", None, 0.4, metadata, f"run-{version}"
        )
    result = cli("models", "--local", "--state-dir", str(state_dir))
    assert result.exit_code == 0, result.output
    assert "baseline" in result.output.splitlines()[0].split()
    rows = {line.split()[0]: line.split() for line in result.output.splitlines()[1:]}
    # version, status, created (2), mAP, champion mAP ("-"), then the baseline (nothing is served).
    assert (rows["4"][6], rows["3"][6:8], rows["2"][6], rows["1"][6]) == ("yes", ["model", "only"], "no", "no")


def test_approve_records_who_and_why_and_deploys_like_the_approval_rule(state_dir):
    result = cli("approve", "1", "--local", "--state-dir", str(state_dir), "-m", "good enough for the demo")
    assert result.exit_code == 0, result.output
    approval, deployment = result.output.splitlines()
    assert approval.startswith("version 1: PendingManualApproval -> Approved (") and approval.endswith("@local: good enough for the demo)")
    assert deployment.startswith("endpoint car-damage-endpoint: created (")
    package = State(state_dir).package("1", load_config(CONFIG, profile="local").model_package_group)
    assert package.status == "Approved" and package.approval_description.endswith("@local: good enough for the demo")
    assert deployed_version(state_dir) == 1

    assert cli("approve", "2", "--local", "--state-dir", str(state_dir)).exit_code == 0
    assert deployed_version(state_dir) == 2
    older = cli("approve", "1", "--local", "--state-dir", str(state_dir))  # an older version never replaces a newer one
    assert older.exit_code == 0 and deployed_version(state_dir) == 2
    skipped = "endpoint car-damage-endpoint: skipped (version 1 is older than the served version 2"
    assert older.output.splitlines()[1].startswith(skipped), older.output
    models = cli("models", "--local", "--state-dir", str(state_dir)).output
    assert re.search(r"^2\s+Approved.*serving", models, re.M)

    rejected = cli("reject", "2", "--local", "--state-dir", str(state_dir), "-m", "boxes too loose")
    assert rejected.exit_code == 0 and "still serves version 2" in rejected.output
    unexplained = cli("deploy", "--local", "--package", "1", "--force", "--state-dir", str(state_dir))
    assert unexplained.exit_code == 2 and "--force needs --reason WHY" in unexplained.output
    forced = cli("deploy", "--local", "--package", "1", "--force", "-m", "v2 rejected", "--state-dir", str(state_dir))
    assert forced.exit_code == 0, forced.output
    assert deployed_version(state_dir) == 1


def test_unknown_package_and_nothing_approved_are_clear_errors(state_dir):
    unknown = cli("approve", "9", "--local", "--state-dir", str(state_dir))
    assert unknown.exit_code == 1 and "no model package '9'" in unknown.output and "versions: 2, 1" in unknown.output
    none = cli("deploy", "--local", "--state-dir", str(state_dir))
    assert none.exit_code == 1 and "no Approved package" in none.output
    pending = cli("deploy", "--local", "--package", "2", "--state-dir", str(state_dir))
    assert pending.exit_code == 1 and "not Approved" in pending.output


def test_predict_prints_the_detections_and_saves_a_picture(state_dir, tmp_path):
    nothing = cli("predict", str(IMAGE), "--local", "--state-dir", str(state_dir))
    assert nothing.exit_code == 1 and "nothing is deployed" in nothing.output
    assert cli("approve", "2", "--local", "--state-dir", str(state_dir)).exit_code == 0
    picture = tmp_path / "out" / "prediction.png"
    result = cli("predict", str(IMAGE), "--local", "--state-dir", str(state_dir), "--output", str(picture))
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"2 detection(s) in {IMAGE} by endpoint car-damage-endpoint (")
    assert re.search(r"^dent\s+0\.900", result.output, re.M)
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fewer = cli("predict", str(IMAGE), "--local", "--state-dir", str(state_dir), "--score-threshold", "0.7", "--output", str(picture))
    assert fewer.exit_code == 0 and fewer.output.startswith(f"1 detection(s) in {IMAGE} by "), fewer.output
    pinned = cli("predict", str(IMAGE), "--local", "--state-dir", str(state_dir), "--model", "1", "--output", str(picture))
    assert pinned.exit_code == 0 and pinned.output.startswith(f"2 detection(s) in {IMAGE} by package 1\n"), pinned.output
    missing = cli("predict", str(tmp_path / "no.jpg"), "--local", "--state-dir", str(state_dir))
    assert missing.exit_code == 2 and "no such image file" in missing.output


def test_serve_answers_ping_and_invocations_until_ctrl_c(state_dir):
    assert cli("approve", "1", "--local", "--state-dir", str(state_dir)).exit_code == 0
    command = [sys.executable, "-m", "pipelines.cli", "serve", "--local", "--port", "0", "--state-dir", str(state_dir), "--config", str(CONFIG)]
    server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "COLUMNS": "200"})
    try:
        url, seen, deadline = None, [], time.monotonic() + 120
        while url is None and time.monotonic() < deadline:
            line = server.stdout.readline()
            if not line:
                break
            seen.append(line)
            found = re.search(r"at (http://127\.0\.0\.1:\d+)", line)
            url = found.group(1) if found else None
        assert url, "".join(seen)
        assert urllib.request.urlopen(f"{url}/ping", timeout=30).status == 200
        request = urllib.request.Request(f"{url}/invocations", data=IMAGE.read_bytes(), headers={"Content-Type": "image/jpeg"})
        answer = json.loads(urllib.request.urlopen(request, timeout=60).read())
        assert [d["class"] for d in answer["predictions"][0]["detections"]] == ["dent", "scratch"]
    finally:
        server.send_signal(signal.SIGINT)
        try:
            output, _ = server.communicate(timeout=120)  # a loaded TensorFlow can take a while to exit on a busy machine
        except subprocess.TimeoutExpired:
            server.kill()
            output, _ = server.communicate()
            pytest.fail("serve did not stop within 120 s of Ctrl-C:\n" + output[-2000:])
    assert server.returncode == 0 and "stopped" in output


def test_executions_without_runs_and_run_with_half_an_input(tmp_path):
    empty = cli("executions", "--local", "--state-dir", str(tmp_path / "none"))
    assert empty.exit_code == 2 and "no local runs here yet" in empty.output
    half = cli("run", "--images", str(tmp_path), "--state-dir", str(tmp_path / "s"))  # run is local only: no --local needed
    assert half.exit_code == 2 and "--images and --images-prefix go together" in half.output


def gate_definition(path):
    """PrepareData-free: a condition on MapThreshold and a Fail step whose message names it."""
    parameters = [
        {"Name": "InputManifestUri", "Type": "String", "DefaultValue": "s3://b/m/"},
        {"Name": "ImagesS3Prefix", "Type": "String", "DefaultValue": "s3://b/i/"},
        {"Name": "MapThreshold", "Type": "Float", "DefaultValue": 0.3},
    ]
    fail = {
        "Name": "QualityBelowThreshold",
        "Type": "Fail",
        "Arguments": {"ErrorMessage": {"Std:Join": {"On": " ", "Values": ["threshold", {"Get": "Parameters.MapThreshold"}, "not reached"]}}},
    }
    gate = {
        "Name": "CheckQuality",
        "Type": "Condition",
        "Arguments": {
            "Conditions": [{"Type": "LessThanOrEqualTo", "LeftValue": {"Get": "Parameters.MapThreshold"}, "RightValue": 0.5}],
            "IfSteps": [],
            "ElseSteps": [fail],
        },
    }
    path.write_text(json.dumps({"Version": "2020-12-01", "Parameters": parameters, "Steps": [gate]}))
    return path


def test_run_checks_parameters_first_and_reports_the_fail_step(tmp_path):
    definition = gate_definition(tmp_path / "definition.json")
    base = ["run", "--local", "--definition", str(definition), "--state-dir", str(tmp_path / "state")]
    bad = cli(*base, "--param", "MapThreshold=high", "--param", "Steps=3")
    assert bad.exit_code == 2 and "unknown parameter(s) Steps" in bad.output
    bad = cli(*base, "--param", "MapThreshold=high")
    assert bad.exit_code == 2 and "MapThreshold='high' must be a number" in bad.output
    assert not (tmp_path / "state" / "state.sqlite").exists() or not State(tmp_path / "state").executions()

    passed = cli(*base)
    assert passed.exit_code == 0, passed.output
    assert "Succeeded execution" in passed.output
    failed = cli(*base, "--param", "MapThreshold=0.9")
    assert failed.exit_code == 1 and "threshold 0.9 not reached" in failed.output
    listed = cli("executions", "--local", "--state-dir", str(tmp_path / "state"))
    statuses = [line.split()[1] for line in listed.output.splitlines()[1:]]
    assert statuses == ["Failed", "Succeeded"]
    execution = listed.output.splitlines()[1].split()[0]
    detail = cli("executions", "--local", "--state-dir", str(tmp_path / "state"), "--execution", execution)
    assert "QualityBelowThreshold" in detail.output and "threshold 0.9 not reached" in detail.output


def test_the_sagemaker_runtime_client_invokes_the_local_endpoint_as_it_would_aws(state_dir, monkeypatch, tmp_path):
    """boto3's own sagemaker-runtime client, pointed at the local server: answers, ModelError with the
    container's original 4xx, ValidationError for an endpoint that is not this one."""
    import threading

    import boto3

    from pipelines.local.endpoint import EndpointServer
    from tests.aws_fakes import REGION, isolate_aws

    assert cli("approve", "1", "--local", "--state-dir", str(state_dir)).exit_code == 0
    isolate_aws(monkeypatch, tmp_path)  # dummy credentials: the client signs its requests as against AWS
    config = load_config(CONFIG, profile="local")
    server = EndpointServer(LocalDeployer(State(state_dir), LocalS3(state_dir / "s3"), state_dir / "endpoints"), config.endpoint_name, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        runtime = boto3.client("sagemaker-runtime", endpoint_url=f"http://127.0.0.1:{server.port}", region_name=REGION)
        answer = runtime.invoke_endpoint(
            EndpointName=config.endpoint_name,
            Body=IMAGE.read_bytes(),
            ContentType="image/jpeg",
            Accept="application/json",
            CustomAttributes="score_threshold=0.5",
            InferenceId="claim-42",
        )
        assert answer["ContentType"] == "application/json" and answer["InvokedProductionVariant"] == "AllTraffic"
        assert [d["class"] for d in json.loads(answer["Body"].read())["predictions"][0]["detections"]] == ["dent", "scratch"]

        with pytest.raises(runtime.exceptions.ModelError) as refused:
            runtime.invoke_endpoint(EndpointName=config.endpoint_name, Body=b"not an image", ContentType="image/jpeg")
        error = refused.value.response
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 424 and error["Error"]["Code"] == "ModelError"
        assert error["OriginalStatusCode"] == 400
        assert json.loads(error["OriginalMessage"]) == {
            "error": "the image is not an image that can be read (no image format recognised); send JPEG or PNG bytes",
            "status": 400,
        }
        assert error["Error"]["Message"].startswith("Received client error (400) from primary with message")

        with pytest.raises(runtime.exceptions.ValidationError) as unknown:
            runtime.invoke_endpoint(EndpointName="another-endpoint", Body=IMAGE.read_bytes(), ContentType="image/jpeg")
        assert unknown.value.response["Error"]["Message"] == "Endpoint another-endpoint of account 000000000000 not found."
    finally:
        server.shutdown()

    # The answered request was captured, as the deployment's data capture (100% in this profile) says.
    destination = str(config.data_capture("local-artifacts"))
    (captured,) = list(read_captures(LocalS3Client(LocalS3(state_dir / "s3")), destination))
    uri, _, text = captured
    record = json.loads(text)
    assert re.fullmatch(
        rf"{re.escape(destination)}{config.endpoint_name}/AllTraffic/\d{{4}}/\d\d/\d\d/\d\d/\d\d-\d\d-\d{{3}}-[0-9a-f-]{{36}}\.jsonl", uri
    )
    request, reply = record["captureData"]["endpointInput"], record["captureData"]["endpointOutput"]
    assert (request["mode"], request["observedContentType"], request["encoding"]) == ("INPUT", "image/jpeg", "BASE64")
    assert base64.b64decode(request["data"]) == IMAGE.read_bytes()
    assert (reply["mode"], reply["observedContentType"], reply["encoding"]) == ("OUTPUT", "application/json", "JSON")
    assert [d["class"] for d in json.loads(reply["data"])["predictions"][0]["detections"]] == ["dent", "scratch"]
    assert record["eventMetadata"]["inferenceId"] == "claim-42" and record["eventVersion"] == "0"


def test_predict_calls_any_runtime_compatible_url_and_draws_as_locally(state_dir, monkeypatch, tmp_path):
    """`cardamage predict IMAGE --endpoint-url URL` with dummy credentials (and no region) against the local
    server: the AWS path of predict, through boto3's sagemaker-runtime client."""
    import threading

    from pipelines.local.endpoint import EndpointServer
    from tests.aws_fakes import isolate_aws

    assert cli("approve", "1", "--local", "--state-dir", str(state_dir)).exit_code == 0
    isolate_aws(monkeypatch, tmp_path, region=None)
    config = load_config(CONFIG, profile="local")
    server = EndpointServer(LocalDeployer(State(state_dir), LocalS3(state_dir / "s3"), state_dir / "endpoints"), config.endpoint_name, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.port}"
    try:
        picture = tmp_path / "one.png"
        one = cli("predict", str(IMAGE), "--endpoint-url", url, "--endpoint", config.endpoint_name, "--output", str(picture))
        assert one.exit_code == 0, one.output
        assert f"2 detection(s) in {IMAGE} by endpoint {config.endpoint_name} at {url}" in one.stdout
        assert picture.read_bytes()[:4] == b"\x89PNG"

        broken = tmp_path / "broken.jpg"
        broken.write_bytes(b"not an image")
        second = sorted((SAMPLE / "images").rglob("*.jpg"))[1]
        several = cli(
            "predict",
            str(IMAGE),
            str(second),
            str(broken),
            "--endpoint-url",
            url,
            "--endpoint",
            config.endpoint_name,
            "--output",
            str(tmp_path / "out"),
        )
        assert several.exit_code == 1  # one image was refused: said, and the others still drawn
        assert f"{broken}: the endpoint answered 400" in several.stderr
        assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted([f"{IMAGE.stem}.png", f"{second.stem}.png"])
        local_only = cli("predict", str(IMAGE), "--endpoint-url", url, "--model", "1")  # --model is the local engine's
        assert local_only.exit_code == 2 and "--model picks a local package; an AWS endpoint serves what is deployed" in local_only.output
    finally:
        server.shutdown()


def test_batch_predict_answers_every_photo_and_reports_every_refusal(state_dir, tmp_path):
    """`cardamage batch-predict --local --state-dir DIR --input DIR --output DIR`: a <name>.json per photo,
    summary.csv with one row per input file (an `error` for the unreadable one), exit 0."""
    import csv

    assert cli("approve", "1", "--local", "--state-dir", str(state_dir)).exit_code == 0
    photos = tmp_path / "claims"
    (photos / "sub").mkdir(parents=True)
    first, second = sorted((SAMPLE / "images").rglob("*.jpg"))[:2]
    (photos / "a.jpg").write_bytes(first.read_bytes())
    (photos / "sub" / "b.jpg").write_bytes(second.read_bytes())
    (photos / "notes.txt").write_text("not a photo")
    out = tmp_path / "answers"
    result = cli("batch-predict", "--local", "--state-dir", str(state_dir), "--input", str(photos), "--output", str(out), "--pictures")
    assert result.exit_code == 0, result.output
    assert re.search(r"^3 file\(s\): 2 answered, 1 refused; model ", result.stdout, re.M) and "refused notes.txt: 400: " in result.stdout
    answer = json.loads((out / "sub" / "b.jpg.json").read_text())
    assert answer["image"] == "sub/b.jpg" and [d["class"] for d in answer["detections"]] == ["dent", "scratch"]
    assert (out / "a.jpg.png").read_bytes()[:4] == b"\x89PNG" and not (out / "notes.txt.json").exists()
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert [row["image"] for row in rows] == ["a.jpg", "notes.txt", "sub/b.jpg"]
    assert list(rows[0]) == ["image", "error", "boxes", "boxes_dent", "boxes_scratch", "top_score", "area_share_dent", "area_share_scratch"]
    # The fake detector's boxes (normalised): dent 0.4 x 0.4 of the photo, scratch 0.3 x 0.4.
    assert (rows[0]["boxes"], rows[0]["boxes_dent"], rows[0]["top_score"]) == ("2", "1", "0.9000")
    assert (rows[0]["area_share_dent"], rows[0]["area_share_scratch"]) == ("0.1600", "0.1200")
    assert rows[1]["error"].startswith("400: the image is not an image that can be read") and rows[1]["boxes"] == ""


def test_approving_an_older_package_deploys_it_only_with_force_and_a_reason(state_dir):
    assert cli("approve", "2", "--local", "--state-dir", str(state_dir)).exit_code == 0
    plain = cli("approve", "1", "--local", "--state-dir", str(state_dir))
    assert plain.exit_code == 0 and "skipped (version 1 is older than the served version 2" in plain.output
    unexplained = cli("approve", "1", "--force", "--local", "--state-dir", str(state_dir))
    assert unexplained.exit_code == 2 and "--force needs a reason: -m WHY" in unexplained.output
    forced = cli("approve", "1", "--force", "-m", "v2 misses scratches", "--local", "--state-dir", str(state_dir))
    assert forced.exit_code == 0, forced.output
    assert "updated (forced: version 1 is older than the served version 2; reason: v2 misses scratches" in forced.output
    config = load_config(CONFIG, profile="local")
    record = LocalDeployer(State(state_dir), LocalS3(state_dir / "s3"), state_dir / "endpoints").record(config.endpoint_name)
    assert (record.version, record.forced_because) == (1, "v2 misses scratches")
    assert State(state_dir).package("1", config.model_package_group).approval_description.endswith(": v2 misses scratches")
