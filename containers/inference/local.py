"""The endpoint on this machine: an exported model folder served in-process exactly as SageMaker's
TensorFlow Serving container serves it, for the local engine, the CLI and the tests.

A request goes through the same steps as on SageMaker: `input_handler` (containers/inference/inference.py)
-> TF Serving's REST predict API, emulated here (the JSON request parsed, `{"b64": ...}` decoded, the
`serving_default` signature called on the batch, its outputs written back as TF Serving's row-format JSON,
NaN included) -> `output_handler`. Where the container would answer every handler exception with a 500,
this endpoint answers a `RequestError` with its real status; anything else is a 500 with `{"error": ...}`,
as in the container. Bad input never raises.

The class names are the model folder's own (its model.json), passed to the handler per call, so two
endpoints in one process never share them through the environment.
"""

from __future__ import annotations

import base64
import io
import json
import logging
from collections import namedtuple
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from containers.inference import inference as handler
from containers.inference.inference import JSON, MODEL_METADATA, RequestError, Settings

log = logging.getLogger(__name__)

SAVED_MODEL = "1"
SIGNATURE = "serving_default"
MODEL_NAME = "model"  # the name SageMaker's container gives TF Serving's single model
REST_URI = f"http://localhost:8501/v1/models/{MODEL_NAME}:predict"

# The fields of the context the container passes to the handlers (an immutable namedtuple there too).
Context = namedtuple(
    "Context", "model_name model_version method rest_uri grpc_uri custom_attributes request_content_type accept_header content_length"
)


@dataclass(frozen=True)
class Reply:
    """What the handler reads of TF Serving's answer (a `requests.Response` in the container)."""

    status_code: int
    content: bytes


class LocalEndpoint:
    """An exported model folder (`1/` SavedModel and `model.json`) answering endpoint requests.

    `settings` fixes the limits and default options; without it they come from the environment at each
    request, as in the container. Safe to call from several threads (the handlers keep per-request state
    per thread, and a loaded signature may be called concurrently)."""

    def __init__(self, model_dir: str | Path, *, settings: Settings | None = None):
        self.model_dir = Path(model_dir)
        self.settings = settings
        saved_model = self.model_dir / SAVED_MODEL
        if not saved_model.is_dir():
            raise FileNotFoundError(f"{self.model_dir}: no {SAVED_MODEL}/ SavedModel (expected a model folder as training exports it)")
        metadata = self.model_dir / MODEL_METADATA
        if not metadata.is_file():
            raise FileNotFoundError(f"{self.model_dir}: no {MODEL_METADATA} (expected beside {SAVED_MODEL}/, as training exports it)")
        self.classes = handler.load_classes(metadata)
        import tensorflow as tf

        self._tf = tf
        self._loaded = tf.saved_model.load(str(saved_model))  # kept: the signature needs its variables alive
        signatures = getattr(self._loaded, "signatures", {})
        if SIGNATURE not in signatures:
            raise ValueError(f"{saved_model}: the SavedModel has no {SIGNATURE!r} signature (found: {', '.join(signatures) or 'none'})")
        self._signature = signatures[SIGNATURE]
        inputs = list(self._signature.structured_input_signature[1])
        if len(inputs) != 1:
            raise ValueError(f"{saved_model}: the {SIGNATURE!r} signature takes {len(inputs)} inputs; an image detector takes one")
        self._input = inputs[0]

    @property
    def signature(self):
        """The loaded `serving_default` signature: what TF Serving calls (encoded images in, detections out)."""
        return self._signature

    def invoke(self, body: bytes, content_type: str, custom_attributes: str | None = None, accept: str = JSON) -> tuple[int, bytes, str]:
        """One endpoint request -> (HTTP status, body, content type), as InvokeEndpoint would answer it."""
        data = bytes(body or b"")
        context = Context(MODEL_NAME, None, "POST", REST_URI, None, custom_attributes, content_type, accept, len(data))
        try:
            request = handler.input_handler(io.BytesIO(data), context, settings=self.settings)
            status, reply = self.serve_predict(request)
            answer, answer_type = handler.output_handler(Reply(status, reply), context, classes=self.classes)
            return 200, answer.encode("utf-8"), answer_type
        except RequestError as exc:
            return exc.status, exc.body(), JSON
        except Exception as exc:  # what the container does with any other handler failure
            log.exception("local endpoint: request failed")
            return 500, json.dumps({"error": str(exc)}).encode("utf-8"), JSON

    def predict_image(self, image_bytes: bytes, *, score_threshold: float | None = None, max_detections: int | None = None) -> list[dict]:
        """The detections of one image (raw JPEG/PNG bytes). Options left None keep the endpoint's defaults.
        Raises RequestError, with the endpoint's status and message, when the image is refused."""
        options = {"score_threshold": score_threshold, "max_detections": max_detections}
        attributes = ";".join(f"{name}={value}" for name, value in options.items() if value is not None) or None
        status, body, _ = self.invoke(image_bytes, "application/x-image", attributes)
        answer = json.loads(body)
        if status != 200:
            raise RequestError(status, answer.get("error", body.decode("utf-8", "replace")))
        return answer["predictions"][0]["detections"]

    def serve_predict(self, request: str | bytes) -> tuple[int, bytes]:
        """TF Serving's REST predict on the model: row-format request -> (status, row-format reply).
        Client mistakes are a 400 with `{"error": ...}`, as TF Serving answers them."""
        try:
            document = json.loads(request)
            instances = document["instances"]
            images = [self._instance(item) for item in instances]
        except (ValueError, KeyError, TypeError) as exc:
            return 400, _error(f"malformed predict request: {exc}")
        if not images:
            return 400, _error("no instances in the predict request")
        tf = self._tf
        try:
            outputs = self._signature(**{self._input: tf.constant(images, dtype=tf.string)})
        except tf.errors.InvalidArgumentError as exc:
            return 400, _error(exc.message)
        except tf.errors.OpError as exc:
            return 500, _error(exc.message)
        arrays = {name: value.numpy() for name, value in outputs.items()}
        rows = [{name: array[index].tolist() for name, array in arrays.items()} for index in range(len(images))]
        return 200, json.dumps({"predictions": rows}).encode("utf-8")  # NaN and Infinity written as TF Serving writes them

    def _instance(self, item: Any) -> bytes:
        """One instance of the row-format request: `{"b64": ...}` (binary) for this signature's string input."""
        if isinstance(item, dict) and set(item) == {"b64"}:
            return base64.b64decode(item["b64"], validate=True)
        if isinstance(item, dict) and set(item) == {self._input} and isinstance(item[self._input], dict):
            return self._instance(item[self._input])
        raise ValueError(f'an instance of a string input must be {{"b64": ...}}, not {type(item).__name__}')


def _error(message: str) -> bytes:
    return json.dumps({"error": message}).encode("utf-8")
