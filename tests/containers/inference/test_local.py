"""The local endpoint end to end: a real SavedModel (the stand-in detector of tests/fake_model.py, which
decodes every image and answers with fixed detections) behind the handler and an emulation of TF Serving's
REST predict API."""

from __future__ import annotations

import base64
import io
import json
import math
import re
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from containers.inference.inference import RequestError, Settings
from containers.inference.local import LocalEndpoint
from tests.containers.inference.helpers import detection
from tests.fake_model import write_model_dir
from tests.support import jpeg_bytes

# (class_id, score, ymin, xmin, ymax, xmax)
DETECTIONS = [(1, 0.9, 0.1, 0.2, 0.5, 0.6), (2, 0.6, 0.5, 0.5, 0.75, 1.0), (1, 0.4, 0.0, 0.0, 0.25, 0.25), (2, 0.1, 0.0, 0.0, 1.0, 1.0)]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return write_model_dir(tmp_path_factory.mktemp("inference") / "model", DETECTIONS)


@pytest.fixture(scope="module")
def endpoint(model_dir) -> LocalEndpoint:
    return LocalEndpoint(model_dir, settings=Settings())


def answer(result: tuple[int, bytes, str], status: int = 200) -> dict:
    code, body, content_type = result
    assert content_type == "application/json"
    document = json.loads(body)  # strict JSON: no NaN may reach a client
    assert code == status, document
    return document


def summary(prediction: dict) -> list[tuple[str, float]]:
    return [(d["class"], d["score"]) for d in prediction["detections"]]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize("content_type", ["application/x-image", "image/jpeg", "image/png"])
def test_raw_image_bytes(endpoint, content_type):
    data = jpeg_bytes((64, 48), seed=1, fmt="PNG" if content_type == "image/png" else "JPEG")
    [prediction] = answer(endpoint.invoke(data, content_type))["predictions"]
    assert prediction["image"] == {"width": 64, "height": 48}
    assert summary(prediction) == [("dent", 0.9), ("scratch", 0.6), ("dent", 0.4)]  # default threshold 0.3
    assert prediction["detections"][0] == detection("dent", 1, 0.9, (12.8, 4.8, 38.4, 24.0), (0.2, 0.1, 0.6, 0.5))


def test_json_batch_in_every_instance_form_with_options_in_the_body(endpoint):
    pixels = np.random.default_rng(0).integers(0, 256, size=(20, 30, 3)).tolist()
    body = {
        "instances": [{"b64": b64(jpeg_bytes((64, 48)))}, b64(jpeg_bytes((100, 50), seed=2, fmt="PNG")), pixels],
        "score_threshold": 0.5,
    }
    predictions = answer(endpoint.invoke(json.dumps(body).encode(), "application/json"))["predictions"]
    assert [p["image"] for p in predictions] == [{"width": 64, "height": 48}, {"width": 100, "height": 50}, {"width": 30, "height": 20}]
    assert [summary(p) for p in predictions] == [[("dent", 0.9), ("scratch", 0.6)]] * 3
    assert predictions[1]["detections"][1]["box"] == {"xmin": 50.0, "ymin": 25.0, "xmax": 100.0, "ymax": 37.5}


def test_custom_attributes_choose_threshold_and_count(endpoint):
    data = jpeg_bytes()
    assert summary(answer(endpoint.invoke(data, "image/jpeg", "score_threshold=0.05"))["predictions"][0]) == [
        ("dent", 0.9),
        ("scratch", 0.6),
        ("dent", 0.4),
        ("scratch", 0.1),
    ]
    assert summary(answer(endpoint.invoke(data, "image/jpeg", "score_threshold=0.05,max_detections=2"))["predictions"][0]) == [
        ("dent", 0.9),
        ("scratch", 0.6),
    ]
    json_body = json.dumps({"instances": [b64(data)], "max_detections": 1}).encode()
    assert summary(answer(endpoint.invoke(json_body, "application/json", "score_threshold=0.05;max_detections=3"))["predictions"][0]) == [
        ("dent", 0.9)
    ]


def test_environment_defaults_apply_when_no_settings_are_given(model_dir, monkeypatch):
    monkeypatch.setenv("SCORE_THRESHOLD", "0.5")
    monkeypatch.setenv("MAX_BATCH", "1")
    from_env = LocalEndpoint(model_dir)
    assert summary(answer(from_env.invoke(jpeg_bytes(), "image/jpeg"))["predictions"][0]) == [("dent", 0.9), ("scratch", 0.6)]
    two = json.dumps({"instances": [b64(jpeg_bytes())] * 2}).encode()
    assert answer(from_env.invoke(two, "application/json"), 413)["error"] == "2 instances in one request; the limit is 1 (MAX_BATCH)"


def test_exif_rotated_photo_comes_back_upright_with_boxes_scaled(endpoint):
    [prediction] = answer(endpoint.invoke(jpeg_bytes((64, 48), seed=3, exif_orientation=6), "image/jpeg"))["predictions"]
    assert prediction["image"] == {"width": 48, "height": 64}
    assert prediction["detections"][0]["box"] == {"xmin": 9.6, "ymin": 6.4, "xmax": 28.8, "ymax": 32.0}


@pytest.mark.parametrize(
    ("body", "content_type", "status", "start"),
    [
        (b"", "image/jpeg", 400, "the request body is empty"),
        (b"just some text", "application/x-image", 400, "the image is not an image that can be read"),
        (jpeg_bytes((256, 256))[:-400], "image/jpeg", 400, "the image is truncated or corrupt"),
        (b"a,b\n1,2\n", "text/csv", 415, "content type 'text/csv' is not accepted"),
        (b'{"instances": "x"}', "application/json", 400, '"instances" must be a non-empty list'),
        (json.dumps({"instances": [b64(jpeg_bytes((8, 8)))] * 17}).encode(), "application/json", 413, "17 instances in one request; the limit is 16"),
        (b'{"instances": [[[[0, 0, 999]]]]}', "application/json", 400, "instances[0]: pixel values must be numbers from 0 to 255"),
    ],
)
def test_bad_requests_get_their_status_and_a_json_error(endpoint, body, content_type, status, start):
    document = answer(endpoint.invoke(body, content_type), status)
    assert document["status"] == status
    assert document["error"].startswith(start), document


def test_invalid_options_and_accept(endpoint):
    data = jpeg_bytes()
    assert (
        answer(endpoint.invoke(data, "image/jpeg", "score_threshold=2"), 400)["error"]
        == "invalid score_threshold: '2' (expected a number from 0 to 1)"
    )
    json_body = json.dumps({"instances": [b64(data)], "max_detections": -3}).encode()
    assert answer(endpoint.invoke(json_body, "application/json"), 400)["error"] == "invalid max_detections: -3 (expected a whole number >= 1)"
    assert answer(endpoint.invoke(data, "image/jpeg", accept="image/png"), 406)["error"].startswith("cannot answer as 'image/png'")


def test_size_limits(model_dir):
    strict = LocalEndpoint(model_dir, settings=Settings(max_image_bytes=2000, max_image_pixels=10_000))
    big = jpeg_bytes((128, 128), quality=100)
    assert answer(strict.invoke(big, "image/jpeg"), 413)["error"] == f"the image is {len(big)} bytes; the limit is 2000 (MAX_IMAGE_BYTES)"
    wide = jpeg_bytes((200, 100), quality=5)
    assert answer(strict.invoke(wide, "image/jpeg"), 413)["error"].endswith("the limit is 10000 (MAX_IMAGE_PIXELS)")


def test_garbage_never_raises(endpoint):
    rng = np.random.default_rng(1)
    good = jpeg_bytes((32, 32))
    bodies = [rng.bytes(n) for n in (1, 10, 1000)] + [good[:20], good[:-1] + b"\x00", b"\x89PNG\r\n\x1a\n" + rng.bytes(50), b"{}", b"null", b'"x"']
    for body in bodies:
        for content_type in ("image/jpeg", "application/json", "application/x-image", "", "image/jpeg; charset=utf-8"):
            status, reply, _ = endpoint.invoke(body, content_type)
            assert status in (200, 400, 413, 415), (body[:20], content_type, reply)
            document = json.loads(reply)
            if status == 200:  # a photo after all: one prediction, with its size
                assert set(document) == {"predictions"} and set(document["predictions"][0]) == {"image", "detections"}, document
            else:  # a refusal: the message and the status it came with, nothing else
                assert set(document) == {"error", "status"} and document["status"] == status and document["error"], document


def test_a_model_server_failure_is_502(endpoint, monkeypatch):
    monkeypatch.setattr(endpoint, "serve_predict", lambda request: (500, b'{"error": "out of memory"}'))
    document = answer(endpoint.invoke(jpeg_bytes(), "image/jpeg"), 502)
    assert document == {"error": "the model server answered 500: out of memory", "status": 502}


def test_an_unexpected_failure_is_a_500_as_in_the_container(endpoint, monkeypatch):
    def broken(request):
        raise KeyError("surprise")

    monkeypatch.setattr(endpoint, "serve_predict", broken)
    assert answer(endpoint.invoke(jpeg_bytes(), "image/jpeg"), 500) == {"error": "'surprise'"}


def test_tf_serving_emulation_speaks_row_format(endpoint):
    request = json.dumps({"instances": [{"b64": b64(jpeg_bytes())}, {"b64": b64(jpeg_bytes((16, 16)))}]})
    status, reply = endpoint.serve_predict(request)
    assert status == 200
    predictions = json.loads(reply)["predictions"]
    assert len(predictions) == 2
    assert set(predictions[0]) == {"detection_boxes", "detection_scores", "detection_classes", "num_detections"}
    assert np.asarray(predictions[0]["detection_boxes"]).shape == (100, 4)
    assert predictions[1]["num_detections"] == len(DETECTIONS)
    for request, message in (
        ("not json", "malformed predict request: Expecting value"),
        ('{"instances": [42]}', 'malformed predict request: an instance of a string input must be {"b64": ...}, not int'),
        ('{"instances": []}', "no instances in the predict request"),
    ):
        status, reply = endpoint.serve_predict(request)
        assert status == 400 and json.loads(reply)["error"].startswith(message), reply
    status, reply = endpoint.serve_predict(json.dumps({"instances": [{"b64": b64(b"not an image")}]}))
    assert status == 400
    assert "Unknown image file format" in json.loads(reply)["error"]  # TensorFlow's decode error, as TF Serving reports it


def test_predict_image(endpoint):
    assert [(d["class"], d["score"]) for d in endpoint.predict_image(jpeg_bytes())] == [("dent", 0.9), ("scratch", 0.6), ("dent", 0.4)]
    found = endpoint.predict_image(jpeg_bytes((64, 48), exif_orientation=8), score_threshold=0.05, max_detections=3)
    assert [(d["class"], d["score"]) for d in found] == [("dent", 0.9), ("scratch", 0.6), ("dent", 0.4)]
    assert found[1]["box"] == {"xmin": 24.0, "ymin": 32.0, "xmax": 48.0, "ymax": 48.0}  # 48 wide, 64 high once upright
    with pytest.raises(RequestError) as caught:
        endpoint.predict_image(b"")
    assert (caught.value.status, caught.value.message) == (400, "the request body is empty (expected the bytes of a JPEG or PNG image)")
    with pytest.raises(RequestError, match="invalid max_detections"):
        endpoint.predict_image(jpeg_bytes(), max_detections=0)


def test_predictions_can_be_drawn(endpoint, tmp_path):
    from containers.common.pictures import save_detections_picture

    data = jpeg_bytes((64, 48), seed=4, exif_orientation=6)
    path = save_detections_picture(data, endpoint.predict_image(data), tmp_path / "found.png")
    with Image.open(path) as picture:
        assert picture.size == (48, 64)


def test_two_endpoints_keep_their_own_class_names(model_dir, tmp_path):
    renamed = tmp_path / "renamed"
    shutil.copytree(model_dir, renamed)
    (renamed / "model.json").write_text(json.dumps({"classes": {"1": "bump", "2": "scrape"}}))
    other = LocalEndpoint(renamed, settings=Settings())
    first = LocalEndpoint(model_dir, settings=Settings())
    assert [d["class"] for d in other.predict_image(jpeg_bytes())] == ["bump", "scrape", "bump"]
    assert [d["class"] for d in first.predict_image(jpeg_bytes())] == ["dent", "scratch", "dent"]


def test_concurrent_requests_each_get_their_own_sizes(endpoint):
    sizes = [(64, 48), (48, 64), (100, 20), (20, 100)]
    results: dict[tuple[int, int], dict] = {}

    def call(size):
        [prediction] = answer(endpoint.invoke(jpeg_bytes(size), "image/jpeg"))["predictions"]
        results[size] = prediction["image"]

    threads = [threading.Thread(target=call, args=(size,)) for size in sizes * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {size: {"width": size[0], "height": size[1]} for size in sizes}


def test_non_finite_model_outputs_never_reach_the_client(tmp_path):
    model = write_model_dir(tmp_path / "nan", [(1, 0.9, 0.1, 0.1, 0.4, 0.4), (2, math.nan, 0.1, 0.1, 0.2, 0.2), (2, 0.8, math.inf, 0.0, 1.0, 1.0)])
    endpoint = LocalEndpoint(model, settings=Settings())
    status, reply = endpoint.serve_predict(json.dumps({"instances": [{"b64": b64(jpeg_bytes())}]}))
    assert (status, b"NaN" in reply, b"Infinity" in reply) == (200, True, True)  # as TF Serving writes them
    [prediction] = answer(endpoint.invoke(jpeg_bytes(), "image/jpeg", "score_threshold=0"))["predictions"]
    assert summary(prediction) == [("dent", 0.9)]


def test_a_folder_without_a_model_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="no 1/ SavedModel"):
        LocalEndpoint(tmp_path)
    (tmp_path / "1").mkdir()
    with pytest.raises(FileNotFoundError, match=rf"^{re.escape(str(tmp_path))}: no model\.json \(expected beside 1/"):
        LocalEndpoint(tmp_path)


def test_the_class_names_are_the_model_folders_own_model_json(model_dir, tmp_path):
    assert LocalEndpoint(model_dir).classes == {1: "dent", 2: "scratch"}
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    (broken / "model.json").write_text(json.dumps({"classes": {"0": "background"}}))
    with pytest.raises(ValueError, match=rf"^{re.escape(str(broken / 'model.json'))}: class id 0 is below 1"):
        LocalEndpoint(broken)


def test_invoke_accepts_any_bytes_like_body(endpoint):
    data = jpeg_bytes()
    assert answer(endpoint.invoke(bytearray(data), "image/jpeg")) == answer(endpoint.invoke(memoryview(data), "image/jpeg"))
    assert answer(endpoint.invoke(io.BytesIO(data).getvalue(), "image/jpeg"))["predictions"][0]["image"] == {"width": 64, "height": 48}
