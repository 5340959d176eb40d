"""Reading the endpoint's data-capture records: the one home for the monitor and `cardamage review`.

SageMaker's real-time data capture writes one JSON line per sampled invocation ("Capture data from real-time
endpoint" and "View collected data", SageMaker Developer Guide), and the local endpoint writes the same lines
(pipelines/local/capture.py):

    {"captureData": {"endpointInput":  {"observedContentType": "image/jpeg", "mode": "INPUT",
                                        "data": "<base64>", "encoding": "BASE64"},
                     "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                                        "data": "{...}", "encoding": "JSON"}},
     "eventMetadata": {"eventId": "<uuid>", "inferenceId": "<optional>", "inferenceTime": "2026-12-01T18:00:00Z"},
     "eventVersion": "0"}

in `<destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/*.jsonl`. A body of a content type the deployment names
as JSON (CaptureContentTypeHeader.JsonContentTypes) is kept as text ("JSON"), any other base64-encoded
("BASE64", the default when no header is named: DataCaptureConfig, SageMaker API Reference). So a photo is a
BASE64 request, and the answer is the endpoint's JSON (containers/inference/inference.py), as text or base64.

A record that is not an answered photo is returned as `Unusable` with its file, line and reason, never dropped.
A review batch (pipelines/review.py) names each photo it picks after the captured photo's hash (`NAME_DIGITS`
hex digits of its sha256), so labels that come back for it find the captured answer again (`captured_digits`).
A window is the inference times in [since, until); a record outside it is left out (its photo is not decoded),
and an answered photo whose time cannot be read is unusable once a window bound is given: it cannot be placed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

CAPTURE_SUFFIX = ".jsonl"
ISO_EXAMPLE = "2026-11-30 or 2026-11-30T12:00:00Z"
NAME_DIGITS = 20  # of the captured sha256 in a review photo's name: 80 bits, no accidental collision in any photo count


@dataclass(frozen=True)
class Captured:
    """One answered photo from the endpoint's data capture."""

    source: str  # the capture file and line, for messages
    data: bytes
    content_type: str
    detections: tuple[dict, ...]
    width: int
    height: int
    inference_time: str = ""

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def digits(self) -> str:
        """What a review photo's name holds of this photo's hash (`captured_digits`)."""
        return self.sha256[:NAME_DIGITS]


def captured_digits(key: str) -> str | None:
    """The captured hash's digits that a review photo's name holds (`<digits>.jpg` or `.png`, pipelines/review.py
    photo_key), wherever the photo was staged; None for an image named otherwise."""
    match = re.fullmatch(rf"([0-9a-f]{{{NAME_DIGITS}}})\.(?:jpg|png)", key.rsplit("/", 1)[-1])
    return match[1] if match else None


class Unusable(NamedTuple):
    """A capture record that is not an answered photo: where (`<file>:<line>`) and why."""

    capture: str
    reason: str


def parse_time(text: str | datetime) -> datetime:
    """An ISO 8601 date or time as an aware UTC moment; one without a zone is UTC, as capture times are.
    Raises ValueError saying what is expected."""
    if isinstance(text, datetime):
        moment = text
    else:
        try:
            moment = datetime.fromisoformat(str(text).strip())
        except ValueError:
            raise ValueError(f"{text!r} is not an ISO 8601 date or time such as {ISO_EXAMPLE}") from None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def iso(moment: datetime) -> str:
    """A moment as capture records write it: UTC, to the second, with a Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Window:
    """Inference times in [since, until); a bound left None is open."""

    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def of(cls, since: str | datetime | None = None, until: str | datetime | None = None) -> Window:
        window = cls(None if since is None else parse_time(since), None if until is None else parse_time(until))
        if window.since and window.until and window.since >= window.until:
            raise ValueError(f"the window is empty: since {iso(window.since)} is not before until {iso(window.until)}")
        return window

    @property
    def bounded(self) -> bool:
        return self.since is not None or self.until is not None

    def holds(self, moment: datetime) -> bool:
        return (self.since is None or moment >= self.since) and (self.until is None or moment < self.until)


OPEN = Window()  # every inference time


def read_folder(folder: Path) -> Iterator[tuple[str, int, str]]:
    """Every non-blank line of the capture files (*.jsonl, at any depth) under `folder`, in path order, which is
    time order in SageMaker's hour folders: (the file's path relative to `folder`, line number, text)."""
    folder = Path(folder)
    for path in sorted(p for p in folder.rglob(f"*{CAPTURE_SUFFIX}") if p.is_file()):
        name = path.relative_to(folder).as_posix()
        text = path.read_bytes().decode("utf-8", errors="replace")  # a broken byte spoils its line, not the file
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                yield name, number, line


def decode(file: str, line: int, raw: Mapping | str, window: Window = OPEN) -> Captured | Unusable | None:
    """One capture record (parsed, or its JSON text) as an answered photo, or why it is not one; None when its
    inference time is outside `window`."""
    where = f"{file}:{line}"
    try:
        record = json.loads(raw) if isinstance(raw, str) else raw
        capture = record["captureData"]
        when = str((record.get("eventMetadata") or {}).get("inferenceTime") or "")
        placed = _placed(when, window)
        if placed is False:
            return None  # outside the window: its photo is not decoded
        request, answer = capture["endpointInput"], capture["endpointOutput"]
        if request.get("encoding") != "BASE64":
            return Unusable(where, f"the request is {request.get('observedContentType') or 'text'}, not a photo")
        data = base64.b64decode(request["data"], validate=True)
        document = json.loads(answer["data"] if answer.get("encoding") == "JSON" else base64.b64decode(answer["data"]))
        (prediction,) = document["predictions"]
        detections = prediction["detections"]
        if not isinstance(detections, list) or not all(isinstance(d, Mapping) for d in detections):
            raise TypeError("the answer's detections are not a list of objects")
        width, height = int(prediction["image"]["width"]), int(prediction["image"]["height"])
    except (KeyError, TypeError, ValueError, AttributeError, binascii.Error) as exc:
        return Unusable(where, f"not a captured photo and answer ({type(exc).__name__}: {exc})")
    if placed is None:
        return Unusable(where, f"its eventMetadata.inferenceTime {when!r} is not a time, so it cannot be placed in the window")
    return Captured(where, data, str(request.get("observedContentType", "")), tuple(dict(d) for d in detections), width, height, when)


def _placed(when: str, window: Window) -> bool | None:
    """Whether an inference time is in the window (True with no bounds); None when a bound is given and the
    time cannot be read."""
    if not window.bounded:
        return True
    try:
        return window.holds(parse_time(when))
    except ValueError:
        return None


def captured_photos(
    records: Iterable[tuple[str, int, Mapping | str]], since: str | datetime | None = None, until: str | datetime | None = None
) -> tuple[list[Captured], list[Unusable]]:
    """The answered photos of capture records `(file, line, record or its JSON text)` in [since, until), and the
    records that are not one, with the reason. Records outside the window are left out (not unusable)."""
    window = Window.of(since, until)
    photos: list[Captured] = []
    unusable: list[Unusable] = []
    for file, line, raw in records:
        item = decode(file, line, raw, window)
        if isinstance(item, Captured):
            photos.append(item)
        elif item is not None:
            unusable.append(item)
    return photos, unusable
