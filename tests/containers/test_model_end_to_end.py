"""The trained model through the rest of the product: the pipeline's Evaluate on its model.tar.gz, and the
handler it ships, as the endpoint loads it. (The endpoint answering photos is tests/pipelines/local/
test_local_pipeline.py, on the same model.) Assertions are on real outputs (files, shapes, keys, ranges), never on
a mAP value: ten steps from scratch make no useful detector."""

from __future__ import annotations

import importlib.util
import json

import pytest
from PIL import Image

from tests.support import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("trained-model")]


def test_evaluation_of_the_model_tarball_gives_coco_metrics_and_pictures(trained_pipeline):
    """Evaluate read the training job's model.tar.gz (SageMaker's packing of SM_MODEL_DIR, as the engine packs it)."""
    report = json.loads((trained_pipeline.evaluation / "evaluation.json").read_text())
    metrics = report["metrics"]
    for name in ("mAP", "mAP_50", "mAP_75", "recall", "AP/dent", "AP/scratch", "recall/scratch"):
        assert 0.0 <= metrics[name]["value"] <= 1.0, name
    validation = json.loads((trained_pipeline.prepared / "report.json").read_text())["splits"]["validation"]
    assert report["images"] == validation["images_total"] == 7
    assert report["ground_truth_boxes"] == validation["boxes_total"]
    assert set(report["per_class"]) == {"dent", "scratch"}
    assert report["model"]["packaging"] == "model.tar.gz" and report["model"]["label_map"] == {"1": "dent", "2": "scratch"}
    for picture in ("pr_curves.png", "predictions.png"):
        with Image.open(trained_pipeline.evaluation / picture) as image:
            assert image.format == "PNG" and image.width > 300


def test_the_artifact_carries_the_handler_the_repository_has(trained_pipeline):
    shipped = (trained_pipeline.model_dir / "code" / "inference.py").read_text()
    assert shipped == (ROOT / "containers" / "inference" / "inference.py").read_text()


def test_the_shipped_handler_names_the_classes_from_the_models_model_json(trained_pipeline, monkeypatch):
    """As in the container: code/inference.py loaded by path finds model.json one folder up."""
    monkeypatch.delenv("MODEL_METADATA_PATH", raising=False)
    spec = importlib.util.spec_from_file_location("shipped_inference", trained_pipeline.model_dir / "code" / "inference.py")
    shipped = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shipped)
    assert shipped.find_model_metadata() == (trained_pipeline.model_dir / "model.json").resolve()
    assert shipped.load_classes() == {1: "dent", 2: "scratch"}
