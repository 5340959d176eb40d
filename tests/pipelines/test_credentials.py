"""Credentials the CLI holds go only where they should. Label Studio's token comes from LABEL_STUDIO_API_KEY or a
hidden prompt (--token still works, with a warning) and goes over https, or plain http to this machine only. AWS
requests to an endpoint on this machine are signed with dummy keys, never the caller's own; a remote endpoint
URL (a VPC endpoint) keeps them."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from typer.testing import CliRunner

from pipelines import aws
from pipelines.cli import review_commands
from pipelines.cli.app import app
from pipelines.local.state import State
from pipelines.loopback import is_loopback
from tests.aws_fakes import REGION, isolate_aws
from tests.support import ROOT

CONFIG = ROOT / "pipeline.yaml"
REAL_KEY, REAL_SECRET, REAL_SESSION = "AKIAREALKEY000000001", "the-real-secret", "the-real-session-token"


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:8080", True),
        ("http://127.42.0.9/", True),  # all of 127.0.0.0/8
        ("http://[::1]:8080", True),
        ("http://localhost:8080/label", True),
        ("https://LOCALHOST.:8443", True),
        ("http://[::ffff:127.0.0.1]:1", True),  # IPv4-mapped
        ("http://127.1:8080", True),  # the short form the C library connects to 127.0.0.1
        ("http://2130706433/", True),
        ("http://0.0.0.0:5000", True),  # a connection to the unspecified address reaches this machine
        ("http://10.0.0.5:8080", False),
        ("https://label.example.com", False),
        ("http://127.0.0.1.nip.io:8080", False),  # a name is never resolved
        ("http://localhost.example.com", False),
        ("https://vpce-0a1b.api.sagemaker.eu-west-1.vpce.amazonaws.com", False),
        ("localhost:8080", False),  # no scheme: no host
        ("http://[::1", False),
        ("", False),
        (None, False),
    ],
)
def test_what_counts_as_this_machine(url, loopback):
    assert is_loopback(url) is loopback


# The Label Studio token


@pytest.fixture
def sent(monkeypatch, tmp_path):
    """No token in the environment, a local state to review, and every request the Label Studio SDK would send
    recorded (URL and Authorization header) and answered 401 here: nothing leaves this machine."""
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    State(tmp_path / "state")
    requests = []

    def send(self, request, **kwargs):
        requests.append((str(request.url), request.headers.get("authorization", "")))
        return httpx.Response(401, json={"detail": "recorded, not sent"}, request=request)

    monkeypatch.setattr(httpx.Client, "send", send)
    return requests


def pull(tmp_path, url: str, *options: str, **kwargs):
    arguments = ["review", "--config", str(CONFIG), "--local", "--state-dir", str(tmp_path / "state"), "--pull-labelstudio", url, *options]
    return CliRunner().invoke(app, arguments, **kwargs)


REFUSED = ["http://label.example.com:8080", "http://10.0.0.5:8080", "http://127.0.0.1.nip.io:8080"]
ALLOWED = ["https://label.example.com", "http://127.0.0.1:8080", "http://localhost:8080", "http://[::1]:8080"]


@pytest.mark.parametrize("url", REFUSED)
def test_the_token_is_not_sent_over_plain_http_to_another_machine(sent, tmp_path, monkeypatch, url):
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "env-token")
    result = pull(tmp_path, url)
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        f"error: refusing to send the Label Studio token over plain http to {url}: use https://, or http:// only for a "
        "server on this machine (127.0.0.1, [::1] or localhost)\n"
    )
    assert sent == []


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/", "localhost:8080"])
def test_a_url_that_is_neither_http_nor_https_is_refused(sent, tmp_path, monkeypatch, url):
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "env-token")
    result = pull(tmp_path, url)
    assert result.exit_code == 2 and f"{url!r} is not a Label Studio URL: expected https://" in result.stderr, result.output
    assert sent == []


@pytest.mark.parametrize("url", ALLOWED)
def test_the_token_goes_over_https_and_to_this_machine_over_http(sent, tmp_path, monkeypatch, url):
    """The request is made, carrying the environment's token, with no warning."""
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "env-token")
    result = pull(tmp_path, url)
    assert result.exit_code == 1 and "Label Studio answered 401" in result.stderr, result.output
    assert sent and all(where.startswith(url) and "env-token" in token for where, token in sent), sent
    assert "warning" not in result.stderr


def test_a_token_on_the_command_line_works_with_a_warning(sent, tmp_path):
    result = pull(tmp_path, "http://127.0.0.1:8080", "--token", "given-token")
    assert result.stderr.splitlines()[0] == (
        "warning: a token given with --token lands in the shell's history and the process list; set LABEL_STUDIO_API_KEY instead"
    )
    assert sent and all("given-token" in token for _, token in sent), sent


def test_without_a_token_at_a_terminal_it_is_asked_for_without_echo(sent, tmp_path, monkeypatch):
    # CliRunner's input is not a terminal: say it is. (raising=False: the test also runs against code without it.)
    monkeypatch.setattr(review_commands, "_interactive", lambda: True, raising=False)
    result = pull(tmp_path, "http://127.0.0.1:8080", input="typed-token\n")
    assert "Label Studio access token for http://127.0.0.1:8080: " in result.output
    assert "typed-token" not in result.output
    assert sent and all("typed-token" in token for _, token in sent), sent


def test_without_a_token_and_no_terminal_the_error_names_the_variable(sent, tmp_path):
    result = pull(tmp_path, "https://label.example.com")
    assert result.exit_code == 2
    assert result.stderr == (
        "error: Label Studio needs an access token: set LABEL_STUDIO_API_KEY (Account & Settings in Label Studio), or run at a terminal to type it\n"
    )
    assert sent == []


# Signing AWS requests


class _Recorder(BaseHTTPRequestHandler):
    """Keeps each request's signing headers and answers 400 (not retried) to everything."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.seen.append({name: self.headers.get(name, "") for name in ("Authorization", "X-Amz-Security-Token")})
        body = b'{"__type": "ValidationException", "message": "recorded"}'
        self.send_response(400)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_HEAD = do_POST

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def listener():
    """An HTTP server on 127.0.0.1 that records how requests were signed: what any local program could see."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.seen = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def real_keys(monkeypatch, tmp_path):
    isolate_aws(monkeypatch, tmp_path, credentials=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", REAL_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", REAL_SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", REAL_SESSION)


def _signed_with_dummy_keys(seen: list[dict]) -> None:
    assert seen, "no request reached the listener"
    for headers in seen:
        assert "Credential=testing/" in headers["Authorization"], headers
        assert REAL_KEY not in headers["Authorization"] and headers["X-Amz-Security-Token"] == "", headers


def test_a_loopback_endpoint_url_is_signed_with_dummy_keys(real_keys, listener):
    url = f"http://127.0.0.1:{listener.server_port}"
    result = CliRunner().invoke(app, ["models", "--config", str(CONFIG), "--endpoint-url", url])
    assert result.exit_code == 1, result.output  # the listener refuses every call
    _signed_with_dummy_keys(listener.seen)


def test_a_loopback_endpoint_from_the_environment_is_signed_with_dummy_keys(real_keys, listener, monkeypatch):
    """AWS_ENDPOINT_URL (the SDKs' shared setting) sends requests there as --endpoint-url does."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://localhost:{listener.server_port}")
    result = CliRunner().invoke(app, ["models", "--config", str(CONFIG)])
    assert result.exit_code == 1, result.output
    _signed_with_dummy_keys(listener.seen)


def test_a_remote_endpoint_url_keeps_the_real_keys(real_keys):
    """A VPC endpoint is AWS: the request is signed with the caller's keys. Recorded just before it would be
    sent, so nothing is."""
    session = aws.connect(REGION, "https://vpce-0a1b.api.sagemaker.eu-west-1.vpce.amazonaws.com")
    credentials = session.session.get_credentials()
    assert (credentials.access_key, credentials.secret_key, credentials.token) == (REAL_KEY, REAL_SECRET, REAL_SESSION)

    class Stop(Exception):
        pass

    seen = []

    def record(request, **kwargs):
        seen.append((request.url, request.headers["Authorization"].decode(), request.headers["X-Amz-Security-Token"].decode()))
        raise Stop

    client = session.client("sagemaker")
    client.meta.events.register("before-send.sagemaker", record)
    with pytest.raises(Stop):
        client.list_model_packages()
    ((where, authorization, token),) = seen
    assert where.startswith("https://vpce-0a1b.api.sagemaker.eu-west-1.vpce.amazonaws.com")
    assert f"Credential={REAL_KEY}/" in authorization and token == REAL_SESSION


def test_a_remote_endpoint_url_without_credentials_says_so(monkeypatch, tmp_path):
    """Credentials are looked for when a request is signed, before it is sent, so 192.0.2.1 (TEST-NET-1, never
    routed) is not reached. (A loopback URL needs none: it gets the dummy keys.)"""
    isolate_aws(monkeypatch, tmp_path, credentials=False)
    result = CliRunner().invoke(app, ["models", "--config", str(CONFIG), "--endpoint-url", "http://192.0.2.1:1"])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: no AWS credentials found: set AWS_PROFILE") and result.stderr.count("\n") == 1, result.stderr
