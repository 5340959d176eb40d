"""The project's pictures (containers/common/pictures.py): one palette for every picture, and the endpoint's
detections drawn on the image as the endpoint saw it."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageColor

from containers.common.pictures import PALETTE, class_colour, draw_detections, save_detections_picture
from containers.evaluation import pictures as evaluation_pictures
from containers.inference.inference import RequestError
from containers.processing import report
from containers.processing.labelling import Box
from tests.containers.inference.helpers import detection
from tests.support import jpeg_bytes


def rgb(class_id: int) -> np.ndarray:
    return np.array(ImageColor.getrgb(class_colour(class_id)))


def grey_png(size: int = 200) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), (128, 128, 128)).save(out, format="PNG")
    return out.getvalue()


def test_a_class_colour_is_fixed_by_its_id_and_the_palette_repeats():
    assert [class_colour(c) for c in (1, 2, len(PALETTE), len(PALETTE) + 1)] == [PALETTE[0], PALETTE[1], PALETTE[-1], PALETTE[0]]
    assert len(set(PALETTE)) == len(PALETTE)


# The box (xmin, ymin, xmax, ymax) in pixels of a 200 x 200 image, and a point on its left edge, below the caption.
BOX = (40, 100, 160, 180)
LEFT_EDGE = (140, 41)  # row, column
DRAWERS = {
    "data report": lambda data, label: report.draw_boxes(data, [Box("dent", *BOX, label=label)], 200, 200),
    "evaluation": lambda data, label: evaluation_pictures.draw(data, [evaluation_pictures.Drawn(*BOX, "dent 0.90", label)], 200, 200),
    "endpoint detections": lambda data, label: draw_detections(data, [detection("dent", label, 0.9, BOX)]),
}


@pytest.mark.parametrize("drawer", DRAWERS.values(), ids=DRAWERS.keys())
@pytest.mark.parametrize("class_id", [1, 3, len(PALETTE) + 2])
def test_every_picture_draws_a_class_in_its_one_colour(drawer, class_id):
    pixels = np.asarray(drawer(grey_png(), class_id), dtype=int)
    assert pixels[LEFT_EDGE].tolist() == rgb(class_id).tolist()


def test_draw_detections_draws_boxes_and_labels_in_class_colours():
    data = jpeg_bytes((64, 48), seed=7, exif_orientation=6)  # drawn upright: 48 x 64
    plain = np.asarray(Image.open(io.BytesIO(data)).transpose(Image.Transpose.ROTATE_270), dtype=int)
    found = [detection("dent", 1, 0.87, (5, 30, 40, 60)), detection("scratch", 2, 0.5, (2, 2, 20, 12))]
    picture = draw_detections(data, found)
    assert (picture.size, picture.mode) == ((48, 64), "RGB")
    pixels = np.asarray(picture, dtype=int)
    assert np.abs(pixels - plain).max() > 100  # it drew
    assert np.abs(pixels[45, 5] - rgb(1)).max() < 40  # the left edge of the dent box
    assert np.abs(pixels[59, 40] - rgb(1)).max() < 40
    assert np.abs(pixels[10, 2] - rgb(2)).max() < 40
    assert np.abs(pixels[40, 25] - plain[40, 25]).max() < 40  # inside the box, the photo is untouched
    assert np.array_equal(np.asarray(draw_detections(data, found)), pixels)  # deterministic


def test_draw_detections_with_nothing_found_is_the_upright_image():
    data = jpeg_bytes((64, 48), seed=8, exif_orientation=6)
    picture = draw_detections(data, [])
    assert np.array_equal(np.asarray(picture), np.asarray(Image.open(io.BytesIO(data)).transpose(Image.Transpose.ROTATE_270)))


def test_class_colours_can_be_overridden():
    data = jpeg_bytes((64, 64), seed=9)
    picture = draw_detections(data, [detection("dent", 1, 0.9, (10, 30, 50, 60))], label_map_colours={1: "#00ff00"})
    assert np.abs(np.asarray(picture, dtype=int)[45, 10] - (0, 255, 0)).max() < 40


def test_draw_detections_uses_normalised_boxes_when_no_pixel_box_is_given():
    data = jpeg_bytes((100, 50), seed=10)
    found = [{"class": "dent", "class_id": 1, "score": 0.9, "box_normalized": {"xmin": 0.1, "ymin": 0.5, "xmax": 0.5, "ymax": 0.9}}]
    pixels = np.asarray(draw_detections(data, found), dtype=int)
    assert np.abs(pixels[35, 10] - rgb(1)).max() < 40


def test_save_detections_picture_writes_a_png(tmp_path):
    path = save_detections_picture(jpeg_bytes((64, 48)), [detection("dent", 1, 0.9, (5, 20, 40, 40))], tmp_path / "out" / "found.png")
    with Image.open(path) as saved:
        assert (saved.format, saved.size, saved.mode) == ("PNG", (64, 48), "RGB")


def test_drawing_a_broken_image_is_the_endpoints_request_error():
    with pytest.raises(RequestError) as caught:
        draw_detections(b"not an image", [])
    assert caught.value.status == 400
    assert caught.value.message.startswith("the image is not an image that can be read")
