"""Checking images before training sees them, and producing the bytes a TFRecord stores.

Each image is read twice: once to hash it (its content decides its split), and once to check it and write
its record, so the expensive check and the write share one read. A file that changes in between is noticed
by its size and modification time.

JPEG integrity is checked with libjpeg-turbo in strict mode (simplejpeg) at 1/8 scale: every libjpeg
warning ("corrupt JPEG data", "premature end of data segment", ...) is an error. That is stricter than
Pillow, which quietly accepts some files that TensorFlow's `decode_jpeg` later rejects mid-training, and
it costs a third of a full decode because the scaled decode skips most of the inverse DCT while still
entropy-decoding the whole stream.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import simplejpeg
from PIL import Image, ImageOps, UnidentifiedImageError

from .labelling import displayed_size

# A 10000 x 10000 photo; larger files are refused rather than decoded (Pillow's bomb limit is 178 M pixels).
MAX_PIXELS = 100_000_000
JPEG_MAGIC = b"\xff\xd8\xff"  # any JPEG, including MPO phone photos (a JPEG followed by more frames)
JPEG_FORMATS = frozenset({"JPEG", "MPO"})
JPEG_MODES = {"Gray": "L", "CMYK": "CMYK", "YCCK": "CMYK"}  # libjpeg-turbo colorspace -> Pillow mode
EXIF_MARK = b"Exif\x00\x00"  # how an APP1 segment holding EXIF starts
JPEG_QUALITY = 95  # for converted images
EXIF_ORIENTATION = 0x0112


class ImageProblem(ValueError):
    """An image that cannot be used; the message is the reason recorded in the report."""


@dataclass(frozen=True)
class Stamp:
    """An image file's identity (its content hash, which decides its split, its size and modification time)
    and what its header says: the stored width and height and the EXIF orientation. The header lets the
    labellings of an image be checked against it before one is chosen."""

    sha256: str
    nbytes: int
    mtime_ns: int
    width: int = 0
    height: int = 0
    orientation: int = 1


@dataclass(frozen=True)
class ImageCheck:
    """What is known of a valid image after checking its bytes."""

    format: str  # Pillow's name of the file format
    mode: str  # Pillow's pixel mode (RGB, L, RGBA, P, CMYK, ...)
    width: int  # stored pixels, before any EXIF orientation
    height: int
    orientation: int  # EXIF orientation, 1 when absent or meaningless


@dataclass(frozen=True)
class Plan:
    """How an image becomes TFRecord bytes: as it is, or converted to an RGB JPEG."""

    transpose: bool  # apply the EXIF orientation to the pixels
    convert: str  # "" to pass the JPEG through untouched, else why it is converted

    @property
    def passthrough(self) -> bool:
        return not self.convert


def stamp_file(path: str | Path) -> Stamp:
    """Read and hash one image file and read its header; raises `ImageProblem` when it cannot be read or its
    header is not an image's."""
    data, mtime_ns = _read(path)
    header = _jpeg_header(data) if data.startswith(JPEG_MAGIC) else _header(data)
    return Stamp(hashlib.sha256(data).hexdigest(), len(data), mtime_ns, header.width, header.height, header.orientation)


def stamp_files(paths: Sequence[str | Path]) -> list[Stamp | ImageProblem]:
    """`stamp_file` over a batch (a worker's unit of work): each result is the stamp or the problem."""
    results: list[Stamp | ImageProblem] = []
    for path in paths:
        try:
            results.append(stamp_file(path))
        except ImageProblem as exc:
            results.append(exc)
    return results


def read_stamped(path: str | Path, stamp: Stamp) -> bytes:
    """The file's bytes, provided it is still the file that was stamped."""
    data, mtime_ns = _read(path)
    if (len(data), mtime_ns) != (stamp.nbytes, stamp.mtime_ns):
        raise ImageProblem("the file changed while the data was being prepared")
    return data


def check_bytes(data: bytes) -> ImageCheck:
    """Fully verify an image's bytes; raises `ImageProblem` with the reason."""
    if data.startswith(JPEG_MAGIC):
        check = _jpeg_header(data)
        _verify_jpeg(data, check.mode)
    else:
        check = _header(data)
        _verify_other(data)
    return check


def check_image(path: Path) -> ImageCheck:
    """Read and fully verify one image file; raises `ImageProblem` with the reason."""
    return check_bytes(_read(path)[0])


def plan_image(check: ImageCheck, width: int, height: int) -> Plan:
    """Decide how to store an image whose boxes were drawn on a `width` x `height` view of it.

    Ground Truth's labelling tool shows images in a browser, which applies the EXIF orientation, and
    records the size the annotator saw. TensorFlow's decoders ignore EXIF orientation, so an oriented
    image is stored with its orientation applied to the pixels, when the recorded size says the
    annotator saw it so. A size that fits neither view means the boxes belong to another version of
    the image: that is an error, not something to guess about.
    """
    raw = (check.width, check.height)
    oriented = displayed_size(*raw, check.orientation)
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


def encode_image(data: bytes, plan: Plan) -> bytes:
    """The JPEG bytes to store for checked image bytes: themselves when they pass through, else an RGB
    JPEG made from them."""
    if plan.passthrough:
        return data
    with Image.open(io.BytesIO(data)) as image:
        image.seek(0)
        rgb = _to_rgb(ImageOps.exif_transpose(image) if plan.transpose else image)
    out = io.BytesIO()
    rgb.save(out, format="JPEG", quality=JPEG_QUALITY, optimize=False)
    return out.getvalue()


def _read(path: str | Path) -> tuple[bytes, int]:
    try:
        with open(path, "rb") as handle:
            mtime_ns = os.fstat(handle.fileno()).st_mtime_ns
            data = handle.read()
    except FileNotFoundError:
        raise ImageProblem("image file not found") from None
    except IsADirectoryError:
        raise ImageProblem("the image path is a folder") from None
    except OSError as exc:
        raise ImageProblem(f"cannot read the image file: {exc.strerror or exc}") from None
    if not data:
        raise ImageProblem("image file is empty")
    return data, mtime_ns


def _jpeg_header(data: bytes) -> ImageCheck:
    """A JPEG's header, read by libjpeg-turbo (a tenth of Pillow's cost); Pillow reads the EXIF orientation
    only of files that carry EXIF."""
    try:
        height, width, colorspace, _ = simplejpeg.decode_jpeg_header(data)
    except (ValueError, RuntimeError) as exc:
        raise ImageProblem(f"corrupt or truncated image header: {_first_line(exc)}") from None
    _check_pixels(width, height)
    orientation = 1
    if _has_exif(data):
        with Image.open(io.BytesIO(data)) as image:
            orientation = _orientation(image)
    return ImageCheck("JPEG", JPEG_MODES.get(colorspace, "RGB"), width, height, orientation)


def _has_exif(data: bytes) -> bool:
    """Whether a JPEG has an EXIF block: an APP1 segment starting "Exif\\0\\0" among the segments before its
    scan (walking the segment headers costs microseconds; searching the file for the mark, thirty)."""
    position = 2
    while position + 4 <= len(data) and data[position] == 0xFF:
        marker = data[position + 1]
        if marker == 0xFF:  # a fill byte before a marker
            position += 1
            continue
        if marker == 0xDA:  # start of scan: no header segments follow
            return False
        if marker == 0xE1 and data[position + 4 : position + 10] == EXIF_MARK:
            return True
        position += 2 + int.from_bytes(data[position + 2 : position + 4], "big")
    return False


def _header(data: bytes) -> ImageCheck:
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            _check_pixels(width, height)
            return ImageCheck(image.format or "unknown", image.mode, width, height, _orientation(image))
    except ImageProblem:
        raise
    except UnidentifiedImageError:
        raise ImageProblem("not an image file (unknown format)") from None
    except Image.DecompressionBombError as exc:
        raise ImageProblem(f"image too large: {exc}") from None
    except Exception as exc:  # Pillow raises many types for broken headers
        raise ImageProblem(f"corrupt or truncated image header: {exc}") from None


def _check_pixels(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise ImageProblem(f"image is {width}x{height}, over the limit of {MAX_PIXELS:,} pixels")


def _orientation(image: Image.Image) -> int:
    try:
        orientation = int(image.getexif().get(EXIF_ORIENTATION, 1))
    except Exception:  # unreadable EXIF: the pixels are still usable, oriented as stored
        return 1
    return orientation if 1 <= orientation <= 8 else 1


def _verify_jpeg(data: bytes, mode: str) -> None:
    # Grayscale output: every component is still entropy-decoded (where corruption shows), chroma is not
    # upsampled or converted.
    colorspace = "CMYK" if mode == "CMYK" else "GRAY"
    try:
        simplejpeg.decode_jpeg(data, colorspace=colorspace, strict=True, min_height=1, min_width=1)  # smallest scale: 1/8
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
