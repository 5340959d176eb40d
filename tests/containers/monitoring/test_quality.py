"""The accuracy in service (containers/monitoring/quality.py through the monitor program): photos answered through
the real handler (containers/inference/inference.py), captured as the local endpoint captures them, labelled in a
Label Studio export of their review copies (pipelines/review.py), and scored. The figure is Evaluate's own
(containers/evaluation/coco.py compute_metrics) on the same photos and boxes; the newest answer of a photo counts,
answers before --served-since do not, and a labelling of another view of the photo is refused with the reason."""

from __future__ import annotations

import io
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from containers.evaluation.coco import compute_metrics
from containers.evaluation.model import Detections
from containers.evaluation.validation import GroundTruth
from containers.inference import inference
from containers.monitoring import monitor, statistics
from containers.monitoring.captures import NAME_DIGITS
from containers.monitoring.statistics import MODEL_BASELINE
from pipelines import review
from pipelines.local.capture import capture_line
from tests.support import jpeg_bytes

CLASSES = {1: "dent", 2: "scratch"}
WHEN = datetime(2026, 12, 1, 10, tzinfo=UTC)
PREFIX = "s3://local-data/images/review/20261201T120000Z/"
# Per photo: its size as stored, its EXIF orientation, the labelled boxes (class id, xmin, ymin, xmax, ymax) and the
# model's rows (class id, score, ymin, xmin, ymax, xmax), both normalised in the upright view, in steps the
# handler's rounding (0.1 pixel, 4 places) keeps exact.
PHOTOS = [
    ((100, 80), None, [(1, 0.1, 0.1, 0.5, 0.5), (2, 0.6, 0.6, 0.9, 0.9)], [(1, 0.9, 0.1, 0.1, 0.5, 0.5), (2, 0.4, 0.55, 0.6, 0.9, 0.9)]),
    # Stored 80x100, shown (and answered, and labelled) 100x80: the EXIF orientation turns it a quarter.
    ((80, 100), 6, [(1, 0.2, 0.3, 0.6, 0.7)], [(1, 0.8, 0.35, 0.25, 0.7, 0.6), (2, 0.5, 0.3, 0.2, 0.7, 0.6)]),
    ((120, 90), None, [(2, 0.25, 0.25, 0.75, 0.5), (2, 0.1, 0.6, 0.3, 0.9)], [(2, 0.7, 0.25, 0.25, 0.5, 0.75), (1, 0.35, 0.6, 0.1, 0.9, 0.3)]),
]


def answered(data: bytes, rows) -> bytes:
    """The endpoint's answer to `data`, made by the handler from the model's `rows`, as the container makes it."""
    context = SimpleNamespace(request_content_type="image/jpeg", accept_header="application/json", custom_attributes=None)
    inference.input_handler(data, context, settings=inference.Settings())
    prediction = {
        "detection_classes": [float(row[0]) for row in rows],
        "detection_scores": [row[1] for row in rows],
        "detection_boxes": [list(row[2:]) for row in rows],
        "num_detections": float(len(rows)),
    }
    body, _ = inference.output_handler(SimpleNamespace(status_code=200, content=json.dumps({"predictions": [prediction]})), context, classes=CLASSES)
    return body.encode()


def write_captures(folder: Path, answers: list[tuple[bytes, bytes, datetime]], hour: str = "car-damage-endpoint/AllTraffic/2026/12/01/10") -> Path:
    """A capture file of `answers` (photo, answer, time) in the hour folder `hour` below `folder`."""
    (folder / hour).mkdir(parents=True, exist_ok=True)
    lines = [capture_line(data, "image/jpeg", body, "application/json", when=when, event_id=str(n)) for n, (data, body, when) in enumerate(answers)]
    (folder / hour / "00-00-000-window.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return folder


def task(name: str, size: tuple[int, int], boxes, number: int) -> dict:
    """A Label Studio task of the review copy `name` with its annotation: `boxes` normalised, in percent here."""
    results = []
    for c, x0, y0, x1, y1 in boxes:
        value = {"x": 100 * x0, "y": 100 * y0, "width": 100 * (x1 - x0), "height": 100 * (y1 - y0), "rotation": 0, "rectanglelabels": [CLASSES[c]]}
        results.append({"type": "rectanglelabels", "original_width": size[0], "original_height": size[1], "value": value})
    return {"id": number, "data": {"image": PREFIX + name}, "annotations": [{"id": number, "updated_at": "2026-12-02T09:00:00Z", "result": results}]}


def write_labels(folder: Path, tasks: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "export.json").write_text(json.dumps(tasks))
    return folder


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> Path:
    """A model baseline naming the model's classes, as Evaluate writes it (no data baseline: not needed here)."""
    folder = tmp_path_factory.mktemp("baseline")
    (folder / MODEL_BASELINE).write_text(json.dumps(statistics.summarize([], "output", classes=list(CLASSES.values()))))
    return folder


def run(captures: Path, baseline: Path, labels: Path, output: Path, *extra: str) -> dict:
    arguments = ["--captures", str(captures), "--baseline", str(baseline), "--labels", str(labels), "--output", str(output), "--no-progress"]
    assert monitor.main([*arguments, "--package", "car-damage-models/3", *extra]) == 0
    return json.loads((output / "monitor.json").read_text())


def labelled_photos() -> tuple[list[bytes], list[bytes], list[dict], dict]:
    """PHOTOS as captured (the photos, the handler's answers), the Label Studio tasks of their review copies, and
    Evaluate's figures (compute_metrics) on the model's own outputs and the labelled boxes."""
    photos = [jpeg_bytes(size=size, seed=n, exif_orientation=orientation) for n, (size, orientation, _, _) in enumerate(PHOTOS)]
    answers = [answered(data, rows) for data, (_, _, _, rows) in zip(photos, PHOTOS, strict=True)]
    tasks, truths, found = [], [], []
    for number, (data, body, (_, _, boxes, rows)) in enumerate(zip(photos, answers, PHOTOS, strict=True), 1):
        copy = review.private_copy(data)  # what a person labels: the photo upright, as the endpoint answered it
        with Image.open(io.BytesIO(copy)) as image:
            size = image.size
        assert json.loads(body)["predictions"][0]["image"] == {"width": size[0], "height": size[1]}
        captured = review.Captured("c", data, "image/jpeg", (), *size)
        tasks.append(task(review.photo_key(captured), size, boxes, number))
        truths.append(GroundTruth(f"p{number}", *size, tuple(box[1:] for box in boxes), tuple(box[0] for box in boxes)))
        found.append(Detections(np.array([row[2:] for row in rows]), np.array([row[1] for row in rows]), np.array([row[0] for row in rows])))
    expected = compute_metrics(truths, found, CLASSES).overall  # Evaluate's figures on the model's own outputs
    assert 0 < expected["mAP"] < expected["mAP_50"] < 1  # a figure that can be told from a wrong one
    return photos, answers, tasks, expected


def test_the_accuracy_in_service_is_evaluates_map_of_the_captured_answers_on_the_same_photos_and_boxes(tmp_path, baseline, capsys):
    photos, answers, tasks, expected = labelled_photos()
    # Also: a review photo labelled but never captured, an image of the training data, and the first photo sent
    # again earlier, with an answer that missed everything: the newest answer counts.
    tasks.append(task("0" * NAME_DIGITS + ".jpg", (100, 80), [(1, 0.1, 0.1, 0.5, 0.5)], 9))
    tasks.append({**task("x.jpg", (100, 80), [(1, 0.1, 0.1, 0.5, 0.5)], 10), "data": {"image": "s3://local-data/images/train/x.jpg"}})
    missed = answered(photos[0], [(2, 0.9, 0.0, 0.0, 0.05, 0.05)])
    captures = [(photos[0], missed, WHEN - timedelta(hours=1)), *((data, body, WHEN) for data, body in zip(photos, answers, strict=True))]

    document = run(write_captures(tmp_path / "captures", captures), baseline, write_labels(tmp_path / "labels", tasks), tmp_path / "out")

    service = document["quality"]
    assert service["map"] == pytest.approx(expected["mAP"], abs=1e-9) and service["map50"] == pytest.approx(expected["mAP_50"], abs=1e-9)
    assert {k: service[k] for k in ("images", "boxes", "unmatched", "package", "refused", "dropped")} == {
        "images": 3,
        "boxes": 5,
        "unmatched": 1,
        "package": "car-damage-models/3",
        "refused": [],
        "dropped": {},
    }
    assert service["labels"] == str(tmp_path / "labels")
    out = capsys.readouterr().out
    assert f"monitor: accuracy in service: mAP {expected['mAP']:.4f}, mAP@0.5 {expected['mAP_50']:.4f} on 3 labelled photo(s)" in out
    assert "1 labelled record(s) of other photos left out" in out
    page = (tmp_path / "out" / "report.html").read_text()
    assert "Accuracy in service of package car-damage-models/3" in page and f"mAP {expected['mAP']:.4f}" in page


def test_answers_before_the_served_package_are_left_out_and_a_labelling_of_another_view_is_refused(tmp_path, baseline, capsys):
    upright = jpeg_bytes(size=(100, 80), seed=1)
    turned = jpeg_bytes(size=(80, 100), seed=2, exif_orientation=6)  # answered and copied as 100x80
    perfect, wrong = [(1, 0.9, 0.1, 0.1, 0.5, 0.5)], [(1, 0.9, 0.6, 0.6, 0.9, 0.9)]
    answers = [(upright, answered(upright, perfect), WHEN), (upright, answered(upright, wrong), WHEN + timedelta(minutes=5))]
    captures = write_captures(tmp_path / "captures", [*answers, (turned, answered(turned, perfect), WHEN)])
    key = review.photo_key(review.Captured("c", upright, "image/jpeg", (), 100, 80))
    turned_key = review.photo_key(review.Captured("c", turned, "image/jpeg", (), 100, 80))
    box = [(1, 0.1, 0.1, 0.5, 0.5)]
    first = task(key, (100, 80), box, 1)
    crack = {**first["annotations"][0]["result"][0], "value": {**first["annotations"][0]["result"][0]["value"], "rectanglelabels": ["crack"]}}
    first["annotations"][0]["result"].append(crack)  # a class the model does not have: dropped, as PrepareData drops it
    labels = write_labels(tmp_path / "labels", [first, task(turned_key, (80, 100), box, 2)])  # the second in the stored view

    newest = run(captures, baseline, labels, tmp_path / "all")["quality"]
    assert newest["images"] == 1 and newest["map"] == 0.0  # the newest answer missed
    assert newest["boxes"] == 1 and newest["dropped"] == {"crack": 1}
    (refused,) = newest["refused"]
    assert refused["record"] == f"{labels / 'export.json'} (task id 2)"
    assert "but the labels' image size is 80x100: the boxes were drawn on a different version of this image" in refused["reason"]

    served = run(captures, baseline, labels, tmp_path / "served", "--served-since", (WHEN + timedelta(minutes=1)).isoformat())["quality"]
    assert served["images"] == 1 and served["map"] == 0.0
    later = run(captures, baseline, labels, tmp_path / "later", "--served-since", (WHEN + timedelta(hours=1)).isoformat())
    assert later["quality"] is None
    assert "3 answer(s) captured before --served-since 2026-12-01T11:00:00Z left out" in capsys.readouterr().out
    perfect_only = run(captures, baseline, labels, tmp_path / "window", "--until", (WHEN + timedelta(minutes=1)).isoformat())["quality"]
    assert perfect_only["map"] == pytest.approx(1.0)  # the window holds only the first answer


def test_a_labels_file_that_cannot_be_read_is_named_and_the_monitor_stops(tmp_path, baseline, capsys):
    captures = write_captures(tmp_path / "captures", [])
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "notes.txt").write_text("not labels\n")
    arguments = ["--captures", str(captures), "--labels", str(labels), "--output", str(tmp_path / "out"), "--no-progress"]
    assert monitor.main(arguments) == 1
    assert f"--labels: {labels / 'notes.txt'}: cannot tell the label format" in capsys.readouterr().err
    assert not (tmp_path / "out" / "monitor.json").exists()
    with pytest.raises(SystemExit):
        monitor.parse_args(["--captures", str(captures), "--output", str(tmp_path / "out"), "--served-since", "2026-12-01"])
    assert "--served-since goes with --labels" in capsys.readouterr().err


def test_the_scheduled_job_s_inputs_give_the_accuracy_in_service_of_photos_answered_before_its_window(tmp_path, baseline, capsys):
    """The program as the starter (containers/deploy/monitor_start.py) runs it, its inputs laid out as the job sees
    them: the window's captures, the label files, and the capture files review batches took the labelled photos
    from, a day before the window. Its quality is Evaluate's mAP of those answers; they are not measured as the
    window's photos, and an answer from before the served package is left out."""
    from containers.deploy import monitor_start
    from tests.containers.deploy.test_monitor_start import ENDPOINT, SETTINGS

    photos, answers, tasks, expected = labelled_photos()
    served = WHEN - timedelta(minutes=30)
    window = monitor_start.window_before(WHEN + timedelta(days=1, hours=3), 3)  # [12-02 10:00, 13:00)
    labelled = monitor_start.Labelled(("review-1/export.json",), ("2026/12/01/09/a.jsonl", "2026/12/01/10/b.jsonl"), served)
    baselines = monitor_start.Baselines("car-damage-models/3", "s3://artifacts/car-damage-pipeline/e/evaluation/", ("input",))
    request = monitor_start.job_request(SETTINGS, ENDPOINT, window, window.hours[1:2], baselines, labelled)
    job = tmp_path / "job"
    arguments = [argument.replace(monitor_start.PROCESSING, str(job)) for argument in request["AppSpecification"]["ContainerArguments"]]
    for item in request["ProcessingInputs"]:  # where SageMaker puts each input
        (job / item["S3Input"]["LocalPath"].removeprefix(monitor_start.PROCESSING + "/")).mkdir(parents=True)
    others = [jpeg_bytes(size=(100, 80), seed=50 + n) for n in range(2)]
    write_captures(
        job / "captures", [(data, answered(data, []), window.since + timedelta(hours=1, minutes=n)) for n, data in enumerate(others)], "2026/12/02/11"
    )
    missed = answered(photos[0], [(2, 0.9, 0.0, 0.0, 0.05, 0.05)])  # the package served before, which missed everything
    write_captures(job / "labelled-captures", [(photos[0], missed, WHEN - timedelta(hours=1))], "2026/12/01/09")
    write_captures(job / "labelled-captures", [(data, body, WHEN) for data, body in zip(photos, answers, strict=True)], "2026/12/01/10")
    write_labels(job / "labels" / "review-1", tasks)
    shutil.copyfile(baseline / MODEL_BASELINE, job / "baseline" / MODEL_BASELINE)

    assert monitor.main(arguments) == 0

    document = json.loads((job / "output" / "monitor.json").read_text())
    service = document["quality"]
    assert service["map"] == pytest.approx(expected["mAP"], abs=1e-9) and service["map50"] == pytest.approx(expected["mAP_50"], abs=1e-9)
    assert (service["images"], service["unmatched"], service["package"]) == (3, 0, "car-damage-models/3")
    assert document["window"]["images"] == 2  # the window's own photos only
    out = capsys.readouterr().out
    assert "--labelled-captures: 4 answer(s) to labelled photos, 0 to other photos, 0 record(s) that are not a usable photo and answer" in out
    assert "1 answer(s) captured before --served-since 2026-12-01T09:30:00Z left out" in out
