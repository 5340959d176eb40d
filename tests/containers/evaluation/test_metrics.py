"""The metric plumbing without a model: COCO dictionaries, metrics from COCOeval, the report's shape and the
pieces around them (batching, the model's outputs, safe extraction)."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest

from containers.evaluation.coco import coco_detections, coco_ground_truth, compute_metrics, ground_truth_counts
from containers.evaluation.errors import EvaluationError
from containers.evaluation.evaluate import batched
from containers.evaluation.model import Detections, detections_from_outputs, extract_model
from containers.evaluation.report import evaluation_report, evaluation_warnings
from containers.evaluation.validation import GroundTruth
from tests.containers.evaluation.helpers import DENT, ELSEWHERE, SCRATCH

CLASSES = {1: "dent", 2: "scratch"}


def truth(*boxes: tuple[int, tuple], key: str = "a.jpg", width: int = 320, height: int = 240) -> GroundTruth:
    return GroundTruth(key, width, height, tuple(corners for _, corners in boxes), tuple(label for label, _ in boxes))


def found(*rows: tuple[int, float, tuple]) -> Detections:
    """Detections from (label, score, (xmin, ymin, xmax, ymax)) rows, stored as the model gives them."""
    return Detections(
        boxes=np.array([[c[1], c[0], c[3], c[2]] for _, _, c in rows], dtype=np.float64).reshape(-1, 4),
        scores=np.array([score for _, score, _ in rows], dtype=np.float64),
        classes=np.array([label for label, _, _ in rows], dtype=np.int64),
    )


def test_ground_truth_is_in_pixels_with_ids_from_one():
    images = [truth((2, (0.1, 0.2, 0.6, 0.7)), key="a.jpg", width=200, height=100), truth(key="b.jpg")]
    gt = coco_ground_truth(images, CLASSES)
    assert [image["id"] for image in gt["images"]] == [1, 2]
    assert gt["images"][0] == {"id": 1, "file_name": "a.jpg", "width": 200, "height": 100}
    (annotation,) = gt["annotations"]
    assert annotation["image_id"] == 1 and annotation["category_id"] == 2 and annotation["iscrowd"] == 0
    assert annotation["bbox"] == pytest.approx([20, 20, 100, 50])
    assert annotation["area"] == pytest.approx(5000)
    assert gt["categories"] == [{"id": 1, "name": "dent"}, {"id": 2, "name": "scratch"}]


def test_detections_turn_ymin_xmin_into_pixel_xywh_and_drop_zero_scores():
    images = [truth(width=200, height=100)]
    results = coco_detections(images, [found((1, 0.8, (0.1, 0.2, 0.6, 0.7)), (2, 0.0, (0, 0, 1, 1)))])
    assert len(results) == 1
    assert results[0]["image_id"] == 1 and results[0]["category_id"] == 1 and results[0]["score"] == pytest.approx(0.8)
    assert results[0]["bbox"] == pytest.approx([20, 20, 100, 50])


def test_the_model_outputs_are_cut_to_num_detections_and_positive_scores():
    outputs = {
        "detection_boxes": np.array([[[0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.6, 0.6], [0, 0, 1, 1]]], dtype=np.float32),
        "detection_scores": np.array([[0.9, 0.0, 0.7]], dtype=np.float32),
        "detection_classes": np.array([[2.0, 1.0, 1.0]], dtype=np.float32),
        "num_detections": np.array([2.0], dtype=np.float32),
    }
    detections = detections_from_outputs(outputs, 0)
    assert len(detections) == 1 and detections.classes.tolist() == [2] and detections.boxes[0] == pytest.approx([0.1, 0.2, 0.3, 0.4])


def test_matching_boxes_give_one_and_boxes_elsewhere_give_zero():
    images = [truth((1, DENT), key=f"{i}.jpg") for i in range(3)]
    perfect = compute_metrics(images, [found((1, 0.9, DENT))] * 3, CLASSES)
    assert perfect.overall["mAP"] == pytest.approx(1.0) and perfect.overall["mAP_50"] == pytest.approx(1.0)
    assert perfect.overall["recall"] == pytest.approx(1.0) and perfect.overall["mAP_large"] == pytest.approx(1.0)
    assert perfect.overall["mAP_small"] is None and perfect.overall["mAP_medium"] is None  # no such objects: null, not -1
    assert perfect.per_class["dent"].ap == pytest.approx(1.0) and perfect.per_class["dent"].ground_truth_boxes == 3
    assert perfect.per_class["scratch"].ap is None and perfect.per_class["scratch"].ground_truth_boxes == 0
    assert [curve.name for curve in perfect.curves] == ["dent"]
    assert any(line.startswith(" Average Precision  (AP) @[ IoU=0.50:0.95") for line in perfect.summary)

    missed = compute_metrics(images, [found((1, 0.9, ELSEWHERE))] * 3, CLASSES)
    assert missed.overall["mAP"] == 0.0 and missed.overall["recall"] == 0.0 and missed.per_class["dent"].ap == 0.0


def test_a_perfect_class_and_a_missed_class_average_to_a_half():
    images = [truth((1, DENT), (2, SCRATCH), key=f"{i}.jpg") for i in range(2)]
    metrics = compute_metrics(images, [found((1, 0.9, DENT), (2, 0.8, ELSEWHERE))] * 2, CLASSES)
    assert metrics.per_class["dent"].ap == pytest.approx(1.0) and metrics.per_class["dent"].recall == pytest.approx(1.0)
    assert metrics.per_class["scratch"].ap == 0.0 and metrics.per_class["scratch"].ap_50 == 0.0 and metrics.per_class["scratch"].recall == 0.0
    assert metrics.overall["mAP"] == pytest.approx(0.5) and metrics.overall["mAP_50"] == pytest.approx(0.5)


def test_a_box_at_half_overlap_counts_at_iou_half_only():
    # The detection covers the top 2/3 of the box: IoU 2/3, a hit at 0.50-0.65 (4 of the 10 thresholds).
    xmin, ymin, xmax, ymax = DENT
    shifted = (xmin, ymin, xmax, ymin + (ymax - ymin) * 2 / 3)
    metrics = compute_metrics([truth((1, DENT))], [found((1, 0.9, shifted))], CLASSES)
    assert metrics.overall["mAP_50"] == pytest.approx(1.0) and metrics.overall["mAP_75"] == 0.0
    assert metrics.overall["mAP"] == pytest.approx(0.4)


def test_nothing_to_measure_gives_zero_everywhere():
    images = [truth((1, DENT))]
    for metrics in (
        compute_metrics(images, [found()], CLASSES),
        compute_metrics([], [], CLASSES),
        compute_metrics([truth()], [found((1, 0.9, DENT))], CLASSES),
    ):
        assert set(metrics.overall.values()) == {0.0}
        assert {result.ap for result in metrics.per_class.values()} == {0.0}
        assert metrics.curves == [] and metrics.summary == []


def test_the_report_has_the_model_quality_shape_and_warnings():
    images = [truth((1, DENT))]
    metrics = compute_metrics(images, [found((1, 0.9, DENT), (7, 0.5, DENT))], CLASSES)
    warnings = evaluation_warnings(validation="v", files=1, metrics=metrics, images=1, detections=2, unknown_truth={}, unknown_detections={7: 1})
    assert warnings == [
        "validation holds no box of class 'scratch': it cannot be measured, its AP is null and left out of mAP",
        "1 detection(s) have class ids not in the label map (7: 1): not evaluated",
    ]
    report = evaluation_report(metrics, images=1, detections=2, warnings=warnings, model={"source": "m"}, validation={}, settings={}, pictures={})
    assert list(report["metrics"])[:4] == ["mAP", "mAP_50", "mAP_75", "recall"]
    assert {"mAP_small", "mAP_medium", "mAP_large", "AP/dent", "AP_50/dent", "recall/dent", "AP/scratch"} <= set(report["metrics"])
    assert all(set(entry) == {"value"} for entry in report["metrics"].values())
    assert report["metrics"]["mAP"]["value"] == 1.0 and report["metrics"]["mAP_small"]["value"] is None
    assert report["per_class"]["dent"] == {"AP": 1.0, "AP_50": 1.0, "recall": 1.0, "ground_truth_boxes": 1}
    assert report["per_class"]["scratch"]["AP"] is None
    assert (report["images"], report["ground_truth_boxes"], report["detections"]) == (1, 1, 2)

    empty = compute_metrics([], [], CLASSES)
    warnings = evaluation_warnings(validation="v", files=0, metrics=empty, images=0, detections=0, unknown_truth={}, unknown_detections={})
    assert len(warnings) == 1 and "no validation records" in warnings[0]


def test_batches_keep_order_and_the_last_is_shorter():
    assert list(batched(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(batched([], 3)) == []


def _archive(path, *names: str):
    with tarfile.open(path, "w:gz") as tar:
        for name in names:
            info = tarfile.TarInfo(name)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    return path


def test_an_archive_leaving_its_folder_or_naming_an_absolute_path_is_refused(tmp_path):
    with pytest.raises(EvaluationError, match="refused to extract an unsafe member"):
        extract_model(_archive(tmp_path / "model.tar.gz", "../outside.txt"), tmp_path / "target")
    assert not (tmp_path / "outside.txt").exists()

    absolute = tmp_path / "absolute.txt"
    with pytest.raises(EvaluationError, match="has an absolute name"):
        extract_model(_archive(tmp_path / "second.tar.gz", str(absolute)), tmp_path / "second")
    assert not absolute.exists() and not (tmp_path / "second").exists()


def test_counts_cover_every_class():
    assert ground_truth_counts([truth((1, DENT), (1, DENT))], CLASSES) == {1: 2, 2: 0}
