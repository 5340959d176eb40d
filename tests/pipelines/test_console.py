"""The approvers' console (pipelines/console/, `cardamage console`) through Starlette's TestClient: what the pages
show, the decision taking the command line's path, and every refusal (a POST without the token or from another
origin, a Host that is not the console's, an empty comment, text from the registry as text), on the local state
and on AWS (moto in server mode). The page as a person uses it is tested in a real browser:
test_console_browser.py."""

from __future__ import annotations

import getpass
import json
import re
import signal
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from markupsafe import escape
from starlette.testclient import TestClient
from typer.testing import CliRunner

from pipelines.backends import Package
from pipelines.backends.aws import AwsBackend
from pipelines.backends.local import LocalBackend
from pipelines.cli import app
from pipelines.config import load_config
from pipelines.console.app import HEADERS, PAGE_POLICY, REPORT_POLICY, Site, create_app, row, site
from pipelines.local.state import State
from steps.register import METADATA_REPORT
from tests.aws_fakes import ACCOUNT, client, stub_operation
from tests.pipelines.console_support import Registered, models_row, pending_state, report_page
from tests.pipelines.test_control_plane import ARTIFACTS, GROUP, config, env, registry, server  # noqa: F401 (fixtures)
from tests.support import ROOT

runner = CliRunner()
SITE = Site("127.0.0.1", 8770)
ORIGIN = "http://127.0.0.1:8770"
HOSTILE = "<script>window.__pwned = 1</script>"
PACKAGES = (
    Registered(1, 0.3559, (0.30, 0.41), report=False, note=f"held back: {HOSTILE}", data='s3://local-data/"><img src=x onerror="window.__pwned=2">'),
    Registered(2, 0.4083, (0.33, 0.49), champion=(1, 0.3559, (0.30, 0.41), (-0.12, 0.02))),
)


@pytest.fixture
def local(tmp_path):
    """Two pending packages (version 1 without a report, its note and data holding markup) and a client of the
    console over them."""
    settings, state_dir = pending_state(tmp_path, PACKAGES)
    application = create_app(LocalBackend(settings, state_dir), settings, SITE, local=True, token="the-token")
    with TestClient(application, base_url=ORIGIN, follow_redirects=False) as browser:
        yield browser, state_dir


def registry_now(state_dir: Path) -> list[tuple]:
    """Everything a decision may change: each package's status, note and modification time, and the endpoints."""
    packages = [(p.version, p.status, p.approval_description, p.modified) for p in State(state_dir).packages("car-damage-models")]
    endpoints = sorted(path.name for path in (state_dir / "endpoints").glob("*.json")) if (state_dir / "endpoints").is_dir() else []
    return [*packages, endpoints]


def decide(browser, version: int, decision: str, comment: str, **overrides):
    """The form's POST as the page sends it; `overrides` replace the token or headers."""
    form = {"token": "the-token", "decision": decision, "comment": comment}
    form.update({name: value for name, value in overrides.items() if name in form})
    headers = {"origin": ORIGIN, **overrides.get("headers", {})}
    headers = {name: value for name, value in headers.items() if value is not None}
    return browser.post(f"/packages/{version}", data={k: v for k, v in form.items() if v is not None}, headers=headers)


def test_the_list_shows_each_package_and_what_each_endpoint_serves(local):
    browser, _ = local
    page = browser.get("/")
    assert page.status_code == 200
    rows = dict(re.findall(r'<tr data-version="(\d)"[^>]*>(.*?)</tr>', page.text, re.S))
    assert list(rows) == ["2", "1"]
    assert '<td class="number map">0.41 (0.33-0.49)</td>' in rows["2"] and '<td class="number map">0.36 (0.30-0.41)</td>' in rows["1"]
    assert '<td class="number lead">-0.052 (-0.120 to 0.020) against v1 (mAP 0.36 (0.30-0.41))</td>' in rows["2"]
    assert '<td class="number lead">none served</td>' in rows["1"]
    assert "20261130T101500Z-0123456789ab" in rows["2"] and "PendingManualApproval" in rows["2"]
    assert "<tr><td>production</td><td>car-damage-endpoint</td><td>none of the packages listed</td></tr>" in page.text
    for name, value in HEADERS.items():
        assert page.headers[name] == value
    assert page.headers["content-security-policy"] == PAGE_POLICY
    assert "default-src 'none'" in PAGE_POLICY and "frame-ancestors 'none'" in PAGE_POLICY and "form-action 'self'" in PAGE_POLICY


def test_with_release_stages_the_list_shows_what_each_stage_serves(tmp_path):
    settings, state_dir = pending_state(tmp_path, PACKAGES)
    staged = settings.model_copy(update={"deployment": settings.deployment.model_copy(update={"stages": ["staging", "production"]})})
    application = create_app(LocalBackend(staged, state_dir), staged, SITE, local=True, token="the-token")
    with TestClient(application, base_url=ORIGIN, follow_redirects=False) as browser:
        assert decide(browser, 2, "Approved", "to staging first").status_code == 303
        page = browser.get("/").text
    assert "<tr><td>staging</td><td>car-damage-endpoint-staging</td><td>version 2</td></tr>" in page
    assert "<tr><td>production</td><td>car-damage-endpoint</td><td>none of the packages listed</td></tr>" in page
    rows = dict(re.findall(r'<tr data-version="(\d)"[^>]*>(.*?)</tr>', page, re.S))
    assert '<td class="serving">staging</td>' in rows["2"] and '<td class="serving"></td>' in rows["1"]


def test_the_accuracy_in_service_shows_once_the_monitor_measured_one(local):
    browser, state_dir = local
    assert "in service" not in browser.get("/").text
    state = State(state_dir)
    (second, _) = state.packages("car-damage-models")
    state.record_service_quality(
        second.arn, "car-damage-endpoint", {"since": None, "until": "2026-12-01T00:00:00+00:00"}, {"images": 12, "map": 0.31}
    )
    rows = dict(re.findall(r'<tr data-version="(\d)"[^>]*>(.*?)</tr>', browser.get("/").text, re.S))
    assert '<td class="number in-service">0.3100 on 12 photos (2026-12-01)</td>' in rows["2"]
    assert '<td class="number in-service">-</td>' in rows["1"]
    assert '<tr><th>in service</th><td class="in-service">0.3100 on 12 photos (2026-12-01)</td></tr>' in browser.get("/packages/2").text


def test_a_package_evaluated_before_intervals_shows_its_figures_alone():
    """Without intervals the lead is the champion's recorded mAP less the package's; without a champion, says so."""
    settings = load_config(ROOT / "pipeline.yaml")
    older = Package(3, "arn:3", "PendingManualApproval", map=0.4083, champion=(1, 0.3559))
    assert (row(older, settings).map, row(older, settings).lead) == ("0.41", "-0.052 against v1 (mAP 0.36)")
    assert row(replace(older, champion=(0, None)), settings).lead == "none served"
    assert row(replace(older, champion=None), settings).lead == "-"  # registered before champions were recorded
    assert row(replace(older, champion=(1, None), map=None), settings).map == "-"
    assert row(replace(older, champion=(1, None)), settings).lead == "- against v1 (mAP -)"


def test_approving_records_the_users_name_deploys_and_shows_what_it_did(local, monkeypatch):
    browser, state_dir = local
    answer = decide(browser, 2, "Approved", "better on dents")
    assert answer.status_code == 303 and answer.headers["location"].startswith("/packages/2?result=")
    page = browser.get(answer.headers["location"]).text
    note = f"Approved by {getpass.getuser()}@local: better on dents"
    assert '<span class="status" id="status">Approved</span>' in page
    assert f"version 2: PendingManualApproval -&gt; Approved ({note})" in page
    assert "endpoint car-damage-endpoint: created (nothing is served yet: version 2 is deployed; version 2 is in service)" in page
    assert json.loads((state_dir / "endpoints" / "car-damage-endpoint.json").read_text())["version"] == 2
    listed = models_row(state_dir, 2, monkeypatch)
    assert listed.split()[1] == "Approved" and listed.endswith(note)
    # A refresh of the result page changes nothing: the decision was the POST's, the page is a GET.
    before = registry_now(state_dir)
    assert browser.get(answer.headers["location"]).status_code == 200 and registry_now(state_dir) == before
    assert 'id="result"' not in browser.get(answer.headers["location"].replace("/packages/2", "/packages/1")).text  # its own page only


def test_a_rejection_says_what_the_command_line_says(local):
    """One path for both: the warning that the endpoint still serves a rejected package is the CLI's, word for word."""
    browser, state_dir = local
    assert decide(browser, 2, "Approved", "ship it").status_code == 303
    rejected = decide(browser, 2, "Rejected", "misses scratches")
    page = browser.get(rejected.headers["location"]).text
    by_cli = runner.invoke(
        app, ["reject", "2", "-m", "misses scratches", "--local", "--state-dir", str(state_dir), "--config", str(ROOT / "pipeline.yaml")]
    )
    warning = by_cli.stderr.strip().removeprefix("warning: ")
    assert warning.startswith("endpoint car-damage-endpoint still serves version 2")
    assert f'<p class="warning">Warning: {warning.replace("`", "`")}</p>' in page
    assert f"version 2: Approved -&gt; Rejected (Rejected by {getpass.getuser()}@local: misses scratches)" in page


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        ({"token": None}, "no token"),
        ({"token": "the-token-but-longer"}, "another token"),
        ({"token": ""}, "an empty token"),
        ({"headers": {"origin": "http://evil.example"}}, "another site"),
        ({"headers": {"origin": "http://127.0.0.1:8771"}}, "another port"),
        ({"headers": {"origin": "null"}}, "an opaque origin (a sandboxed frame, a file)"),
        ({"headers": {"origin": None}}, "no Origin"),
    ],
)
def test_a_post_without_the_token_or_from_another_origin_is_refused(local, overrides, why):
    browser, state_dir = local
    before = registry_now(state_dir)
    refused = decide(browser, 2, "Approved", "looks fine", **overrides)
    assert refused.status_code == 403, why
    assert refused.text.startswith("refused: ") and refused.headers["content-security-policy"] == PAGE_POLICY
    assert registry_now(state_dir) == before


def test_a_request_naming_another_host_is_refused(local):
    """A site whose name resolves to 127.0.0.1 (DNS rebinding) reaches the console under its own name: it can
    neither read a page (and its token) nor post one."""
    browser, state_dir = local
    before = registry_now(state_dir)
    assert browser.get("/", headers={"host": "evil.example:8770"}).status_code == 400
    assert decide(browser, 2, "Approved", "x", headers={"host": "evil.example:8770", "origin": "http://evil.example:8770"}).status_code == 400
    assert browser.get("/", headers={"host": "localhost:8770"}).status_code == 200  # the same machine by its name
    assert registry_now(state_dir) == before


def test_a_get_never_changes_anything(local):
    browser, state_dir = local
    before = registry_now(state_dir)
    query = "token=the-token&decision=Approved&comment=via+a+link"
    for path in ("/", "/packages/2", f"/packages/2?{query}", f"/?{query}", "/packages/2/report.html", "/packages/1"):
        assert browser.get(path).status_code in (200, 404), path
        assert browser.head(path).status_code in (200, 404), path
    assert browser.put("/packages/2", data={"token": "the-token"}, headers={"origin": ORIGIN}).status_code == 405
    assert registry_now(state_dir) == before


@pytest.mark.parametrize(
    ("comment", "decision", "message"),
    [
        ("", "Approved", "Not recorded: a comment is required: say why you approve version 2."),
        ("   \n ", "Rejected", "Not recorded: a comment is required: say why you reject version 2."),
        ("x" * 801, "Approved", "Not recorded: the comment is 801 characters long; the registry keeps 800: shorten it."),
        ("fine", "Deployed", "Not recorded: choose Approve or Reject (got &#39;Deployed&#39;)."),
    ],
)
def test_a_decision_without_a_comment_is_refused_with_a_message(local, comment, decision, message):
    browser, state_dir = local
    before = registry_now(state_dir)
    refused = decide(browser, 2, decision, comment)
    assert refused.status_code == 400
    assert f'<section class="problem" id="problem" role="alert"><p>{message}</p></section>' in refused.text
    assert '<textarea id="comment" name="comment" required maxlength="800"' in refused.text  # the form is there again
    assert registry_now(state_dir) == before


def test_text_from_the_registry_is_escaped(local):
    browser, _ = local
    for path in ("/", "/packages/1"):
        page = browser.get(path).text
        assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in page and "<script" not in page, path
        assert "&lt;img src=x onerror=&#34;window.__pwned=2&#34;&gt;" in page and "<img" not in page, path


def test_a_package_without_a_report_says_so_and_can_still_be_decided(local):
    browser, _ = local
    page = browser.get("/packages/1")
    assert page.status_code == 200
    assert "No report to show: version 1 has no report page: it was registered before packages carried one" in page.text
    assert "<iframe" not in page.text and '<td class="map">0.36 (0.30-0.41)</td>' in page.text
    assert 'value="Approved">Approve</button>' in page.text and 'value="Rejected">Reject</button>' in page.text
    assert '<label for="comment">Comment</label>' in page.text
    assert browser.get("/packages/1/report.html").status_code == 404
    assert decide(browser, 1, "Rejected", "no report, no approval").status_code == 303


def test_the_report_is_framed_sandboxed_and_served_under_its_own_policy(local):
    browser, _ = local
    page = browser.get("/packages/2").text
    assert '<iframe id="report" src="/packages/2/report.html" sandbox title="Report of version 2"></iframe>' in page
    report = browser.get("/packages/2/report.html")
    assert report.status_code == 200 and report.text == report_page()
    assert report.headers["content-security-policy"] == REPORT_POLICY and "; sandbox;" in REPORT_POLICY
    assert report.headers["content-type"] == "text/html; charset=utf-8" and report.headers["x-content-type-options"] == "nosniff"
    assert browser.get("/packages/9").status_code == 404


def test_the_console_listens_on_loopback_unless_told_and_warns_when_told_otherwise():
    assert site(None, 8770) == Site("127.0.0.1", 8770) and site(None, 8770).warning == ""
    assert site("::1", 8770).warning == "" and site("localhost", 8770).warning == ""
    for host in ("0.0.0.0", "::", "192.168.1.20", "console.example"):
        warning = site(host, 8770).warning
        assert "whoever can reach it can open it" in warning and "approves and rejects models as you" in warning, host
    assert "every interface" in site("0.0.0.0", 8770).warning
    assert site("0.0.0.0", 8770).url == "http://127.0.0.1:8770/" and site("::1", 8770).url == "http://[::1]:8770/"


@pytest.mark.parametrize(
    ("bound", "host", "answers"),
    [
        ("127.0.0.1", "127.0.0.1:8770", True),
        ("127.0.0.1", "localhost:8770", True),
        ("127.0.0.1", "127.0.0.1:8771", False),
        ("127.0.0.1", "127.0.0.1", False),  # port 80
        ("127.0.0.1", "evil.example:8770", False),
        ("127.0.0.1", "192.168.1.20:8770", False),
        ("::1", "[::1]:8770", True),
        ("::1", "[0:0:0:0:0:0:0:1]:8770", True),
        ("::1", "[::1:8770", False),
        ("192.168.1.20", "192.168.1.20:8770", True),
        ("192.168.1.20", "localhost:8770", False),
        ("0.0.0.0", "10.0.0.7:8770", True),  # a wildcard bind: any address of the machine, never a name
        ("0.0.0.0", "[fe80::1]:8770", True),
        ("0.0.0.0", "evil.example:8770", False),
        ("console.example", "console.example:8770", True),
        ("console.example", "", False),
    ],
)
def test_which_host_names_the_console_answers(bound, host, answers):
    assert Site(bound, 8770).answers(host) is answers


def test_the_command_warns_of_another_host_prints_the_address_and_stops_on_ctrl_c(tmp_path, monkeypatch):
    """In this process, with the socket and uvicorn stood in for (no real 0.0.0.0 bind): what the command says."""
    _, state_dir = pending_state(tmp_path, PACKAGES)
    served = []

    class Stopped:
        def run(self, sockets):
            served.append(sockets)
            raise KeyboardInterrupt  # what uvicorn raises again after a Ctrl-C

    class Socket:
        def __enter__(self):
            return self

        def __exit__(self, *_):
            return None

    monkeypatch.setattr("pipelines.console.server.listen", lambda wanted: (Socket(), Site(wanted.host, 8770)))
    monkeypatch.setattr("pipelines.console.server.server", lambda application: Stopped())
    arguments = ["console", "--local", "--state-dir", str(state_dir), "--config", str(ROOT / "pipeline.yaml")]
    result = runner.invoke(app, [*arguments, "--host", "0.0.0.0"])
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("warning: the console listens on every interface of this machine (port 8770)")
    assert result.stdout.splitlines() == [
        f"the approvers' console of car-damage-models (local ({state_dir})): open http://127.0.0.1:8770/  (Ctrl-C stops)",
        "stopped",
    ]
    quiet = runner.invoke(app, arguments)
    assert quiet.exit_code == 0 and quiet.stderr == "" and len(served) == 2


def test_a_port_in_use_is_one_line_with_a_pointer(tmp_path):
    _, state_dir = pending_state(tmp_path, PACKAGES)
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = runner.invoke(
            app, ["console", "--local", "--state-dir", str(state_dir), "--port", str(port), "--config", str(ROOT / "pipeline.yaml")]
        )
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port}: ") and result.stderr.rstrip().endswith("(pass --port)")


def test_the_command_serves_until_ctrl_c(tmp_path):
    """The command as a person runs it: it prints the address, the page answers there, Ctrl-C stops it cleanly."""
    _, state_dir = pending_state(tmp_path, PACKAGES)
    command = [sys.executable, "-m", "pipelines.cli", "console", "--local", "--state-dir", str(state_dir), "--port", "0"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        url = re.search(r"open (http://127\.0\.0\.1:\d+/)", line)
        assert url, line + process.stderr.read()
        import urllib.request

        with urllib.request.urlopen(url.group(1), timeout=10) as page:
            assert page.status == 200 and "version 2" in page.read().decode()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert out.strip() == "stopped" and "Traceback" not in err


# On AWS: moto in server mode, the approver's own credentials (fake ones here).

SECRET, SESSION_TOKEN = "console-test-secret-never-shown", "console-test-session-token-never-shown"


@pytest.fixture
def on_aws(env, config, registry, monkeypatch):  # noqa: F811
    """The console over moto's registry of test_control_plane (v1 Approved 0.421, v2 pending, v3 Rejected), with
    a report page for version 2 where its metadata says."""
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)
    sagemaker = client("sagemaker", env.url)
    uri = f"s3://{ARTIFACTS}/car-damage-pipeline/execution-2/evaluation/report.html"
    client("s3", env.url).put_object(Bucket=ARTIFACTS, Key=uri.split("/", 3)[3], Body=report_page().encode())
    metadata = sagemaker.describe_model_package(ModelPackageName=registry[1])["CustomerMetadataProperties"]
    sagemaker.update_model_package(  # the status again: moto's update drops what it is not given (SageMaker keeps it)
        ModelPackageArn=registry[1], ModelApprovalStatus="PendingManualApproval", CustomerMetadataProperties={**metadata, METADATA_REPORT: uri}
    )
    loaded = load_config(config)
    backend = AwsBackend(loaded, endpoint_url=env.url)
    application = create_app(backend, loaded, SITE, local=False, token="the-token")
    with TestClient(application, base_url=ORIGIN, follow_redirects=False) as browser:
        yield browser, sagemaker, backend


def test_on_aws_the_console_lists_and_approves_as_the_caller(on_aws, env, config, registry):  # noqa: F811
    browser, sagemaker, _ = on_aws
    answers = [browser.get("/")]
    rows = dict(re.findall(r'<tr data-version="(\d)"[^>]*>(.*?)</tr>', answers[0].text, re.S))
    assert list(rows) == ["3", "2", "1"] and '<td class="number map">0.42</td>' in rows["1"]  # evaluated before intervals
    assert '<td class="number map">0.35</td>' in rows["2"] and "PendingManualApproval" in rows["2"] and "20261130T101500Z" in rows["2"]
    answers.append(browser.get("/packages/2/report.html"))
    assert answers[-1].text == report_page()
    answers.append(decide(browser, 2, "Approved", "mAP above the bar"))
    assert answers[-1].status_code == 303
    answers.append(browser.get(answers[-1].headers["location"]))
    identity = client("sts", env.url).get_caller_identity()["Arn"]
    assert identity.startswith(f"arn:aws:sts::{ACCOUNT}:") or identity.startswith(f"arn:aws:iam::{ACCOUNT}:")
    package = sagemaker.describe_model_package(ModelPackageName=registry[1])
    assert (package["ModelApprovalStatus"], package["ApprovalDescription"]) == ("Approved", f"Approved by {identity}: mAP above the bar")
    page = answers[-1].text
    assert f"version 2: PendingManualApproval -&gt; Approved (Approved by {identity}: mAP above the bar)" in page
    assert "endpoint car-damage-endpoint: the approval&#39;s event deploys it through the deployment function, by the same rule" in page
    by_cli = runner.invoke(app, ["approve", "3", "-m", "second look", "--config", str(config), "--endpoint-url", env.url])
    assert by_cli.exit_code == 0, by_cli.output
    pending = by_cli.stdout.splitlines()[1]  # the command line says what the page says
    assert pending.startswith("endpoint car-damage-endpoint: the approval's event deploys it")
    assert f'<p class="deployment">{escape(pending)}</p>' in page  # as Jinja2 escapes it
    answers.append(browser.get("/packages/1"))
    assert "No report to show: version 1 has no report page" in answers[-1].text
    # No credential reaches the page: not the keys, not the session token, in no body and no header.
    for answer in answers:
        shown = answer.text + json.dumps(dict(answer.headers))
        assert SECRET not in shown and SESSION_TOKEN not in shown and "testing" not in shown


def test_on_aws_what_aws_refuses_is_one_line_on_the_page(on_aws):
    """An approver whose policy lacks UpdateModelPackage (stubbed: moto checks no policy) reads AWS's answer on the
    page; an unknown version gets the backend's message, as `cardamage approve 9` prints it."""
    browser, _, backend = on_aws
    stub_operation(
        backend.session.session.events, "sagemaker", "UpdateModelPackage", {"Error": {"Code": "AccessDeniedException", "Message": "not allowed"}}
    )
    refused = decide(browser, 2, "Approved", "mAP above the bar")
    assert refused.status_code == 409
    assert "<p>UpdateModelPackage: AccessDeniedException: not allowed</p>" in refused.text
    unknown = decide(browser, 9, "Approved", "no such version")
    assert unknown.status_code == 409
    assert f"<p>model package group {GROUP} has no version 9 (versions 1 to 3)</p>" in unknown.text
