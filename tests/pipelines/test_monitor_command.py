"""`cardamage monitor`: with --local, the local endpoint's captures, the served package's baselines (the ones it
records as DriftCheckBaselines first, else the ones beside its evaluation.json) and the review labels pulled
under the labels prefix, through the monitor program; exit 0 whatever it found, 1 on drift with --fail-on-drift, 2
for a wrong option, naming it; a run's accuracy in service kept with its package for `cardamage models --local`.
On AWS (moto): the scheduled job's latest report copied from S3, or a named window's captures, baselines, labels
and the capture files review batches took photos from fetched from S3 as the job gets them and monitored here;
`cardamage models` shows the accuracy in service of each endpoint's newest report."""

from __future__ import annotations

import io
import json
import stat
import time
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from containers.monitoring import monitor as program
from containers.monitoring import statistics
from containers.monitoring.statistics import DATA_BASELINE, MODEL_BASELINE
from pipelines import aws, review
from pipelines.cli import app
from pipelines.config import load_config
from pipelines.local.capture import DataCapture, capture_line
from pipelines.local.endpoint import Deployment
from pipelines.local.runner import LOCAL_VALUES
from pipelines.local.state import State
from pipelines.local.storage import LocalS3
from tests.aws_fakes import REGION, client, isolate_aws, stub_operation
from tests.containers.deploy.test_deploy import server  # noqa: F401  (the moto server fixture)
from tests.containers.deploy.test_monitor_start import register, serve
from tests.review_support import answer, detection
from tests.support import ROOT, jpeg_bytes

CONFIG = ROOT / "pipeline.yaml"
SIZE = (64, 48)
WHEN = datetime(2026, 12, 1, 10, tzinfo=UTC)
EVALUATION = "s3://local-artifacts/car-damage-pipeline/run-1/evaluation/evaluation.json"


def darker(data: bytes, factor: float) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        pixels = (np.asarray(image.convert("RGB"), dtype=np.float64) * factor).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=90)
    return out.getvalue()


def photos(seeds, factor: float = 1.0) -> list[bytes]:
    return [darker(jpeg_bytes(size=SIZE, seed=seed), factor) for seed in seeds]


def baseline_documents(seeds) -> dict[str, dict]:
    inputs = [statistics.input_statistics(data) for data in photos(seeds)]
    dent = {"class": "dent", "score": 0.4, "box": {"xmin": 6.4, "ymin": 4.8, "xmax": 32, "ymax": 24}}
    outputs = [statistics.output_statistics([dent], *SIZE) for _ in seeds]
    return {DATA_BASELINE: statistics.summarize(inputs, "input"), MODEL_BASELINE: statistics.summarize(outputs, "output", classes=["dent"])}


@pytest.fixture(scope="module")
def documents():
    return baseline_documents(range(40))


def test_a_named_window_here_still_scores_a_labelled_photo_answered_before_it(tmp_path, documents):
    """The labelled photo was answered at 10:03; a window from 10:05 holds its answer no more, and the endpoint's
    capture files are read again for the accuracy in service only, as review batches' are on AWS."""
    state_dir, _, _ = labelled_state(tmp_path, documents, WHEN - timedelta(days=1), "review")
    result = monitor(state_dir, tmp_path / "out", "--since", (WHEN + timedelta(minutes=5)).isoformat())
    assert result.exit_code == 0, result.output
    document = json.loads((tmp_path / "out" / "monitor.json").read_text())
    assert document["window"]["images"] == 5  # 10:05 to 10:09: the labelled photo is not measured for drift
    assert document["quality"]["images"] == 1 and document["quality"]["map"] == pytest.approx(1.0)


def served_state(tmp_path, documents, *, metadata=None, metrics_uri=EVALUATION, window=(), deployed=None):
    """A state folder whose local endpoint serves version 1 (its record as a deployment writes it, with the data
    capture the local profile configures, deployed at `deployed`, default now), its baselines beside its
    evaluation.json, and `window` captured one a minute from WHEN."""
    config = load_config(CONFIG, profile="local")
    state_dir = tmp_path / "state"
    state, s3 = State(state_dir), LocalS3(state_dir / "s3")
    package = state.register(
        config.model_package_group, "Approved", "s3://local-artifacts/run-1/model.tar.gz", "i", metrics_uri, 0.4, metadata or {}, "run-1"
    )
    for name, document in documents.items():
        path = s3.path(EVALUATION.rsplit("/", 1)[0] + "/" + name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document))
    destination = str(config.data_capture(LOCAL_VALUES["ArtifactBucket"], config.endpoint_name))
    when = time.time() if deployed is None else deployed.timestamp()
    record = Deployment(config.endpoint_name, package.arn, package.group, 1, "unused", {}, when, {"destination": destination, "percent": 100})
    (state_dir / "endpoints").mkdir()
    (state_dir / "endpoints" / f"{config.endpoint_name}.json").write_text(json.dumps(asdict(record)))
    capture = DataCapture(s3, destination, config.endpoint_name, 100)
    for index, data in enumerate(window):
        capture.record(
            data, "image/jpeg", answer([detection("dent", 0.4, size=SIZE)], SIZE), "application/json", when=WHEN + timedelta(minutes=index)
        )
    return state_dir, package


def monitor(state_dir, output, *options):
    return CliRunner().invoke(app, ["monitor", "--local", "--state-dir", str(state_dir), "--output", str(output), "--config", str(CONFIG), *options])


def test_monitor_reads_the_local_endpoints_captures_against_the_baselines_beside_its_evaluation(tmp_path, documents):
    state_dir, package = served_state(tmp_path, documents, window=photos(range(100, 130)))
    result = monitor(state_dir, tmp_path / "out", "--since", "2026-12-01T10:00:00Z", "--until", "2026-12-01T10:20:00Z")
    assert result.exit_code == 0, result.output
    document = json.loads((tmp_path / "out" / "monitor.json").read_text())
    assert document["window"] == {"since": "2026-12-01T10:00:00Z", "until": "2026-12-01T10:20:00Z", "images": 20}  # one a minute
    assert document["baseline"] == {"package": f"{package.group}/1", "images": 40, "missing": []} and document["drift"] is False
    assert {entry["kind"] for entry in document["statistics"]} == {"input", "output"}
    beside = EVALUATION.rsplit("/", 1)[0]
    assert f"input baseline: {beside}/{DATA_BASELINE}" in result.stdout and f"output baseline: {beside}/{MODEL_BASELINE}" in result.stdout
    assert "10 captured record(s) outside the window were left out" in result.stdout
    assert {path.name for path in (tmp_path / "out").iterdir()} == {"monitor.json", "report.html", "atypical.json"}


def test_the_baselines_a_package_records_as_drift_check_baselines_come_first(tmp_path, documents):
    recorded = "s3://local-artifacts/elsewhere/"
    metadata = {
        "DriftCheckBaselines": {
            "ModelDataQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": recorded + "data.json"}},
            "ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": recorded + "missing.json"}},
        }
    }
    state_dir, _ = served_state(tmp_path, documents, metadata=metadata, window=photos(range(100, 105)))
    other = baseline_documents(range(200, 225))[DATA_BASELINE]
    path = LocalS3(state_dir / "s3").path(recorded + "data.json")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(other))
    result = monitor(state_dir, tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "out" / "monitor.json").read_text())["baseline"]["images"] == 25  # the recorded one, not the 40 beside
    assert f"input baseline: {recorded}data.json" in result.stdout
    assert f"output baseline: {EVALUATION.rsplit('/', 1)[0]}/{MODEL_BASELINE}" in result.stdout  # the recorded file is gone: the one beside


def test_fail_on_drift_exits_1_on_drift_and_0_without(tmp_path, documents):
    state_dir, _ = served_state(tmp_path, documents, window=photos(range(100, 130), factor=0.3))
    drifted = monitor(state_dir, tmp_path / "dark", "--fail-on-drift")
    assert drifted.exit_code == 1 and "drift found: exit status 1 (--fail-on-drift)" in drifted.stderr
    assert "DRIFT in" in drifted.stdout and "brightness (input)" in drifted.stdout
    assert monitor(state_dir, tmp_path / "dark-no-flag").exit_code == 0  # without the flag it ran, whatever it found
    calm = monitor(state_dir, tmp_path / "before", "--until", "2026-12-01T09:00:00Z", "--fail-on-drift")  # an empty window
    assert calm.exit_code == 0, calm.output


def test_a_package_without_baselines_is_said_clearly_and_still_monitored(tmp_path):
    state_dir, package = served_state(tmp_path, {}, metrics_uri=None, window=photos(range(100, 105)))
    result = monitor(state_dir, tmp_path / "out")
    assert result.exit_code == 0, result.output
    served = f"version 1 of {package.group}"
    for kind in ("input", "output"):
        assert f"warning: {served} has no {kind} baseline (it records neither DriftCheckBaselines nor an evaluation)" in result.stderr
    document = json.loads((tmp_path / "out" / "monitor.json").read_text())
    assert document["baseline"]["missing"] == ["input", "output"] and document["statistics"] == [] and document["window"]["images"] == 5


def test_nothing_captured_yet_is_an_empty_window(tmp_path, documents):
    state_dir, _ = served_state(tmp_path, documents)
    result = monitor(state_dir, tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "nothing captured under s3://local-artifacts/data-capture/" in result.stderr
    assert json.loads((tmp_path / "out" / "monitor.json").read_text())["window"]["images"] == 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--since", "2026-12-02", "--until", "2026-12-01"], "--since 2026-12-02T00:00:00Z is not before --until 2026-12-01T00:00:00Z"),
        (["--until", "noon"], "--until: 'noon' is not an ISO 8601 date or time"),
        (["--endpoint", "someone-elses"], "--endpoint 'someone-elses' is none of this configuration's endpoints: car-damage-endpoint"),
    ],
)
def test_a_wrong_option_is_exit_status_2_naming_it(tmp_path, documents, options, message):
    state_dir, _ = served_state(tmp_path, documents)
    result = monitor(state_dir, tmp_path / "out", *options)
    assert result.exit_code == 2 and message in result.stderr, result.output
    assert not (tmp_path / "out").exists()


def test_without_output_or_a_deployment_it_says_what_is_missing(tmp_path, documents):
    state_dir, _ = served_state(tmp_path, documents)
    no_output = CliRunner().invoke(app, ["monitor", "--local", "--state-dir", str(state_dir), "--config", str(CONFIG)])
    assert no_output.exit_code == 2 and "--output DIR is needed" in no_output.stderr
    (state_dir / "endpoints" / "car-damage-endpoint.json").unlink()
    nothing = monitor(state_dir, tmp_path / "out")
    assert nothing.exit_code == 1 and "nothing is deployed to the local endpoint car-damage-endpoint" in nothing.stderr


def review_export(photo: bytes, size=SIZE, box=(10.0, 10.0)) -> str:
    """A Label Studio export of the review copy of `photo` (named after its hash), its dent where the endpoint saw it
    (or, with `box`, at another top-left corner, in percent)."""
    name = review.photo_key(review.Captured("c", photo, "image/jpeg", (), *size))
    value = {"x": box[0], "y": box[1], "width": 40.0, "height": 40.0, "rotation": 0, "rectanglelabels": ["dent"]}
    result = {"type": "rectanglelabels", "original_width": size[0], "original_height": size[1], "value": value}
    return json.dumps([{"id": 1, "data": {"image": f"s3://local-data/images/review/b1/{name}"}, "annotations": [{"id": 1, "result": [result]}]}])


def labelled_state(folder, documents, deployed: datetime, export: str) -> tuple:
    """A state folder serving version 1 since `deployed`, whose window's fourth photo (answered at 10:03) came back
    labelled in the review export `labels/<export>/export.json`: (state folder, package, the export's path)."""
    window = photos(range(100, 110))
    state_dir, package = served_state(folder, documents, window=window, deployed=deployed)
    labels = LocalS3(state_dir / "s3").path(f"s3://local-data/labels/{export}/export.json")
    labels.parent.mkdir(parents=True)
    labels.write_text(review_export(window[3]))
    return state_dir, package, labels


def test_the_review_labels_pulled_here_give_the_accuracy_in_service_of_what_the_package_answered(tmp_path, documents):
    state_dir, package, labels = labelled_state(tmp_path, documents, WHEN - timedelta(days=1), "labelstudio-cardamage-review-0123456789ab")
    result = monitor(state_dir, tmp_path / "out")
    assert result.exit_code == 0, result.output
    quality = json.loads((tmp_path / "out" / "monitor.json").read_text())["quality"]
    assert quality["images"] == 1 and quality["map"] == pytest.approx(1.0) and quality["unmatched"] == 0
    assert quality["package"] == f"{package.group}/1" and quality["labels"] == str(labels.parent.parent)
    assert "labels: s3://local-data/labels/ (the accuracy in service" in result.stdout
    assert "monitor: accuracy in service: mAP 1.0000" in result.stdout
    # Deployed after those answers: they were another package's, so they are not this one's accuracy.
    later, _, _ = labelled_state(tmp_path / "later", documents, WHEN + timedelta(days=1), "review")
    result = monitor(later, tmp_path / "later-out")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "later-out" / "monitor.json").read_text())["quality"] is None
    assert "1 answer(s) captured before --served-since 2026-12-02T10:00:00Z left out" in result.stdout


def models_rows(state_dir) -> dict[str, str]:
    """`cardamage models --local`'s "in service" column by version ({} when it has no such column)."""
    result = CliRunner().invoke(app, ["models", "--local", "--state-dir", str(state_dir), "--config", str(CONFIG)], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    if "in service" not in lines[0]:
        return {}
    column = lines[0].index("in service")  # the table's columns start where their headers do
    return {line.split()[0]: line[column:].split("  ")[0] for line in lines[1:]}


def test_a_local_run_s_accuracy_in_service_is_kept_with_its_package_and_models_shows_the_latest(tmp_path, documents):
    state_dir, package, labels = labelled_state(tmp_path, documents, WHEN - timedelta(days=1), "review-1")
    assert models_rows(state_dir) == {}  # nothing measured yet: no column

    export = labels.read_text()
    labels.unlink()  # no labels yet: no figure (quality null), nothing recorded
    result = monitor(state_dir, tmp_path / "out")
    assert result.exit_code == 0 and "accuracy in service recorded" not in result.stdout, result.output
    assert State(state_dir).service_quality(package.arn) is None
    labels.write_text(export)
    result = monitor(state_dir, tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "accuracy in service recorded for version 1 (cardamage models --local shows it)" in result.stdout
    recorded = State(state_dir).service_quality(package.arn)
    assert (recorded["endpoint"], recorded["images"], recorded["map"], recorded["until"]) == ("car-damage-endpoint", 1, pytest.approx(1.0), None)
    assert models_rows(state_dir) == {"1": f"1.0000 on 1 photo ({datetime.now(UTC):%Y-%m-%d})"}  # an open window: the day it ran

    window = photos(range(100, 110))
    labels.write_text(review_export(window[3], box=(60.0, 60.0)))  # relabelled elsewhere: the answer now misses
    assert monitor(state_dir, tmp_path / "again", "--until", "2026-12-01T11:00:00Z").exit_code == 0
    assert models_rows(state_dir) == {"1": "0.0000 on 1 photo (2026-12-01)"}  # the latest, dated by its window's end


def test_the_accuracy_in_service_table_is_added_to_a_state_folder_made_before_it(tmp_path, documents):
    import sqlite3

    state_dir, package = served_state(tmp_path, documents)
    with sqlite3.connect(state_dir / "state.sqlite") as db:
        db.execute("DROP TABLE service_quality")  # as a state folder made before this release has it
    state = State(state_dir)
    state.record_service_quality(package.arn, "car-damage-endpoint", {"since": None, "until": "2026-12-01T10:00:00Z"}, {"images": 2, "map": 0.5})
    assert state.service_quality(package.arn)["map"] == 0.5


# On AWS, against moto.
AWS_CONFIG = f"""
project:
  name: car-damage
aws:
  region: {REGION}
  data_bucket: cardamage-data
  artifact_bucket: cardamage-artifacts
"""
ARTIFACTS = "cardamage-artifacts"
ENDPOINT = "car-damage-endpoint"
REPORTS = f"monitoring/{ENDPOINT}/"
BASELINES = f"s3://{ARTIFACTS}/car-damage-pipeline/exec-1/evaluation/"


@pytest.fixture
def account(server, monkeypatch, tmp_path):  # noqa: F811  (the fixture imported above)
    """Fresh moto state, fake credentials, the two buckets, and a configuration naming them."""
    server.reset()
    isolate_aws(monkeypatch, tmp_path)
    s3 = client("s3", server.url)
    for bucket in ("cardamage-data", ARTIFACTS):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    config = tmp_path / "pipeline.yaml"
    config.write_text(AWS_CONFIG)
    return server, s3, config


def on_aws(account, output, *options):
    moto, _, config = account
    arguments = ["monitor", "--config", str(config), "--endpoint-url", moto.url, "--output", str(output), *options]
    return CliRunner().invoke(app, arguments)


def report(document: dict) -> bytes:
    return json.dumps({"drift": False, "window": {"since": None, "until": None, "images": 0}, "statistics": [], "unusable": [], **document}).encode()


def test_on_aws_it_copies_the_latest_report_of_the_endpoint_where_approvals_deploy(account, tmp_path):
    _, s3, _ = account
    drifted = {"drift": True, "window": {"since": "2026-12-01T09:00:00Z", "until": "2026-12-01T10:00:00Z", "images": 12}}
    drifted["statistics"] = [{"name": "brightness", "kind": "input", "drifted": True}]
    for name, body in (("monitor.json", report(drifted)), ("report.html", b"<html>photos</html>"), ("atypical.json", b"[]")):
        s3.put_object(Bucket=ARTIFACTS, Key=f"{REPORTS}20261201T0900Z/{name}", Body=body)
    s3.put_object(Bucket=ARTIFACTS, Key=f"{REPORTS}20261130T2300Z/monitor.json", Body=report({}))  # older
    s3.put_object(Bucket=ARTIFACTS, Key=f"{REPORTS}20261201T1000Z/report.html", Body=b"<html>")  # a report still being written

    result = on_aws(account, tmp_path / "out", "--fail-on-drift")

    assert result.exit_code == 1 and "drift found: exit status 1 (--fail-on-drift)" in result.stderr, result.output
    assert f"the latest report of {ENDPOINT}: s3://{ARTIFACTS}/{REPORTS}20261201T0900Z/" in result.stdout
    summary = "monitor: window [2026-12-01T09:00:00Z, 2026-12-01T10:00:00Z): 12 photo(s), 0 unusable record(s): DRIFT in brightness (input)"
    assert summary in result.stdout
    assert json.loads((tmp_path / "out" / "monitor.json").read_text())["drift"] is True
    assert (tmp_path / "out" / "report.html").read_bytes() == b"<html>photos</html>"
    assert stat.S_IMODE((tmp_path / "out" / "report.html").stat().st_mode) == 0o600  # it shows customers' photos

    # An empty window's report (the starter writes its monitor.json only) is the latest once it is the newest.
    s3.put_object(Bucket=ARTIFACTS, Key=f"{REPORTS}20261201T1100Z/monitor.json", Body=report({}))
    calm = on_aws(account, tmp_path / "calm", "--fail-on-drift")
    assert calm.exit_code == 0, calm.output
    assert "the report holds no report.html, atypical.json" in calm.stderr and "an empty window" in calm.stdout
    assert sorted(path.name for path in (tmp_path / "calm").iterdir()) == ["monitor.json"]


def test_on_aws_without_a_report_it_says_where_it_looked_and_a_broken_one_is_named(account, tmp_path):
    result = on_aws(account, tmp_path / "out", "--endpoint", ENDPOINT)
    assert result.exit_code == 1 and f"no monitoring report under s3://{ARTIFACTS}/{REPORTS} yet" in result.stderr, result.output
    assert "--since ISO" in result.stderr
    refused = on_aws(account, tmp_path / "out", "--until", "2026-12-01T12:00:00Z")
    assert refused.exit_code == 2 and "on AWS a window needs --since" in refused.stderr, refused.output
    account[1].put_object(Bucket=ARTIFACTS, Key=f"{REPORTS}20261201T0900Z/monitor.json", Body=b"{broken")
    broken = on_aws(account, tmp_path / "broken")
    assert broken.exit_code == 1, broken.output
    assert f"s3://{ARTIFACTS}/{REPORTS}20261201T0900Z/monitor.json is not a monitor report (JSONDecodeError" in broken.stderr


SERVED = datetime(2026, 12, 1, 8, 30, tzinfo=UTC)  # when the served package's endpoint config was made


@pytest.fixture
def served(account, documents, monkeypatch):
    """Version 1 of the group served on ENDPOINT since SERVED, its baselines where the monitoring job may read
    them; the S3 client. moto stamps an endpoint config with its own clock, so the CLI's sessions answer
    DescribeEndpointConfig as moto does but with CreationTime SERVED."""
    moto, s3, _ = account
    sagemaker = client("sagemaker", moto.url)
    sagemaker.create_model_package_group(ModelPackageGroupName="car-damage-models")
    recorded = {
        "ModelDataQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": f"{BASELINES}{DATA_BASELINE}"}},
        "ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": f"{BASELINES}{MODEL_BASELINE}"}},
    }
    serve(sagemaker, ENDPOINT, register(sagemaker, recorded), 1)
    for name, document in documents.items():
        s3.put_object(Bucket=ARTIFACTS, Key=f"{BASELINES.removeprefix(f's3://{ARTIFACTS}/')}{name}", Body=json.dumps(document).encode())
    connect = aws.connect

    def made_at_served(params: dict) -> dict:
        return {**sagemaker.describe_endpoint_config(**params), "CreationTime": SERVED}

    def connected(*args, **kwargs):
        made = connect(*args, **kwargs)
        stub_operation(made.session.events, "sagemaker", "DescribeEndpointConfig", made_at_served)
        return made

    monkeypatch.setattr(aws, "connect", connected)
    return s3


def put_capture(s3, data: bytes, when: datetime, index: int) -> str:
    """`data` answered with a dent at `when`, in a capture file of its own where SageMaker writes it; its key."""
    line = capture_line(data, "image/jpeg", answer([detection("dent", 0.4, size=SIZE)], SIZE), "application/json", when=when, event_id=str(index))
    key = f"data-capture/{ENDPOINT}/{ENDPOINT}/AllTraffic/{when:%Y/%m/%d/%H}/{when:%M}-00-000-{index}.jsonl"
    s3.put_object(Bucket=ARTIFACTS, Key=key, Body=json.dumps(line).encode() + b"\n")
    return key


def test_on_aws_a_named_window_is_fetched_and_monitored_here_as_the_scheduled_job_would(account, served, tmp_path):
    s3 = served
    shots = photos(range(100, 112))
    for index, data in enumerate(shots):  # three an hour, from 09:00 to 12:00
        put_capture(s3, data, datetime(2026, 12, 1, 9, tzinfo=UTC) + timedelta(minutes=20 * index), index)
    s3.put_object(Bucket="cardamage-data", Key="labels/labelstudio-cardamage-review-0123/export.json", Body=review_export(shots[5]).encode())
    s3.put_object(Bucket="cardamage-data", Key="labels/some-yolo-set/images/a.jpg", Body=shots[0])  # not a label file: not fetched

    result = on_aws(account, tmp_path / "out", "--since", "2026-12-01T10:20:00Z", "--until", "2026-12-01T11:30:00Z")

    assert result.exit_code == 0, result.output
    document = json.loads((tmp_path / "out" / "monitor.json").read_text())
    assert document["window"] == {"since": "2026-12-01T10:20:00Z", "until": "2026-12-01T11:30:00Z", "images": 4}  # 10:20 10:40 11:00 11:20
    assert document["baseline"] == {"package": "car-damage-models/1", "images": 40, "missing": []}
    assert f"captures: 6 file(s) in 2 hour folder(s) under s3://{ARTIFACTS}/data-capture/{ENDPOINT}/{ENDPOINT}/" in result.stdout
    assert f"input baseline: {BASELINES}{DATA_BASELINE}" in result.stdout and f"output baseline: {BASELINES}{MODEL_BASELINE}" in result.stdout
    assert "labels: 1 file(s) under s3://cardamage-data/labels/" in result.stdout
    assert document["quality"]["images"] == 1 and document["quality"]["map"] == pytest.approx(1.0)  # shots[5] was answered at 10:40
    assert "2 captured record(s) outside the window were left out" in result.stdout  # the hours' 10:00 and 11:40
    assert f"note: no review batch under s3://{ARTIFACTS}/review/ took a photo from {ENDPOINT}'s captures" in result.stderr


def test_on_aws_a_named_window_also_scores_the_answers_review_batches_took_photos_from_since_the_served_config(account, served, tmp_path, documents):
    """Photos are labelled after they were answered: as the scheduled job, the window's run fetches the capture files
    that review batches (review.json under review/) took photos from, and leaves out answers captured before the
    served package's endpoint config was made. The figure is the monitor program's on the same files."""
    s3 = served
    shots = photos(range(200, 205))
    window = [put_capture(s3, shots[index], datetime(2026, 12, 1, 10, 20 * index, tzinfo=UTC), index) for index in range(2)]  # not labelled
    reviewed = {
        "hit": put_capture(s3, shots[2], datetime(2026, 12, 1, 9, 0, tzinfo=UTC), 2),  # labelled where the endpoint saw its dent
        "miss": put_capture(s3, shots[3], datetime(2026, 12, 1, 9, 10, tzinfo=UTC), 3),  # labelled elsewhere
        "before": put_capture(s3, shots[4], datetime(2026, 12, 1, 8, 10, tzinfo=UTC), 4),  # answered before SERVED: another package's
    }
    images = [
        {"image": f"{i}.jpg", "captured": f"s3://{ARTIFACTS}/{key}:1", "score": 0.5, "reason": "uncertain"} for i, key in enumerate(reviewed.values())
    ]
    batch = {"images_prefix": "s3://cardamage-data/images/review/b1/", "images": images}
    s3.put_object(Bucket=ARTIFACTS, Key="review/20261201T1200Z/review.json", Body=json.dumps(batch).encode())
    exports = {"hit": review_export(shots[2]), "miss": review_export(shots[3], box=(60.0, 60.0)), "before": review_export(shots[4])}
    for name, export in exports.items():
        s3.put_object(Bucket="cardamage-data", Key=f"labels/labelstudio-review-{name}/export.json", Body=export.encode())

    result = on_aws(account, tmp_path / "out", "--since", "2026-12-01T10:00:00Z", "--until", "2026-12-01T11:00:00Z")

    assert result.exit_code == 0, result.output
    document = json.loads((tmp_path / "out" / "monitor.json").read_text())
    quality = document["quality"]
    assert quality is not None and quality["images"] == 2 and 0 < quality["map"] < 1  # "hit" and "miss"; not "before"
    assert document["window"]["images"] == 2
    variant = f"s3://{ARTIFACTS}/data-capture/{ENDPOINT}/{ENDPOINT}/AllTraffic/"
    assert f"labelled captures: 3 file(s) under {variant} that review batches took photos from, answered since 2026-12-01T08:30:00Z" in result.stdout
    assert "1 answer(s) captured before --served-since 2026-12-01T08:30:00Z left out" in result.stdout
    # The program here on the same files: every capture file, the label files, --served-since.
    here = tmp_path / "here"
    for key in [*window, *reviewed.values()]:
        (here / "captures" / key).parent.mkdir(parents=True, exist_ok=True)
        (here / "captures" / key).write_bytes(s3.get_object(Bucket=ARTIFACTS, Key=key)["Body"].read())
    for name, export in exports.items():
        (here / "labels" / name).mkdir(parents=True)
        (here / "labels" / name / "export.json").write_text(export)
    (here / "baseline").mkdir()
    (here / "baseline" / MODEL_BASELINE).write_text(json.dumps(documents[MODEL_BASELINE]))
    arguments = ["--captures", str(here / "captures"), "--baseline", str(here / "baseline"), "--output", str(here / "out")]
    arguments += ["--package", "car-damage-models/1", "--labels", str(here / "labels"), "--served-since", "2026-12-01T08:30:00Z", "--no-progress"]
    assert program.main(arguments) == 0
    expected = json.loads((here / "out" / "monitor.json").read_text())["quality"]
    assert {**quality, "labels": None} == {**expected, "labels": None}  # the folders differ


def test_on_aws_models_shows_the_accuracy_in_service_of_each_endpoint_s_newest_report(account, tmp_path):
    moto, s3, config = account
    sagemaker = client("sagemaker", moto.url)
    sagemaker.create_model_package_group(ModelPackageGroupName="car-damage-models")
    for _ in range(2):
        register(sagemaker, None)
    quality = {"images": 12, "boxes": 20, "map": 0.38124, "map50": 0.6, "package": "car-damage-models/1"}
    newest = {"window": {"since": "2026-12-07T09:00:00Z", "until": "2026-12-07T10:00:00Z", "images": 40}}
    newest |= {"baseline": {"package": "car-damage-models/1"}, "quality": quality}
    older = {**newest, "window": {"since": None, "until": "2026-12-06T10:00:00Z", "images": 1}, "quality": {**quality, "map": 0.9}}
    s3.put_object(Bucket=ARTIFACTS, Key=f"{REPORTS}20261207T0900Z/monitor.json", Body=report(newest))
    s3.put_object(Bucket=ARTIFACTS, Key=f"{REPORTS}20261206T0900Z/monitor.json", Body=report(older))

    result = CliRunner().invoke(app, ["models", "--config", str(config), "--endpoint-url", moto.url], env={"COLUMNS": "300"})

    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    column = lines[0].index("in service")  # the table's columns start where their headers do
    shown = {line.split()[0]: line[column:].split("  ")[0] for line in lines[1:]}
    assert shown == {"1": "0.3812 on 12 photos (2026-12-07)", "2": "-"}  # the newest report's; version 2 was not measured
