"""The batch summary (pipelines/batch.py): one row per input, boxes and damaged-area share per class."""

from __future__ import annotations

import csv
import io
import json

from pipelines import batch
from pipelines.batch import Outcome


def box(name: str, score: float, xmin: float, ymin: float, xmax: float, ymax: float) -> dict:
    return {"class": name, "score": score, "box": {"xmin": xmin, "ymin": ymin, "xmax": xmax, "ymax": ymax}}


def rows(outcomes, classes=("dent", "scratch")) -> list[dict]:
    return list(csv.DictReader(io.StringIO(batch.summary_text(outcomes, list(classes)))))


def test_area_share_sums_each_class_s_boxes_over_the_image():
    outcome = Outcome("car.jpg", 200, 100, (box("dent", 0.8, 0, 0, 100, 50), box("dent", 0.5, 50, 25, 150, 75), box("scratch", 0.9, 0, 0, 20, 10)))
    (row,) = rows([outcome])
    assert (row["boxes"], row["boxes_dent"], row["boxes_scratch"], row["top_score"]) == ("3", "2", "1", "0.9000")
    assert row["area_share_dent"] == "0.5000"  # two 5000 px boxes on 20000 px; their overlap counts twice, as stated
    assert row["area_share_scratch"] == "0.0100" and row["error"] == ""


def test_a_photo_without_damage_and_a_refused_file_each_have_their_row():
    clean, refused = Outcome("clean.jpg", 10, 10, ()), Outcome("notes.txt", error="400: not an image")
    first, second = rows([clean, refused])
    assert (first["boxes"], first["boxes_dent"], first["top_score"], first["area_share_dent"]) == ("0", "0", "", "0.0000")
    assert (second["image"], second["error"], second["boxes"]) == ("notes.txt", "400: not an image", "")


def test_class_names_keep_the_model_s_order_and_add_unknown_ones():
    outcome = Outcome("x.jpg", 1, 1, (box("id 7", 0.5, 0, 0, 1, 1),))
    assert batch.class_names({2: "scratch", 1: "dent"}, [outcome]) == ["dent", "scratch", "id 7"]


def test_run_local_counts_every_file_and_survives_an_unreadable_one(tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    (source / "a.jpg").write_bytes(b"a")
    (source / "b.jpg").write_bytes(b"b")
    reply = {"predictions": [{"image": {"width": 4, "height": 2}, "detections": [box("dent", 0.7, 0, 0, 2, 2)]}]}

    def invoke(body, content_type, attributes):
        assert content_type == "application/x-image" and attributes == "score_threshold=0.5"
        return (
            (200, json.dumps(reply).encode(), "application/json") if body == b"a" else (415, b'{"error": "nope", "status": 415}', "application/json")
        )

    result = batch.run_local(invoke, {1: "dent"}, source, tmp_path / "out", attributes="score_threshold=0.5", workers=2)
    assert [o.image for o in result.outcomes] == ["a.jpg", "b.jpg"] and [o.image for o in result.refused] == ["b.jpg"]
    assert result.refused[0].error == "415: nope"
    assert json.loads((tmp_path / "out" / "a.jpg.json").read_text())["detections"][0]["class"] == "dent"
    assert [row["area_share_dent"] for row in csv.DictReader(result.summary.open())] == ["0.5000", ""]
