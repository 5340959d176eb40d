"""The look shared by every picture of the project: the class palette, a class's colour and the caption font,
so a class looks the same in the data report (containers/processing/report.py), the evaluation pictures
(containers/evaluation/pictures.py) and the pictures of an endpoint's answer drawn here.

`draw_detections` lives here rather than in the endpoint's handler: the handler ships alone as
`code/inference.py` and the endpoint never draws. It opens images with the handler's own functions, so a
picture shows the image exactly as the endpoint saw it (upright, in RGB) and a broken one is refused the
same way (`RequestError`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont, ImageOps

from containers.inference.inference import load_pixels, open_image, to_rgb

PALETTE = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45")


def class_colour(class_id: int) -> str:
    """A class's colour, fixed by its id (ids start at 1; the palette repeats past its end)."""
    return PALETTE[(class_id - 1) % len(PALETTE)]


@functools.lru_cache(maxsize=8)
def caption_font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's bundled font at `size` pixels: the containers have no font files."""
    return ImageFont.load_default(size=size)


def draw_detections(
    image_bytes: bytes, detections: Sequence[Mapping[str, Any]], *, label_map_colours: Mapping[int, str] | None = None
) -> Image.Image:
    """The image, upright as the endpoint saw it, with each detection outlined in its class colour and
    captioned "dent 0.87" on a filled label above the box (inside it at the top edge). Boxes are the
    endpoint's pixel boxes; the best detection is drawn last, on top. `label_map_colours` overrides the
    colour of some class ids. An image that cannot be decoded raises the endpoint's `RequestError`."""
    image = open_image(image_bytes)
    load_pixels(image, "the image")
    image = to_rgb(ImageOps.exif_transpose(image)).copy()
    pen = ImageDraw.Draw(image)
    side = max(image.size)
    line = max(2, round(side / 160))
    font = caption_font(max(11, round(side / 40)))
    colours = label_map_colours or {}
    for detection in sorted(detections, key=lambda d: float(d.get("score", 0.0))):
        xmin, ymin, xmax, ymax = pixel_box(detection, image.width, image.height)
        label = int(detection.get("class_id", 0))
        colour = colours.get(label) or class_colour(label)
        pen.rectangle((xmin, ymin, max(xmin, xmax), max(ymin, ymax)), outline=colour, width=line)
        caption = f"{detection.get('class', f'id {label}')} {float(detection.get('score', 0.0)):.2f}"
        left, top, right, bottom = pen.textbbox((0, 0), caption, font=font)
        width, height = right - left + 4, bottom - top + 4
        x = min(max(0.0, xmin), max(0.0, image.width - width))
        y = ymin - height if ymin - height >= 0 else ymin
        pen.rectangle((x, y, x + width, y + height), fill=colour)
        pen.text((x + 2 - left, y + 2 - top), caption, fill="white", font=font)
    return image


def save_detections_picture(image_bytes: bytes, detections: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """`draw_detections` written as a PNG at `path` (its folder is created)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    draw_detections(image_bytes, detections).save(target, format="PNG")
    return target


def pixel_box(detection: Mapping[str, Any], width: int, height: int) -> tuple[float, float, float, float]:
    """The detection's box in pixels: its `box`, or `box_normalized` scaled to the image."""
    if "box" in detection:
        box = detection["box"]
        return float(box["xmin"]), float(box["ymin"]), float(box["xmax"]), float(box["ymax"])
    box = detection["box_normalized"]
    return float(box["xmin"]) * width, float(box["ymin"]) * height, float(box["xmax"]) * width, float(box["ymax"]) * height


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (xmin, ymin, xmax, ymax) boxes: 0 for boxes that do not overlap."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
