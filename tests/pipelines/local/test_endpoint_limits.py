"""The local endpoint's HTTP limits and what it tells a client (pipelines/local/endpoint.py): a body is read by one
plain Content-Length within the route's limit, a stalled client is dropped, a failing model's exception text
(which names local paths) stays in the server's log, and a package's archive is unpacked by the archive rule.

Requests are written by hand on a socket, since HTTP clients refuse to send most of these headers."""

from __future__ import annotations

import http.client
import io
import json
import logging
import socket
import tarfile
import threading
import time

import pytest

from containers.deploy.deploy import DeployError
from pipelines.local import endpoint as module
from pipelines.local.endpoint import RUNTIME_MAX_BODY, EndpointServer, LocalDeployer
from pipelines.local.state import State
from pipelines.local.storage import LocalS3

ENDPOINT = "car-damage-endpoint"
RUNTIME = f"/endpoints/{ENDPOINT}/invocations"


class Model:
    """A loaded model that answers every request with `answer`, and keeps the bodies it was given."""

    def __init__(self, answer: tuple[int, bytes, str] = (200, b'{"predictions": []}', "application/json")):
        self.answer, self.bodies = answer, []

    def invoke(self, body, content_type, custom_attributes=None, accept="application/json"):
        self.bodies.append(body)
        return self.answer


def serve(tmp_path, model=None, package_arn=None) -> EndpointServer:
    deployer = LocalDeployer(State(tmp_path / "state"), LocalS3(tmp_path / "state" / "s3"), tmp_path / "state" / "endpoints")
    server = EndpointServer(deployer, ENDPOINT, port=0, package_arn=package_arn)
    if model is not None:
        server.endpoint = lambda: model
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def served(tmp_path):
    model = Model()
    server = serve(tmp_path, model)
    yield server, model
    server.shutdown()


def send(port: int, request: bytes, *, end: bool = False) -> tuple[http.client.HTTPResponse, bytes, socket.socket]:
    """One request as raw bytes (`end`: then no more bytes, as a client closing its side); the answer and the socket."""
    connection = socket.create_connection(("127.0.0.1", port), timeout=10)
    connection.sendall(request)
    if end:
        connection.shutdown(socket.SHUT_WR)
    response = http.client.HTTPResponse(connection)
    response.begin()
    return response, response.read(), connection


def closed(connection: socket.socket, wait: float = 10) -> bool:
    """Whether the server closed the connection (the next read ends) within `wait` seconds, rather than waiting
    for another request."""
    connection.settimeout(wait)
    try:
        return connection.recv(1) == b""
    except TimeoutError:
        return False
    finally:
        connection.close()


def post(path: str, *headers: str, body: bytes = b"") -> bytes:
    return "\r\n".join([f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *headers, "", ""]).encode() + body


def test_a_negative_content_length_gets_400_on_both_routes_and_no_body_is_read(served):
    server, model = served
    response, body, connection = send(server.port, post("/invocations", "Content-Length: -1"), end=True)
    assert response.status == 400 and json.loads(body) == {"error": "Content-Length '-1' is not one number of bytes (0 or more)"}
    assert closed(connection)

    response, body, connection = send(server.port, post(RUNTIME, "Content-Length: -20971520"), end=True)
    assert response.status == 400 and response.getheader("x-amzn-ErrorType") is None  # refused before the API: no error code
    assert json.loads(body)["message"] == "Content-Length '-20971520' is not one number of bytes (0 or more)"
    assert closed(connection)
    assert model.bodies == []  # the model never saw a request


@pytest.mark.parametrize("values", [["abc"], ["+5"], ["5, 5"], [" 0x10"], ["5", "5"]], ids=["word", "plus", "list", "hex", "twice"])
def test_a_content_length_that_is_not_one_number_of_bytes_gets_400(served, values):
    server, model = served
    response, body, connection = send(server.port, post("/invocations", *(f"Content-Length: {value}" for value in values)), end=True)
    assert response.status == 400 and "is not one number of bytes" in json.loads(body)["error"]
    assert closed(connection) and model.bodies == []


def test_a_length_over_the_routes_limit_gets_413_before_the_body_is_sent(served):
    server, model = served
    over = RUNTIME_MAX_BODY + 1
    response, body, connection = send(server.port, post(RUNTIME, f"Content-Length: {over}"))
    assert response.status == 413 and response.getheader("x-amzn-ErrorType") is None
    assert json.loads(body)["message"] == f"the request body is {over} bytes; the limit is {RUNTIME_MAX_BODY}"
    assert closed(connection)

    over = module.MAX_BODY + 1
    response, body, connection = send(server.port, post("/invocations", f"Content-Length: {over}"))
    assert response.status == 413 and json.loads(body) == {"error": f"the request body is {over} bytes; the limit is {module.MAX_BODY}"}
    assert closed(connection) and model.bodies == []


def test_a_transfer_encoding_is_refused_and_the_connection_closed(served):
    server, model = served
    response, body, connection = send(server.port, post("/invocations", "Transfer-Encoding: chunked"))
    assert response.status == 411 and json.loads(body) == {"error": "a chunked body is not accepted here: send it with a Content-Length"}
    assert response.getheader("Connection") == "close" and closed(connection)  # the chunks are never read as a next request

    response, body, connection = send(server.port, post(RUNTIME, "Transfer-Encoding: gzip", "Content-Length: 3"))
    assert response.status == 400 and json.loads(body)["message"] == "Transfer-Encoding 'gzip' leaves the body's length unknown"
    assert closed(connection) and model.bodies == []


def test_a_plain_request_is_answered_and_its_connection_kept(served):
    server, model = served
    response, body, connection = send(server.port, post("/invocations", "Content-Length: 5", body=b"image"))
    assert (response.status, body, model.bodies) == (200, b'{"predictions": []}', [b"image"])
    assert response.getheader("Connection") is None and not closed(connection, wait=0.5)


def test_a_client_that_stops_sending_is_dropped_after_the_socket_timeout(tmp_path, monkeypatch):
    monkeypatch.setattr(module, "SOCKET_TIMEOUT", 0.5, raising=False)  # read when the server makes its handler
    model = Model()
    server = serve(tmp_path, model)
    try:
        connection = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        connection.sendall(post("/invocations", "Content-Length: 10", body=b"ab"))  # 8 bytes short, and no more come
        started = time.monotonic()
        assert closed(connection) and time.monotonic() - started < 5
        assert model.bodies == []
    finally:
        server.shutdown()


def test_a_failing_model_answers_500_without_its_exception_text(tmp_path, caplog):
    secret = f"{tmp_path}/state/endpoints/v1/1/variables: unreadable"
    model = Model((500, json.dumps({"error": secret}).encode(), "application/json"))  # as LocalEndpoint answers any handler exception
    server = serve(tmp_path, model)
    try:
        with caplog.at_level(logging.ERROR, logger=module.__name__):
            response, body, _ = send(server.port, post("/invocations", "Content-Length: 5", body=b"image"))
            assert response.status == 500 and str(tmp_path) not in body.decode()
            assert json.loads(body) == {"error": module.MODEL_FAILED}
            response, body, _ = send(server.port, post(RUNTIME, "Content-Length: 5", body=b"image"))
        answer = json.loads(body)
        assert response.status == 424 and answer["OriginalStatusCode"] == 500 and str(tmp_path) not in body.decode()
        assert json.loads(answer["OriginalMessage"]) == {"error": module.MODEL_FAILED}
        assert secret in caplog.text  # the reason stays on this side
    finally:
        server.shutdown()


def _archive(path, *members: tuple[str, bytes | str | None]):
    """A model.tar.gz of (name, content) members: bytes a file, None a folder, a str a symbolic link to it."""
    with tarfile.open(path, "w:gz") as tar:
        for name, content in members:
            info = tarfile.TarInfo(name)
            if content is None:
                info.type = tarfile.DIRTYPE
            elif isinstance(content, str):
                info.type, info.linkname = tarfile.SYMTYPE, content
            else:
                info.size = len(content)
            tar.addfile(info, io.BytesIO(content) if isinstance(content, bytes) else None)
    return path


def register(tmp_path, *members: tuple[str, bytes | str | None]) -> str:
    s3 = LocalS3(tmp_path / "state" / "s3")
    uri = "s3://local-artifacts/run-1/model.tar.gz"
    _archive(tmp_path / "model.tar.gz", *members)
    s3.put_file(tmp_path / "model.tar.gz", uri)
    return State(tmp_path / "state").register("car-damage", "Approved", uri, "i", None, 0.5, {}, "run-1").arn


def request(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, dict]:
    """(status, JSON answer) of one request through http.client."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers={"Content-Type": "image/jpeg"} if body else {})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_a_model_that_cannot_load_answers_ping_and_invocations_without_local_paths(tmp_path, caplog):
    arn = register(tmp_path, ("1", None))  # a SavedModel folder but no model.json: LocalEndpoint names the folder
    server = serve(tmp_path, package_arn=arn)
    try:
        with caplog.at_level(logging.ERROR, logger=module.__name__):
            ping = request(server.port, "GET", "/ping")
            assert ping[0] == 503 and str(tmp_path) not in json.dumps(ping[1])
            invoked = request(server.port, "POST", "/invocations", b"image")
        assert invoked[0] == 500 and str(tmp_path) not in json.dumps(invoked[1])
        assert ping[1] == invoked[1] == {"error": module.MODEL_UNLOADABLE}
        assert f"{tmp_path}/state/endpoints/packages/car-damage-v1: no model.json" in caplog.text
    finally:
        server.shutdown()


@pytest.mark.parametrize("unsafe", [("1/variables", "../../../.."), ("../outside.txt", b"x")], ids=["link", "dot-dot"])
def test_a_package_whose_archive_holds_a_link_or_dot_dot_is_refused_before_anything_is_written(tmp_path, unsafe):
    arn = register(tmp_path, ("model.json", b"{}"), unsafe)  # model.json first: a late refusal would have written it
    deployer = LocalDeployer(State(tmp_path / "state"), LocalS3(tmp_path / "state" / "s3"), tmp_path / "state" / "endpoints")
    with pytest.raises(
        DeployError,
        match=rf"model package version 1 \(.*car-damage/1\) cannot be served: .*model.tar.gz: refused to extract an unsafe member: '{unsafe[0]}'",
    ):
        deployer.model(ENDPOINT, arn)
    assert not (tmp_path / "state" / "endpoints" / "packages").exists()
    assert not (tmp_path / "state" / "endpoints" / "outside.txt").exists()
