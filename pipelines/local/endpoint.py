"""The local endpoint: what the pipeline's Deploy step (and `cardamage deploy --local`) deploys, and the HTTP
server that serves it through the endpoint's own handler code (containers/inference, via LocalEndpoint),
speaking both SageMaker's container contract (`GET /ping`, `POST /invocations`) and the SageMaker runtime
API (`POST /endpoints/<name>/invocations`), so `boto3.client("sagemaker-runtime", endpoint_url=...)` works
against it unchanged and raises the botocore exceptions it raises against AWS.

A deployment is a record, `<state>/endpoints/<name>.json`, naming the package and the folder its
model.tar.gz was unpacked into. The rules are the deployment function's: only an Approved package is
deployed, and never over a newer version of the same group.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from dataclasses import asdict, dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from containers.common import archives
from containers.deploy import champion
from containers.deploy.champion import Champion
from containers.deploy.deploy import VARIANT, Candidate, DeployError, DeployResult, check_archive, decide, file_chunks, recorded_digest
from containers.inference.inference import SERVING_ENVIRONMENT
from pipelines.local.capture import CaptureSettings, DataCapture
from pipelines.local.state import ACCOUNT, REGION, State
from pipelines.local.storage import LocalS3

log = logging.getLogger(__name__)

CUSTOM_ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"
INFERENCE_ID = "X-Amzn-SageMaker-Inference-Id"
INVOKED_VARIANT = "x-Amzn-Invoked-Production-Variant"
MAX_BODY = 64 * 1024 * 1024
# InvokeEndpoint's body is at most 6,291,456 bytes, 6 MiB (botocore's sagemaker-runtime service model:
# BodyBlob's max), so the runtime refuses a larger request before the container sees it: checked on the runtime
# route only. Which error the runtime answers then is not in the model or the API reference; users report a 413
# with no error code ("An error occurred (413) when calling the InvokeEndpoint operation: HTTP content length
# exceeded 5246976 bytes", aws/sagemaker-python-sdk#171, from when the limit was 5 MB), so this answers that.
RUNTIME_MAX_BODY = 6 * 1024 * 1024
RUNTIME_PATH = re.compile(r"/endpoints/([^/]+)/invocations")
# A client that stops sending in the middle of a request (or keeps an idle connection) holds one of the server's
# threads: it is dropped after this long without a byte. 60 s is what SageMaker gives a container ("A customer's
# model containers must respond to requests within 60 seconds", InvokeEndpoint, SageMaker API reference), so no
# honest request here waits longer between two reads.
SOCKET_TIMEOUT = 60
_DIGITS = re.compile(r"[0-9]+")
# What a client is told when the model fails: the detail (exception text, which may name local paths) is logged.
MODEL_FAILED = "the model failed on this request; the server's log has the reason (retry, or report it with the time of the request)"
MODEL_UNLOADABLE = "the model cannot be loaded; the server's log has the reason (check the deployment, or deploy the package again)"


class BodyRefused(Exception):
    """A request whose body is refused from its headers alone: `status` and a message for the client."""

    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def body_length(headers, limit: int) -> int:
    """How many bytes the request's body is, from its headers: one Content-Length of 0 or more digits (none: no
    body), at most `limit` (413 over it). Transfer-Encoding is refused, since this server reads bodies by length
    only: 411 when the last coding is chunked (the client can send a length instead), 400 for any other, which
    leaves the length unknown (RFC 9112, section 6.3). Raises BodyRefused."""
    if encodings := headers.get_all("Transfer-Encoding"):
        last = ",".join(encodings).split(",")[-1].strip().lower()
        if last == "chunked":
            raise BodyRefused(HTTPStatus.LENGTH_REQUIRED, "a chunked body is not accepted here: send it with a Content-Length")
        raise BodyRefused(HTTPStatus.BAD_REQUEST, f"Transfer-Encoding {', '.join(encodings)!r} leaves the body's length unknown")
    values = headers.get_all("Content-Length") or []
    if not values:
        return 0
    if len(values) > 1 or not _DIGITS.fullmatch(values[0].strip()):
        raise BodyRefused(HTTPStatus.BAD_REQUEST, f"Content-Length {', '.join(values)!r} is not one number of bytes (0 or more)")
    length = int(values[0])
    if length > limit:
        raise BodyRefused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the request body is {length} bytes; the limit is {limit}")
    return length


@dataclass(frozen=True)
class Deployment:
    endpoint_name: str
    package_arn: str
    group: str
    version: int
    model_dir: str
    environment: dict
    deployed: float
    capture: dict | None = None  # CaptureSettings of the deployment (its endpoint config's DataCaptureConfig)
    forced_because: str | None = None  # the reason given when an older or worse package was forced in (the endpoint's tag on AWS)


class LocalDeployer:
    """Deploys registered packages to local endpoints (the deployment function's rules, on this machine).
    `captures`: the data capture a deployment to each endpoint configures (absent or None: none), as the
    function's environment says."""

    def __init__(
        self,
        state: State,
        s3: LocalS3,
        folder: Path,
        captures: dict[str, CaptureSettings | None] | None = None,
        group: str | None = None,
        registry_approval_status: str = "PendingManualApproval",
    ):
        self.state, self.s3, self.folder, self.captures = state, s3, folder, captures or {}
        self.group = group  # the group the endpoint serves (the function's MODEL_PACKAGE_GROUP); None: the package's own
        self.registry_approval_status = registry_approval_status  # the function's REGISTRY_APPROVAL_STATUS

    def record(self, endpoint_name: str) -> Deployment | None:
        path = self.folder / f"{endpoint_name}.json"
        return Deployment(**json.loads(path.read_text())) if path.is_file() else None

    def deploy(self, package_arn: str, endpoint_name: str, *, force: bool = False, reason: str = "") -> DeployResult:
        """Deploy a package by the deployment function's rule (`decide`); the result has the function's shape
        (status created, updated or skipped). `reason`: why an older or worse package is forced in."""
        package = self.state.package(package_arn)
        if package is None:
            raise DeployError(f"no model package {package_arn}")
        current = self.record(endpoint_name)
        served = self._candidate(current.package_arn, current) if current else None
        rule = {"group": self.group or package.group, "registry_approval_status": self.registry_approval_status}
        decision = decide(self._candidate(package.arn), served, force=force, force_reason=reason, **rule)
        if not decision.deploy:
            return DeployResult("skipped", endpoint_name, package_arn, decision.reason, package.version, up_to_date=decision.up_to_date)
        check_archive(lambda uri: file_chunks(self.s3.path(uri)), package.model_data_url, recorded_digest(package.metadata), package.version)
        model_dir = self.folder / endpoint_name / f"v{package.version}"
        if not (model_dir / "1").is_dir():
            self._unpack(package, model_dir)
        deployment = Deployment(
            endpoint_name,
            package.arn,
            package.group,
            package.version,
            str(model_dir),
            package.metadata.get("Environment", {}),
            time.time(),
            asdict(capture) if (capture := self.captures.get(endpoint_name)) else None,
            reason.strip() if force and reason.strip() else None,
        )
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / f"{endpoint_name}.json").write_text(json.dumps(asdict(deployment), indent=2))
        status = "updated" if current else "created"
        return DeployResult(
            status,
            endpoint_name,
            package_arn,
            f"{decision.reason}; version {package.version} is in service",
            package.version,
            endpoint_status="InService",
        )

    def champion(self, endpoint_name: str, challenger_model_url: str, group: str | None = None) -> Champion:
        """The package the local endpoint serves, as the FindChampion function finds it on AWS."""
        record = self.record(endpoint_name)
        if record is None:
            return champion.nothing_served(endpoint_name, challenger_model_url)
        if group and record.group != group:
            return champion.another_group(endpoint_name, record.version, record.group, challenger_model_url)
        package = self.state.package(record.package_arn)
        if package is None:
            return champion.deleted(endpoint_name, record.version, challenger_model_url)
        return champion.served(endpoint_name, self._candidate(package.arn), package.model_data_url, package.metrics_uri)

    def _candidate(self, arn: str, record: Deployment | None = None) -> Candidate:
        """A registered package as the rule reads it (a deployment record's, when the package is gone)."""
        package = self.state.package(arn)
        if package is None and record is not None:
            return Candidate(record.package_arn, record.group, record.version)
        return Candidate(package.arn, package.group, package.version, package.status, package.map, package.approved_at_registration)

    def capture(self, endpoint_name: str) -> DataCapture | None:
        """The data capture of the endpoint's deployment, when it configured one."""
        record = self.record(endpoint_name)
        if record is None or not record.capture:
            return None
        settings = CaptureSettings(**record.capture)
        return DataCapture(self.s3, settings.destination, endpoint_name, settings.percent)

    def model(self, endpoint_name: str, package_arn: str | None = None) -> tuple[str | None, dict]:
        """(model folder, environment) that the endpoint serves now, or of `package_arn` (any status: serving a
        chosen package here is a look at it, not a deployment); (None, {}) when nothing is deployed."""
        if package_arn:
            package = self.state.package(package_arn)
            if package is None:
                raise ValueError(f"no model package {package_arn}")
            folder = self.folder / "packages" / f"{package.group}-v{package.version}"
            if not (folder / "1").is_dir():
                self._unpack(package, folder)
            return str(folder), package.metadata.get("Environment", {})
        record = self.record(endpoint_name)
        return (record.model_dir, record.environment) if record else (None, {})

    def _unpack(self, package, folder: Path) -> None:
        """The package's model.tar.gz into `folder`; an archive holding a link, a device, an absolute name or `..`
        is refused before anything is written (containers/common/archives.py)."""
        try:
            archives.extract_tar(self.s3.path(package.model_data_url), folder)
        except archives.ArchiveError as exc:
            raise DeployError(f"model package version {package.version} ({package.arn}) cannot be served: {exc}") from None


def apply_serving_environment(environment: dict) -> None:
    """The model's serving environment (SCORE_THRESHOLD, MAX_DETECTIONS, ...) set in this process, as the
    endpoint's container gets it; other variables of the package are left out."""
    os.environ.update({name: str(value) for name, value in environment.items() if name in SERVING_ENVIRONMENT})


class EndpointServer:
    """`GET /ping` and `POST /invocations` on 127.0.0.1 for one local endpoint; picks up a new deployment
    (a Deploy step, an approval) at the next request."""

    def __init__(self, deployer: LocalDeployer, endpoint_name: str, port: int = 8080, package_arn: str | None = None):
        self.deployer, self.endpoint_name, self.pinned = deployer, endpoint_name, package_arn
        self._lock = threading.Lock()
        self._loaded: tuple[str, object, DataCapture | None] | None = None  # (model folder, LocalEndpoint, its data capture)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler())

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def endpoint(self):
        """The LocalEndpoint of the current deployment (or the pinned package), loaded once per model."""
        from containers.inference.local import LocalEndpoint

        model_dir, environment = self._model_dir()
        with self._lock:
            if self._loaded is None or self._loaded[0] != model_dir:
                apply_serving_environment(environment)
                capture = None if self.pinned else self.deployer.capture(self.endpoint_name)  # a package looked at is not the endpoint
                self._loaded = (model_dir, LocalEndpoint(model_dir), capture) if model_dir else None
            return self._loaded[1] if self._loaded else None

    def captured(self, request: bytes, request_type: str | None, status: int, answer: bytes, answer_type: str, inference_id: str | None) -> None:
        """Capture a successful invocation, sampled, as the deployment's data capture configures."""
        loaded = self._loaded
        if status == 200 and loaded and loaded[2] is not None:
            loaded[2].record(request, request_type, answer, answer_type, inference_id)

    def _model_dir(self) -> tuple[str | None, dict]:
        return self.deployer.model(self.endpoint_name, self.pinned)

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def shutdown(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = SOCKET_TIMEOUT  # set on each connection's socket (socketserver.StreamRequestHandler)
            body_unread = False  # a reply while True closes the connection: its unread body is not a next request

            def log_message(self, format, *args):
                pass

            def _reply(self, status: int, body: bytes = b"", content_type: str = "application/json", headers: dict | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                if self.body_unread:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                self.wfile.write(body)

            def _endpoint(self):
                """The loaded model, or False when it cannot load (the reason logged here, never sent: it names
                local paths)."""
                try:
                    return server.endpoint()
                except Exception:
                    log.exception("local endpoint %s: the model cannot be loaded", server.endpoint_name)
                    return False

            def do_GET(self):
                self.body_unread = False
                if self.path != "/ping":
                    return self._reply(HTTPStatus.NOT_FOUND, b'{"error": "not found"}')
                endpoint = self._endpoint()
                if endpoint is False:  # a broken model folder: unhealthy
                    return self._reply(HTTPStatus.SERVICE_UNAVAILABLE, json.dumps({"error": MODEL_UNLOADABLE}).encode())
                if endpoint is None:
                    return self._reply(HTTPStatus.SERVICE_UNAVAILABLE, b'{"error": "no model deployed"}')
                return self._reply(HTTPStatus.OK)

            def do_POST(self):
                self.body_unread = True
                path = urlsplit(self.path).path
                runtime = RUNTIME_PATH.fullmatch(path)
                if runtime is None and path != "/invocations":
                    return self._reply(HTTPStatus.NOT_FOUND, b'{"error": "not found"}')
                try:
                    length = body_length(self.headers, RUNTIME_MAX_BODY if runtime else MAX_BODY)
                except BodyRefused as refused:
                    if runtime:  # refused before the API: no error code, as botocore then reports "An error occurred (413)"
                        return self._runtime_error(refused.status, None, refused.message)
                    return self._reply(refused.status, json.dumps({"error": refused.message}).encode())
                if runtime is not None:
                    return self._invoke_endpoint(unquote(runtime.group(1)), length)
                return self._invocations(length)

            def _invocations(self, length: int) -> None:
                """SageMaker's container contract (POST /invocations)."""
                endpoint = self._endpoint()
                if endpoint is False:
                    return self._reply(HTTPStatus.INTERNAL_SERVER_ERROR, json.dumps({"error": MODEL_UNLOADABLE}).encode())
                if endpoint is None:
                    return self._reply(HTTPStatus.SERVICE_UNAVAILABLE, b'{"error": "no model deployed"}')
                return self._reply(*self._invoke(endpoint, length))

            def _invoke(self, endpoint, length: int) -> tuple[int, bytes, str]:
                body = self.rfile.read(length)
                self.body_unread = False
                accept = self.headers.get("Accept") or "application/json"
                content_type = self.headers.get("Content-Type", "")
                status, answer, answer_type = endpoint.invoke(body, content_type, self.headers.get(CUSTOM_ATTRIBUTES), accept)
                server.captured(body, content_type, status, answer, answer_type, self.headers.get(INFERENCE_ID))
                if status >= 500:  # the handler's exception text: logged here, not sent
                    log.error("local endpoint %s: the model answered %d: %s", server.endpoint_name, status, answer.decode("utf-8", "replace"))
                    return status, json.dumps({"error": MODEL_FAILED}).encode(), "application/json"
                return status, answer, answer_type

            def _invoke_endpoint(self, name: str, length: int) -> None:
                """InvokeEndpoint as the SageMaker runtime answers it (POST /endpoints/<name>/invocations)."""
                if name != server.endpoint_name:
                    return self._runtime_error(400, "ValidationError", f"Endpoint {name} of account {ACCOUNT} not found.")
                endpoint = self._endpoint()
                if endpoint is False:
                    return self._model_error(HTTPStatus.INTERNAL_SERVER_ERROR, json.dumps({"error": MODEL_UNLOADABLE}).encode())
                if endpoint is None:
                    return self._runtime_error(400, "ValidationError", f"Endpoint {name} of account {ACCOUNT} has no model deployed.")
                status, answer, content_type = self._invoke(endpoint, length)
                if status >= 400:
                    return self._model_error(status, answer)
                return self._reply(status, answer, content_type, {INVOKED_VARIANT: VARIANT})

            def _runtime_error(self, status: int, code: str | None, message: str, **members) -> None:
                """An error as the SageMaker runtime sends it: the code in x-amzn-ErrorType, the members in the JSON body
                (rest-json; botocore takes the code from the header and the shape's members from the body). Without a
                code botocore names the error by its status."""
                body = json.dumps({"Message": message, "message": message, **members}).encode()
                return self._reply(status, body, "application/json", {"x-amzn-ErrorType": code} if code else {})

            def _model_error(self, status: int, answer: bytes) -> None:
                """The container answered 4xx or 5xx: the runtime answers 424 ModelError with the original status and
                message (SageMaker API reference, InvokeEndpoint errors: "ModelError ... HTTP Status Code: 424")."""
                original = answer.decode("utf-8", "replace")
                kind = "client" if status < 500 else "server"
                log_stream = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/sagemaker/Endpoints/{server.endpoint_name}"
                message = f'Received {kind} error ({status}) from primary with message "{original}". See {log_stream} for more information.'
                return self._runtime_error(424, "ModelError", message, OriginalStatusCode=status, OriginalMessage=original, LogStreamArn=log_stream)

        return Handler
