"""Local data capture (pipelines/local/capture.py): SageMaker's JSON Lines format, its file layout, sampling."""

from __future__ import annotations

import base64
import json
import random
import re
from datetime import UTC, datetime

import pytest

from pipelines.config import load_config
from pipelines.local.capture import CaptureSettings, DataCapture, capture_line
from pipelines.local.storage import LocalS3, LocalS3Client
from pipelines.review import read_captures
from tests.support import ROOT, jpeg_bytes

DESTINATION = "s3://local-artifacts/data-capture/car-damage-endpoint/"
WHEN = datetime(2026, 12, 1, 18, 5, 9, 123456, tzinfo=UTC)


def test_a_record_has_sagemaker_s_fields_and_encodings():
    image, answer = jpeg_bytes(), b'{"predictions": []}'
    record = capture_line(image, "image/jpeg", answer, "application/json", when=WHEN, event_id="e-1", inference_id="claim-7")
    assert record == {
        "captureData": {
            "endpointInput": {"observedContentType": "image/jpeg", "mode": "INPUT", "data": base64.b64encode(image).decode(), "encoding": "BASE64"},
            "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT", "data": answer.decode(), "encoding": "JSON"},
        },
        "eventMetadata": {"eventId": "e-1", "inferenceTime": "2026-12-01T18:05:09Z", "inferenceId": "claim-7"},
        "eventVersion": "0",
    }
    json_request = capture_line(b'{"instances": []}', "application/json; charset=utf-8", answer, "application/json", when=WHEN, event_id="e-2")
    assert json_request["captureData"]["endpointInput"]["encoding"] == "JSON" and "inferenceId" not in json_request["eventMetadata"]
    not_text = capture_line(b"\xff\xfe", "application/json", answer, "application/json", when=WHEN, event_id="e-3")
    assert not_text["captureData"]["endpointInput"]["encoding"] == "BASE64"  # bytes that are not text stay bytes


def test_files_follow_the_endpoint_variant_and_hour_layout(tmp_path):
    s3 = LocalS3(tmp_path)
    capture = DataCapture(s3, DESTINATION, "car-damage-endpoint", 100)
    uri = capture.record(jpeg_bytes(), "image/jpeg", b"{}", "application/json", "claim-1", when=WHEN)
    assert re.fullmatch(rf"{DESTINATION}car-damage-endpoint/AllTraffic/2026/12/01/18/05-09-123-[0-9a-f-]{{36}}\.jsonl", uri)
    ((found, line, text),) = list(read_captures(LocalS3Client(s3), DESTINATION))
    assert (found, line) == (uri, 1) and json.loads(text)["eventMetadata"]["inferenceId"] == "claim-1"
    assert json.loads(s3.path(uri).read_text())["eventVersion"] == "0"


@pytest.mark.parametrize("percent", [0, 10, 30, 100])
def test_the_sampling_rate_holds_over_hundreds_of_requests(tmp_path, percent):
    s3 = LocalS3(tmp_path)
    capture = DataCapture(s3, DESTINATION, "e", percent, rng=random.Random(percent))
    requests = 400
    for _ in range(requests):
        capture.record(b"x", "image/jpeg", b"{}", "application/json")
    captured = len(list(read_captures(LocalS3Client(s3), DESTINATION)))
    expected = requests * percent / 100
    spread = 4 * (requests * percent / 100 * (1 - percent / 100)) ** 0.5  # four standard deviations of a binomial
    assert expected - spread <= captured <= expected + spread, (percent, captured)


def test_the_settings_come_from_the_deployment_section():
    config = load_config(ROOT / "pipeline.yaml", profile="local")
    settings = CaptureSettings.of(config, "local-artifacts")
    assert settings == CaptureSettings(f"s3://local-artifacts/data-capture/{config.endpoint_name}/", config.deployment.data_capture_percent)
    off = config.model_copy(update={"deployment": config.deployment.model_copy(update={"data_capture_percent": 0})})
    assert CaptureSettings.of(off, "local-artifacts") is None
