"""Validation records and fake models for the evaluation tests: every image has the same known boxes, and
the fake model answers every image with the same detections, so the expected metrics are exact."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from containers.processing.labelling import Box
from containers.processing.records import ShardWriter, build_example
from tests.support import jpeg_bytes

WIDTH, HEIGHT = 320, 240
DENT = (0.1, 0.2, 0.5, 0.6)  # normalised xmin, ymin, xmax, ymax; 128 x 96 pixels: a "large" COCO object
SCRATCH = (0.55, 0.1, 0.9, 0.45)
ELSEWHERE = (0.6, 0.65, 0.95, 0.95)  # overlaps neither


def box(label: int, name: str, corners: Sequence[float]) -> Box:
    """A box in pixels of a WIDTH x HEIGHT image from normalised corners."""
    xmin, ymin, xmax, ymax = corners
    return Box(name, xmin * WIDTH, ymin * HEIGHT, xmax * WIDTH, ymax * HEIGHT, label=label)


def detection(label: int, score: float, corners: Sequence[float]) -> tuple[int, float, float, float, float, float]:
    """A fake-model row (class_id, score, ymin, xmin, ymax, xmax) from normalised (xmin, ymin, xmax, ymax)."""
    xmin, ymin, xmax, ymax = corners
    return (label, score, ymin, xmin, ymax, xmax)


def write_validation(folder: Path, images: Sequence[Sequence[Box]], shards: int = 2) -> Path:
    """One record per entry of `images` (its boxes), dealt round-robin over `shards` TFRecord files."""
    names = [f"validation-{i:05d}-of-{shards:05d}.tfrecord" for i in range(shards)]
    with ShardWriter(folder, names) as writer:
        for index, boxes in enumerate(images):
            encoded = jpeg_bytes((WIDTH, HEIGHT), seed=100 + index)
            writer.write(build_example(encoded=encoded, key=f"car-{index}.jpg", width=WIDTH, height=HEIGHT, boxes=list(boxes)))
    return folder
