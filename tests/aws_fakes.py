"""AWS stand-ins for the control-plane tests: moto in server mode on 127.0.0.1, a stub for the one call at a
time that moto does not implement, and the Lambda functions run from their packaged code as the runtime does.

The moto server runs in a thread of the test process and keeps its state in moto's backends; `reset()`
empties them between tests. Real boto3 clients reach it through `endpoint_url`, with fake credentials.
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import os
import shutil
import tempfile
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

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


class TickingS3Clock:
    """moto's S3 clock one second later at each object it dates (moto's server runs in this process, in a
    thread): S3 dates uploads to the second, so uploads whose order matters are a second apart without the
    test waiting for the wall clock. `monkeypatch.setattr("moto.s3.models.utcnow", TickingS3Clock())`."""

    def __init__(self) -> None:
        import datetime
        import itertools

        start = datetime.datetime.now(datetime.UTC).replace(tzinfo=None, microsecond=0)  # moto's utcnow is naive UTC
        self._moments = (start + datetime.timedelta(seconds=n) for n in itertools.count())

    def __call__(self):
        return next(self._moments)


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


def described_endpoint(url: str, **fields: Any) -> Callable[[dict[str, Any]], dict[str, Any] | None]:
    """A DescribeEndpoint answer: moto's, with `fields` added or replaced (moto keeps no FailureReason, for
    one). An endpoint moto does not have is left to moto, which says so. moto is asked through a session of
    its own, as the stub may be on the default one."""

    def respond(params: dict[str, Any]) -> dict[str, Any] | None:
        try:
            answer = boto3.Session().client("sagemaker", endpoint_url=url, region_name=REGION).describe_endpoint(**params)
        except ClientError:
            return None
        answer.pop("ResponseMetadata", None)
        return {**answer, **fields}

    return respond


def deleted_package(arn: str) -> Callable[[dict[str, Any]], dict[str, Any] | None]:
    """A DescribeModelPackage answer for a package deleted from the registry (moto cannot delete one): the
    error moto gives for a package it never had. Other packages are left to moto."""

    def respond(params: dict[str, Any]) -> dict[str, Any] | None:
        if params["ModelPackageName"] != arn:
            return None
        return {"Error": {"Code": "ValidationException", "Message": f"Model package {arn} not found"}}

    return respond


def default_session(monkeypatch: pytest.MonkeyPatch) -> boto3.Session:
    """A fresh default session for the `boto3.client()` calls of the code under test (a Lambda handler), so
    that a stub can hook its events; the previous one comes back after the test."""
    session = boto3.Session()
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", session)
    return session


# The Lambda functions as AWS runs them: the code is the folder the CDK app packages (infra/functions.py,
# `Code.from_asset` with its excludes), and the runtime imports the handler's module by name with that
# folder first on sys.path and the runtime's boto3 after it; the project's `containers` package is not there.
# Sources: awslambdaric's bootstrap.py `_get_handler` (importlib.import_module of the handler's module), and
# the Lambda developer guide, "Deploy Python Lambda functions with container images" (the runtime searches
# LAMBDA_TASK_ROOT first; runtime-included libraries such as boto3 come from its site-packages).

_RUNTIME = """
import importlib, importlib.util, json, sys
task_root, site_packages, handler, output = sys.argv[1:5]
sys.path[:0] = [task_root]
sys.path.append(site_packages)
if importlib.util.find_spec("containers") is not None:
    sys.exit("the project's containers package is importable: this is not the function alone")
module_name, function_name = handler.rsplit(".", 1)
answer = getattr(importlib.import_module(module_name), function_name)(json.load(sys.stdin), None)
loaded = {name: module.__file__ for name, module in list(sys.modules.items()) if getattr(module, "__file__", None)}
with open(output, "w") as out:
    json.dump({"answer": answer, "modules": loaded}, out)
"""


@dataclass(frozen=True)
class PackagedFunction:
    """One of the stack's functions: its handler ("<module>.<function>") and the code the CDK app stages for it."""

    handler: str
    code: Path

    def invoke(self, event: Any, environment: dict[str, str], scratch: Path) -> tuple[Any, dict[str, str]]:
        """Run the handler on `event` in a fresh interpreter that sees only the staged code, the standard
        library and the venv's site-packages (for boto3): -I ignores PYTHON* variables and the user's site,
        -S skips the .pth files (the project's editable install among them), -B writes no bytecode (the
        function's code is read-only). Returns the answer and {module: file} of what was imported."""
        import subprocess
        import sys
        import sysconfig

        output = scratch / f"{self.handler}.answer.json"
        run = subprocess.run(
            [sys.executable, "-I", "-S", "-B", "-c", _RUNTIME, str(self.code), sysconfig.get_paths()["purelib"], self.handler, str(output)],
            input=json.dumps(event),
            capture_output=True,
            text=True,
            cwd=self.code,  # the runtime's working directory is the function's code (LAMBDA_TASK_ROOT)
            env={**os.environ, **environment, "LAMBDA_TASK_ROOT": str(self.code)},
            timeout=120,
            check=False,
        )
        assert run.returncode == 0, f"{self.handler} failed as packaged:\n{run.stderr}"
        result = json.loads(output.read_text())
        return result["answer"], result["modules"]


def packaged_function(handler: str) -> PackagedFunction:
    """The function whose handler is `handler`, as the CDK app declares it (a `small_function` call in infra/)
    and packages it (a stack of `small_function`s synthesized here, once per test process)."""
    functions = _packaged_functions()
    assert handler in functions, f"no function in infra/ has the handler {handler!r} (found {sorted(functions)})"
    return functions[handler]


@functools.cache
def _packaged_functions() -> dict[str, PackagedFunction]:
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    from aws_cdk import App, Stack

    from infra.functions import small_function

    declared = _declared_functions()
    outdir = Path(tempfile.mkdtemp(prefix="cardamage-functions-"))
    atexit.register(shutil.rmtree, outdir, ignore_errors=True)
    app = App(outdir=str(outdir))
    stack = Stack(app, "Functions")
    for number, (folder, handler) in enumerate(declared):
        small_function(stack, f"Function{number}", folder=folder, handler=handler, description=handler, environment={})
    app.synth()
    template = json.loads((outdir / "Functions.template.json").read_text())
    sources = json.loads((outdir / "Functions.assets.json").read_text())["files"]
    functions = {}
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Lambda::Function":
            asset = resource["Properties"]["Code"]["S3Key"].removesuffix(".zip")
            code = outdir / sources[asset]["source"]["path"]
            functions[resource["Properties"]["Handler"]] = PackagedFunction(resource["Properties"]["Handler"], code)
    return functions


def _declared_functions() -> list[tuple[str, str]]:
    """(folder, handler) of every `small_function(...)` call in infra/, read from the source."""
    import ast

    from tests.support import ROOT

    found = []
    for path in sorted((ROOT / "infra").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "small_function":
                words = {word.arg: word.value for word in node.keywords}
                if isinstance(words.get("folder"), ast.Constant) and isinstance(words.get("handler"), ast.Constant):
                    found.append((words["folder"].value, words["handler"].value))
    return found
