"""The pictures an approver looks at before approving a model: precision-recall curves per class
(`pr_curves.png`) and validation images with their ground truth beside the model's predictions
(`predictions.png`). Both are always written; when there is nothing to draw they say why.

Class colours and the caption font are those of every picture of the project (containers/common/pictures.py),
so a class looks the same from data preparation to evaluation and the endpoint's pictures.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, UnidentifiedImageError

from containers.common.pictures import caption_font, class_colour

from .coco import Curve
from .model import Detections
from .validation import GroundTruth

MAX_SIDE = 512  # pixels of the longer side of an image as drawn
PAIRS_PER_ROW = 2  # ground truth + predictions pairs on one row of the grid
DPI = 80


@dataclass(frozen=True)
class Drawn:
    """A box to draw, in pixels of the full-size image, with its caption and class id (for the colour)."""

    xmin: float
    ymin: float
    xmax: float
    ymax: float
    caption: str
    label: int


def truth_boxes(truth: GroundTruth, classes: Mapping[int, str]) -> list[Drawn]:
    """The ground truth to draw, captioned with class names."""
    return [
        Drawn(xmin * truth.width, ymin * truth.height, xmax * truth.width, ymax * truth.height, classes.get(label, f"id {label}"), label)
        for (xmin, ymin, xmax, ymax), label in zip(truth.boxes, truth.labels, strict=True)
    ]


def prediction_boxes(truth: GroundTruth, found: Detections, classes: Mapping[int, str], threshold: float) -> list[Drawn]:
    """The detections scoring at least `threshold`, captioned with class name and score; drawn lowest score
    first so that the best box ends up on top."""
    drawn = []
    for (ymin, xmin, ymax, xmax), score, label in sorted(zip(found.boxes, found.scores, found.classes, strict=True), key=lambda row: row[1]):
        if score >= threshold:
            caption = f"{classes.get(int(label), f'id {int(label)}')} {score:.2f}"
            drawn.append(Drawn(xmin * truth.width, ymin * truth.height, xmax * truth.width, ymax * truth.height, caption, int(label)))
    return drawn


def draw(encoded: bytes, boxes: Sequence[Drawn], width: int, height: int) -> Image.Image:
    """The image, scaled to at most MAX_SIDE pixels, with `boxes` outlined and captioned in class colours.
    `width` x `height` is the size the boxes refer to (the record's)."""
    image = Image.open(io.BytesIO(encoded)).convert("RGB")
    scale = min(1.0, MAX_SIDE / max(image.size))
    if scale < 1.0:
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
    sx, sy = image.width / width, image.height / height
    pen = ImageDraw.Draw(image)
    line = max(2, round(image.width / 200))
    text_size = max(11, round(max(image.size) / 32))
    font = caption_font(text_size)
    for box in boxes:
        xy = (box.xmin * sx, box.ymin * sy, max(box.xmin * sx, box.xmax * sx), max(box.ymin * sy, box.ymax * sy))
        pen.rectangle(xy, outline=class_colour(box.label), width=line)
        position = (xy[0] + line, max(0, xy[1] - text_size - 2))
        left, top, right, bottom = pen.textbbox(position, box.caption, font=font)
        pen.rectangle((left - 2, top - 1, right + 2, bottom + 1), fill=class_colour(box.label))
        pen.text(position, box.caption, fill="white", font=font)
    return image


@dataclass(frozen=True)
class Example:
    """A validation image for the predictions picture."""

    truth: GroundTruth
    encoded: bytes
    detections: Detections


def save_predictions_picture(examples: Sequence[Example], classes: Mapping[int, str], threshold: float, path: Path, note: str = "") -> None:
    """A grid of images, each as a pair: ground truth on the left, predictions at or above `threshold` on
    the right. With no images the picture holds `note`, saying why."""
    plt = _pyplot()
    pairs = max(1, min(PAIRS_PER_ROW, len(examples)))
    rows = max(1, -(-len(examples) // pairs))
    fig, axes = plt.subplots(rows, 2 * pairs, figsize=(4 * 2 * pairs, 4.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for index, example in enumerate(examples):
        left, right = axes[index // pairs, 2 * (index % pairs)], axes[index // pairs, 2 * (index % pairs) + 1]
        truth, predictions = truth_boxes(example.truth, classes), prediction_boxes(example.truth, example.detections, classes, threshold)
        key = example.truth.key if len(example.truth.key) <= 36 else "..." + example.truth.key[-33:]
        _show(left, example, truth, f"{key}\nground truth: {_boxes(len(truth))}")
        _show(
            right, example, predictions, f"predictions (score ≥ {threshold:g}): {_boxes(len(predictions))}\nof {len(example.detections)} detections"
        )
    if not examples:
        fig.text(0.5, 0.5, _wrapped(note or "no validation images"), ha="center", va="center")
    elif note:
        fig.suptitle(_wrapped(note, 100))
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, bbox_inches="tight", pad_inches=0.2, metadata={"Software": None})
    plt.close(fig)


def _show(ax, example: Example, boxes: Sequence[Drawn], title: str) -> None:
    try:
        ax.imshow(draw(example.encoded, boxes, example.truth.width, example.truth.height))
    except (UnidentifiedImageError, OSError):
        ax.text(0.5, 0.5, "the image cannot be drawn", ha="center", va="center")
    ax.set_title(title, fontsize=8)


def save_pr_curves_picture(curves: Sequence[Curve], path: Path, note: str = "", champion: tuple[Sequence[Curve], str] | None = None) -> None:
    """Precision against recall per class at IoU 0.5, the legend giving each class's AP@0.5. `champion`: the
    served model's curves on the same records and its label, drawn dashed in the same class colours. With no
    curves the picture holds `note`, saying why."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 6))
    prefix = "challenger: " if champion else ""
    for curve in curves:
        ax.plot(curve.recall, curve.precision, color=class_colour(curve.label), lw=2, label=f"{prefix}{curve.name} (AP@0.5 = {curve.ap_50:.3f})")
    served, served_label = champion if champion else ((), "")
    for curve in served:
        ax.plot(
            curve.recall,
            curve.precision,
            color=class_colour(curve.label),
            lw=1.5,
            ls="--",
            label=f"{served_label}: {curve.name} (AP@0.5 = {curve.ap_50:.3f})",
        )
    title = "Precision-recall per class, IoU 0.5" + (f"\nsolid: the challenger; dashed: the {served_label}" if champion else "")
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision", title=title)
    ax.grid(alpha=0.3)
    if curves or served:
        ax.legend(loc="lower left", fontsize=8 if champion else None)
        if note:
            ax.set_title(f"{title}\n{_wrapped(note)}", fontsize=9)
    else:
        ax.text(0.5, 0.5, _wrapped(note or "no curves"), ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, bbox_inches="tight", pad_inches=0.2, metadata={"Software": None})
    plt.close(fig)


def _wrapped(text: str, width: int = 60) -> str:
    return textwrap.fill(text, width)


def _boxes(count: int) -> str:
    return f"{count} box{'es' if count != 1 else ''}"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
