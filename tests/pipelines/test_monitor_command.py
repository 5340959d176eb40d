"""`cardamage monitor --local`: the local endpoint's captures and the served package's baselines (the ones it
records as DriftCheckBaselines first, else the ones beside its evaluation.json) through the monitor program; exit
0 whatever it found, 1 on drift with --fail-on-drift, 2 for a wrong option, naming it; without --local, an honest
exit 2."""

from __future__ import annotations

import io
import json
import time
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from containers.monitoring import statistics
from containers.monitoring.statistics import DATA_BASELINE, MODEL_BASELINE
from pipelines.cli import app
from pipelines.config import load_config
from pipelines.local.capture import DataCapture
from pipelines.local.endpoint import Deployment
from pipelines.local.runner import LOCAL_VALUES
from pipelines.local.state import State
from pipelines.local.storage import LocalS3
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
    outputs = [statistics.output_statistics([{"class": "dent", "score": 0.4, "box": [6.4, 4.8, 32, 24]}], *SIZE) for _ in seeds]
    return {DATA_BASELINE: statistics.summarize(inputs, "input"), MODEL_BASELINE: statistics.summarize(outputs, "output", classes=["dent"])}


@pytest.fixture(scope="module")
def documents():
    return baseline_documents(range(40))


def served_state(tmp_path, documents, *, metadata=None, metrics_uri=EVALUATION, window=()):
    """A state folder whose local endpoint serves version 1 (its record as a deployment writes it, with the data
    capture the local profile configures), its baselines beside its evaluation.json, and `window` captured."""
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
    record = Deployment(config.endpoint_name, package.arn, package.group, 1, "unused", {}, time.time(), {"destination": destination, "percent": 100})
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


def test_on_aws_it_says_the_reports_are_not_built_yet(tmp_path):
    result = CliRunner().invoke(app, ["monitor", "--output", str(tmp_path), "--config", str(CONFIG)])
    assert result.exit_code == 2 and "reports of the scheduled monitoring job, which is not built yet" in result.stderr
    assert "add --local" in result.stderr
