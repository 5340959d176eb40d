"""The handler inside a stand-in of SageMaker's TensorFlow Serving container 2.20: the file loaded by path as
the container loads it (python_service.py `_import_handlers`: spec_from_file_location("inference", ...)),
called from a real falcon app at the container's falcon version (3.1.0, pinned in pyproject.toml) that, like
the 2.20 container, passes a falcon.HTTPError through and answers any other exception with 500. Every refusal
gets its own 4xx (or 502) with the same body the local endpoint gives."""

from __future__ import annotations

import importlib.util
import json
from collections import namedtuple

import falcon
import falcon.testing
import pytest

from containers.inference import inference as package_handler
from tests.containers.inference.test_handler import MODULE, png_bytes, prediction, reply
from tests.support import jpeg_bytes

# The context the container builds for the handlers (tfs_utils.parse_request).
Context = namedtuple(
    "Context", "model_name model_version method rest_uri grpc_uri custom_attributes request_content_type accept_header content_length"
)
Reply = namedtuple("Reply", "status_code content")


def load_as_the_container_does():
    spec = importlib.util.spec_from_file_location("inference", MODULE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Invocations:
    """python_service.py's invocation path, reduced to what the handler sees; TF Serving is `serving`."""

    def __init__(self, module, serving):
        self.module, self.serving = module, serving

    def on_post(self, req, res):
        context = Context(
            "model", None, "POST", "http://localhost:8501/v1/models/model:predict", None,
            req.get_header("X-Amzn-SageMaker-Custom-Attributes"), req.content_type, req.accept, req.content_length,
        )  # fmt: skip
        try:
            request = self.module.input_handler(req.bounded_stream, context)
            res.text, res.content_type = self.module.output_handler(self.serving(request), context)
        except falcon.HTTPError:
            raise  # the 2.20 container's change: a handler's HTTPError keeps its status
        except Exception as exc:
            res.status = falcon.HTTP_500
            res.text = json.dumps({"error": str(exc)})


@pytest.fixture
def container(tmp_path, monkeypatch):
    metadata = tmp_path / "model.json"
    metadata.write_text(json.dumps({"classes": {"1": "dent", "2": "scratch"}}))
    monkeypatch.setenv("MODEL_METADATA_PATH", str(metadata))
    monkeypatch.setenv("MAX_IMAGE_BYTES", "60000")
    module = load_as_the_container_does()
    answers = {"reply": Reply(200, reply(prediction([(1, 0.9, 0.1, 0.1, 0.5, 0.5)])))}
    app = falcon.App()
    app.add_route("/invocations", Invocations(module, lambda request: answers["reply"]))
    return falcon.testing.TestClient(app), answers


def local_refusal(body: bytes, content_type: str, accept: str = "application/json") -> package_handler.RequestError:
    """What the handler imported as a package (the local endpoint's way) raises for the same request."""
    settings = package_handler.Settings(max_image_bytes=60000)
    with pytest.raises(package_handler.RequestError) as caught:
        package_handler.input_handler(body, Context(*[None] * 6, content_type, accept, len(body)), settings=settings)
    return caught.value


@pytest.mark.parametrize(
    ("body", "content_type", "accept", "status", "falcon_class"),
    [
        (b"", "image/jpeg", "application/json", 400, "HTTPBadRequest"),
        (b"not an image at all", "image/jpeg", "application/json", 400, "HTTPBadRequest"),
        (b'{"instances": 5}', "application/json", "application/json", 400, "HTTPBadRequest"),
        (b"x", "text/plain", "application/json", 415, "HTTPUnsupportedMediaType"),
        (b"x", "image/jpeg", "text/html", 406, "HTTPNotAcceptable"),
        (b"\xff" * 70000, "image/jpeg", "application/json", 413, "HTTPPayloadTooLarge"),
    ],
)
def test_each_bad_input_gets_its_status_and_the_local_message(container, body, content_type, accept, status, falcon_class):
    client, _ = container
    result = client.simulate_post("/invocations", body=body, headers={"Content-Type": content_type, "Accept": accept})
    assert result.status_code == status
    refused = local_refusal(body, content_type, accept)
    assert refused.status == status
    if accept == "application/json":
        assert result.json == {"error": refused.message, "status": status}  # the same body as the local endpoint's
    else:
        assert result.text == ""  # falcon writes an error body only in a type the client accepts
    module = load_as_the_container_does()
    assert issubclass(module.container_errors()[status], getattr(falcon, falcon_class))


def test_a_good_image_is_answered_and_a_failing_model_server_is_a_502(container):
    client, answers = container
    good = client.simulate_post("/invocations", body=jpeg_bytes(), headers={"Content-Type": "image/jpeg"})
    assert good.status_code == 200 and good.json["predictions"][0]["detections"][0]["class"] == "dent"
    answers["reply"] = Reply(503, b'{"error": "Servable not found"}')
    failed = client.simulate_post("/invocations", body=png_bytes_of_small_image(), headers={"Content-Type": "image/png"})
    assert failed.status_code == 502
    assert failed.json == {"error": "the model server answered 503: Servable not found", "status": 502}


def test_in_an_older_container_the_status_survives_in_the_500_s_message():
    """Up to 2.19 every handler exception is a 500 with {"error": str(exc)}: str() is the local body's JSON line."""
    module = load_as_the_container_does()
    with pytest.raises(falcon.HTTPError) as caught:
        module.input_handler(b"", Context(*[None] * 6, "image/jpeg", "application/json", 0))
    assert json.loads(str(caught.value)) == {"error": "the request body is empty (expected the bytes of a JPEG or PNG image)", "status": 400}


def test_imported_as_a_package_the_handler_raises_its_own_error_even_with_falcon_installed():
    with pytest.raises(package_handler.RequestError):
        package_handler.input_handler(b"", Context(*[None] * 6, "image/jpeg", "application/json", 0))
    # falcon is importable here (every status has its falcon error); the package import still keeps RequestError.
    assert sorted(package_handler.container_errors()) == [400, 406, 413, 415, 502]


def png_bytes_of_small_image() -> bytes:
    from PIL import Image

    return png_bytes(Image.new("RGB", (8, 8), "white"))
