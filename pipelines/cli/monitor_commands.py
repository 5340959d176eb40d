"""`cardamage monitor`: the monitor program (containers/monitoring/monitor.py) over a window of the endpoint's
captured photos and answers, against the baselines of the package it serves, and with the labels of answered
photos (review batches pulled back), their accuracy in service. Here (--local) it reads the local endpoint's
captures in the state folder's S3 mirror. On AWS it reads the scheduled monitoring job's latest report, or, for a
window named with --since/--until, fetches what the scheduled job would get from S3 (that window's captures, the
baselines, the labels and the capture files review batches took photos from) and runs the same program here. Here
a run's accuracy in service is kept with the package it scored (the state folder's service_quality table), which
`cardamage models --local` shows."""

from __future__ import annotations

import json
import tempfile
from datetime import datetime
from pathlib import Path

import typer

from containers.monitoring import monitor as program
from containers.monitoring.captures import iso, parse_time
from pipelines.backends import MonitorInputs
from pipelines.cli.app import Invocation, Side, command, fail
from pipelines.cli.options import option


@command(Side.BOTH, "monitor")
def monitor_command(
    cli: Invocation,
    output: option(Path | None, "--output", "-o", metavar="DIR", file_okay=False, help="Where monitor.json, report.html, atypical.json go.") = None,
    endpoint: option(
        str | None, "--endpoint", metavar="NAME", help="Whose captures (default: production's here, where approvals deploy on AWS)."
    ) = None,
    since: option(
        str | None, "--since", metavar="ISO", help="The window's start: an ISO 8601 date or time, UTC unless it says. Default: open."
    ) = None,
    until: option(str | None, "--until", metavar="ISO", help="The window's end, excluded. Default: open (on AWS: now).") = None,
    fail_on_drift: option(bool, "--fail-on-drift", help="Exit 1 when a statistic drifted (for scripts).") = False,
) -> None:
    """Compare a window of the endpoint's captured photos and answers with the served package's baselines:
    each input and output statistic by its test, the most atypical photos, and every record that could not be
    used, with why; and, for photos that came back labelled from a review batch, the served package's mAP on
    them (the accuracy in service). Writes monitor.json (the contract other tools read), report.html (one
    self-contained page with a plot per statistic and thumbnails) and atypical.json.

    With --local, the local endpoint's captures, the baselines its package records (else the ones beside its
    evaluation.json) and the labels pulled under the labels prefix. On AWS, without --since/--until, the latest
    report of the scheduled monitoring job; with them, what that window's job would read (its captures, the
    baselines, the labels and the capture files review batches took photos from, since the served package's
    endpoint config was made) fetched from S3 and monitored here. Exit status 0 when it ran, whatever it found;
    1 with --fail-on-drift when a statistic drifted; 2 for a wrong option."""
    window = _moment(since, "--since"), _moment(until, "--until")
    if window[0] and window[1] and window[0] >= window[1]:
        fail(f"--since {iso(window[0])} is not before --until {iso(window[1])}: the window is empty", 2)
    if output is None:
        fail("--output DIR is needed: the folder monitor.json, report.html and atypical.json are written to", 2)
    config = cli.config
    endpoints = list(config.stage_endpoints.values())
    name = endpoint or (config.endpoint_name if cli.is_local else config.approval_endpoint)
    if name not in endpoints:
        fail(f"--endpoint {name!r} is none of this configuration's endpoints: {', '.join(endpoints)}", 2)
    backend = cli.backend()
    if not cli.is_local and window == (None, None):
        from pipelines.backends.aws import AwsBackend

        assert isinstance(backend, AwsBackend)
        report = backend.latest_report(name, output)
        typer.echo(f"the latest report of {name}: {report.folder} -> {output} ({', '.join(report.files)})")
        if report.missing:
            typer.echo(f"note: the report holds no {', '.join(report.missing)} (a window without captures has monitor.json only)", err=True)
        try:
            typer.echo(program.summary(json.loads((output / program.MONITOR).read_text(encoding="utf-8"))))
        except (ValueError, KeyError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
            fail(f"{report.folder}{program.MONITOR} is not a monitor report ({type(exc).__name__}: {exc})", 1)
    else:
        with tempfile.TemporaryDirectory(prefix="cardamage-monitor-") as work:
            inputs = backend.monitor_inputs(name, *window, Path(work))
            _run(inputs, output, name, window, config.data.label_attribute, config.monitoring.atypical)
        if cli.is_local:
            _record(backend, name, json.loads((output / program.MONITOR).read_text(encoding="utf-8")))
    if fail_on_drift and json.loads((output / program.MONITOR).read_text(encoding="utf-8"))["drift"]:
        typer.echo("drift found: exit status 1 (--fail-on-drift)", err=True)
        raise typer.Exit(1)


def _run(inputs: MonitorInputs, output: Path, endpoint: str, window: tuple, label_attribute: str | None, atypical: int) -> None:
    """The monitor program, in this process, on what the backend fetched: the same code path on both sides."""
    for line in inputs.said:
        typer.echo(line)
    for line in inputs.notes:
        typer.echo(line, err=True)
    arguments = ["--captures", str(inputs.captures), "--baseline", str(inputs.baseline), "--output", str(output), "--endpoint", endpoint]
    arguments += ["--atypical", str(atypical)]
    arguments += ["--package", inputs.package] if inputs.package else []
    arguments += [item for flag, moment in zip(("--since", "--until"), window, strict=True) if moment for item in (flag, moment.isoformat())]
    if inputs.labels is not None:
        arguments += ["--labels", str(inputs.labels)]
        arguments += ["--label-attribute", label_attribute] if label_attribute else []
        arguments += ["--served-since", inputs.served_since.isoformat()] if inputs.served_since else []
        arguments += ["--labelled-captures", str(inputs.labelled_captures)] if inputs.labelled_captures else []
    status = program.main(arguments)
    if status:
        raise typer.Exit(status)


def _record(backend, endpoint: str, document: dict) -> None:
    """Here, a run's accuracy in service is kept with the package it scored, for `cardamage models --local`."""
    from pipelines.backends.local import LocalBackend

    assert isinstance(backend, LocalBackend)
    if document.get("quality") is None:
        return
    package = backend.record_service_quality(endpoint, document)
    if package is None:
        typer.echo(f"note: the accuracy in service is of {document['baseline'].get('package')}, which is not registered here: not recorded", err=True)
    else:
        typer.echo(f"accuracy in service recorded for version {package.version} (cardamage models --local shows it)")


def _moment(text: str | None, flag: str) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_time(text)
    except ValueError as exc:
        fail(f"{flag}: {exc}", 2)
