"""`cardamage monitor`: the monitor program (containers/monitoring/monitor.py) over a window of the endpoint's
captured photos and answers, against the baselines of the package it serves. Here (--local) it reads the local
endpoint's captures in the state folder's S3 mirror; on AWS it is to read the scheduled monitoring job's reports,
which are not built yet."""

from __future__ import annotations

import json
import shutil
import tempfile
from datetime import datetime
from pathlib import Path

import typer

from containers.monitoring import monitor as program
from containers.monitoring.captures import iso, parse_time
from containers.monitoring.statistics import DATA_BASELINE, MODEL_BASELINE
from pipelines.backends import BackendError
from pipelines.backends.local import LocalBackend
from pipelines.cli.app import Invocation, Side, command, fail
from pipelines.cli.options import option
from pipelines.local.endpoint import Deployment
from pipelines.local.runner import LOCAL_VALUES

# Where a package records its baselines: CreateModelPackage's DriftCheckBaselines, ModelDataQuality.Statistics
# for the data's (input) statistics and ModelQuality.Statistics for the model's (output) statistics, each a
# MetricsSource with an S3Uri (SageMaker API Reference, DriftCheckBaselines). Without them, the files Evaluate
# writes beside the package's evaluation.json.
DRIFT_CHECK = {"input": ("ModelDataQuality", DATA_BASELINE), "output": ("ModelQuality", MODEL_BASELINE)}
AWS_NOT_YET = (
    "on AWS, `cardamage monitor` is to read the reports of the scheduled monitoring job, which is not built yet; "
    "add --local to run the monitor on the local endpoint's captures"
)


@command(Side.BOTH, "monitor")
def monitor_command(
    cli: Invocation,
    output: option(Path | None, "--output", "-o", metavar="DIR", file_okay=False, help="Where monitor.json, report.html, atypical.json go.") = None,
    endpoint: option(str | None, "--endpoint", metavar="NAME", help="The endpoint whose captures are read (default: the config's).") = None,
    since: option(
        str | None, "--since", metavar="ISO", help="The window's start: an ISO 8601 date or time, UTC unless it says. Default: open."
    ) = None,
    until: option(str | None, "--until", metavar="ISO", help="The window's end, excluded. Default: open.") = None,
    fail_on_drift: option(bool, "--fail-on-drift", help="Exit 1 when a statistic drifted (for scripts).") = False,
) -> None:
    """Compare a window of the endpoint's captured photos and answers with the served package's baselines:
    each input and output statistic by its test, the most atypical photos, and every record that could not be
    used, with why. Writes monitor.json (the contract other tools read), report.html (one self-contained page
    with a plot per statistic and thumbnails) and atypical.json.

    With --local, the local endpoint's captures and the baselines its package records (else the ones beside its
    evaluation.json). Exit status 0 when it ran, whatever it found; 1 with --fail-on-drift when a statistic
    drifted; 2 for a wrong option. On AWS it is to read the scheduled monitoring job's reports: not built yet."""
    if not cli.is_local:
        fail(AWS_NOT_YET, 2)
    window = _moment(since, "--since"), _moment(until, "--until")
    if window[0] and window[1] and window[0] >= window[1]:
        fail(f"--since {iso(window[0])} is not before --until {iso(window[1])}: the window is empty", 2)
    if output is None:
        fail("--output DIR is needed: the folder monitor.json, report.html and atypical.json are written to", 2)
    config = cli.config
    endpoints = list(config.stage_endpoints.values())
    name = endpoint or config.endpoint_name
    if name not in endpoints:
        fail(f"--endpoint {name!r} is none of this configuration's endpoints: {', '.join(endpoints)}", 2)
    backend = LocalBackend(config, cli.state_dir)
    record = backend.deployer.record(name)
    if record is None:
        raise BackendError(f"nothing is deployed to the local endpoint {name}: nothing to monitor; approve a package (`cardamage approve --local N`)")
    with tempfile.TemporaryDirectory(prefix="cardamage-monitor-") as work:
        captures, baseline = _captures(backend, record, Path(work)), _baselines(backend, record, Path(work) / "baseline")
        arguments = ["--captures", str(captures), "--baseline", str(baseline)]
        arguments += ["--output", str(output), "--package", f"{record.group}/{record.version}", "--endpoint", name]
        arguments += [item for flag, moment in zip(("--since", "--until"), window, strict=True) if moment for item in (flag, moment.isoformat())]
        status = program.main(arguments)
    if status:
        raise typer.Exit(status)
    if fail_on_drift and json.loads((output / program.MONITOR).read_text(encoding="utf-8"))["drift"]:
        typer.echo("drift found: exit status 1 (--fail-on-drift)", err=True)
        raise typer.Exit(1)


def _moment(text: str | None, flag: str) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_time(text)
    except ValueError as exc:
        fail(f"{flag}: {exc}", 2)


def _captures(backend: LocalBackend, record: Deployment, work: Path) -> Path:
    """The folder of the endpoint's capture files: SageMaker's `<destination>/<endpoint>/<variant>/...`, under
    the destination its deployment configured (the config's, when it configured none); an empty one when
    nothing was captured yet."""
    endpoint = record.endpoint_name
    destination = record.capture["destination"] if record.capture else str(backend.config.data_capture(LOCAL_VALUES["ArtifactBucket"], endpoint))
    if not record.capture:
        typer.echo(f"note: the deployment to {endpoint} captures nothing (deployment.data_capture_percent is 0): earlier captures only", err=True)
    folder = backend.deployer.s3.path(destination) / endpoint
    if folder.is_dir():
        return folder
    typer.echo(f"note: nothing captured under {destination.rstrip('/')}/{endpoint}/ yet: the window is empty", err=True)
    empty = work / "captures"
    empty.mkdir()
    return empty


def _baselines(backend: LocalBackend, record: Deployment, folder: Path) -> Path:
    """A folder holding the served package's baselines under the names the program reads: the ones it records
    as DriftCheckBaselines first, else the ones beside its evaluation.json. Says which, and what is missing."""
    folder.mkdir()
    package = backend.state.package(record.package_arn)
    served = f"version {record.version} of {record.group}"
    if package is None:
        typer.echo(f"warning: {served} is no longer registered: no baselines, the statistics are reported, not compared", err=True)
        return folder
    recorded = package.drift_check_baselines
    beside = package.metrics_uri.rsplit("/", 1)[0] if package.metrics_uri else None
    for kind, (key, name) in DRIFT_CHECK.items():
        uri = ((recorded.get(key) or {}).get("Statistics") or {}).get("S3Uri")
        candidates = [c for c in (uri, f"{beside}/{name}" if beside else None) if c]
        found = next((c for c in candidates if backend.deployer.s3.path(c).is_file()), None)
        if found:
            shutil.copyfile(backend.deployer.s3.path(found), folder / name)
            typer.echo(f"{kind} baseline: {found}")
        else:
            looked = f" (looked for {', '.join(candidates)})" if candidates else " (it records neither DriftCheckBaselines nor an evaluation)"
            typer.echo(f"warning: {served} has no {kind} baseline{looked}", err=True)
    return folder
