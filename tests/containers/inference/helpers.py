"""The endpoint's answer as the inference tests expect it."""

from __future__ import annotations

from collections.abc import Sequence

CORNERS = ("xmin", "ymin", "xmax", "ymax")


def detection(name: str, class_id: int, score: float, box: Sequence[float], normalized: Sequence[float] | None = None) -> dict:
    """One detection of the answer: `box` in pixels and `normalized` as (xmin, ymin, xmax, ymax); without
    `normalized` it is a detection as a caller may hand it to the picture functions."""
    found = {"class": name, "class_id": class_id, "score": score, "box": dict(zip(CORNERS, box, strict=True))}
    if normalized is not None:
        found["box_normalized"] = dict(zip(CORNERS, normalized, strict=True))
    return found
