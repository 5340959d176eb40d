"""The endpoint's request handler: SageMaker's TensorFlow Serving container loads this file from
`code/inference.py` in model.tar.gz and calls, for each request, in one thread:

    input_handler(data, context)      request body -> the JSON that is POSTed to TF Serving's REST predict API
    output_handler(response, context) TF Serving's reply -> (body, content type) returned to the caller

The container loads it by file path, not as a package, with the model's `code/lib` on the path (numpy and
Pillow, see libraries.py), so it imports nothing else but the standard library (and falcon, the container's
own, when it is there). The same functions serve locally
(`containers/inference/local.py`), which is how the tests reach them.

Requests. Raw image bytes (`application/x-image`, `image/jpeg`, `image/png`) are the primary payload;
`application/json` takes `{"instances": [...]}`, each instance `{"b64": "..."}`, a bare base64 string, or
an H x W x 3 list of 0-255 pixel values (what the 2021 notebooks sent). Every image is fully decoded with
Pillow first, so a broken or oversized one is refused here with a 4xx rather than failing inside the model;
EXIF-rotated and non-RGB images are turned upright / converted and re-encoded as JPEG (training stores
images upright, as the annotator saw them); valid RGB JPEGs and PNGs pass through byte for byte.

Options: `score_threshold` and `max_detections`, defaulting to the environment (`SCORE_THRESHOLD`,
`MAX_DETECTIONS`), overridden per request by the custom attributes header
(`X-Amzn-SageMaker-Custom-Attributes: score_threshold=0.5;max_detections=10`) and, for JSON requests, by
top-level keys of the body (which win). Limits from the environment: `MAX_IMAGE_BYTES`, `MAX_IMAGE_PIXELS`,
`MAX_BATCH` (`SERVING_ENVIRONMENT` names them all; `serving_environment` is what a deployer sets).

Class names come from the model's `model.json`, which training writes at the model's root (`"classes":
{"1": "dent", ...}`): `MODEL_METADATA_PATH` when set, else `model.json` beside this file, else one folder up
(this file is `code/inference.py` in the model). Without one, detections are named `id N`.

Errors. Bad input raises `RequestError`, whose text is one JSON line holding the real status
(`{"error": "...", "status": 413}`). Statuses: 400 (empty, not an image, truncated or corrupt, bad JSON or
option), 406 (the Accept header excludes JSON), 413 (too many bytes, pixels or instances), 415 (content type),
502 (TF Serving failed or answered something unexpected). The local endpoint answers with that status.
Inside the serving container (this file loaded by path, as the container loads it, with falcon importable),
the handlers raise falcon's HTTPError of that status instead, with the same body: SageMaker's TF Serving
container 2.20 passes a falcon.HTTPError through with its own status (earlier containers answer every handler
exception with 500 and `{"error": str(exc)}`, and str() is then the same JSON line, so the status survives
in the message). Both are read in aws/deep-learning-containers' python_service.py: 2.20's
`_handle_invocation_post` has `except falcon.HTTPError: raise` before the generic 500, added by #6243 (the 2.20
inference images). In 2.20 the container also raises a falcon HTTPError itself when TF Serving answers non-200,
so there `output_handler` only sees successful answers; its non-200 branch serves 2.19 and the local endpoint.
The runtime API answers the client ModelError (424) with OriginalStatusCode (botocore's sagemaker-runtime model).

Answer: `{"predictions": [{"image": {"width", "height"}, "detections": [{"class", "class_id", "score",
"box", "box_normalized"}, ...]}, ...]}`, one entry per image in request order, detections best first, boxes
in pixels of the image as sent (after EXIF turning) and normalised.
"""

# No `from __future__ import annotations`: the container executes this file as a module that is not in
# sys.modules, and dataclasses cannot resolve string annotations of such a module (it fails on import).
import base64
import binascii
import functools
import io
import json
import logging
import math
import os
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

log = logging.getLogger("inference")

JSON = "application/json"
IMAGE_TYPES = frozenset({"application/x-image", "image/jpeg", "image/png"})
ACCEPTED_TYPES = (*sorted(IMAGE_TYPES), JSON)
MODEL_METADATA = "model.json"
MODEL_METADATA_ENV = "MODEL_METADATA_PATH"
EXPECTED_CLASSES = 'expected model.json as training writes it, with "classes": {"1": "dent", ...} (class ids from 1 -> names)'
# The environment variables the endpoint reads (Settings.from_env): its default options, then its limits.
SERVING_ENVIRONMENT = ("SCORE_THRESHOLD", "MAX_DETECTIONS", "MAX_IMAGE_BYTES", "MAX_IMAGE_PIXELS", "MAX_BATCH")
OPTION_NAMES = ("score_threshold", "max_detections")
JSON_KEYS = ("instances", *OPTION_NAMES)

PASS_THROUGH_FORMATS = frozenset({"JPEG", "MPO", "PNG"})  # what the model decodes as it is (MPO: a phone's JPEG)
JPEG_QUALITY = 95  # for images turned upright or converted to RGB
EXIF_ORIENTATION = 0x0112
MIB = 1024 * 1024
JSON_OVERHEAD = 4 / 3  # base64 inflates bytes by a third


class RequestError(Exception):
    """A request refused for what it holds (status 4xx), or a failed model server (502).

    `str()` is one JSON line, `{"error": message, "status": status}`: the SageMaker container wraps it as
    `{"error": str(exc)}` with status 500, so the real status travels inside the message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message

    def __str__(self) -> str:
        return json.dumps({"error": self.message, "status": self.status})

    def body(self) -> bytes:
        """The answer's body where the real status can be set (the local endpoint)."""
        return str(self).encode("utf-8")


# falcon's names for the statuses the handler answers (falcon 4 renamed HTTPPayloadTooLarge).
_FALCON_NAMES = {
    400: ("HTTPBadRequest",),
    406: ("HTTPNotAcceptable",),
    413: ("HTTPContentTooLarge", "HTTPPayloadTooLarge"),
    415: ("HTTPUnsupportedMediaType",),
    502: ("HTTPBadGateway",),
}


def _in_container() -> bool:
    """True when SageMaker's serving container runs this file: loaded by path as a top-level module (the
    local endpoint and the tests import it as containers.inference.inference)."""
    return not __package__


@functools.cache
def container_errors() -> dict[int, type]:
    """status -> a falcon.HTTPError subclass whose body and str() are RequestError's JSON; {} without falcon."""
    try:
        import falcon
    except ImportError:
        return {}

    def to_dict(self, obj_type=dict):
        result = obj_type()
        result["error"] = self.refused.message
        result["status"] = self.refused.status
        return result

    def text(self) -> str:
        return str(self.refused)

    errors = {}
    for status, names in _FALCON_NAMES.items():
        base = next(getattr(falcon, name) for name in names if hasattr(falcon, name))
        errors[status] = type(f"Refused{status}", (base,), {"to_dict": to_dict, "__str__": text, "__repr__": text})
    return errors


def for_container(exc: RequestError) -> Exception:
    """What a handler raises for a refused request: falcon's error of the status inside the container, else `exc`."""
    kind = container_errors().get(exc.status) if _in_container() else None
    if kind is None:
        return exc
    error = kind(description=exc.message)
    error.refused = exc
    return error


# ---------------------------------------------------------------------------------------------------------
# Settings and options


@dataclass(frozen=True)
class Options:
    """Per-request choices about which detections to return."""

    score_threshold: float = 0.3
    max_detections: int = 100


@dataclass(frozen=True)
class Settings:
    """The endpoint's limits and default options, from its environment variables."""

    max_image_bytes: int = 10 * MIB
    max_image_pixels: int = 40_000_000
    max_batch: int = 16
    options: Options = Options()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """Read from the environment (the model's `Environment` on SageMaker); unset or empty variables keep
        the defaults. A bad value is the deployer's mistake, so it raises ValueError naming the variable."""
        env = os.environ if environ is None else environ
        default = cls()

        def number(name: str, fallback: float, parse) -> Any:
            text = env.get(name, "").strip()
            if not text:
                return fallback
            try:
                return parse(name.lower(), text)
            except RequestError as exc:
                raise ValueError(f"environment variable {name}={text!r}: {exc.message}") from None

        threshold, detections, image_bytes, image_pixels, batch = SERVING_ENVIRONMENT
        return cls(
            max_image_bytes=number(image_bytes, default.max_image_bytes, _positive_int),
            max_image_pixels=number(image_pixels, default.max_image_pixels, _positive_int),
            max_batch=number(batch, default.max_batch, _positive_int),
            options=Options(
                score_threshold=number(threshold, default.options.score_threshold, _threshold),
                max_detections=number(detections, default.options.max_detections, _positive_int),
            ),
        )


def serving_environment(score_threshold: float, max_detections: int) -> dict[str, str]:
    """The environment a deployer gives the model: its default options (the limits keep the defaults above).
    Read back as the endpoint will read it, so a bad value fails the deployment, not every request
    (ValueError naming the variable)."""
    threshold, detections = SERVING_ENVIRONMENT[:2]
    environment = {threshold: str(score_threshold), detections: str(max_detections)}
    Settings.from_env(environment)
    return environment


def _positive_int(name: str, value: object) -> int:
    """An integer >= 1, given as a JSON number or as text (custom attributes are text)."""
    text = str(value).strip() if isinstance(value, int | float | str) and not isinstance(value, bool) else ""
    match = re.fullmatch(r"\+?(\d+)(?:\.0*)?", text)  # 10, "10", 10.0 (JSON writers often make floats)
    if match is None or int(match.group(1)) < 1:
        raise RequestError(400, f"invalid {name}: {value!r} (expected a whole number >= 1)")
    return int(match.group(1))


def _threshold(name: str, value: object) -> float:
    """A score threshold in [0, 1], given as a JSON number or as text."""
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if number is None or not 0.0 <= number <= 1.0:  # NaN fails the comparison too
        raise RequestError(400, f"invalid {name}: {value!r} (expected a number from 0 to 1)")
    return number


def parse_custom_attributes(text: str | None) -> dict[str, str]:
    """`key=value` pairs of the custom attributes header, separated by `;` or `,`. The header is free-form
    and may carry a client's own keys (trace ids), so pairs that are not options are kept but never
    rejected; an option named without a value is an error."""
    pairs: dict[str, str] = {}
    for token in re.split(r"[;,]", text or ""):
        key, sep, value = token.partition("=")
        key = key.strip()
        if not key:
            continue
        if not sep and key in OPTION_NAMES:
            raise RequestError(400, f"invalid custom attribute {key!r}: expected {key}=<value>")
        pairs[key] = value.strip()
    return pairs


def parse_options(custom_attributes: str | None = None, body_options: Mapping[str, object] | None = None, defaults: Options = Options()) -> Options:
    """The request's options: the defaults, overridden by the custom attributes, overridden by the JSON
    body's top-level keys. Raises RequestError(400) naming the option for a bad value."""
    given: dict[str, object] = {k: v for k, v in parse_custom_attributes(custom_attributes).items() if k in OPTION_NAMES}
    given.update({k: v for k, v in (body_options or {}).items() if k in OPTION_NAMES})
    threshold = _threshold("score_threshold", given["score_threshold"]) if "score_threshold" in given else defaults.score_threshold
    maximum = _positive_int("max_detections", given["max_detections"]) if "max_detections" in given else defaults.max_detections
    return Options(score_threshold=threshold, max_detections=maximum)


def check_accept(accept: str | None) -> None:
    """Refuse (406) a caller that accepts no JSON, before the model runs rather than after."""
    if not accept or not accept.strip():
        return
    kinds = {part.split(";")[0].strip().lower() for part in accept.split(",")}
    if kinds & {JSON, "application/*", "*/*", "*"}:
        return
    raise RequestError(406, f"cannot answer as {accept!r}: the answer is {JSON}")


def media_type(content_type: str | None) -> str:
    """`image/jpeg; charset=...` -> `image/jpeg`."""
    return (content_type or "").split(";")[0].strip().lower()


# ---------------------------------------------------------------------------------------------------------
# Class names


def read_classes(text: str | bytes, source: str = MODEL_METADATA) -> dict[int, str]:
    """Class id -> name from the `classes` of the model's model.json, which training writes beside the
    SavedModel (`"classes": {"1": "dent", "2": "scratch"}`). Raises ValueError naming `source` and what was
    expected when it cannot be read so."""
    try:
        document = json.loads(text)
    except ValueError as exc:  # UnicodeDecodeError too
        raise ValueError(f"{source}: not JSON ({_brief(exc)}); {EXPECTED_CLASSES}") from None
    classes = document.get("classes") if isinstance(document, dict) else None
    if not isinstance(classes, dict) or not classes:
        raise ValueError(f'{source}: no "classes" mapping; {EXPECTED_CLASSES}')
    names: dict[int, str] = {}
    for key, name in classes.items():
        if not re.fullmatch(r"-?[0-9]+", key):
            raise ValueError(f"{source}: class id {key!r} is not a whole number; {EXPECTED_CLASSES}")
        if int(key) < 1:
            raise ValueError(f"{source}: class id {key} is below 1 (0 is the background); {EXPECTED_CLASSES}")
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{source}: class {key} has no name ({name!r}); {EXPECTED_CLASSES}")
        names[int(key)] = name
    return dict(sorted(names.items()))


def find_model_metadata(environ: Mapping[str, str] | None = None, here: Path | None = None) -> Path | None:
    """Where model.json is: `MODEL_METADATA_PATH` when set (even if wrong, so the mistake is reported), else
    beside this file, else one folder up (the model's root: this file is `code/inference.py` there)."""
    env = os.environ if environ is None else environ
    if env.get(MODEL_METADATA_ENV, "").strip():
        return Path(env[MODEL_METADATA_ENV].strip())
    folder = Path(__file__).resolve().parent if here is None else here
    for candidate in (folder / MODEL_METADATA, folder.parent / MODEL_METADATA):
        if candidate.is_file():
            return candidate
    return None


_classes: dict[tuple[str, int, int], dict[int, str]] = {}
_classes_lock = threading.Lock()


def load_classes(path: str | Path | None = None) -> dict[int, str]:
    """The class names of the model.json at `path` (or `find_model_metadata()`), read once per version of the
    file. Without one the detections are still answered, named `id N`, and a warning is logged: refusing
    every request would hide the model's answer for want of names."""
    found = find_model_metadata() if path is None else Path(path)
    if found is None:
        log.warning("no %s beside this handler or one folder up (set %s): classes are named by id", MODEL_METADATA, MODEL_METADATA_ENV)
        return {}
    try:
        stat = found.stat()
        key = (str(found), stat.st_mtime_ns, stat.st_size)
        with _classes_lock:
            if key not in _classes:
                _classes[key] = read_classes(found.read_bytes(), str(found))
            return _classes[key]
    except OSError as exc:
        raise ValueError(f"{found}: the model's metadata cannot be read ({exc.strerror}); {EXPECTED_CLASSES}") from None


def class_name(classes: Mapping[int, str], class_id: int) -> str:
    return classes.get(class_id, f"id {class_id}")


# ---------------------------------------------------------------------------------------------------------
# Reading images


@dataclass(frozen=True)
class PreparedImage:
    """An image as it goes to the model: its encoded bytes and size (after EXIF turning), and how it was
    changed (None when the bytes are the caller's own)."""

    data: bytes
    width: int
    height: int
    converted: str | None = None


def prepare_image(data: bytes, settings: Settings = Settings(), what: str = "the image") -> PreparedImage:
    """Check one encoded image fully and return what the model should see.

    Refuses (RequestError) an empty body (400), more than `max_image_bytes` (413), something that is not an
    image (400), more than `max_image_pixels` (413, checked from the header before decoding), and a
    truncated or corrupt file (400, found by decoding every pixel)."""
    if not data:
        raise RequestError(400, f"{what} is empty")
    if len(data) > settings.max_image_bytes:
        raise RequestError(413, f"{what} is {len(data)} bytes; the limit is {settings.max_image_bytes} (MAX_IMAGE_BYTES)")
    image = open_image(data, what)
    pixels = image.width * image.height
    if pixels > settings.max_image_pixels:
        raise RequestError(
            413, f"{what} is {image.width} x {image.height} = {pixels} pixels; the limit is {settings.max_image_pixels} (MAX_IMAGE_PIXELS)"
        )
    load_pixels(image, what)
    orientation, source_format, source_mode = _orientation(image), image.format, image.mode
    if orientation == 1 and source_format in PASS_THROUGH_FORMATS and source_mode == "RGB":
        return PreparedImage(data, image.width, image.height)
    reasons = []
    if orientation != 1:
        image = ImageOps.exif_transpose(image)
        reasons.append(f"turned upright (EXIF orientation {orientation})")
    if source_mode != "RGB":
        reasons.append(f"{source_mode} to RGB")
    if source_format not in PASS_THROUGH_FORMATS:
        reasons.append(f"{source_format} to JPEG")
    rgb = to_rgb(image)
    out = io.BytesIO()
    rgb.save(out, format="JPEG", quality=JPEG_QUALITY)
    return PreparedImage(out.getvalue(), rgb.width, rgb.height, ", ".join(reasons))


def open_image(data: bytes, what: str = "the image") -> Image.Image:
    """Pillow's view of the bytes (header only). Pillow's format readers raise many exception types on
    malformed files, so all of them are a 400 here, except its decompression-bomb refusal (413)."""
    try:
        return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise RequestError(413, f"{what} is too large to decode ({exc})") from None
    except UnidentifiedImageError:  # its message names the in-memory buffer's address, which helps nobody
        raise RequestError(400, f"{what} is not an image that can be read (no image format recognised); send JPEG or PNG bytes") from None
    except Exception as exc:  # any reader failure means "not an image we can read"
        raise RequestError(400, f"{what} is not an image that can be read ({_brief(exc)}); send JPEG or PNG bytes") from None


def load_pixels(image: Image.Image, what: str) -> None:
    """Decode every pixel: a truncated or corrupt file fails here, not in the model."""
    try:
        image.load()
    except Image.DecompressionBombError as exc:
        raise RequestError(413, f"{what} is too large to decode ({exc})") from None
    except Exception as exc:  # as in open_image
        raise RequestError(400, f"{what} is truncated or corrupt ({_brief(exc)})") from None


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation, 1 when absent or not one of the eight meaningful values."""
    try:
        value = image.getexif().get(EXIF_ORIENTATION, 1)
    except Exception:  # a broken EXIF block does not make the image unusable
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def to_rgb(image: Image.Image) -> Image.Image:
    """The image in RGB: transparency composited on white (how it looks in a viewer), 16-bit and float
    grayscale scaled to 8 bits (Pillow's own conversion would clip them to white)."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        values = np.asarray(image, dtype=np.float64)
        scale = 257.0 if image.mode != "F" else 1.0
        return Image.fromarray(np.clip(values / scale, 0, 255).astype(np.uint8), "L").convert("RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def pixels_to_png(pixels: object, what: str = "the image") -> bytes:
    """An H x W x 3 list of 0-255 values (the original notebooks' payload) as PNG bytes, lossless."""
    try:
        array = np.asarray(pixels, dtype=np.float64)
    except (ValueError, TypeError):
        raise RequestError(400, f"{what}: a pixel list must be H x W x 3 numbers from 0 to 255 (rows of equal length)") from None
    if array.ndim != 3 or array.shape[2] != 3 or array.shape[0] < 1 or array.shape[1] < 1:
        raise RequestError(400, f"{what}: a pixel list must be H x W x 3 numbers from 0 to 255, not of shape {' x '.join(map(str, array.shape))}")
    if not np.all(np.isfinite(array)) or array.min() < 0 or array.max() > 255:
        raise RequestError(400, f"{what}: pixel values must be numbers from 0 to 255")
    out = io.BytesIO()
    Image.fromarray(np.rint(array).astype(np.uint8), "RGB").save(out, format="PNG", compress_level=1)
    return out.getvalue()


def decode_instances(body: bytes, settings: Settings = Settings()) -> tuple[list[bytes], dict[str, object]]:
    """The encoded images and top-level options of a JSON request `{"instances": [...], "score_threshold":
    ...}`. Each instance is `{"b64": "..."}`, a base64 string, or an H x W x 3 pixel list."""
    limit = int(settings.max_batch * settings.max_image_bytes * JSON_OVERHEAD) + MIB
    if len(body) > limit:
        raise RequestError(413, f"the request body is {len(body)} bytes; the limit for JSON is {limit} (MAX_BATCH x MAX_IMAGE_BYTES, base64)")
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise RequestError(400, f"the request body is not valid JSON ({_brief(exc)})") from None
    if not isinstance(document, dict) or "instances" not in document:
        raise RequestError(400, 'a JSON request must be an object {"instances": [...]}')
    unknown = sorted(set(document) - set(JSON_KEYS))
    if unknown:
        raise RequestError(400, f"unknown key(s) in the JSON request: {', '.join(unknown)} (expected {', '.join(JSON_KEYS)})")
    instances = document["instances"]
    if not isinstance(instances, list) or not instances:
        raise RequestError(400, '"instances" must be a non-empty list of images')
    if len(instances) > settings.max_batch:
        raise RequestError(413, f"{len(instances)} instances in one request; the limit is {settings.max_batch} (MAX_BATCH)")
    images = [_instance_bytes(item, f"instances[{index}]", settings) for index, item in enumerate(instances)]
    return images, {key: document[key] for key in OPTION_NAMES if key in document}


def _instance_bytes(item: object, what: str, settings: Settings) -> bytes:
    if isinstance(item, dict):
        if set(item) != {"b64"} or not isinstance(item["b64"], str):
            raise RequestError(400, f'{what}: an object instance must be {{"b64": "<base64 of the image bytes>"}}')
        item = item["b64"]
    if isinstance(item, list):
        return pixels_to_png(item, what)
    if not isinstance(item, str):
        raise RequestError(400, f'{what}: expected {{"b64": "..."}}, a base64 string or an H x W x 3 pixel list, not {type(item).__name__}')
    if len(item) * 3 // 4 > settings.max_image_bytes + 2:
        raise RequestError(413, f"{what} is about {len(item) * 3 // 4} bytes; the limit is {settings.max_image_bytes} (MAX_IMAGE_BYTES)")
    try:
        return base64.b64decode(item, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(400, f"{what}: not valid base64") from None


def read_images(body: bytes, content_type: str | None, settings: Settings = Settings()) -> tuple[list[PreparedImage], dict[str, object]]:
    """The request's images, checked and ready for the model, and the options a JSON body gives.
    Raises RequestError: 415 for a content type other than those accepted, 4xx for bad images."""
    kind = media_type(content_type)
    if kind in IMAGE_TYPES:
        if not body:
            raise RequestError(400, "the request body is empty (expected the bytes of a JPEG or PNG image)")
        return [prepare_image(body, settings, "the image")], {}
    if kind == JSON:
        encoded, options = decode_instances(body, settings)
        return [prepare_image(data, settings, f"instances[{index}]") for index, data in enumerate(encoded)], options
    shown = f"content type {content_type!r}" if content_type else "a request without a content type"
    raise RequestError(415, f"{shown} is not accepted; send one of {', '.join(ACCEPTED_TYPES)}")


def build_request(images: Sequence[bytes]) -> str:
    """TF Serving's REST predict request in row format: the signature's one input, `input_tensor`, takes
    each image's bytes, which JSON carries as `{"b64": ...}`."""
    return json.dumps({"instances": [{"b64": base64.b64encode(data).decode("ascii")} for data in images]})


# ---------------------------------------------------------------------------------------------------------
# Reading the model's answer


def upstream_error(status_code: int, content: bytes | str | None) -> RequestError:
    """TF Serving refused or failed (its body is `{"error": ...}`). A 400 from it is still the client's
    input (an image Pillow reads but TensorFlow's decoder rejects), so it stays a 400; anything else is a
    502 carrying TF Serving's status and message."""
    text = content.decode("utf-8", "replace") if isinstance(content, bytes) else content or ""
    try:
        message = json.loads(text).get("error", text)
    except (ValueError, AttributeError):
        message = text
    message = _brief(str(message)) or "no message"
    if status_code == 400:
        return RequestError(400, f"the model could not read the input: {message}")
    return RequestError(502, f"the model server answered {status_code}: {message}")


def parse_response(
    content: bytes | str, sizes: Sequence[tuple[int, int]], options: Options = Options(), classes: Mapping[int, str] | None = None
) -> list[dict]:
    """TF Serving's row-format reply (`{"predictions": [{"detection_boxes": ..., ...}, ...]}`) as the
    endpoint's answer, one entry per image: `sizes` are the (width, height) of the images as sent. A reply
    that does not have that shape raises RequestError(502). `classes` names the class ids."""
    try:
        document = json.loads(content)  # TF Serving writes NaN for non-finite floats; json reads it
    except (UnicodeDecodeError, ValueError) as exc:
        raise RequestError(502, f"the model server's reply is not JSON ({_brief(exc)})") from None
    predictions = document.get("predictions") if isinstance(document, dict) else None
    if not isinstance(predictions, list) or len(predictions) != len(sizes):
        count = len(predictions) if isinstance(predictions, list) else "no"
        raise RequestError(502, f"the model server's reply has {count} predictions for {len(sizes)} image(s)")
    names = {} if classes is None else classes
    return [
        {"image": {"width": width, "height": height}, "detections": detections_of(prediction, width, height, options, names)}
        for prediction, (width, height) in zip(predictions, sizes, strict=True)
    ]


def detections_of(prediction: object, width: int, height: int, options: Options, classes: Mapping[int, str]) -> list[dict]:
    """One image's detections: the first `num_detections` rows, non-finite ones left out, at or above the
    threshold, best first, at most `max_detections`."""
    if not isinstance(prediction, Mapping):
        raise RequestError(502, f"the model server's reply holds a {type(prediction).__name__} where the detections of an image were expected")
    try:
        scores = np.asarray(prediction["detection_scores"], dtype=np.float64).reshape(-1)
        boxes = np.asarray(prediction["detection_boxes"], dtype=np.float64).reshape(-1, 4)
        class_ids = np.asarray(prediction["detection_classes"], dtype=np.float64).reshape(-1)
        count = float(np.asarray(prediction.get("num_detections", len(scores)), dtype=np.float64).reshape(-1)[0])
    except (TypeError, KeyError, ValueError, IndexError) as exc:
        raise RequestError(502, f"the model server's reply lacks the detection outputs ({_brief(exc)})") from None
    rows = min(len(scores), len(boxes), len(class_ids), int(count) if math.isfinite(count) and count > 0 else 0)
    found = []
    for index in range(rows):
        score, box, label = float(scores[index]), boxes[index], float(class_ids[index])
        if not (math.isfinite(score) and np.all(np.isfinite(box)) and math.isfinite(label)) or score < options.score_threshold:
            continue
        found.append((score, index, box, round(label)))
    found.sort(key=lambda row: (-row[0], row[1]))
    return [_detection(score, box, label, width, height, classes) for score, _, box, label in found[: options.max_detections]]


def _detection(score: float, box: np.ndarray, label: int, width: int, height: int, classes: Mapping[int, str]) -> dict:
    ymin, xmin, ymax, xmax = (min(1.0, max(0.0, float(v))) for v in box)
    xmin, xmax = sorted((xmin, xmax))
    ymin, ymax = sorted((ymin, ymax))
    return {
        "class": class_name(classes, label),
        "class_id": label,
        "score": round(score, 4),
        "box": {"xmin": round(xmin * width, 1), "ymin": round(ymin * height, 1), "xmax": round(xmax * width, 1), "ymax": round(ymax * height, 1)},
        "box_normalized": {"xmin": round(xmin, 4), "ymin": round(ymin, 4), "xmax": round(xmax, 4), "ymax": round(ymax, 4)},
    }


# ---------------------------------------------------------------------------------------------------------
# The handlers the container calls


@dataclass(frozen=True)
class Pending:
    """What output_handler needs from input_handler: the container's context is an immutable namedtuple,
    and both handlers run in the same thread, so it is kept per thread."""

    sizes: tuple[tuple[int, int], ...]
    options: Options


_request = threading.local()


def input_handler(data: Any, context: Any, *, settings: Settings | None = None) -> str:
    """Request body -> TF Serving request. `data` is the body (a file-like object, or bytes); `context` has
    `request_content_type`, `accept_header` and `custom_attributes`. `settings` defaults to the environment."""
    _request.pending = None  # a failed request must not leave its sizes to the next one
    settings = Settings.from_env() if settings is None else settings
    try:
        check_accept(getattr(context, "accept_header", None))
        body = _read_body(data)
        images, body_options = read_images(body, getattr(context, "request_content_type", None), settings)
        options = parse_options(getattr(context, "custom_attributes", None), body_options, settings.options)
    except RequestError as exc:
        raise for_container(exc) from exc
    _request.pending = Pending(tuple((image.width, image.height) for image in images), options)
    return build_request([image.data for image in images])


def output_handler(response: Any, context: Any, *, classes: Mapping[int, str] | None = None) -> tuple[str, str]:
    """TF Serving's reply -> (JSON body, content type). `response` has `status_code` and `content`;
    `classes` (id -> name) defaults to `load_classes()`, the model.json found by `find_model_metadata()`."""
    pending: Pending | None = getattr(_request, "pending", None)
    _request.pending = None
    if pending is None:
        raise RuntimeError("output_handler was called without a successful input_handler in this thread")
    try:
        if response.status_code != 200:
            raise upstream_error(response.status_code, response.content)
        names = load_classes() if classes is None else classes
        predictions = parse_response(response.content, pending.sizes, pending.options, names)
    except RequestError as exc:
        raise for_container(exc) from exc
    return json.dumps({"predictions": predictions}, allow_nan=False), JSON


def _read_body(data: Any) -> bytes:
    if data is None:
        return b""
    raw = data.read() if hasattr(data, "read") else data
    if isinstance(raw, str):
        return raw.encode("utf-8")
    return bytes(raw or b"")


def _brief(exc: object, limit: int = 300) -> str:
    """One line of an error message, short enough for a response body."""
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
