"""The trained model through the rest of the product: evaluation from its model.tar.gz, and inference
through the endpoint handler, as the pipeline and the endpoint use them. Assertions are on real outputs
(files, shapes, keys, ranges), never on a mAP value: six steps from scratch make no useful detector."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tarfile

import pytest
from PIL import Image

from containers.common.pictures import save_detections_picture
from containers.inference.local import LocalEndpoint
from tests.support import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("trained-model")]


def test_evaluation_of_the_model_tarball_gives_coco_metrics_and_pictures(trained_model, tmp_path):
    # SageMaker packs the contents of SM_MODEL_DIR at the root of model.tar.gz.
    tarball = tmp_path / "input" / "model.tar.gz"
    tarball.parent.mkdir()
    with tarfile.open(tarball, "w:gz", compresslevel=1) as archive:  # level 9 takes 15 s more on code/lib's 77 MB
        for path in sorted(trained_model.model_dir.iterdir()):
            archive.add(path, arcname=path.name)
    output = tmp_path / "evaluation"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "containers" / "evaluation" / "evaluate.py"),
            "--model",
            str(tarball.parent),
            "--validation",
            str(trained_model.prepared / "validation"),
            "--output",
            str(output),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={"TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "PATH": "/usr/bin:/bin", "CUDA_VISIBLE_DEVICES": ""},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((output / "evaluation.json").read_text())
    metrics = report["metrics"]
    for name in ("mAP", "mAP_50", "mAP_75", "recall", "AP/dent", "AP/scratch", "recall/scratch"):
        assert 0.0 <= metrics[name]["value"] <= 1.0, name
    validation = json.loads((trained_model.prepared / "report.json").read_text())["splits"]["validation"]
    assert report["images"] == validation["images_total"]
    assert report["ground_truth_boxes"] == validation["boxes_total"]
    assert set(report["per_class"]) == {"dent", "scratch"}
    for picture in ("pr_curves.png", "predictions.png"):
        with Image.open(output / picture) as image:
            assert image.format == "PNG" and image.width > 300


def test_the_endpoint_answers_an_image_with_named_boxes_inside_it(trained_model, tmp_path):
    endpoint = LocalEndpoint(trained_model.model_dir)
    image_path = sorted(trained_model.sample_images.rglob("*.jpg"))[0]
    data = image_path.read_bytes()
    status, body, content_type = endpoint.invoke(data, "image/jpeg", custom_attributes="score_threshold=0;max_detections=5")
    assert (status, content_type) == (200, "application/json")
    (prediction,) = json.loads(body)["predictions"]
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
    picture = save_detections_picture(data, detections, tmp_path / "prediction.png")
    assert Image.open(picture).size == (width, height)
    status, body, _ = endpoint.invoke(data[: len(data) // 2], "image/jpeg")
    refusal = json.loads(body)  # the handler's refusal of a cut-off photo, not the model's failure on it
    assert status == 400 and set(refusal) == {"error", "status"} and refusal["status"] == 400, refusal
    assert refusal["error"].startswith("the image is truncated or corrupt ("), refusal


def test_the_artifact_carries_the_handler_the_repository_has(trained_model):
    shipped = (trained_model.model_dir / "code" / "inference.py").read_text()
    assert shipped == (ROOT / "containers" / "inference" / "inference.py").read_text()


def test_the_shipped_handler_names_the_classes_from_the_models_model_json(trained_model, monkeypatch):
    """As in the container: code/inference.py loaded by path finds model.json one folder up."""
    monkeypatch.delenv("MODEL_METADATA_PATH", raising=False)
    spec = importlib.util.spec_from_file_location("shipped_inference", trained_model.model_dir / "code" / "inference.py")
    shipped = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shipped)
    assert shipped.find_model_metadata() == (trained_model.model_dir / "model.json").resolve()
    assert shipped.load_classes() == {1: "dent", 2: "scratch"}
