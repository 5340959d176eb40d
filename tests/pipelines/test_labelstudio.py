"""The review batch's Label Studio formats, checked by label-studio-sdk's own types and labelling-config validator
(pipelines/labelstudio.py), offline; the real server is in test_labelstudio_server.py."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from pipelines import labelstudio, review
from tests.review_support import detection
from tests.support import ROOT, SAMPLE

PHOTOS = sorted((SAMPLE / "images").rglob("*.jpg"))[:2]
CLASSES = ["dent", "scratch"]


@pytest.fixture
def batch(tmp_path):
    picked = []
    for index, path in enumerate(PHOTOS):
        with Image.open(path) as image:
            size = image.size
        found = (detection("dent", 0.4, (0.1, 0.1, 0.4, 0.4), size), detection("scratch", 0.3, (0.5, 0.5, 0.9, 0.8), size))
        photo = review.Captured(f"c:{index}", path.read_bytes(), "image/jpeg", found, size[0], size[1], "2026-12-01T10:00:00Z")
        picked.append((review.Scored(photo, 0.5, "why"), "uncertain"))
    review.write_batch(tmp_path, review.Selection(picked), "s3://data/images/review/b1/", CLASSES, "car-damage-models/1", "b1")
    return json.loads((tmp_path / "tasks.json").read_text()), (tmp_path / "labeling-config.xml").read_text()


def test_the_batch_tasks_are_what_the_sdk_accepts_for_its_config(batch):
    tasks, config = batch
    assert labelstudio.task_problems(tasks, config) == []


def test_tasks_that_do_not_fit_the_config_are_named_with_the_reason(batch):
    tasks, config = batch
    wrong_label = json.loads(json.dumps(tasks[0]))
    wrong_label["predictions"][0]["result"][0]["value"]["rectanglelabels"] = ["rust"]
    no_image = {"data": {"picture": "s3://data/a.jpg"}, "predictions": []}
    bad_score = json.loads(json.dumps(tasks[1]))
    bad_score["predictions"][0]["score"] = "very"
    problems = labelstudio.task_problems([wrong_label, no_image, bad_score], config)
    assert len(problems) == 3, problems
    assert problems[0].startswith(f"task 1 ({tasks[0]['data']['image']}): Region 0") and "valid labels: ['dent', 'scratch']" in problems[0]
    assert problems[1].startswith("task 2 (no image): its data lacks what the labelling config shows (image)")
    assert problems[2].startswith(f"task 3 ({tasks[1]['data']['image']}): ") and "score" in problems[2] and "'very'" in problems[2], problems[2]
    # A batch for other classes than the project's config: every prediction is refused, before anything is sent.
    other = review.labeling_config(["rust", "glass"])
    assert len(labelstudio.task_problems(tasks, other)) == 4


def test_an_export_of_corrected_tasks_passes_and_a_wrong_annotation_is_named(batch):
    tasks, config = batch
    export = []
    for number, task in enumerate(tasks, 1):
        result = [dict(region) for region in task["predictions"][0]["result"]]
        export.append({"id": number, "data": task["data"], "annotations": [{"id": 10 + number, "result": result, "was_cancelled": False}]})
    assert labelstudio.annotation_problems(export, config) == []
    export[1]["annotations"].append({"id": 99, "result": [{"from_name": "label", "to_name": "image", "type": "rectanglelabels", "value": {}}]})
    export[1]["annotations"].append({"id": 100, "result": [], "was_cancelled": True})  # skipped: PrepareData ignores it, so it is not checked
    (problem,) = labelstudio.annotation_problems(export, config)
    assert problem.startswith(f"task 2 ({tasks[1]['data']['image']}), annotation 99: Region 0")


def test_the_client_sdk_is_the_one_the_pinned_server_ships_with():
    """The project's label-studio-sdk is the version the pinned server depends on, so their formats agree."""
    pins = {}
    for lock in ("lock.txt", "labelstudio.txt"):
        for line in (ROOT / "requirements" / lock).read_text().splitlines():
            if line.startswith("label-studio-sdk=="):
                pins[lock] = line.split("==")[1].split()[0]
    assert len(pins) == 2 and len(set(pins.values())) == 1, pins
