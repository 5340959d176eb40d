"""Checking images before training sees them, and producing the bytes a TFRecord stores.

Every function here is safe to call from worker threads: file reads, hashing, Pillow and libjpeg-turbo
release the GIL, so threads use every core without copying image bytes between processes.

JPEG integrity is checked with libjpeg-turbo in strict mode (simplejpeg) at 1/8 scale: every libjpeg
warning ("corrupt JPEG data", "premature end of data segment", ...) is an error. That is stricter than
Pillow, which quietly accepts some files that TensorFlow's `decode_jpeg` later rejects mid-training, and
it costs a third of a full decode because the scaled decode skips most of the inverse DCT while still
entropy-decoding the whole stream.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import simplejpeg
from PIL import Image, ImageOps, UnidentifiedImageError

# A 10000 x 10000 photo; larger files are refused rather than decoded (Pillow's bomb limit is 178 M pixels).
MAX_PIXELS = 100_000_000
JPEG_FORMATS = frozenset({"JPEG", "MPO"})  # MPO: phone photos, a JPEG followed by more frames
JPEG_QUALITY = 95  # for converted images
EXIF_ORIENTATION = 0x0112
TRANSPOSED_ORIENTATIONS = frozenset({5, 6, 7, 8})  # those that swap width and height


class ImageProblem(ValueError):
    """An image that cannot be used; the message is the reason recorded in the report."""


@dataclass(frozen=True)
class ImageCheck:
    """What is known of a valid image file after checking it."""

    sha256: str  # of the file's bytes: the image's identity for the split
    format: str  # Pillow's name of the file format
    mode: str  # Pillow's pixel mode (RGB, L, RGBA, P, CMYK, ...)
    width: int  # stored pixels, before any EXIF orientation
    height: int
    orientation: int  # EXIF orientation, 1 when absent or meaningless
    nbytes: int


@dataclass(frozen=True)
class Plan:
    """How an image becomes TFRecord bytes: as it is, or converted to an RGB JPEG."""

    transpose: bool  # apply the EXIF orientation to the pixels
    convert: str  # "" to pass the JPEG through untouched, else why it is converted

    @property
    def passthrough(self) -> bool:
        return not self.convert


def check_image(path: Path) -> ImageCheck:
    """Read, hash and fully verify one image file; raises `ImageProblem` with the reason."""
    data = _read(path)
    check = _header(data)
    if check.format in JPEG_FORMATS:
        _verify_jpeg(data, check.mode)
    else:
        _verify_other(data)
    return check


def plan_image(check: ImageCheck, width: int, height: int) -> Plan:
    """Decide how to store an image whose boxes were drawn on a `width` x `height` view of it.

    Ground Truth's labelling tool shows images in a browser, which applies the EXIF orientation, and
    records the size the annotator saw. TensorFlow's decoders ignore EXIF orientation, so an oriented
    image is stored with its orientation applied to the pixels, when the recorded size says the
    annotator saw it so. A size that fits neither view means the boxes belong to another version of
    the image: that is an error, not something to guess about.
    """
    raw = (check.width, check.height)
    oriented = raw[::-1] if check.orientation in TRANSPOSED_ORIENTATIONS else raw
    seen = (width, height)
    if check.orientation != 1 and seen == oriented:
        transpose = True
    elif seen == raw:
        transpose = False
    else:
        shown = f" (shown as {oriented[0]}x{oriented[1]} by its EXIF orientation {check.orientation})" if oriented != raw else ""
        raise ImageProblem(
            f"image is {raw[0]}x{raw[1]}{shown} but the manifest's image_size is {width}x{height}: "
            "the boxes were drawn on a different version of this image"
        )
    reasons = []
    if check.format not in JPEG_FORMATS:
        reasons.append(check.format)
    if check.mode != "RGB":
        reasons.append(f"mode {check.mode}")
    if transpose:
        reasons.append(f"EXIF orientation {check.orientation}")
    return Plan(transpose=transpose, convert=", ".join(reasons))


def encoded_image(path: Path, sha256: str, plan: Plan) -> bytes:
    """The JPEG bytes to store for an image checked earlier: the file itself when it passes through,
    else an RGB JPEG made from it. Raises `ImageProblem` if the file changed since it was checked."""
    data = _read(path)
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ImageProblem(f"{path} changed while the data was being prepared")
    if plan.passthrough:
        return data
    with Image.open(io.BytesIO(data)) as image:
        image.seek(0)
        rgb = _to_rgb(ImageOps.exif_transpose(image) if plan.transpose else image)
    out = io.BytesIO()
    rgb.save(out, format="JPEG", quality=JPEG_QUALITY, optimize=False)
    return out.getvalue()


def _read(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageProblem("image file not found") from None
    except IsADirectoryError:
        raise ImageProblem("the image path is a folder") from None
    except OSError as exc:
        raise ImageProblem(f"cannot read the image file: {exc.strerror or exc}") from None
    if not data:
        raise ImageProblem("image file is empty")
    return data


def _header(data: bytes) -> ImageCheck:
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise ImageProblem(f"image is {width}x{height}, over the limit of {MAX_PIXELS:,} pixels")
            try:
                orientation = int(image.getexif().get(EXIF_ORIENTATION, 1))
            except Exception:  # unreadable EXIF: the pixels are still usable, oriented as stored
                orientation = 1
            return ImageCheck(
                sha256=hashlib.sha256(data).hexdigest(),
                format=image.format or "unknown",
                mode=image.mode,
                width=width,
                height=height,
                orientation=orientation if 1 <= orientation <= 8 else 1,
                nbytes=len(data),
            )
    except ImageProblem:
        raise
    except UnidentifiedImageError:
        raise ImageProblem("not an image file (unknown format)") from None
    except Image.DecompressionBombError as exc:
        raise ImageProblem(f"image too large: {exc}") from None
    except Exception as exc:  # Pillow raises many types for broken headers
        raise ImageProblem(f"unreadable image header: {exc}") from None


def _verify_jpeg(data: bytes, mode: str) -> None:
    colorspace = {"L": "GRAY", "CMYK": "CMYK"}.get(mode, "RGB")
    try:
        simplejpeg.decode_jpeg(data, colorspace=colorspace, strict=True, min_factor=8)
    except (ValueError, RuntimeError) as exc:
        raise ImageProblem(f"corrupt or truncated JPEG: {_first_line(exc)}") from None


def _verify_other(data: bytes) -> None:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
    except Exception as exc:
        raise ImageProblem(f"corrupt or truncated image: {_first_line(exc)}") from None


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        pixels = np.asarray(image, dtype=np.float32) / 257.0
        return Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8), "L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
