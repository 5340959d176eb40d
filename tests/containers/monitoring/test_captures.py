"""Reading data-capture records (containers/monitoring/captures.py): an answer kept as text or base64 decodes to
the same photo, every record that is not an answered photo comes back with its file, line and reason, and a
window holds the inference times in [since, until)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from containers.monitoring.captures import Captured, Unusable, Window, captured_photos, decode, iso, parse_time, read_folder
from pipelines.local.capture import capture_line
from tests.review_support import answer, detection
from tests.support import jpeg_bytes

WHEN = datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC)
PHOTO = jpeg_bytes(size=(64, 48), seed=1)


def record(when: datetime = WHEN, answer_type: str = "application/json", request: bytes = PHOTO, request_type: str = "image/jpeg") -> dict:
    """A capture record as the local endpoint writes it (pipelines/local/capture.py), SageMaker's shape."""
    return capture_line(request, request_type, answer([detection("dent", 0.7, size=(64, 48))]), answer_type, when=when, event_id="e")


def test_an_answer_kept_as_text_or_base64_decodes_to_the_same_photo():
    as_text = record()
    as_base64 = record(answer_type="application/octet-stream")  # a type not named JSON is base64-encoded
    assert as_text["captureData"]["endpointOutput"]["encoding"] == "JSON"
    assert as_base64["captureData"]["endpointOutput"]["encoding"] == "BASE64"
    first, second = decode("a.jsonl", 1, json.dumps(as_text)), decode("a.jsonl", 2, as_base64)
    assert isinstance(first, Captured) and isinstance(second, Captured)
    assert (first.data, first.detections, first.width, first.height) == (second.data, second.detections, second.width, second.height)
    assert first.data == PHOTO and first.source == "a.jsonl:1" and first.content_type == "image/jpeg"
    assert first.detections[0]["class"] == "dent" and (first.width, first.height) == (64, 48)
    assert first.inference_time == "2026-12-01T10:00:00Z"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("not json at all", "not a captured photo and answer (JSONDecodeError"),
        ("[1, 2]", "not a captured photo and answer (TypeError"),
        (json.dumps({"eventVersion": "0"}), "not a captured photo and answer (KeyError: 'captureData')"),
        (json.dumps(record(request=b'{"instances": []}', request_type="application/json")), "the request is application/json, not a photo"),
        (json.dumps({"captureData": {"endpointInput": {"encoding": "BASE64", "data": "not base64!"}, "endpointOutput": {}}}), "(Error"),
        (json.dumps({**record(), "captureData": {**record()["captureData"], "endpointOutput": {"encoding": "JSON", "data": "{}"}}}), "'predictions'"),
    ],
)
def test_a_record_that_is_no_answered_photo_is_returned_with_where_and_why(raw, reason):
    found = decode("h/10/a.jsonl", 7, raw)
    assert isinstance(found, Unusable) and found.capture == "h/10/a.jsonl:7"
    assert reason in found.reason, found.reason


def test_two_answers_for_one_photo_or_detections_that_are_not_objects_are_unusable():
    both = json.loads(answer())
    both["predictions"] *= 2
    two = {**record(), "captureData": {**record()["captureData"], "endpointOutput": {"encoding": "JSON", "data": json.dumps(both)}}}
    assert "too many values to unpack" in decode("a", 1, two).reason
    strings = json.loads(answer())
    strings["predictions"][0]["detections"] = ["dent"]
    odd = {**record(), "captureData": {**record()["captureData"], "endpointOutput": {"encoding": "JSON", "data": json.dumps(strings)}}}
    assert "detections are not a list of objects" in decode("a", 1, odd).reason


def test_a_window_holds_since_and_leaves_out_until_and_records_outside_it_are_not_counted():
    times = [WHEN - timedelta(seconds=1), WHEN, WHEN + timedelta(minutes=59, seconds=59), WHEN + timedelta(hours=1)]
    records = [("a.jsonl", index, record(when)) for index, when in enumerate(times, 1)]
    photos, unusable = captured_photos(records, since="2026-12-01T10:00:00Z", until="2026-12-01T11:00:00Z")
    assert [p.source for p in photos] == ["a.jsonl:2", "a.jsonl:3"] and unusable == []
    assert len(captured_photos(records)[0]) == 4  # no bounds: every record
    assert [p.source for p in captured_photos(records, since="2026-12-01T10:30+01:00")[0]] == ["a.jsonl:1", "a.jsonl:2", "a.jsonl:3", "a.jsonl:4"]
    assert [p.source for p in captured_photos(records, until="2026-12-01T10:00:00")[0]] == ["a.jsonl:1"]  # no zone: UTC


def test_a_photo_whose_time_cannot_be_read_is_unusable_in_a_bounded_window_and_kept_without_one():
    untimed = record()
    untimed["eventMetadata"]["inferenceTime"] = "yesterday"
    assert isinstance(decode("a", 1, untimed), Captured)
    found = decode("a", 1, untimed, Window.of(since="2026-12-01"))
    assert isinstance(found, Unusable) and "inferenceTime 'yesterday' is not a time" in found.reason


def test_times_are_iso_8601_in_utc_and_an_empty_window_is_refused():
    assert parse_time("2026-11-30") == datetime(2026, 11, 30, tzinfo=UTC)
    assert iso(parse_time("2026-11-30T13:00:00.250+01:00")) == "2026-11-30T12:00:00Z"
    with pytest.raises(ValueError, match="'soon' is not an ISO 8601 date or time such as 2026-11-30"):
        parse_time("soon")
    with pytest.raises(ValueError, match="since 2026-12-02T00:00:00Z is not before until 2026-12-01T00:00:00Z"):
        Window.of("2026-12-02", "2026-12-01")


def test_capture_files_are_read_at_any_depth_in_path_order_with_their_line_numbers(tmp_path):
    hour = tmp_path / "car-damage-endpoint" / "AllTraffic" / "2026" / "12" / "01" / "10"
    hour.mkdir(parents=True)
    (hour / "01-00-000-b.jsonl").write_text(json.dumps(record()) + "\n\n" + "broken\n")  # SageMaker puts many lines in a file
    (hour / "00-00-000-a.jsonl").write_bytes(json.dumps(record()).encode() + b"\n\xff\xfe\n")
    (hour / "notes.txt").write_text("not a capture file\n")
    lines = list(read_folder(tmp_path))
    base = "car-damage-endpoint/AllTraffic/2026/12/01/10/"
    assert [(name, number) for name, number, _ in lines] == [
        (base + "00-00-000-a.jsonl", 1),
        (base + "00-00-000-a.jsonl", 2),
        (base + "01-00-000-b.jsonl", 1),
        (base + "01-00-000-b.jsonl", 3),
    ]
    photos, unusable = captured_photos(lines)
    assert len(photos) == 2 and [u.capture for u in unusable] == [base + "00-00-000-a.jsonl:2", base + "01-00-000-b.jsonl:3"]


def test_the_base64_answer_of_a_hand_written_sagemaker_record_is_read():
    """A record as SageMaker writes it when no JSON content type is configured (every body base64), with an
    inference id and fractional seconds."""
    body = answer([detection("scratch", 0.9, size=(64, 48))])
    raw = {
        "captureData": {
            "endpointInput": {"observedContentType": "image/jpeg", "mode": "INPUT", "data": base64.b64encode(PHOTO).decode(), "encoding": "BASE64"},
            "endpointOutput": {
                "observedContentType": "application/json",
                "mode": "OUTPUT",
                "data": base64.b64encode(body).decode(),
                "encoding": "BASE64",
            },
        },
        "eventMetadata": {"eventId": "4f1c", "inferenceId": "claim-17", "inferenceTime": "2026-12-01T10:15:02.123Z"},
        "eventVersion": "0",
    }
    found = decode("f.jsonl", 3, raw, Window.of("2026-12-01T10:00:00Z", "2026-12-01T11:00:00Z"))
    assert isinstance(found, Captured) and found.detections[0]["class"] == "scratch" and found.data == PHOTO
