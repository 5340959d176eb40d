"""The whole pipeline on the bundled sample with the local profile: the definition the CDK app deploys, run
here end to end through the CLI (`cardamage run --local`, `predict --local`). Both branches of the quality
gate, the registry entry with its metrics, the local endpoint answering /invocations with detections for a
real image, and a second run served from cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass

import pytest

from pipelines.config import load_config
from pipelines.local.endpoint import EndpointServer, LocalDeployer
from tests.support import ROOT, SAMPLE

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("local-pipeline")]


def cardamage(*arguments, timeout=900):
    """The CLI as a user runs it (a subprocess, in the repository)."""
    command = [sys.executable, "-m", "pipelines.cli", *arguments]
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env, check=False)


@dataclass(frozen=True)
class Run:
    execution: str
    status: str
    steps: list
    output: str
    returncode: int


def run_cli(state, *arguments) -> Run:
    process = cardamage("run", "--state-dir", str(state), *arguments)
    from pipelines.local.state import State

    newest = State(state).executions(1)[0]
    return Run(newest["id"], newest["status"], State(state).steps(newest["id"]), process.stdout + process.stderr, process.returncode)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    state = tmp_path_factory.mktemp("local") / ".cardamage"
    config = load_config(ROOT / "pipeline.yaml", profile="local")
    result = run_cli(state)
    assert result.returncode == 0, result.output[-4000:]
    return config, state, result, result.output.splitlines()


def test_the_pipeline_succeeds_through_every_step(first_run):
    _, _, result, lines = first_run
    assert result.status == "Succeeded"
    statuses = {s["name"]: s["status"] for s in result.steps}
    assert statuses == {
        "PrepareData": "Succeeded",
        "Train": "Succeeded",
        "FindChampion": "Succeeded",
        "Evaluate": "Succeeded",
        "CheckQuality": "Succeeded",
        "Register": "Succeeded",
        "CheckApproval": "Succeeded",
        "Deploy": "Succeeded",
        "QualityBelowThreshold": "NotRun",
    }
    assert any(line.startswith("✔ Train") for line in lines)
    # The programs' own lines are shown, TensorFlow's chatter only goes to the step's log file.
    assert any("| train step=10/10 loss=" in line for line in lines)
    assert not any("WARNING" in line for line in lines)
    for label in ("data report", "evaluation", "model artifact", "registered model", "endpoint"):
        assert any(line.strip().startswith(label) for line in lines), label


def test_the_registry_holds_the_package_with_its_metrics(first_run):
    config, state, result, _ = first_run
    from pipelines.local.state import State

    (package,) = State(state).packages(config.model_package_group)
    assert package.status == "Approved" and package.execution == result.execution
    assert package.map is not None and 0.0 <= package.map <= 1.0
    assert package.metrics_uri.endswith("/evaluation.json")


def test_the_endpoint_answers_invocations_with_detections(first_run):
    config, state, _, _ = first_run
    from pipelines.local.state import State
    from pipelines.local.storage import LocalS3

    deployer = LocalDeployer(State(state), LocalS3(state / "s3"), state / "endpoints")
    assert deployer.record(config.endpoint_name).version == 1
    server = EndpointServer(deployer, config.endpoint_name, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        assert urllib.request.urlopen(f"{base}/ping", timeout=120).status == 200
        image = sorted((SAMPLE / "images").rglob("*.jpg"))[0].read_bytes()
        request = urllib.request.Request(
            f"{base}/invocations",
            data=image,
            headers={"Content-Type": "image/jpeg", "X-Amzn-SageMaker-Custom-Attributes": "score_threshold=0;max_detections=3"},
        )
        answer = json.loads(urllib.request.urlopen(request, timeout=120).read())
        detections = answer["predictions"][0]["detections"]
        assert len(detections) == 3 and all(d["class"] in ("dent", "scratch") for d in detections)
        bad = urllib.request.Request(f"{base}/invocations", data=b"not an image", headers={"Content-Type": "image/jpeg"})
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(bad, timeout=60)
        assert info.value.code == 400 and "error" in json.loads(info.value.read())
    finally:
        server.shutdown()


def test_predict_draws_the_endpoints_detections(first_run, tmp_path):
    _, state, _, _ = first_run
    image = sorted((SAMPLE / "images").rglob("*.jpg"))[0]
    picture = tmp_path / "prediction.png"
    result = cardamage("predict", str(image), "--local", "--state-dir", str(state), "--output", str(picture), "--score-threshold", "0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "detection(s)" in result.stdout and picture.read_bytes()[:4] == b"\x89PNG"


def test_a_second_run_is_served_from_cache(first_run):
    """Nothing changed: data preparation and training come from the first run's cache and do not start (no work
    folder, no log). Evaluate runs again: the endpoint now serves the first run's model, the champion it scores
    beside the challenger. Registration and deployment run again. What caching saves is measured by
    benchmarks/local_pipeline_cache.py."""
    _, state, first, _ = first_run
    second = run_cli(state)
    assert second.returncode == 0, second.output[-3000:]
    cached = {s["name"]: s["cached_from"] for s in second.steps if s["cached_from"]}
    assert cached == {"PrepareData": first.execution, "Train": first.execution}
    for name in cached:
        assert not (state / "runs" / second.execution / name).exists(), name
        assert f"↺ {name} cached: unchanged since execution {first.execution}" in second.output
    assert {s["name"]: s["status"] for s in second.steps}["Register"] == "Succeeded"
    assert "champion (version 1) on the same records" in second.output and "level with the challenger by 0.000" in second.output
