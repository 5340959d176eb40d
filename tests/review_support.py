"""What the review tests share: the endpoint's answers as the handler writes them, and a local state whose
endpoint captured some (pipelines/local/capture.py), as `cardamage serve` leaves it."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from pipelines.config import Config
from pipelines.local.capture import DataCapture
from pipelines.local.runner import LOCAL_VALUES
from pipelines.local.state import State
from pipelines.local.storage import LocalS3


def detection(cls: str, score: float, box=(0.1, 0.1, 0.5, 0.5), size=(100, 100)) -> dict:
    """One detection of the endpoint's answer; `box` in normalized corners (xmin, ymin, xmax, ymax)."""
    xmin, ymin, xmax, ymax = box
    w, h = size
    return {
        "class": cls,
        "class_id": 1 if cls == "dent" else 2,
        "score": score,
        "box": {"xmin": xmin * w, "ymin": ymin * h, "xmax": xmax * w, "ymax": ymax * h},
        "box_normalized": {"xmin": xmin, "ymin": ymin, "xmax": xmax, "ymax": ymax},
    }


def answer(detections=None, size=(64, 48)) -> bytes:
    found = [detection("dent", 0.4, size=size)] if detections is None else detections
    return json.dumps({"predictions": [{"image": {"width": size[0], "height": size[1]}, "detections": found}]}).encode()


def capture_answers(config: Config, state_dir: Path, photos: list[Path]) -> None:
    """A local state whose endpoint answered each photo with an unsure dent and a sure scratch."""
    State(state_dir)
    capture = DataCapture(LocalS3(state_dir / "s3"), str(config.data_capture(LOCAL_VALUES["ArtifactBucket"])), config.endpoint_name, 100)
    for index, path in enumerate(photos):
        with Image.open(path) as image:
            size = image.size
        found = [detection("dent", 0.3 + 0.1 * (index % 3), size=size), detection("scratch", 0.9, (0.6, 0.6, 0.9, 0.9), size)]
        capture.record(path.read_bytes(), "image/jpeg", answer(found, size), "application/json")


def corners(value: dict) -> tuple[float, float, float, float]:
    """A Label Studio rectangle (percent) as the normalized corners PrepareData writes, to 4 places."""
    x, y, w, h = (value[k] / 100 for k in ("x", "y", "width", "height"))
    return round(x, 4), round(y, 4), round(x + w, 4), round(y + h, 4)
