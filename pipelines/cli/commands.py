"""The commands that work on AWS and on this machine alike, through the one backend interface
(pipelines/backends): executions, models, approve, reject, deploy. And `config`, which needs neither."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
import yaml

from containers.evaluation.intervals import ReportIntervals, format_interval
from pipelines import approvals
from pipelines import promote as promote_checks
from pipelines.backends import Execution, ServiceQuality
from pipelines.cli.app import Invocation, Side, command, fail
from pipelines.cli.options import ForceOption, ReasonOption, option
from pipelines.cli.output import console, table, took, when

PackageArgument = Annotated[str, typer.Argument(metavar="PACKAGE", help="The model package: its version number in the group, or its ARN.")]
CommentOption = Annotated[
    str | None, typer.Option("--comment", "-m", metavar="WHY", help="Why: recorded in the approval description with your identity.")
]


@command(Side.OFFLINE, "config")
def show_config(cli: Invocation, as_json: option(bool, "--json", help="Print JSON instead of YAML.") = False) -> None:
    """Validate the configuration (every profile) and print it, or a profile of it, with every default filled in."""
    resolved = cli.config.model_dump(mode="json")
    typer.echo(json.dumps(resolved, indent=2) if as_json else yaml.safe_dump(resolved, sort_keys=False).rstrip())


@command(Side.BOTH)
def executions(
    cli: Invocation,
    execution: option(str | None, "--execution", "-e", metavar="ID", help="Show this execution (its id, ARN or a unique start of its id).") = None,
    limit: option(int, "--limit", "-n", metavar="N", min=1, help="How many executions to list, newest first.") = 10,
) -> None:
    """List the pipeline's executions, or show one with its parameters and steps (--execution)."""
    backend = cli.backend()
    if execution is not None:
        _print_execution(backend.execution(execution))
        return
    rows = backend.executions(limit)
    if not rows:
        typer.echo(f"pipeline {cli.config.pipeline_name} has no execution yet in {backend.where}")
        return
    listing = table("execution", "status", "started (UTC)", "took", "failure")
    for row in rows:
        listing.add_row(row.id, row.status, when(row.started), took(row.started, row.ended), row.failure)
    console().print(listing)


def _print_execution(execution: Execution) -> None:
    out = console()
    for label, value in (
        ("execution", execution.arn or execution.id),
        ("status", execution.status),
        ("started", f"{when(execution.started)} UTC"),
        ("ended", f"{when(execution.ended)} UTC (took {took(execution.started, execution.ended)})" if execution.ended else "-"),
        ("failure", execution.failure),
        ("parameters", ", ".join(f"{name}={value}" for name, value in execution.parameters.items())),
    ):
        if value:
            out.print(f"{label:<10} {value}", markup=False)
    if not execution.steps:
        out.print("no step has started yet")
        return
    steps = table("step", "status", "started (UTC)", "took", "detail", "failure")
    for step in execution.steps:
        steps.add_row(step.name, step.status, when(step.started), took(step.started, step.ended), step.detail, step.failure)
    out.print(steps)


@command(Side.BOTH)
def models(cli: Invocation, limit: option(int, "--limit", "-n", metavar="N", min=1, help="How many packages to show, newest first.") = 20) -> None:
    """The model packages of the group: version, approval status, creation time, mAP, the champion it was judged
    against at registration (the served package's mAP on the same validation records, and its version), which
    one the endpoint serves, whether it has a drift baseline for `cardamage monitor`, and the data each was trained
    on (its dataset snapshot)."""
    backend = cli.backend()
    packages = backend.packages(limit)
    if not packages:
        typer.echo(f"no model packages in {cli.config.model_package_group} yet ({backend.where})")
        return
    with_execution = any(package.execution for package in packages)
    with_data = any(package.data for package in packages)
    extra = [*(["execution"] if with_execution else []), *(["trained on"] if with_data else [])]
    with_service = any(package.in_service for package in packages)  # the monitor measured one: `cardamage monitor`
    service = ["in service"] if with_service else []
    listing = table("version", "status", "created (UTC)", "mAP", "champion mAP", "endpoint", "baseline", *service, *extra, "approval note")
    for p in packages:
        figure = map_figure(p.map, p.intervals)
        columns = [*([p.execution] if with_execution else []), *([p.data] if with_data else [])]
        serving = ", ".join(p.stages) if cli.config.deployment.stages else ("serving" if p.serving else "")
        listing.add_row(
            str(p.version), p.status, when(p.created), figure, champion_figure(p.champion, p.intervals), serving, baseline_text(p.baselines),
            *([in_service_text(p.in_service)] if with_service else []), *columns, p.note,
        )  # fmt: skip
    console().print(listing)


def in_service_text(measured: ServiceQuality | None) -> str:
    """A package's latest accuracy in service: its mAP on the labelled photos the endpoint answered, and when."""
    return measured.text if measured is not None else "-"


def baseline_text(kinds: tuple[str, ...]) -> str:
    """Whether a package has its drift baselines: both (yes), one of them, or none (registered before them)."""
    if {"data", "model"} <= set(kinds):
        return "yes"
    return f"{kinds[0]} only" if kinds else "no"


def map_figure(value: float | None, intervals: ReportIntervals | None) -> str:
    """A package's mAP, with its 95% interval when its evaluation has one (`0.41 (0.33-0.49)`)."""
    if value is None:
        return "-"
    return format_interval(value, intervals.map) if intervals and intervals.map else f"{value:.4f}"


def champion_figure(champion: tuple[int, float | None] | None, intervals: ReportIntervals | None = None) -> str:
    """The champion a package was judged against at registration: its version and mAP on the same records, and,
    when the evaluation has intervals, both with their 95% interval and the champion's lead over the package."""
    if champion is None:
        return "-"  # registered before champions were recorded
    version, figure = champion
    if not version:
        return "none served"
    if figure is None:
        return f"- (v{version})"
    if intervals is None or intervals.lead_interval is None:
        return f"{figure:.4f} (v{version})"
    return f"v{version}: {format_interval(figure, intervals.champion_map)}, lead {format_interval(intervals.lead, intervals.lead_interval)}"


@command(Side.BOTH)
def approve(
    cli: Invocation,
    package: PackageArgument,
    comment: CommentOption = None,
    force: option(bool, "--force", help="Also deploy it when it is older, or has a lower mAP, than the served one; -m gives the reason.") = False,
) -> None:
    """Approve a model package; records your identity and the comment. Approval deploys it: on AWS through the
    approval rule, here at once, by the deployment rule (never over a newer or better package). With --force
    and a reason (-m), an older or worse package is deployed anyway; the reason is kept in the approval and in
    the endpoint's tags."""
    if force and not (comment or "").strip():
        fail("--force needs a reason: -m WHY (it is recorded in the approval and with the endpoint)", 2)
    _set_approval(cli, package, "Approved", comment, pending=not force)
    if force:  # the command line's own: the console cannot force, nor can the approvers' policy deploy
        result = cli.backend().deploy(package, force=True, reason=comment or "")
        typer.echo(approvals.deployment_line(result))
        if result.status == "skipped" and not result.up_to_date:
            raise typer.Exit(1)


@command(Side.BOTH)
def reject(cli: Invocation, package: PackageArgument, comment: CommentOption = None) -> None:
    """Reject a model package; records your identity and the comment. The endpoint is not changed."""
    _set_approval(cli, package, "Rejected", comment)


def _set_approval(cli: Invocation, package: str, status: str, comment: str | None, *, pending: bool = True) -> None:
    """The decision through pipelines/approvals.py, which the console (`cardamage console`) takes too, told as
    the console tells it; `pending`: say that on AWS the approval's event deploys it."""
    outcome = approvals.decide(cli.backend(), cli.config, package, status, comment, local=cli.is_local)
    typer.echo(outcome.summary)
    for line in [*outcome.deployments, *([outcome.pending] if outcome.pending and pending else [])]:
        typer.echo(line)
    if outcome.warning:
        typer.secho(f"warning: {outcome.warning}", fg=typer.colors.YELLOW, err=True)


def _check_forced(force: bool, reason: str | None) -> None:
    if force and not (reason or "").strip():
        fail("--force needs --reason WHY: it is recorded with the endpoint", 2)


@command(Side.BOTH)
def deploy(
    cli: Invocation,
    package: option(str | None, "--package", metavar="PACKAGE", help="The package's version or ARN (default: the newest Approved one).") = None,
    force: ForceOption = False,
    reason: ReasonOption = None,
) -> None:
    """Deploy an Approved model package to the endpoint (create or update) with the deployment section's settings.

    On AWS it runs the deployment function's own code with pipeline.yaml's aws.role_arn (and the artifact bucket
    for data capture)."""
    _check_forced(force, reason)
    _report_deployment(cli.backend().deploy(package, force=force, reason=reason or ""))


@command(Side.BOTH)
def promote(
    cli: Invocation,
    package: option(str | None, "--package", metavar="PACKAGE", help="The package to promote (default: what the stage serves; it must).") = None,
    source: option(str | None, "--from", metavar="STAGE", help="The stage to promote from (default: the first of deployment.stages).") = None,
    images: option(Path | None, "--images", metavar="DIR", help="Smoke-test photos (default: the first of the package's validation records).") = None,
    count: option(int, "--count", "-n", metavar="N", min=1, help="How many photos to send to the stage.") = promote_checks.SMOKE_IMAGES,
    force: ForceOption = False,
    reason: ReasonOption = None,
    role_arn: option(
        str | None, "--role-arn", metavar="ARN", help="The role to assume in the next stage's account (default: its stage stack's promote role)."
    ) = None,
) -> None:
    """Promote the package a release stage serves (deployment.stages, e.g. [staging, production]) to the next stage:
    send the stage's endpoint a smoke set of photos, check every answer, then deploy the same package to the
    next stage by the deployment rule. Exit 1 when an answer is wrong (nothing is deployed) or the rule refuses.

    A stage in an account of its own (deployment.accounts) is reached through the promote role of its stage stack,
    and deployed with the settings of that stack's deploy function; a refused role is exit 1."""
    _check_forced(force, reason)
    if role_arn is not None and cli.is_local:
        fail("--role-arn names a role in a stage's AWS account; with --local, drop it", 2)
    try:
        promotion = cli.backend().promote(package, source=source, images=images, count=count, force=force, reason=reason or "", role_arn=role_arn)
    except promote_checks.PromotionError as exc:
        fail(str(exc), 2)
    typer.echo(f"smoke test of version {promotion.version} on {promotion.source}: {len(promotion.answers)} photo(s)")
    for answer in promotion.answers:
        typer.echo(f"  {'ok ' if answer.problem is None else 'BAD'} {answer.image}: {answer.problem or f'{answer.detections} detection(s)'}")
    if not promotion.passed:
        fail(f"not promoted to {promotion.target}: {sum(a.problem is not None for a in promotion.answers)} answer(s) failed the smoke test", 1)
    assert promotion.deployment is not None
    _report_deployment(promotion.deployment)


def _report_deployment(result) -> None:
    """What a deployment did; exit 1 when the rule refused it (not when the endpoint was already up to date)."""
    if result.status == "skipped":
        if not result.up_to_date:
            fail(f"not deployed: {result.reason}", 1)
        typer.echo(f"nothing to do: {result.reason}")
        return
    typer.echo(f"{result.status} endpoint {result.endpoint_name} with version {result.model_package_version} ({result.model_package_arn})")
    for label, value in (
        ("model", result.model_name),
        ("endpoint config", result.endpoint_config_name),
        ("endpoint status", result.endpoint_status),
        ("autoscaling", result.autoscaling),
    ):
        if value:
            typer.echo(f"  {label:<16} {value}")
