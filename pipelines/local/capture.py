"""Data capture on this machine: the local endpoint writes each sampled request and answer as SageMaker's
real-time data capture does, one JSON line per invocation, under the capture prefix of the local S3 mirror.

The format (SageMaker Developer Guide, "Capture data from real-time endpoint" / "View collected data"):

    {"captureData": {"endpointInput":  {"observedContentType": "image/jpeg", "mode": "INPUT",
                                        "data": "<base64>", "encoding": "BASE64"},
                     "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                                        "data": "{...}", "encoding": "JSON"}},
     "eventMetadata": {"eventId": "<uuid>", "inferenceId": "<the request's inference id, when given>",
                       "inferenceTime": "2026-12-01T18:00:00Z"},
     "eventVersion": "0"}

in `<destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/<mm-ss-mmm>-<uuid>.jsonl`. Bodies of the JSON content
types the deployment names (CaptureContentTypeHeader.JsonContentTypes: application/json) are kept as text,
every other body base64-encoded, as the deployment function configures the real endpoint
(containers/deploy/deploy.py). Requests are sampled at the deployment's percentage. Refused requests (the
model's 4xx/5xx) are not captured here; whether SageMaker captures them is still not stated in its documentation
(checked again in 2026), and the record above has no field for the answer's status.

Captured photos are customers' photos: every file that holds them on this machine (these capture files, and the
review batches made of them, pipelines/review.py) is its owner's alone, 0o600 in 0o700 folders, whatever the umask.
"""

from __future__ import annotations

import base64
import json
import random
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from containers.deploy.deploy import CAPTURED_AS_JSON, VARIANT
from pipelines.local.storage import LocalS3, private_folder, write_private

JSON_CONTENT_TYPES = frozenset(CAPTURED_AS_JSON)  # the deployment's CaptureContentTypeHeader.JsonContentTypes
EVENT_VERSION = "0"


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _payload(data: bytes, content_type: str | None, mode: str) -> dict:
    if media_type(content_type) in JSON_CONTENT_TYPES:
        try:
            return {"observedContentType": content_type, "mode": mode, "data": data.decode("utf-8"), "encoding": "JSON"}
        except UnicodeDecodeError:
            pass  # not text after all: kept as bytes
    return {"observedContentType": content_type or "", "mode": mode, "data": base64.b64encode(data).decode("ascii"), "encoding": "BASE64"}


def capture_line(request: bytes, request_type: str | None, answer: bytes, answer_type: str | None, *, when: datetime,
                 event_id: str, inference_id: str | None = None) -> dict:  # fmt: skip
    """One capture record."""
    metadata = {"eventId": event_id, "inferenceTime": when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    if inference_id:
        metadata["inferenceId"] = inference_id
    return {
        "captureData": {"endpointInput": _payload(request, request_type, "INPUT"), "endpointOutput": _payload(answer, answer_type, "OUTPUT")},
        "eventMetadata": metadata,
        "eventVersion": EVENT_VERSION,
    }


@dataclass(frozen=True)
class CaptureSettings:
    """A deployment's data capture: the destination prefix (DestinationS3Uri) and the sampling percentage."""

    destination: str
    percent: int

    @classmethod
    def of(cls, config, artifact_bucket: str, endpoint: str | None = None) -> CaptureSettings | None:
        """What a deployment to `endpoint` (default: production's) is configured with, as the deployment function
        is (infra/deployment.py): none at 0 percent."""
        percent = config.deployment.data_capture_percent
        return cls(str(config.data_capture(artifact_bucket, endpoint)), percent) if percent > 0 else None


@dataclass
class DataCapture:
    """Writes sampled invocations of `endpoint` under `destination` (an s3:// prefix) in the local mirror."""

    s3: LocalS3
    destination: str
    endpoint: str
    percent: int
    rng: random.Random = field(default_factory=random.Random)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def sampled(self) -> bool:
        with self._lock:
            return self.rng.random() * 100 < self.percent

    def record(self, request: bytes, request_type: str | None, answer: bytes, answer_type: str | None, inference_id: str | None = None,
               when: datetime | None = None) -> str | None:  # fmt: skip
        """Capture one successful invocation when it is sampled; returns the capture file's URI (or None)."""
        if self.percent <= 0 or not self.sampled():
            return None
        when = when or datetime.now(UTC)
        event_id = str(uuid.uuid4())
        line = capture_line(request, request_type, answer, answer_type, when=when, event_id=event_id, inference_id=inference_id)
        key = f"{self.endpoint}/{VARIANT}/{when:%Y/%m/%d/%H}/{when:%M-%S}-{when.microsecond // 1000:03d}-{event_id}.jsonl"
        uri = f"{self.destination.rstrip('/')}/{key}"
        path = self.s3.path(uri)
        private_folder(path.parent)
        write_private(path, (json.dumps(line) + "\n").encode("utf-8"))
        return uri
