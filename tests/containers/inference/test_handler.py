"""The request handler (containers/inference/inference.py) on its own, without TensorFlow: what it reads,
what it sends to TF Serving, what it answers, and what it refuses. TF Serving's replies are written here in
its row format; the end-to-end path through a real SavedModel is in test_local.py."""

from __future__ import annotations

import base64
import io
import json
import math
import shutil
import subprocess
import sys
import threading
from collections import namedtuple

import numpy as np
import pytest
from PIL import Image

from containers.inference import inference as handler
from containers.inference.inference import Options, RequestError, Settings
from tests.containers.inference.helpers import detection
from tests.support import ROOT, jpeg_bytes

MODULE = ROOT / "containers" / "inference" / "inference.py"
LABELS = {1: "dent", 2: "scratch"}
Context = namedtuple("Context", "request_content_type accept_header custom_attributes rest_uri model_name")
Response = namedtuple("Response", "status_code content")
SMALL = Settings(max_image_bytes=50_000, max_image_pixels=300 * 300, max_batch=3)


def context(content_type="application/x-image", custom_attributes=None, accept="application/json") -> Context:
    return Context(content_type, accept, custom_attributes, "http://localhost:8501/v1/models/model:predict", "model")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def png_bytes(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def sent(request: str) -> list[bytes]:
    """The image bytes of a TF Serving request built by the handler."""
    document = json.loads(request)
    assert set(document) == {"instances"}
    return [base64.b64decode(item["b64"]) for item in document["instances"]]


def prediction(rows, count=None, padding=3) -> dict:
    """One image's outputs as TF Serving writes them: rows are (class_id, score, ymin, xmin, ymax, xmax)."""
    rows = list(rows) + [(1, 0.0, 0.0, 0.0, 0.0, 0.0)] * padding
    return {
        "detection_boxes": [list(r[2:]) for r in rows],
        "detection_scores": [r[1] for r in rows],
        "detection_classes": [float(r[0]) for r in rows],
        "num_detections": float(len(rows) - padding if count is None else count),
        "raw_detection_scores": [[0.1, 0.2]],  # the real export has more outputs; they are ignored
    }


def reply(*predictions) -> bytes:
    return json.dumps({"predictions": list(predictions)}).encode()


def refused(status: int, call, *args, **kwargs) -> str:
    """Call, expect a RequestError with `status`; returns its message (checking str() is the JSON line)."""
    with pytest.raises(RequestError) as caught:
        call(*args, **kwargs)
    error = caught.value
    assert error.status == status, error.message
    assert json.loads(str(error)) == {"error": error.message, "status": status}
    assert "\n" not in str(error)
    return error.message


# --- errors and options ---------------------------------------------------------------------------------


def test_request_error_text_is_one_json_line_with_the_status():
    error = RequestError(413, 'the image is "big"\nvery')
    assert json.loads(str(error)) == {"error": 'the image is "big"\nvery', "status": 413}
    assert "\n" not in str(error)
    assert json.loads(error.body()) == {"error": error.message, "status": 413}


def test_custom_attributes_are_split_on_semicolons_and_commas():
    assert handler.parse_custom_attributes("score_threshold=0.5;max_detections=10") == {"score_threshold": "0.5", "max_detections": "10"}
    assert handler.parse_custom_attributes(" score_threshold = 0.5 , trace=abc;; ") == {"score_threshold": "0.5", "trace": "abc"}
    assert handler.parse_custom_attributes(None) == {}
    assert handler.parse_custom_attributes("") == {}
    assert refused(400, handler.parse_custom_attributes, "max_detections;score_threshold=0.1") == (
        "invalid custom attribute 'max_detections': expected max_detections=<value>"
    )


def test_options_defaults_then_custom_attributes_then_json_body():
    defaults = Options(score_threshold=0.3, max_detections=100)
    assert handler.parse_options(None, None, defaults) == defaults
    assert handler.parse_options("score_threshold=0.5,max_detections=10", None, defaults) == Options(0.5, 10)
    assert handler.parse_options("score_threshold=0.5;max_detections=10", {"max_detections": 3}, defaults) == Options(0.5, 3)
    assert handler.parse_options("other=1", {"score_threshold": 0, "max_detections": 7.0}, defaults) == Options(0.0, 7)
    assert handler.parse_options("score_threshold=1", None, defaults) == Options(1.0, 100)


@pytest.mark.parametrize(
    ("attributes", "body", "named"),
    [
        ("score_threshold=1.5", None, "score_threshold"),
        ("score_threshold=-0.1", None, "score_threshold"),
        ("score_threshold=abc", None, "score_threshold"),
        ("score_threshold=nan", None, "score_threshold"),
        ("score_threshold=", None, "score_threshold"),
        ("max_detections=0", None, "max_detections"),
        ("max_detections=2.5", None, "max_detections"),
        ("max_detections=ten", None, "max_detections"),
        (None, {"max_detections": True}, "max_detections"),
        (None, {"max_detections": [3]}, "max_detections"),
        (None, {"score_threshold": "high"}, "score_threshold"),
        (None, {"score_threshold": None}, "score_threshold"),
    ],
)
def test_invalid_options_are_400_naming_the_option(attributes, body, named):
    message = refused(400, handler.parse_options, attributes, body)
    assert message.startswith(f"invalid {named}: ")


def test_settings_come_from_the_environment():
    settings = Settings.from_env(
        {"MAX_IMAGE_BYTES": "1000", "MAX_IMAGE_PIXELS": "500", "MAX_BATCH": "2", "SCORE_THRESHOLD": "0.6", "MAX_DETECTIONS": "5"}
    )
    assert settings == Settings(max_image_bytes=1000, max_image_pixels=500, max_batch=2, options=Options(0.6, 5))
    assert Settings.from_env({}) == Settings() == Settings(10 * 1024 * 1024, 40_000_000, 16, Options(0.3, 100))
    assert Settings.from_env({"MAX_BATCH": " "}) == Settings()
    with pytest.raises(ValueError, match=r"environment variable SCORE_THRESHOLD='2': invalid score_threshold"):
        Settings.from_env({"SCORE_THRESHOLD": "2"})
    with pytest.raises(ValueError, match=r"environment variable MAX_BATCH='-1'"):
        Settings.from_env({"MAX_BATCH": "-1"})


class Recorded(dict):
    """An environment that notes which variables were looked up."""

    def __init__(self, values=()):
        super().__init__(values)
        self.read: list[str] = []

    def get(self, name, default=None):
        self.read.append(name)
        return super().get(name, default)


def test_the_serving_environment_is_exactly_what_the_handler_reads():
    environ = Recorded()
    Settings.from_env(environ)
    assert sorted(environ.read) == sorted(handler.SERVING_ENVIRONMENT)
    assert handler.SERVING_ENVIRONMENT == ("SCORE_THRESHOLD", "MAX_DETECTIONS", "MAX_IMAGE_BYTES", "MAX_IMAGE_PIXELS", "MAX_BATCH")
    for name in handler.SERVING_ENVIRONMENT:
        with pytest.raises(ValueError, match=rf"^environment variable {name}='-1': "):
            Settings.from_env({name: "-1"})


def test_serving_environment_is_the_options_a_deployer_sets_checked_as_the_endpoint_reads_them():
    environment = handler.serving_environment(0.45, 12)
    assert environment == {"SCORE_THRESHOLD": "0.45", "MAX_DETECTIONS": "12"}
    assert Settings.from_env(environment) == Settings(options=Options(0.45, 12))
    with pytest.raises(ValueError, match=r"environment variable SCORE_THRESHOLD='1.5': invalid score_threshold"):
        handler.serving_environment(1.5, 12)
    with pytest.raises(ValueError, match=r"environment variable MAX_DETECTIONS='0': invalid max_detections"):
        handler.serving_environment(0.3, 0)


def test_accept_header_must_allow_json():
    for accept in (None, "", "application/json", "*/*", "application/json; charset=utf-8", "text/html, application/*;q=0.8"):
        handler.check_accept(accept)
    assert refused(406, handler.check_accept, "image/png") == "cannot answer as 'image/png': the answer is application/json"


# --- class names ----------------------------------------------------------------------------------------


def model_json(classes: object) -> str:
    """model.json as training writes it (containers/training/train.py export), with these `classes`."""
    return json.dumps({"model": "efficientdet-d0", "input_size": 512, "classes": classes, "trained_steps": 6, "hyperparameters": {}}, indent=2)


def test_classes_are_read_from_model_json_as_training_writes_it():
    assert handler.read_classes(model_json({"2": "scratch", "1": "dent", "10": 'odd "quoted" \\ name'})) == {
        1: "dent",
        2: "scratch",
        10: 'odd "quoted" \\ name',
    }
    assert handler.read_classes(model_json({"1": "dent"}).encode("utf-8")) == {1: "dent"}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{not json", "not JSON"),
        (b"\xff\xfe\x00", "not JSON"),
        ("[1, 2]", 'no "classes" mapping'),
        (json.dumps({"model": "efficientdet-d0"}), 'no "classes" mapping'),
        (model_json(["dent", "scratch"]), 'no "classes" mapping'),
        (model_json({}), 'no "classes" mapping'),
        (model_json({"one": "dent"}), "class id 'one' is not a whole number"),
        (model_json({"1.5": "dent"}), "class id '1.5' is not a whole number"),
        (model_json({"0": "background", "1": "dent"}), "class id 0 is below 1"),
        (model_json({"-2": "dent"}), "class id -2 is below 1"),
        (model_json({"1": ""}), "class 1 has no name ('')"),
        (model_json({"1": "dent", "2": None}), "class 2 has no name (None)"),
        (model_json({"1": 7}), "class 1 has no name (7)"),
    ],
)
def test_a_broken_model_json_is_a_value_error_naming_the_file_and_what_was_expected(text, reason):
    with pytest.raises(ValueError, match=r"^/models/car/model\.json: ") as caught:
        handler.read_classes(text, "/models/car/model.json")
    assert reason in str(caught.value)
    assert str(caught.value).endswith(handler.EXPECTED_CLASSES)


def test_model_json_lookup_order(tmp_path):
    code = tmp_path / "model" / "code"
    code.mkdir(parents=True)
    assert handler.find_model_metadata({}, here=code) is None
    (tmp_path / "model" / "model.json").write_text(model_json({"1": "root"}))
    assert handler.find_model_metadata({}, here=code) == tmp_path / "model" / "model.json"
    (code / "model.json").write_text(model_json({"1": "beside"}))
    assert handler.find_model_metadata({}, here=code) == code / "model.json"
    elsewhere = tmp_path / "elsewhere.json"
    assert handler.find_model_metadata({"MODEL_METADATA_PATH": str(elsewhere)}, here=code) == elsewhere  # even when missing, to report it


def test_load_classes_rereads_a_changed_file_and_reports_a_missing_or_broken_one(tmp_path, monkeypatch):
    path = tmp_path / "model.json"
    path.write_text(model_json({"1": "dent"}))
    assert handler.load_classes(path) == {1: "dent"}
    path.write_text(model_json({"1": "dent", "2": "scratch"}))
    assert handler.load_classes(path) == LABELS
    with pytest.raises(ValueError, match=r"missing\.json: the model's metadata cannot be read"):
        handler.load_classes(tmp_path / "missing.json")
    monkeypatch.setenv("MODEL_METADATA_PATH", str(path))
    assert handler.load_classes() == LABELS
    path.write_text(model_json({"1": "dent", "2": ""}))
    with pytest.raises(ValueError, match=r"model\.json: class 2 has no name"):
        handler.load_classes()


# --- reading images -------------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["application/x-image", "image/jpeg", "image/png", "IMAGE/JPEG; q=1"])
def test_a_valid_rgb_jpeg_passes_through_byte_for_byte(content_type):
    data = jpeg_bytes((64, 48), seed=3)
    images, options = handler.read_images(data, content_type)
    assert options == {}
    assert [(i.data, i.width, i.height, i.converted) for i in images] == [(data, 64, 48, None)]


def test_a_valid_rgb_png_passes_through_byte_for_byte():
    data = jpeg_bytes((40, 30), fmt="PNG")
    (image,), _ = handler.read_images(data, "image/png")
    assert (image.data, image.width, image.height, image.converted) == (data, 40, 30, None)


def test_json_instances_in_every_form():
    first, second = jpeg_bytes((64, 48), seed=1), jpeg_bytes((32, 16), seed=2, fmt="PNG")
    pixels = np.arange(4 * 5 * 3).reshape(4, 5, 3) * 4  # 4 high, 5 wide
    body = json.dumps({"instances": [{"b64": b64(first)}, b64(second), pixels.tolist()], "score_threshold": 0.5, "max_detections": 2})
    images, options = handler.read_images(body.encode(), "application/json")
    assert options == {"score_threshold": 0.5, "max_detections": 2}
    assert [i.data for i in images[:2]] == [first, second]
    assert [(i.width, i.height) for i in images] == [(64, 48), (32, 16), (5, 4)]
    decoded = Image.open(io.BytesIO(images[2].data))
    assert decoded.format == "PNG"
    assert np.array_equal(np.asarray(decoded), pixels.astype(np.uint8))  # lossless


def test_pixel_lists_accept_float_values_and_round_them():
    body = json.dumps({"instances": [[[[0.4, 127.6, 255.0], [1, 2, 3]]]]})
    (image,), _ = handler.read_images(body.encode(), "application/json")
    assert np.asarray(Image.open(io.BytesIO(image.data))).tolist() == [[[0, 128, 255], [1, 2, 3]]]


def test_exif_rotated_image_is_turned_upright_and_reencoded():
    data = jpeg_bytes((64, 48), seed=4, exif_orientation=6)
    (image,), _ = handler.read_images(data, "image/jpeg")
    assert (image.width, image.height) == (48, 64)
    assert image.converted == "turned upright (EXIF orientation 6)"
    upright = Image.open(io.BytesIO(image.data))
    assert (upright.format, upright.size, upright.mode) == ("JPEG", (48, 64), "RGB")
    assert upright.getexif().get(0x0112) is None  # nobody turns it a second time
    expected = np.asarray(Image.open(io.BytesIO(data)).transpose(Image.Transpose.ROTATE_270), dtype=float)
    assert np.abs(np.asarray(upright, dtype=float) - expected).mean() < 6  # the same picture, JPEG q95 apart


def test_orientation_1_keeps_the_bytes():
    data = jpeg_bytes((64, 48), exif_orientation=1)
    (image,), _ = handler.read_images(data, "image/jpeg")
    assert image.data == data


@pytest.mark.parametrize(
    ("mode", "fmt", "reason"),
    [
        ("L", "JPEG", "L to RGB"),
        ("CMYK", "JPEG", "CMYK to RGB"),
        ("P", "PNG", "P to RGB"),
        ("LA", "PNG", "LA to RGB"),
        ("RGB", "BMP", "BMP to JPEG"),
        ("RGB", "WEBP", "WEBP to JPEG"),
    ],
)
def test_other_images_become_rgb_jpegs(mode, fmt, reason):
    data = jpeg_bytes((40, 24), seed=5, mode=mode, fmt=fmt)
    (image,), _ = handler.read_images(data, "image/png")
    assert image.converted == reason
    converted = Image.open(io.BytesIO(image.data))
    assert (converted.format, converted.mode, converted.size) == ("JPEG", "RGB", (40, 24))


def test_transparency_is_composited_on_white():
    rgba = np.zeros((16, 16, 4), dtype=np.uint8)
    rgba[:, :8] = (255, 0, 0, 255)  # left half opaque red, right half fully transparent
    (image,), _ = handler.read_images(png_bytes(Image.fromarray(rgba, "RGBA")), "image/png")
    assert image.converted == "RGBA to RGB"
    pixels = np.asarray(Image.open(io.BytesIO(image.data)), dtype=int)
    assert np.abs(pixels[8, 3] - (255, 0, 0)).max() < 12
    assert np.abs(pixels[8, 12] - (255, 255, 255)).max() < 12


def test_sixteen_bit_grayscale_is_scaled_not_clipped():
    values = np.full((8, 8), 32768, dtype=np.uint16)  # mid-gray in 16 bits
    (image,), _ = handler.read_images(png_bytes(Image.fromarray(values)), "image/png")
    pixels = np.asarray(Image.open(io.BytesIO(image.data)), dtype=int)
    assert np.abs(pixels - 127).max() <= 2


def test_truncated_jpeg_is_400():
    assert refused(400, handler.read_images, jpeg_bytes((256, 256))[:-400], "image/jpeg").startswith("the image is truncated or corrupt")


def test_corrupt_png_is_400():
    data = bytearray(jpeg_bytes((64, 64), fmt="PNG"))
    data[60:70] = b"\x00" * 10  # inside the image data: the chunk checksum no longer matches
    assert refused(400, handler.read_images, bytes(data), "image/png").startswith("the image is truncated or corrupt")


@pytest.mark.parametrize(
    ("body", "content_type", "status", "start"),
    [
        (b"", "image/jpeg", 400, "the request body is empty"),
        (b"", "application/x-image", 400, "the request body is empty"),
        (b"hello, this is text", "application/x-image", 400, "the image is not an image that can be read"),
        (b"\xff\xd8\xff\xe0", "image/jpeg", 400, "the image is"),
        (b"hello", "text/plain", 415, "content type 'text/plain' is not accepted; send one of application/x-image"),
        (b"{}", "application/jsonlines", 415, "content type 'application/jsonlines' is not accepted"),
        (b"hello", None, 415, "a request without a content type is not accepted"),
    ],
)
def test_bad_requests_are_refused_with_their_status(body, content_type, status, start):
    message = refused(status, handler.read_images, body, content_type)
    assert message.startswith(start), message


@pytest.mark.parametrize(
    ("body", "start"),
    [
        (b"", "the request body is not valid JSON"),
        (b"{not json", "the request body is not valid JSON"),
        (b"\xff\xfe", "the request body is not valid JSON"),
        (b"[1, 2]", 'a JSON request must be an object {"instances": [...]}'),
        (b'{"images": []}', 'a JSON request must be an object {"instances": [...]}'),
        (b'{"instances": [], "x": 1}', "unknown key(s) in the JSON request: x (expected instances, score_threshold"),
        (b'{"instances": []}', '"instances" must be a non-empty list of images'),
        (b'{"instances": {"b64": "AAAA"}}', '"instances" must be a non-empty list of images'),
        (b'{"instances": [{"b64": "not base64!"}]}', "instances[0]: not valid base64"),
        (b'{"instances": [{"b64": ""}]}', "instances[0] is empty"),
        (b'{"instances": [{"image": "AAAA"}]}', 'instances[0]: an object instance must be {"b64"'),
        (b'{"instances": [42]}', 'instances[0]: expected {"b64": "..."}, a base64 string or an H x W x 3 pixel list, not int'),
        (b'{"instances": ["aGVsbG8="]}', "instances[0] is not an image that can be read"),
        (b'{"instances": [[[1, 2, 3], [4, 5]]]}', "instances[0]: a pixel list must be H x W x 3"),
        (b'{"instances": [[[[1, 2]]]]}', "instances[0]: a pixel list must be H x W x 3 numbers from 0 to 255, not of shape 1 x 1 x 2"),
        (b'{"instances": [[[[1, 2, 300]]]]}', "instances[0]: pixel values must be numbers from 0 to 255"),
        (b'{"instances": [[[["a", "b", "c"]]]]}', "instances[0]: a pixel list must be H x W x 3"),
        (b'{"instances": [[]]}', "instances[0]: a pixel list must be H x W x 3"),
    ],
)
def test_bad_json_requests_are_400(body, start):
    message = refused(400, handler.read_images, body, "application/json")
    assert message.startswith(start), message


def test_the_failing_instance_is_named():
    body = json.dumps({"instances": [b64(jpeg_bytes()), b64(jpeg_bytes((256, 256))[:-400])]})
    assert refused(400, handler.read_images, body.encode(), "application/json").startswith("instances[1] is truncated or corrupt")


def test_size_limits_are_413():
    big = jpeg_bytes((400, 400), quality=100)
    assert len(big) > SMALL.max_image_bytes
    message = refused(413, handler.read_images, big, "image/jpeg", SMALL)
    assert message == f"the image is {len(big)} bytes; the limit is 50000 (MAX_IMAGE_BYTES)"
    wide = jpeg_bytes((400, 300), quality=10)  # few bytes, too many pixels
    assert len(wide) < SMALL.max_image_bytes
    assert (
        refused(413, handler.read_images, wide, "image/jpeg", SMALL)
        == "the image is 400 x 300 = 120000 pixels; the limit is 90000 (MAX_IMAGE_PIXELS)"
    )
    as_json = json.dumps({"instances": [b64(big)]}).encode()
    assert refused(413, handler.read_images, as_json, "application/json", SMALL).startswith("instances[0] is about")
    four = json.dumps({"instances": [b64(jpeg_bytes())] * 4}).encode()
    assert refused(413, handler.read_images, four, "application/json", SMALL) == "4 instances in one request; the limit is 3 (MAX_BATCH)"
    huge_body = b'{"instances": ["' + b"A" * 1_400_000 + b'"]}'
    assert refused(413, handler.read_images, huge_body, "application/json", SMALL).startswith("the request body is")


def test_default_batch_limit_is_16():
    body = json.dumps({"instances": [b64(jpeg_bytes((8, 8)))] * 17}).encode()
    assert refused(413, handler.read_images, body, "application/json") == "17 instances in one request; the limit is 16 (MAX_BATCH)"
    images, _ = handler.read_images(json.dumps({"instances": [b64(jpeg_bytes((8, 8)))] * 16}).encode(), "application/json")
    assert len(images) == 16


def test_build_request_is_tf_serving_row_format():
    request = handler.build_request([b"\x00\xff", b"abc"])
    assert json.loads(request) == {"instances": [{"b64": "AP8="}, {"b64": "YWJj"}]}


# --- reading the model's answer -------------------------------------------------------------------------


def test_detections_are_thresholded_sorted_capped_and_scaled():
    rows = [(2, 0.4, 0.5, 0.5, 1.0, 1.0), (1, 0.9, 0.1, 0.2, 0.5, 0.6), (1, 0.29, 0, 0, 1, 1), (7, 0.6, 0.0, 0.0, 0.123456, 0.333333)]
    content = reply(prediction(rows))
    [answer] = handler.parse_response(content, [(640, 480)], Options(0.3, 100), LABELS)
    assert answer["image"] == {"width": 640, "height": 480}
    assert [(d["class"], d["class_id"], d["score"]) for d in answer["detections"]] == [("dent", 1, 0.9), ("id 7", 7, 0.6), ("scratch", 2, 0.4)]
    assert answer["detections"][0]["box"] == {"xmin": 128.0, "ymin": 48.0, "xmax": 384.0, "ymax": 240.0}
    assert answer["detections"][0]["box_normalized"] == {"xmin": 0.2, "ymin": 0.1, "xmax": 0.6, "ymax": 0.5}
    assert answer["detections"][1]["box"] == {"xmin": 0.0, "ymin": 0.0, "xmax": 213.3, "ymax": 59.3}
    assert answer["detections"][1]["box_normalized"] == {"xmin": 0.0, "ymin": 0.0, "xmax": 0.3333, "ymax": 0.1235}
    [capped] = handler.parse_response(content, [(640, 480)], Options(0.5, 1), LABELS)
    assert [d["score"] for d in capped["detections"]] == [0.9]
    [everything] = handler.parse_response(content, [(640, 480)], Options(0.0, 100), LABELS)
    assert [d["score"] for d in everything["detections"]] == [0.9, 0.6, 0.4, 0.29]  # the 3 padding rows are past num_detections


def test_only_num_detections_rows_count_and_non_finite_rows_are_dropped():
    rows = [(1, 0.9, 0.1, 0.1, 0.2, 0.2), (1, math.nan, 0.1, 0.1, 0.2, 0.2), (2, 0.8, math.inf, 0.1, 0.2, 0.2), (2, 0.7, 0.1, 0.1, 0.2, 0.2)]
    content = json.dumps({"predictions": [prediction(rows, count=3)]}).encode()  # json writes NaN, as TF Serving does
    assert b"NaN" in content
    [answer] = handler.parse_response(content, [(10, 10)], Options(0.0, 100), LABELS)
    assert [d["score"] for d in answer["detections"]] == [0.9]
    [nan_count] = handler.parse_response(reply(prediction(rows, count=math.nan)), [(10, 10)], Options(0.0, 100), LABELS)
    assert nan_count["detections"] == []


def test_boxes_are_clipped_and_ordered():
    [answer] = handler.parse_response(reply(prediction([(1, 0.9, 1.2, 0.8, -0.1, 0.2)])), [(100, 50)], Options(), LABELS)
    assert answer["detections"][0]["box"] == {"xmin": 20.0, "ymin": 0.0, "xmax": 80.0, "ymax": 50.0}


def test_one_entry_per_image_in_request_order():
    content = reply(prediction([(1, 0.9, 0, 0, 0.5, 0.5)]), prediction([(2, 0.8, 0, 0, 0.5, 0.5)]))
    answers = handler.parse_response(content, [(10, 20), (30, 40)], Options(), LABELS)
    assert [(a["image"]["width"], a["detections"][0]["class"], a["detections"][0]["box"]["ymax"]) for a in answers] == [
        (10, "dent", 10.0),
        (30, "scratch", 20.0),
    ]


@pytest.mark.parametrize(
    ("content", "start"),
    [
        (b"<html>oops</html>", "the model server's reply is not JSON"),
        (b'{"outputs": {}}', "the model server's reply has no predictions for 1 image(s)"),
        (b'{"predictions": [{}, {}]}', "the model server's reply has 2 predictions for 1 image(s)"),
        (b'{"predictions": [{"detection_scores": [0.5]}]}', "the model server's reply lacks the detection outputs"),
        (b'{"predictions": [[0.5, 0.2]]}', "the model server's reply holds a list where the detections of an image were expected"),
        (b'{"predictions": [{"detection_scores": [0.5], "detection_boxes": [[1, 2]], "detection_classes": [1]}]}', "the model server's reply lacks"),
    ],
)
def test_a_malformed_model_reply_is_502(content, start):
    assert refused(502, handler.parse_response, content, [(10, 10)]).startswith(start)


# --- the handlers as the container calls them -----------------------------------------------------------


def test_handlers_round_trip_with_exif_scaling():
    data = jpeg_bytes((64, 48), seed=6, exif_orientation=6)
    request = handler.input_handler(io.BytesIO(data), context("image/jpeg"), settings=Settings())
    [upright] = sent(request)
    assert Image.open(io.BytesIO(upright)).size == (48, 64)
    body, content_type = handler.output_handler(Response(200, reply(prediction([(1, 0.87, 0.1, 0.2, 0.5, 0.6)]))), context(), classes=LABELS)
    assert content_type == "application/json"
    found = detection("dent", 1, 0.87, (9.6, 6.4, 28.8, 32.0), (0.2, 0.1, 0.6, 0.5))
    assert json.loads(body) == {"predictions": [{"image": {"width": 48, "height": 64}, "detections": [found]}]}


def test_handler_options_from_environment_custom_attributes_and_body(monkeypatch):
    rows = [(1, 0.9, 0, 0, 1, 1), (2, 0.6, 0, 0, 1, 1), (1, 0.45, 0, 0, 1, 1), (2, 0.35, 0, 0, 1, 1)]

    def scores(data, ctx):
        handler.input_handler(data, ctx)
        body, _ = handler.output_handler(Response(200, reply(prediction(rows))), ctx, classes=LABELS)
        return [d["score"] for d in json.loads(body)["predictions"][0]["detections"]]

    image = jpeg_bytes()
    assert scores(io.BytesIO(image), context()) == [0.9, 0.6, 0.45, 0.35]
    monkeypatch.setenv("SCORE_THRESHOLD", "0.5")
    assert scores(io.BytesIO(image), context()) == [0.9, 0.6]
    assert scores(io.BytesIO(image), context(custom_attributes="score_threshold=0.4;max_detections=2")) == [0.9, 0.6]
    assert scores(io.BytesIO(image), context(custom_attributes="score_threshold=0.4")) == [0.9, 0.6, 0.45]
    body = json.dumps({"instances": [b64(image)], "max_detections": 1}).encode()
    assert scores(io.BytesIO(body), context("application/json", custom_attributes="score_threshold=0.1,max_detections=3")) == [0.9]
    monkeypatch.setenv("MAX_DETECTIONS", "many")
    with pytest.raises(ValueError, match="MAX_DETECTIONS"):
        handler.input_handler(io.BytesIO(image), context())


def test_handler_refuses_bad_options_and_accept_before_the_model_runs():
    image = jpeg_bytes()
    assert refused(400, handler.input_handler, io.BytesIO(image), context(custom_attributes="max_detections=0")).startswith("invalid max_detections")
    assert refused(406, handler.input_handler, io.BytesIO(image), context(accept="text/csv")).startswith("cannot answer as 'text/csv'")


def test_input_handler_takes_bytes_too():
    data = jpeg_bytes()
    assert sent(handler.input_handler(data, context())) == [data]


def test_tf_serving_failure_is_502_with_its_message_but_its_400_stays_a_400():
    handler.input_handler(io.BytesIO(jpeg_bytes()), context())
    failure = Response(400, b'{ "error": "Invalid JPEG data or crop window, data size 1234" }')
    message = refused(400, handler.output_handler, failure, context(), classes=LABELS)
    assert message == "the model could not read the input: Invalid JPEG data or crop window, data size 1234"
    handler.input_handler(io.BytesIO(jpeg_bytes()), context())
    assert (
        refused(502, handler.output_handler, Response(503, b"upstream down"), context(), classes=LABELS)
        == "the model server answered 503: upstream down"
    )


def test_a_failed_request_leaves_nothing_for_the_next_output_handler():
    handler.input_handler(io.BytesIO(jpeg_bytes()), context())
    refused(400, handler.input_handler, io.BytesIO(b""), context())
    with pytest.raises(RuntimeError, match="without a successful input_handler"):
        handler.output_handler(Response(200, reply(prediction([]))), context(), classes=LABELS)


def test_each_thread_keeps_its_own_request():
    """Two requests in flight at once, in two threads, each get their own image size back."""
    barrier = threading.Barrier(2)
    results = {}

    def serve(size):
        handler.input_handler(io.BytesIO(jpeg_bytes(size)), context())
        barrier.wait()  # both inputs handled before either output
        body, _ = handler.output_handler(Response(200, reply(prediction([(1, 0.9, 0, 0, 1, 1)]))), context(), classes=LABELS)
        results[size] = json.loads(body)["predictions"][0]["image"]

    threads = [threading.Thread(target=serve, args=(size,)) for size in ((64, 48), (16, 32))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {(64, 48): {"width": 64, "height": 48}, (16, 32): {"width": 16, "height": 32}}


def test_handler_loads_standalone_in_the_model_archive_layout(tmp_path):
    """As the container does: the file alone at code/inference.py, loaded by path, model.json beside it
    (then only one folder up, then none: classes named by id); no TensorFlow and none of the project's
    modules get imported."""
    model = tmp_path / "model"
    (model / "code").mkdir(parents=True)
    shutil.copy(MODULE, model / "code" / "inference.py")
    (model / "code" / "model.json").write_text(model_json({"1": "beside", "2": "other"}))
    (model / "model.json").write_text(model_json({"1": "root", "2": "other"}))
    (tmp_path / "image.jpg").write_bytes(jpeg_bytes((64, 48)))
    (tmp_path / "reply.json").write_bytes(reply(prediction([(1, 0.9, 0.1, 0.1, 0.5, 0.5)])))
    script = f"""
import importlib.util, io, json, os, sys
from collections import namedtuple
spec = importlib.util.spec_from_file_location("inference", {str(model / "code" / "inference.py")!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
Context = namedtuple("Context", "request_content_type accept_header custom_attributes rest_uri model_name")
Response = namedtuple("Response", "status_code content")
ctx = Context("image/jpeg", "application/json", None, "http://localhost:8501/v1/models/model:predict", "model")
names = []
for found in ({str(model / "code" / "model.json")!r}, {str(model / "model.json")!r}, None):
    module.input_handler(io.BytesIO(open({str(tmp_path / "image.jpg")!r}, "rb").read()), ctx)
    body, kind = module.output_handler(Response(200, open({str(tmp_path / "reply.json")!r}, "rb").read()), ctx)
    names.append(json.loads(body)["predictions"][0]["detections"][0]["class"])
    if found:
        os.remove(found)
error = module.RequestError(413, "too big")
print(json.dumps({{"names": names, "error": str(error), "kind": kind,
                  "foreign": sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "containers", "tests", "requests"))}}))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result == {"names": ["beside", "root", "id 1"], "error": '{"error": "too big", "status": 413}', "kind": "application/json", "foreign": []}


def test_without_model_json_classes_are_named_by_id_with_a_warning(monkeypatch, caplog):
    monkeypatch.setenv("MODEL_METADATA_PATH", " ")  # blank: not set
    assert handler.find_model_metadata() is None  # none beside containers/inference/inference.py or one folder up
    handler.input_handler(io.BytesIO(jpeg_bytes()), context())
    with caplog.at_level("WARNING", logger="inference"):
        body, _ = handler.output_handler(Response(200, reply(prediction([(2, 0.9, 0, 0, 1, 1)]))), context())
    assert json.loads(body)["predictions"][0]["detections"][0]["class"] == "id 2"
    assert "no model.json beside this handler or one folder up (set MODEL_METADATA_PATH)" in caplog.text


def test_handler_imports_only_the_standard_library_numpy_and_pillow():
    imported = set()
    for line in MODULE.read_text().splitlines():
        words = line.split()
        if words[:1] in (["import"], ["from"]) and not line.startswith(" "):
            imported.add(words[1].split(".")[0])
    assert imported - set(sys.stdlib_module_names) == {"numpy", "PIL"}
