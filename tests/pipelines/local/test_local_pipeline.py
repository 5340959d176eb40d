"""The whole pipeline on the bundled sample with the local profile: the definition the CDK app deploys, run
here end to end through the CLI (`cardamage run --local`, `predict --local`), its training interrupted once and
resumed (tests/trained_pipeline.py). Every step, the registry entry with its metrics, the local endpoint answering
/invocations with named boxes for a real image, and a later run served from cache."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from PIL import Image

from containers.common.pictures import save_detections_picture
from pipelines.local.state import State
from pipelines.local.storage import LocalS3
from tests.support import SAMPLE
from tests.trained_pipeline import run_cli

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("trained-model")]


def test_the_pipeline_succeeds_through_every_step(trained_pipeline):
    result, lines = trained_pipeline.first, trained_pipeline.first.output.splitlines()
    assert result.status == "Succeeded"
    statuses = {s["name"]: s["status"] for s in result.steps}
    assert statuses == {
        "CheckGateSettings": "Succeeded",  # the local profile's gate is its own floor
        "GateLooserThanAllowed": "NotRun",
        "PrepareData": "Succeeded",
        "Train": "Succeeded",
        "FindChampion": "Succeeded",
        "Evaluate": "Succeeded",
        "CheckQuality": "Succeeded",
        "Register": "Succeeded",
        "Deploy": "Succeeded",  # the local profile registers Approved, so its definition deploys
        "QualityBelowThreshold": "NotRun",
    }
    assert any(line.startswith("✔ Train") for line in lines)
    # The programs' own lines are shown, TensorFlow's chatter only goes to the step's log file.
    assert any("| train step=10/10 loss=" in line for line in lines)
    assert not any("WARNING" in line for line in lines)
    for label in ("data report", "evaluation", "model artifact", "registered model", "endpoint"):
        assert any(line.strip().startswith(label) for line in lines), label


def test_the_interrupted_run_failed_at_training_and_says_where_its_log_is(trained_pipeline):
    interrupted = trained_pipeline.interrupted
    statuses = {s["name"]: s["status"] for s in interrupted.steps}
    assert (statuses["PrepareData"], statuses["Train"]) == ("Succeeded", "Failed") and "Register" not in statuses
    log = interrupted.step("Train")["log"]
    assert interrupted.step("Train")["failure"] == "the program was killed by SIGKILL"  # not its last progress line
    error = f"error: execution {interrupted.execution} failed: Train failed: the program was killed by SIGKILL; log: {log}"
    assert interrupted.output.rstrip().splitlines()[-1] == error


def test_the_registry_holds_the_package_with_its_metrics(trained_pipeline):
    config, state, result = trained_pipeline.config, trained_pipeline.state, trained_pipeline.first
    (package,) = [package for package in State(state).packages(config.model_package_group) if package.execution == result.execution]
    assert (package.status, package.version) == ("Approved", 1)
    deploy = trained_pipeline.first.properties("Deploy")
    assert (deploy["status"], deploy["model_package_arn"]) == ("created", package.arn)  # the endpoint's first deployment
    evaluation = json.loads((trained_pipeline.evaluation / "evaluation.json").read_text())
    assert package.map == pytest.approx(evaluation["metrics"]["mAP"]["value"])
    assert package.metrics_uri.endswith("/evaluation.json")
    # Its drift baselines: every photo PrepareData wrote, and the model's answers on the validation photos.
    baselines = {field: entry["Statistics"]["S3Uri"] for field, entry in package.drift_check_baselines.items()}
    assert baselines == {
        "ModelDataQuality": package.metrics_uri.replace("evaluation.json", "data-baseline.json"),
        "ModelQuality": package.metrics_uri.replace("evaluation.json", "model-baseline.json"),
    }
    s3 = LocalS3(state / "s3")
    data, model = (json.loads(s3.path(uri).read_text()) for uri in baselines.values())
    prepared = json.loads((trained_pipeline.prepared / "report.json").read_text())
    assert (data["kind"], data["images"]) == ("input", prepared["images_written"])
    assert (model["kind"], model["images"]) == ("output", evaluation["images"])
    assert evaluation["baselines"]["model"]["score_threshold"] == config.deployment.score_threshold


def test_the_endpoint_answers_invocations_with_named_boxes_inside_the_image(trained_pipeline, served_model, tmp_path):
    state, server = trained_pipeline.state, served_model
    assert State(state).package(server.pinned).execution == trained_pipeline.first.execution  # version 1, the first run's
    base = f"http://127.0.0.1:{server.port}"
    assert urllib.request.urlopen(f"{base}/ping", timeout=120).status == 200
    image_path = sorted((SAMPLE / "images").rglob("*.jpg"))[0]
    data = image_path.read_bytes()
    request = urllib.request.Request(
        f"{base}/invocations",
        data=data,
        headers={"Content-Type": "image/jpeg", "X-Amzn-SageMaker-Custom-Attributes": "score_threshold=0;max_detections=5"},
    )
    (prediction,) = json.loads(urllib.request.urlopen(request, timeout=120).read())["predictions"]
    width, height = Image.open(image_path).size
    assert prediction["image"] == {"width": width, "height": height}
    detections = prediction["detections"]
    assert len(detections) == 5
    assert [d["score"] for d in detections] == sorted((d["score"] for d in detections), reverse=True)
    for detection in detections:
        assert detection["class"] in {"dent", "scratch"} and detection["class_id"] in {1, 2}
        box, normal = detection["box"], detection["box_normalized"]
        assert 0 <= box["xmin"] <= box["xmax"] <= width and 0 <= box["ymin"] <= box["ymax"] <= height
        assert 0 <= normal["xmin"] <= normal["xmax"] <= 1
    assert Image.open(save_detections_picture(data, detections, tmp_path / "prediction.png")).size == (width, height)
    refusals = {b"not an image": "the image is not an image that can be read (", data[: len(data) // 2]: "the image is truncated or corrupt ("}
    for body, start in refusals.items():
        refused = urllib.request.Request(f"{base}/invocations", data=body, headers={"Content-Type": "image/jpeg"})
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(refused, timeout=60)
        refusal = json.loads(info.value.read())  # the handler's refusal, not the model's failure on it
        assert info.value.code == 400 and set(refusal) == {"error", "status"} and refusal["status"] == 400, refusal
        assert refusal["error"].startswith(start), refusal


def test_predict_draws_the_endpoints_detections(trained_pipeline, tmp_path):
    """`cardamage predict --local`, as `make run` calls it (in this process: the CLI's own start is another test's)."""
    from typer.testing import CliRunner

    from pipelines.cli import app

    image = sorted((SAMPLE / "images").rglob("*.jpg"))[0]
    picture, state = tmp_path / "prediction.png", str(trained_pipeline.state)
    arguments = ["predict", str(image), "--local", "--state-dir", state, "--output", str(picture), "--score-threshold", "0", "--max-detections", "3"]
    result = CliRunner().invoke(app, [*arguments, "--config", str(trained_pipeline.config.source)])
    assert result.exit_code == 0, result.output
    assert f"3 detection(s) in {image} by endpoint {trained_pipeline.config.endpoint_name}" in result.stdout
    with Image.open(picture) as drawn:
        assert drawn.format == "PNG" and drawn.size == Image.open(image).size


def test_a_later_run_is_served_from_cache(trained_pipeline):
    """Nothing changed: data preparation and training come from the cache (PrepareData from the interrupted
    run, Train from the first that succeeded) and do not start (no work folder, no log). Evaluate runs again: the
    endpoint now serves the first run's model, the champion it scores beside the challenger. Registration and
    deployment run again. What caching saves is measured by benchmarks/local_pipeline_cache.py."""
    state, interrupted, first = trained_pipeline.state, trained_pipeline.interrupted, trained_pipeline.first
    later = run_cli(state, "--definition", str(trained_pipeline.definition))
    assert later.returncode == 0, later.output[-3000:]
    cached = {s["name"]: s["cached_from"] for s in later.steps if s["cached_from"]}
    assert cached == {"PrepareData": interrupted.execution, "Train": first.execution}
    for name, source in cached.items():
        assert not (state / "runs" / later.execution / name).exists(), name
        assert f"↺ {name} cached: unchanged since execution {source}" in later.output
    assert {s["name"]: s["status"] for s in later.steps}["Register"] == "Succeeded"
    assert "champion (version 1) on the same records" in later.output and "level with the challenger by 0.000" in later.output
