"""The review loop, end to end on this machine (docs/review-loop.md, "The whole loop on this machine"), with the real definition, PrepareData,
Evaluate, registry, endpoint and data capture, and the fast fake detector of test_champion_release in place of
training:

    run 1 on the sample's first batch             -> version 1, deployed to the local endpoint
    `cardamage predict --local` the second batch's photos (new to the model)   -> captured
    `cardamage review --local`                    -> a batch of the photos not labelled yet
    a script stands in for the person: it corrects the model's boxes to the second batch's true ones and
    writes Label Studio's JSON export
    run 2 on all labelled data (batch 1 + the export)  -> version 2, registered with its champion comparison
"""

from __future__ import annotations

import hashlib
import json
import re

import pytest
from typer.testing import CliRunner

from containers.deploy.champion import METADATA_MAP, METADATA_VERSION
from pipelines.cli.app import app
from pipelines.config import load_config
from pipelines.local import runner
from pipelines.local.state import State
from tests.pipelines.local.test_champion_release import BETTER, evaluation, run_with_fake
from tests.support import ROOT, SAMPLE, SAMPLE_PREFIX
from tests.trained_pipeline import cardamage

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("review-loop")]

FIRST, SECOND = SAMPLE / "manifests" / "batch-1.manifest", SAMPLE / "manifests" / "batch-2.manifest"
CLASSES = {0: "dent", 1: "scratch"}


def truth_by_hash() -> dict[str, list[dict]]:
    """The second batch's true boxes as Label Studio results (percent), by the photo's content sha256: what the
    person draws when correcting the model."""
    truth = {}
    for line in SECOND.read_text().splitlines():
        record = json.loads(line)
        path = SAMPLE / "images" / record["source-ref"].removeprefix(SAMPLE_PREFIX)
        (size,) = record["car-damage"]["image_size"]
        width, height = size["width"], size["height"]
        truth[hashlib.sha256(path.read_bytes()).hexdigest()] = [
            {
                "id": f"t{number}",
                "from_name": "label",
                "to_name": "image",
                "type": "rectanglelabels",
                "original_width": width,
                "original_height": height,
                "value": {
                    "x": 100 * box["left"] / width,
                    "y": 100 * box["top"] / height,
                    "width": 100 * box["width"] / width,
                    "height": 100 * box["height"] / height,
                    "rotation": 0,
                    "rectanglelabels": [CLASSES[box["class_id"]]],
                },
            }
            for number, box in enumerate(record["car-damage"]["annotations"])
        ]
    return truth


def correct(batch, truth: dict[str, list[dict]]) -> list[dict]:
    """The person's part: each task's predictions replaced by the true boxes; Label Studio's JSON export. The batch
    holds private copies of the photos (no metadata): review.json names the captured photo of each."""
    tasks = json.loads((batch / "tasks.json").read_text())
    document = json.loads((batch / "review.json").read_text())
    captured = {entry["image"]: entry["captured_sha256"] for entry in document["images"]}
    export = []
    for number, task in enumerate(tasks, 1):
        result = truth[captured[task["data"]["image"].removeprefix(document["images_prefix"])]]
        annotation = {"id": 100 + number, "result": result, "was_cancelled": False, "updated_at": "2026-12-02T10:00:00Z"}
        export.append({"id": number, "data": task["data"], "annotations": [annotation], "predictions": task["predictions"]})
    return export


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    config = load_config(ROOT / "pipeline.yaml", profile="local")
    work = tmp_path_factory.mktemp("loop")
    state = work / ".cardamage"
    first, _ = run_with_fake(config, state, BETTER, runner.Inputs([FIRST], SAMPLE / "images", SAMPLE_PREFIX))
    assert first.status == "Succeeded"

    new_photos = [SAMPLE / "images" / json.loads(line)["source-ref"].removeprefix(SAMPLE_PREFIX) for line in SECOND.read_text().splitlines()]
    predicted = cardamage("predict", "--local", "--state-dir", str(state), "--output", str(work / "pictures"), *map(str, new_photos))
    assert predicted.returncode == 0, predicted.stdout[-2000:] + predicted.stderr[-2000:]

    batch = work / "batch"
    reviewed = CliRunner().invoke(app, ["review", "--local", "--state-dir", str(state), "--count", "40", "--output", str(batch)])
    assert reviewed.exit_code == 0, reviewed.output
    export = work / "corrected.json"
    export.write_text(json.dumps(correct(batch, truth_by_hash()), indent=1))

    second, _ = run_with_fake(config, state, BETTER, runner.Inputs([FIRST, export], SAMPLE / "images", SAMPLE_PREFIX))
    return config, state, batch, first, second, reviewed.output


def test_the_review_batch_is_the_new_photos_the_endpoint_saw(loop):
    _, _, batch, _, _, output = loop
    document = json.loads((batch / "review.json").read_text())
    # 17 answered: batch 2's 16 new photos and the one photo it labels again, which batch 1 labelled already.
    assert len(document["images"]) == 16 and document["skipped"] == {"already labelled": 1} and document["unusable"] == []
    assert document["images_prefix"].startswith(f"{SAMPLE_PREFIX}review/")  # under the images prefix the runs read
    assert document["model_version"].endswith("/1")
    assert "16 photo(s) of 17 answered" in output


def test_the_next_run_trains_on_all_labelled_data_and_registers_with_its_champion_comparison(loop):
    config, state, batch, first, second, _ = loop
    assert second.status == "Succeeded", [(s["name"], s["status"], s.get("failure")) for s in second.steps]
    listed = {}
    for execution in (first.execution, second.execution):
        (images,) = (state / "s3").glob(f"local-artifacts/*/prepared-data/{execution}/images.jsonl")
        listed[execution] = {json.loads(line)["sha256"] for line in images.read_text().splitlines()}
    reviewed = {hashlib.sha256(path.read_bytes()).hexdigest() for path in (batch / "images").iterdir()}
    assert len(listed[first.execution]) == 32 and len(listed[second.execution]) == 48
    assert reviewed <= listed[second.execution] and not reviewed & listed[first.execution]

    report = evaluation(state, second.execution)
    assert report["champion"]["version"] == 1 and report["champion"]["map_lead"] <= 0
    packages = {p.version: p for p in State(state).packages(config.model_package_group)}
    assert packages[2].metadata[METADATA_VERSION] == "1"
    assert float(packages[2].metadata[METADATA_MAP]) == pytest.approx(report["champion"]["metrics"]["mAP"]["value"], abs=1e-6)
    models = CliRunner().invoke(app, ["models", "--local", "--state-dir", str(state)])
    assert models.exit_code == 0 and re.search(r"^\s*2\s.*\bv1: ", models.output, re.M), models.output
