"""AWS stand-ins for the control-plane tests: moto in server mode on 127.0.0.1, and a stub for the one call
at a time that moto does not implement.

The moto server runs in a thread of the test process and keeps its state in moto's backends; `reset()`
empties them between tests. Real boto3 clients reach it through `endpoint_url`, with fake credentials.
"""

from __future__ import annotations

import logging
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse

REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's account
ROLE = f"arn:aws:iam::{ACCOUNT}:role/cardamage-sagemaker"
# Variables that would let a test reach a real account or read the developer's configuration.
AWS_VARIABLES = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)


class MotoServer:
    """moto's server on 127.0.0.1 with a port the OS chose."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"

    def reset(self) -> None:
        """Forget every resource (moto's own reset API)."""
        urllib.request.urlopen(urllib.request.Request(f"{self.url}/moto-api/reset", method="POST"), timeout=10).close()

    def stop(self) -> None:
        self._server.stop()


@contextmanager
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer()
    try:
        yield server
    finally:
        server.stop()


def isolate_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *, credentials: bool = True, region: str | None = REGION) -> None:
    """An environment with no real AWS configuration: empty config files, fake keys (or none), a region (or none)."""
    for name in AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    empty = tmp_path / "aws-empty"
    empty.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-metadata lookup for credentials
    if credentials:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    if region:
        monkeypatch.setenv("AWS_DEFAULT_REGION", region)


def client(service: str, url: str) -> Any:
    return boto3.client(service, endpoint_url=url, region_name=REGION)


@dataclass
class Stub:
    """One operation answered here instead of by moto: the parameters of each call, and `respond(params)`,
    which gives the parsed answer; an answer with an "Error" key is raised as a ClientError, and None lets
    the call through to moto after all."""

    service_id: str  # as in botocore's event names: "sagemaker", "application-auto-scaling"
    operation: str
    respond: Callable[[dict[str, Any]], dict[str, Any] | None]
    calls: list[dict[str, Any]] = field(default_factory=list)

    def install(self, events: Any) -> Stub:
        """Hook into a client's or a session's event system (clients made from the session later inherit it).
        botocore checks the parameters against the service model before this answers, as for a real call.
        This is what botocore's Stubber does, for one operation instead of every call of a client."""
        events.register(f"before-parameter-build.{self.service_id}.{self.operation}", self._record)
        events.register(f"before-call.{self.service_id}.{self.operation}", self._answer)
        return self

    def _record(self, params: dict[str, Any], **_: Any) -> None:
        self.calls.append(dict(params))

    def _answer(self, **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        parsed = self.respond(self.calls[-1])
        if parsed is None:
            return None
        return AWSResponse(None, 400 if "Error" in parsed else 200, {}, None), parsed


def stub_operation(events: Any, service_id: str, operation: str, respond: Callable[[dict[str, Any]], dict[str, Any] | None] | dict[str, Any]) -> Stub:
    """A `Stub` for one operation, installed on `events`; `respond` may be a fixed answer."""
    function = respond if callable(respond) else (lambda params, answer=respond: answer)
    return Stub(service_id, operation, function).install(events)


def applied_update(url: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """An UpdateEndpoint answer that also applies the update in moto, which lacks the operation: the endpoint
    is made again on the new config, with its tags, as a finished update leaves it."""

    def respond(params: dict[str, Any]) -> dict[str, Any]:
        sagemaker = client("sagemaker", url)
        arn = sagemaker.describe_endpoint(EndpointName=params["EndpointName"])["EndpointArn"]
        tags = sagemaker.list_tags(ResourceArn=arn)["Tags"]
        sagemaker.delete_endpoint(EndpointName=params["EndpointName"])
        sagemaker.create_endpoint(
            EndpointName=params["EndpointName"], EndpointConfigName=params["EndpointConfigName"], **({"Tags": tags} if tags else {})
        )
        return {"EndpointArn": arn}

    return respond
