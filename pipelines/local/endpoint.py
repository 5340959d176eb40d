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
import os
import re
import tarfile
import threading
import time
from dataclasses import asdict, dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from containers.deploy import champion
from containers.deploy.champion import Champion
from containers.deploy.deploy import VARIANT, Candidate, DeployError, DeployResult, decide
from containers.inference.inference import SERVING_ENVIRONMENT
from pipelines.local.capture import CaptureSettings, DataCapture
from pipelines.local.state import ACCOUNT, REGION, State
from pipelines.local.storage import LocalS3

CUSTOM_ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"
INFERENCE_ID = "X-Amzn-SageMaker-Inference-Id"
INVOKED_VARIANT = "x-Amzn-Invoked-Production-Variant"
MAX_BODY = 64 * 1024 * 1024
# InvokeEndpoint's body is at most 6,291,456 bytes, 6 MiB (botocore's sagemaker-runtime service model:
# BodyBlob's max), so the runtime refuses a larger request before the container sees it: checked on the runtime
# route only. Which error the runtime answers then is not in the model (a re:Post answer reports a 413).
RUNTIME_MAX_BODY = 6 * 1024 * 1024
RUNTIME_PATH = re.compile(r"/endpoints/([^/]+)/invocations")


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

    def __init__(self, state: State, s3: LocalS3, folder: Path, captures: dict[str, CaptureSettings | None] | None = None, group: str | None = None):
        self.state, self.s3, self.folder, self.captures = state, s3, folder, captures or {}
        self.group = group  # the group the endpoint serves (the function's MODEL_PACKAGE_GROUP); None: the package's own

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
        decision = decide(self._candidate(package.arn), served, group=self.group or package.group, force=force, force_reason=reason)
        if not decision.deploy:
            return DeployResult("skipped", endpoint_name, package_arn, decision.reason, package.version, up_to_date=decision.up_to_date)
        model_dir = self.folder / endpoint_name / f"v{package.version}"
        if not (model_dir / "1").is_dir():
            model_dir.mkdir(parents=True, exist_ok=True)
            with tarfile.open(self.s3.path(package.model_data_url)) as archive:
                archive.extractall(model_dir, filter="data")
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
        return champion.served(endpoint_name, self._candidate(package.arn), package.model_data_url)

    def _candidate(self, arn: str, record: Deployment | None = None) -> Candidate:
        """A registered package as the rule reads it (a deployment record's, when the package is gone)."""
        package = self.state.package(arn)
        if package is None and record is not None:
            return Candidate(record.package_arn, record.group, record.version)
        return Candidate(package.arn, package.group, package.version, package.status, package.map)

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
                folder.mkdir(parents=True, exist_ok=True)
                with tarfile.open(self.s3.path(package.model_data_url)) as archive:
                    archive.extractall(folder, filter="data")
            return str(folder), package.metadata.get("Environment", {})
        record = self.record(endpoint_name)
        return (record.model_dir, record.environment) if record else (None, {})


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

            def log_message(self, format, *args):
                pass

            def _reply(self, status: int, body: bytes = b"", content_type: str = "application/json", headers: dict | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path != "/ping":
                    return self._reply(HTTPStatus.NOT_FOUND, b'{"error": "not found"}')
                try:
                    ready = server.endpoint() is not None
                except Exception as exc:  # a broken model folder: unhealthy, with the reason
                    return self._reply(HTTPStatus.SERVICE_UNAVAILABLE, json.dumps({"error": str(exc)}).encode())
                return self._reply(HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE, b"" if ready else b'{"error": "no model deployed"}')

            def do_POST(self):
                path = urlsplit(self.path).path
                runtime = RUNTIME_PATH.fullmatch(path)
                if runtime is not None:
                    return self._invoke_endpoint(unquote(runtime.group(1)))
                if path != "/invocations":
                    return self._reply(HTTPStatus.NOT_FOUND, b'{"error": "not found"}')
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    return self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, b'{"error": "request body too large"}')
                endpoint = server.endpoint()
                if endpoint is None:
                    return self._reply(HTTPStatus.SERVICE_UNAVAILABLE, b'{"error": "no model deployed"}')
                return self._reply(*self._invoke(endpoint, self.rfile.read(length)))

            def _invoke(self, endpoint, body: bytes) -> tuple[int, bytes, str]:
                accept = self.headers.get("Accept") or "application/json"
                content_type = self.headers.get("Content-Type", "")
                status, answer, answer_type = endpoint.invoke(body, content_type, self.headers.get(CUSTOM_ATTRIBUTES), accept)
                server.captured(body, content_type, status, answer, answer_type, self.headers.get(INFERENCE_ID))
                return status, answer, answer_type

            def _invoke_endpoint(self, name: str) -> None:
                """InvokeEndpoint as the SageMaker runtime answers it (POST /endpoints/<name>/invocations)."""
                if name != server.endpoint_name:
                    return self._runtime_error(400, "ValidationError", f"Endpoint {name} of account {ACCOUNT} not found.")
                length = int(self.headers.get("Content-Length") or 0)
                if length > RUNTIME_MAX_BODY:
                    return self._runtime_error(
                        400, "ValidationError", f"Request payload of {length} bytes is over the 6 MB a real-time endpoint takes."
                    )
                endpoint = server.endpoint()
                if endpoint is None:
                    return self._runtime_error(400, "ValidationError", f"Endpoint {name} of account {ACCOUNT} has no model deployed.")
                status, answer, content_type = self._invoke(endpoint, self.rfile.read(length))
                if status >= 400:
                    return self._model_error(status, answer)
                return self._reply(status, answer, content_type, {INVOKED_VARIANT: VARIANT})

            def _runtime_error(self, status: int, code: str, message: str, **members) -> None:
                """An error as the SageMaker runtime sends it: the code in x-amzn-ErrorType, the members in the JSON body
                (rest-json; botocore takes the code from the header and the shape's members from the body)."""
                body = json.dumps({"Message": message, "message": message, **members}).encode()
                return self._reply(status, body, "application/json", {"x-amzn-ErrorType": code})

            def _model_error(self, status: int, answer: bytes) -> None:
                """The container answered 4xx or 5xx: the runtime answers 424 ModelError with the original status and
                message (SageMaker API reference, InvokeEndpoint errors: "ModelError ... HTTP Status Code: 424")."""
                original = answer.decode("utf-8", "replace")
                kind = "client" if status < 500 else "server"
                log_stream = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/sagemaker/Endpoints/{server.endpoint_name}"
                message = f'Received {kind} error ({status}) from primary with message "{original}". See {log_stream} for more information.'
                return self._runtime_error(424, "ModelError", message, OriginalStatusCode=status, OriginalMessage=original, LogStreamArn=log_stream)

        return Handler
