"""Image checks and conversions on a corpus of good, odd and broken files built by the tests."""

from __future__ import annotations

import io
import os
import random

import numpy as np
import pytest
from PIL import Image

from containers.processing.images import ImageProblem, check_image, encode_image, plan_image, read_stamped, stamp_file
from tests.support import jpeg_bytes


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_a_valid_rgb_jpeg_passes_through_byte_for_byte(tmp_path):
    data = jpeg_bytes((64, 48), seed=1)
    path = write(tmp_path, "a.jpg", data)
    check = check_image(path)
    assert (check.format, check.mode, check.width, check.height, check.orientation) == ("JPEG", "RGB", 64, 48, 1)
    plan = plan_image(check, 64, 48)
    assert plan.passthrough and not plan.transpose
    assert encode_image(path.read_bytes(), plan) == data


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("png-rgb.png", lambda: jpeg_bytes(fmt="PNG"), "PNG"),
        ("png-rgba.png", lambda: jpeg_bytes(mode="RGBA", fmt="PNG"), "PNG, mode RGBA"),
        ("png-palette.png", lambda: jpeg_bytes(mode="P", fmt="PNG"), "PNG, mode P"),
        ("gray.jpg", lambda: jpeg_bytes(mode="L"), "mode L"),
        ("cmyk.jpg", lambda: jpeg_bytes(mode="CMYK"), "mode CMYK"),
        ("photo.webp", lambda: jpeg_bytes(fmt="WEBP"), "WEBP"),
        ("gray-alpha.png", lambda: jpeg_bytes(mode="LA", fmt="PNG"), "PNG, mode LA"),
    ],
)
def test_other_formats_and_modes_become_rgb_jpegs_of_the_same_size(tmp_path, name, data, reason):
    path = write(tmp_path, name, data())
    check = check_image(path)
    plan = plan_image(check, 64, 48)
    assert plan.convert == reason
    out = decoded(encode_image(path.read_bytes(), plan))
    assert (out.format, out.mode, out.size) == ("JPEG", "RGB", (64, 48))


def test_transparent_pixels_become_white_not_black(tmp_path):
    image = Image.new("RGBA", (32, 32), (255, 0, 0, 0))
    out = io.BytesIO()
    image.save(out, format="PNG")
    path = write(tmp_path, "clear.png", out.getvalue())
    check = check_image(path)
    pixels = np.asarray(decoded(encode_image(path.read_bytes(), plan_image(check, 32, 32))))
    assert pixels.min() > 240


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path):
    values = np.full((16, 16), 40000, dtype=np.uint16)
    out = io.BytesIO()
    Image.fromarray(values).save(out, format="PNG")
    path = write(tmp_path, "deep.png", out.getvalue())
    check = check_image(path)
    pixels = np.asarray(decoded(encode_image(path.read_bytes(), plan_image(check, 16, 16))))
    assert abs(int(pixels.mean()) - 40000 // 257) <= 2


def test_exif_rotated_photo_is_turned_as_the_annotator_saw_it(tmp_path):
    # Stored 64x48 with orientation 6 (rotate 90 degrees clockwise to display): a browser shows it 48x64.
    path = write(tmp_path, "phone.jpg", jpeg_bytes((64, 48), seed=3, exif_orientation=6))
    check = check_image(path)
    assert (check.width, check.height, check.orientation) == (64, 48, 6)
    plan = plan_image(check, 48, 64)
    assert plan.transpose and plan.convert == "EXIF orientation 6"
    out = decoded(encode_image(path.read_bytes(), plan))
    assert out.size == (48, 64)
    assert out.getexif().get(0x0112, 1) == 1


def test_exif_rotated_photo_labelled_as_stored_is_kept_as_stored(tmp_path):
    data = jpeg_bytes((64, 48), seed=3, exif_orientation=6)
    path = write(tmp_path, "phone.jpg", data)
    check = check_image(path)
    plan = plan_image(check, 64, 48)
    assert plan.passthrough and not plan.transpose
    assert encode_image(path.read_bytes(), plan) == data


def test_a_flip_orientation_keeps_the_size_and_is_applied(tmp_path):
    path = write(tmp_path, "mirror.jpg", jpeg_bytes((64, 48), seed=4, exif_orientation=2))
    check = check_image(path)
    plan = plan_image(check, 64, 48)
    assert plan.transpose
    assert decoded(encode_image(path.read_bytes(), plan)).size == (64, 48)


@pytest.mark.parametrize(
    ("size", "orientation", "message"),
    [((100, 48), 1, "image is 64x48 but the manifest's image_size is 100x48"), ((32, 32), 6, r"shown as 48x64 by its EXIF orientation 6")],
)
def test_a_size_that_fits_neither_view_is_reported(tmp_path, size, orientation, message):
    path = write(tmp_path, "a.jpg", jpeg_bytes((64, 48), exif_orientation=orientation if orientation != 1 else None))
    with pytest.raises(ImageProblem, match=message):
        plan_image(check_image(path), *size)


def _broken(data: bytes, kind: str, rng: random.Random) -> bytes:
    body = bytearray(data)
    if kind == "truncated":
        return bytes(body[: rng.randrange(len(body) // 4, len(body) - 2)])
    if kind == "garbage":
        start = rng.randrange(len(body) // 3, len(body) - 200)
        body[start : start + 150] = bytes(rng.randrange(256) for _ in range(150))
        return bytes(body)
    raise AssertionError(kind)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (lambda: b"", "image file is empty"),
        (lambda: b"hello, not an image\n", "not an image file"),
        (lambda: jpeg_bytes((256, 256), seed=5)[:-400], "corrupt or truncated JPEG"),
        (lambda: jpeg_bytes((256, 256), seed=5)[:600], "corrupt or truncated (JPEG|image header)"),
        (lambda: jpeg_bytes((256, 256), fmt="PNG")[:-300], "corrupt or truncated image"),
        (lambda: _broken(jpeg_bytes((256, 256), seed=6), "garbage", random.Random(1)), "corrupt or truncated JPEG"),
    ],
    ids=["empty", "text", "truncated JPEG", "JPEG header only", "truncated PNG", "garbage in the JPEG data"],
)
def test_broken_files_are_refused_with_a_reason(tmp_path, data, reason):
    with pytest.raises(ImageProblem, match=reason):
        check_image(write(tmp_path, "broken.jpg", data()))


def test_a_missing_file_and_a_folder_are_reported(tmp_path):
    with pytest.raises(ImageProblem, match="image file not found"):
        check_image(tmp_path / "absent.jpg")
    (tmp_path / "folder.jpg").mkdir()
    with pytest.raises(ImageProblem, match="the image path is a folder"):
        check_image(tmp_path / "folder.jpg")


def test_a_file_that_changes_after_it_was_hashed_is_caught(tmp_path):
    path = write(tmp_path, "a.jpg", jpeg_bytes(seed=1))
    stamp = stamp_file(path)
    assert read_stamped(path, stamp) == path.read_bytes()
    path.write_bytes(jpeg_bytes(seed=1) + b"\0")  # one byte longer
    with pytest.raises(ImageProblem, match="changed while the data was being prepared"):
        read_stamped(path, stamp)
    path.write_bytes(jpeg_bytes(seed=2, quality=10)[: stamp.nbytes].ljust(stamp.nbytes, b"\0"))  # same size, new time
    os.utime(path, ns=(stamp.mtime_ns + 10**9, stamp.mtime_ns + 10**9))
    with pytest.raises(ImageProblem, match="changed while the data was being prepared"):
        read_stamped(path, stamp)


def test_every_jpeg_tensorflow_cannot_decode_is_caught_here(tmp_path):
    """The check must be at least as strict as the decoder training uses, or a bad file fails hours later."""
    import tensorflow as tf

    rng = random.Random(7)
    originals = [jpeg_bytes((320, 240), seed=s, quality=85) for s in range(12)]
    tf_rejects = caught = 0
    for index in range(240):
        data = _broken(originals[index % len(originals)], rng.choice(["truncated", "garbage"]), rng)
        try:
            tf.io.decode_jpeg(data, channels=3).numpy()
        except tf.errors.InvalidArgumentError:
            tf_rejects += 1
            with pytest.raises(ImageProblem):
                check_image(write(tmp_path, f"{index}.jpg", data))
            caught += 1
    assert tf_rejects > 50, "the corpus should hold files TensorFlow rejects"
    assert caught == tf_rejects
