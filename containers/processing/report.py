"""The data report: figures a person reads before training on a batch (`report.json`) and pictures of them
(`report.png`: classes and box sizes; `samples.png`: a few images with their boxes drawn)."""

from __future__ import annotations

import io
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from containers.common.pictures import class_colour

from .labelling import Box
from .split import SPLITS

SMALL_BOX = 32  # COCO's "small" objects: under 32 x 32 pixels
SCATTER_POINTS = 3000  # per class in the box-size picture; the histogram beside it counts every box


@dataclass
class SplitTally:
    """Counts for one split, filled as records are written (numbers only: no image is kept)."""

    images: Counter = field(default_factory=Counter)  # class -> images holding at least one box of it
    boxes: Counter = field(default_factory=Counter)  # class -> boxes
    total_images: int = 0
    without_boxes: int = 0

    def add(self, boxes: Sequence[Box]) -> None:
        self.total_images += 1
        self.without_boxes += not boxes
        self.images.update({box.name for box in boxes})
        self.boxes.update(box.name for box in boxes)

    def as_dict(self, class_names: Sequence[str], shards: Sequence[str]) -> dict:
        return {
            "images": {name: self.images[name] for name in class_names},
            "boxes": {name: self.boxes[name] for name in class_names},
            "images_total": self.total_images,
            "boxes_total": sum(self.boxes.values()),
            "images_without_boxes": self.without_boxes,
            "shards": list(shards),
        }


class BoxSizes:
    """Box sizes per class, in pixels and relative to the image."""

    def __init__(self) -> None:
        self._sizes: dict[str, list[tuple[float, float, float]]] = defaultdict(list)

    def add(self, boxes: Sequence[Box], width: int, height: int) -> None:
        for box in boxes:
            self._sizes[box.name].append((box.width, box.height, (box.width * box.height) / (width * height)))

    def arrays(self, name: str) -> np.ndarray:
        return np.asarray(self._sizes.get(name, []), dtype=np.float64).reshape(-1, 3)

    def stats(self, class_names: Sequence[str]) -> dict:
        result = {}
        for name in class_names:
            sizes = self.arrays(name)
            if not len(sizes):
                result[name] = {"count": 0}
                continue
            result[name] = {
                "count": len(sizes),
                "width_px": _summary(sizes[:, 0]),
                "height_px": _summary(sizes[:, 1]),
                "relative_area": _summary(sizes[:, 2], digits=5),
                "small_under_32px": int(np.sum((sizes[:, 0] < SMALL_BOX) & (sizes[:, 1] < SMALL_BOX))),
            }
        return result


def _summary(values: np.ndarray, digits: int = 1) -> dict:
    p5, median, p95 = np.percentile(values, [5, 50, 95])
    return {k: round(float(v), digits) for k, v in (("min", values.min()), ("p5", p5), ("median", median), ("p95", p95), ("max", values.max()))}


@dataclass(frozen=True)
class Sample:
    split: str
    key: str
    encoded: bytes
    width: int
    height: int
    boxes: tuple[Box, ...]


def draw_boxes(encoded: bytes, boxes: Sequence[Box], width: int, height: int, max_side: int = 512) -> Image.Image:
    """The image with its boxes and class names drawn, scaled down to at most `max_side` pixels."""
    image = Image.open(io.BytesIO(encoded)).convert("RGB")
    scale = min(1.0, max_side / max(image.size))
    if scale < 1.0:
        image = image.resize((round(image.width * scale), round(image.height * scale)))
    sx, sy = image.width / width, image.height / height
    draw = ImageDraw.Draw(image)
    for box in boxes:
        xy = (box.xmin * sx, box.ymin * sy, box.xmax * sx, box.ymax * sy)
        draw.rectangle(xy, outline=class_colour(box.label), width=max(2, round(3 * scale)))
        text_pos = (xy[0] + 3, max(0, xy[1] - 14))
        left, top, right, bottom = draw.textbbox(text_pos, box.name)
        draw.rectangle((left - 2, top - 1, right + 2, bottom + 1), fill=class_colour(box.label))
        draw.text(text_pos, box.name, fill="white")
    return image


def save_summary_picture(report: dict, sizes: BoxSizes, path: Path) -> None:
    """Classes per split and box sizes per class, as one PNG."""
    plt = _pyplot()
    from matplotlib import ticker

    class_names = list(report["class_map"].values())
    labels = {name: int(label) for label, name in report["class_map"].items()}
    fig, axes = plt.subplots(2, 2, figsize=(12, 9))
    positions = np.arange(len(class_names))
    for ax, what in ((axes[0, 0], "images"), (axes[0, 1], "boxes")):
        for offset, split in zip((-0.2, 0.2), SPLITS, strict=True):
            counts = [report["splits"][split][what][name] for name in class_names]
            bars = ax.bar(positions + offset, counts, width=0.4, label=split, color="#4363d8" if split == "train" else "#f58231")
            ax.bar_label(bars, fontsize=8)
        ticks, names = list(positions), list(class_names)
        dropped = report.get("dropped_boxes") or {}
        if what == "boxes" and dropped:  # boxes of classes outside data.classes: read, counted, not trained on
            extra = np.arange(len(class_names), len(class_names) + len(dropped))
            bars = ax.bar(extra, list(dropped.values()), width=0.6, color="#a9a9a9", label="dropped (not a class)")
            ax.bar_label(bars, fontsize=8)
            ticks, names = [*ticks, *extra], [*names, *dropped]
        ax.set_xticks(ticks, names, rotation=30 if len(names) > 6 else 0)
        ax.set_title(f"{what.capitalize()} per class")
        ax.legend()
    scatter, hist = axes[1, 0], axes[1, 1]
    for name in class_names:
        array = sizes.arrays(name)
        if not len(array):
            continue
        shown = array[:: -(-len(array) // SCATTER_POINTS)]  # every k-th box: a legible picture, drawn fast
        label = name if len(shown) == len(array) else f"{name} ({len(shown)} of {len(array)} shown)"
        scatter.scatter(shown[:, 0], shown[:, 1], s=6, alpha=0.5, color=class_colour(labels[name]), label=label)
        hist.hist(np.sqrt(array[:, 2]), bins=30, range=(0, 1), alpha=0.6, color=class_colour(labels[name]), label=name)
    scatter.set(xscale="log", yscale="log", xlabel="box width (px)", ylabel="box height (px)", title="Box sizes")
    for axis in (scatter.xaxis, scatter.yaxis):
        axis.set_major_formatter(ticker.ScalarFormatter())
        axis.set_minor_formatter(ticker.NullFormatter())
    scatter.axvline(SMALL_BOX, color="grey", lw=0.8, ls="--")
    scatter.axhline(SMALL_BOX, color="grey", lw=0.8, ls="--")
    hist.set(xlabel="sqrt(box area / image area)", ylabel="boxes", title="Relative box size")
    for ax in (scatter, hist):
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    quarantined = len(report["quarantined"])
    fig.suptitle(
        f"{report['images_written']} images written "
        f"(train {report['splits']['train']['images_total']}, validation {report['splits']['validation']['images_total']}); "
        f"{report['records_read']} records read, {quarantined} quarantined, {len(report['merged'])} merged"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=80, metadata={"Software": None})
    plt.close(fig)


def save_samples_picture(samples: Sequence[Sample], path: Path, columns: int = 4) -> None:
    """A grid of sample images with their boxes drawn, titled by split and key."""
    plt = _pyplot()
    rows = max(1, -(-len(samples) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 4.3 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, sample in zip(axes.flat, samples, strict=False):
        ax.imshow(draw_boxes(sample.encoded, sample.boxes, sample.width, sample.height))
        name = sample.key if len(sample.key) <= 40 else "..." + sample.key[-37:]
        count = len(sample.boxes)
        ax.set_title(f"{sample.split}: {name}\n{count} box{'es' if count != 1 else ''}", fontsize=8)
    if not samples:
        axes.flat[0].text(0.5, 0.5, "no images were written", ha="center", va="center")
    fig.tight_layout()
    fig.savefig(path, dpi=80, metadata={"Software": None})
    plt.close(fig)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
