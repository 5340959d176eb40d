"""The backend on this machine: the local engine's state directory (default `.cardamage/`), which holds the
executions, the local Model Registry (SQLite) and the local endpoint's deployments (pipelines/local/)."""

from __future__ import annotations

import getpass
import json
import shutil
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from containers.deploy.champion import recorded_champion
from containers.deploy.deploy import DeployError, DeployResult
from containers.evaluation.intervals import ReportIntervals
from containers.evaluation.model_card import card_status
from containers.monitoring.captures import parse_time
from pipelines import promote
from pipelines.backends import (
    MONITORED_AS,
    Approval,
    BackendError,
    Execution,
    MonitorInputs,
    Package,
    PackageReport,
    ReviewPlace,
    ServiceQuality,
    Step,
    baseline_file,
    baseline_uris,
    data_label,
    mark_serving,
    present_baselines,
    report_uri,
)
from pipelines.config import Config
from pipelines.local.console import relative
from pipelines.local.endpoint import Deployment
from pipelines.local.runner import LOCAL_VALUES, local_deployer
from pipelines.local.state import Package as Registered
from pipelines.local.state import State


class LocalBackend:
    """The project's pipeline, group and endpoint in a local state directory."""

    def __init__(self, config: Config, state_dir: Path):
        if not (state_dir / "state.sqlite").is_file():
            raise BackendError(f"{state_dir}: no local runs here yet: run `cardamage run --local` first (or pass --state-dir)", 2)
        self.config, self.state_dir = config, state_dir
        self.state = State(state_dir)
        self.deployer = local_deployer(state_dir, config)
        self.where = f"local ({relative(state_dir)})"

    def _deploy(self, package_arn: str, endpoint_name: str, *, force: bool = False, reason: str = "") -> DeployResult:
        """The local deployer's deployment; a refusal (an unsafe archive, one changed since evaluation) is one line."""
        try:
            return self.deployer.deploy(package_arn, endpoint_name, force=force, reason=reason)
        except DeployError as exc:
            raise BackendError(str(exc)) from None

    def executions(self, limit: int) -> list[Execution]:
        return [_execution(row) for row in self.state.executions(limit, self.config.pipeline_name)]

    def execution(self, reference: str) -> Execution:
        row = self.state.execution(reference)
        if row is None:
            raise BackendError(f"no local execution {reference!r} in {relative(self.state_dir)}: `cardamage executions --local` lists them")
        return _execution(row, self.state.steps(row["id"]))

    def packages(self, limit: int) -> list[Package]:
        records = {stage: self.deployer.record(endpoint) for stage, endpoint in self.config.stage_endpoints.items()}
        newest = self.state.packages(self.config.model_package_group)[:limit]
        listed = [replace(_package(p), baselines=self._baselines(p), in_service=_in_service(self.state.service_quality(p.arn))) for p in newest]
        listed = [replace(package, intervals=self._intervals(registered)) for package, registered in zip(listed, newest, strict=True)]
        return mark_serving(listed, {stage: record.package_arn if record else None for stage, record in records.items()})

    def _intervals(self, package: Registered) -> ReportIntervals | None:
        """The bootstrap intervals of the evaluation.json the package was registered with, when it has them."""
        path = self.deployer.s3.path(package.metrics_uri) if package.metrics_uri else None
        try:
            return ReportIntervals.from_report(json.loads(path.read_text())) if path and path.is_file() else None
        except (OSError, ValueError):
            return None

    def record_service_quality(self, endpoint: str, document: dict) -> Registered | None:
        """Keep a monitor run's accuracy in service (monitor.json's `quality`) with the package it names
        (`baseline.package`), so that `cardamage models --local` shows it; the package, or None when the run has no
        figure or names no package of the group that is registered here."""
        found = ServiceQuality.of(document, endpoint, None)
        if found is None:
            return None
        group, _, version = found[0].rpartition("/")
        package = self.state.package(version, group) if group == self.config.model_package_group else None
        if package is not None:
            self.state.record_service_quality(package.arn, endpoint, document.get("window") or {}, document["quality"])
        return package

    def _baselines(self, package: Registered) -> tuple[str, ...]:
        return present_baselines(package.drift_check_baselines, lambda uri: self.deployer.s3.path(uri).is_file())

    def set_approval(self, reference: str, status: str, comment: str | None) -> Approval:
        """An approval deploys the package to the local endpoint at once, as the approval event does on AWS
        (with the same rule: never over a newer version)."""
        package = self.package(reference)
        note = f"{status} by {getpass.getuser()}@local" + (f": {comment.strip()}" if comment and comment.strip() else "")
        # Its model card's status follows, as on AWS (pipelines/aws.py set_approval); a package without a card keeps none.
        card = card_status(status) if package.card_status is not None else None
        self.state.set_status(package.arn, status, note[:1024], card_status=card)
        served = self.deployer.record(self.config.endpoint_name)
        deployment = self._deploy(package.arn, self.config.approval_endpoint) if status == "Approved" else None
        still_served = status == "Rejected" and served is not None and served.package_arn == package.arn
        return Approval(package.version, package.status, status, note[:1024], still_served=still_served, deployment=deployment)

    def deploy(self, reference: str | None, *, force: bool = False, reason: str = "") -> DeployResult:
        group = self.config.model_package_group
        if reference:
            package = self.package(reference)
        else:
            approved = [p for p in self.state.packages(group) if p.status == "Approved"]
            if not approved:
                raise BackendError(f"no Approved package in {group} (local): approve one with `cardamage approve --local VERSION`")
            package = approved[0]
        return self._deploy(package.arn, self.config.approval_endpoint, force=force, reason=reason)

    def review_place(self) -> ReviewPlace:
        """Here the images prefix is the latest run's ImagesS3Prefix (the sample's, unless --images-prefix named
        another), so that `cardamage run --local` finds a review batch's photos beside the ones labelled before."""
        from pipelines.local.storage import LocalS3Client

        config = self.config
        data, artifacts = LOCAL_VALUES["DataBucket"], LOCAL_VALUES["ArtifactBucket"]
        latest = self.state.executions(1, config.pipeline_name)
        images = json.loads(latest[0]["parameters"]).get("ImagesS3Prefix") if latest else None
        served = self.deployer.record(config.endpoint_name)
        version = (config.model_package_group, served.version) if served else None
        package = self.state.package(served.package_arn) if served else None
        baseline, looked = self.baseline(package, "data") if package else (None, [])
        reason = "" if baseline else _no_baseline(served, package, looked)
        return ReviewPlace.of(
            config, LocalS3Client(self.deployer.s3), data=data, artifacts=artifacts, images_prefix=images, served=version,
            data_baseline=baseline, no_baseline=reason,
        )  # fmt: skip

    def baseline(self, package: Registered, kind: str) -> tuple[str | None, list[str]]:
        """The URI of the package's `kind` drift baseline ("data" or "model") whose file is here: the one it
        records in its DriftCheckBaselines first, else the one Evaluate wrote beside its evaluation.json (a
        package registered before it recorded them); and every place looked."""
        beside = f"{package.metrics_uri.rsplit('/', 1)[0]}/{baseline_file(kind)}" if package.metrics_uri else None
        candidates = [uri for uri in (baseline_uris(package.drift_check_baselines).get(kind), beside) if uri]
        return next((uri for uri in candidates if self.deployer.s3.path(uri).is_file()), None), candidates

    def monitor_inputs(self, endpoint: str, since: datetime | None, until: datetime | None, work: Path) -> MonitorInputs:
        """The local endpoint's capture folder and labels prefix as they are, and the served package's baselines
        copied into `work`. The window is the program's to apply."""
        record = self.deployer.record(endpoint)
        if record is None:
            raise BackendError(
                f"nothing is deployed to the local endpoint {endpoint}: nothing to monitor; approve a package (`cardamage approve --local N`)"
            )
        said, notes = [], []
        captures = self._captures(record, work, notes)
        baseline = work / "baseline"
        baseline.mkdir()
        package = self.state.package(record.package_arn)
        served = f"version {record.version} of {record.group}"
        if package is None:
            notes.append(f"warning: {served} is no longer registered: no baselines, the statistics are reported, not compared")
        for kind in ("data", "model") if package else ():
            found, looked = self.baseline(package, kind)
            if found:
                shutil.copyfile(self.deployer.s3.path(found), baseline / baseline_file(kind))
                said.append(f"{MONITORED_AS[kind]} baseline: {found}")
            else:
                where = f" (looked for {', '.join(looked)})" if looked else " (it records neither DriftCheckBaselines nor an evaluation)"
                notes.append(f"warning: {served} has no {MONITORED_AS[kind]} baseline{where}")
        labels_prefix = str(self.config.labels_prefix(LOCAL_VALUES["DataBucket"]))
        labels = self.deployer.s3.path(labels_prefix)
        if labels.is_dir():
            said.append(f"labels: {labels_prefix} (the accuracy in service, on photos from review batches)")
        package_name = f"{record.group}/{record.version}"
        served_since = datetime.fromtimestamp(record.deployed, UTC)
        # With a window named, a labelled photo answered outside it is still scored: the endpoint's capture files are
        # read again for the accuracy in service only, as the scheduled job reads the review batches' on AWS.
        labelled = captures if labels.is_dir() and (since or until) else None
        return MonitorInputs(captures, baseline, package_name, labels if labels.is_dir() else None, served_since, tuple(said), tuple(notes), labelled)

    def _captures(self, record: Deployment, work: Path, notes: list[str]) -> Path:
        """The folder of the endpoint's capture files: SageMaker's `<destination>/<endpoint>/<variant>/...`, under
        the destination its deployment configured (the config's, when it configured none); an empty one when
        nothing was captured yet."""
        endpoint = record.endpoint_name
        destination = record.capture["destination"] if record.capture else str(self.config.data_capture(LOCAL_VALUES["ArtifactBucket"], endpoint))
        if not record.capture:
            notes.append(f"note: the deployment to {endpoint} captures nothing (deployment.data_capture_percent is 0): earlier captures only")
        folder = self.deployer.s3.path(destination) / endpoint
        if folder.is_dir():
            return folder
        notes.append(f"note: nothing captured under {destination.rstrip('/')}/{endpoint}/ yet: the window is empty")
        empty = work / "captures"
        empty.mkdir()
        return empty

    def report(self, reference: str) -> PackageReport:
        """The package's report page in the local S3 mirror, where the local engine's Evaluate wrote it."""
        package = self.package(reference)
        uri = report_uri(package.version, package.metadata)
        path = self.deployer.s3.path(uri)
        if not path.is_file():
            raise BackendError(f"version {package.version}'s report page {uri} is not in the local S3 mirror ({relative(path)}): it was deleted")
        return PackageReport(package.version, uri, path.read_bytes())

    # fmt: off
    def promote(self, reference: str | None, *, source: str | None, images: Path | None, count: int, force: bool = False,
                reason: str = "", role_arn: str | None = None) -> promote.Promotion:
        # fmt: on
        # role_arn: there are no accounts here (the command line refuses --role-arn with --local).
        from containers.inference.local import LocalEndpoint
        from pipelines.local.endpoint import apply_serving_environment

        stages = self.config.stage_endpoints
        source, target = promote.next_stage(stages, source)
        record = self.deployer.record(stages[source])
        if record is None:
            raise BackendError(f"nothing is deployed to {source} ({stages[source]}) yet: approve a package first", 2)
        package = self.package(reference) if reference else self.state.package(record.package_arn)
        if package is None or package.arn != record.package_arn:
            which = f"version {package.version}" if package else record.package_arn
            raise BackendError(f"{source} serves version {record.version}, not {which}: deploy that one to {source} first", 2)
        smoke_images = self._smoke_images(package, images, count)
        apply_serving_environment(record.environment)
        endpoint = LocalEndpoint(record.model_dir)
        answers = promote.smoke(smoke_images, lambda body: endpoint.invoke(body, promote.IMAGE_CONTENT_TYPE)[:2], list(endpoint.classes.values()))
        deployment = None
        if all(answer.problem is None for answer in answers):
            deployment = self._deploy(package.arn, stages[target], force=force, reason=reason)
        return promote.Promotion(package.version, package.arn, f"{source} ({stages[source]})", f"{target} ({stages[target]})", answers, deployment)

    def _smoke_images(self, package: Registered, images: Path | None, count: int) -> list[promote.SmokeImage]:
        if images is not None:
            return promote.folder_images(images, count)
        prefix = (package.metadata or {}).get(promote.VALIDATION_METADATA)
        if not prefix:
            raise BackendError(f"version {package.version} does not record its validation data ({promote.VALIDATION_METADATA}): pass --images DIR", 2)
        return promote.record_images(self.deployer.s3.path(prefix), count, source=prefix)

    def package(self, reference: str) -> Registered:
        """A package of the group by version number (`3`, `v3`) or ARN."""
        group = self.config.model_package_group
        package = self.state.package(reference.strip().lstrip("vV"), group)
        if package is None or package.group != group:
            versions = ", ".join(str(p.version) for p in self.state.packages(group)) or "none yet"
            raise BackendError(f"no model package {reference!r} in {group} (local); versions: {versions}")
        return package


def _no_baseline(served: Deployment | None, package: Registered | None, looked: list[str]) -> str:
    if served is None:
        return "nothing is deployed to the endpoint"
    if package is None:
        return f"version {served.version} of {served.group}, which the endpoint serves, is no longer registered"
    where = f"looked for {', '.join(looked)}" if looked else "it records neither DriftCheckBaselines nor an evaluation"
    return f"version {served.version} of {served.group}, which the endpoint serves, has no data baseline ({where})"


def _in_service(row: dict | None) -> ServiceQuality | None:
    """A recorded accuracy in service (State.service_quality): measured at the window's end, else when it ran."""
    if row is None:
        return None
    since, until = (parse_time(row[bound]) if row[bound] else None for bound in ("since", "until"))
    return ServiceQuality(row["map"], row["map50"], row["images"], until or _moment(row["recorded"]), row["endpoint"], since, until)


def _moment(seconds: float | None) -> datetime | None:
    return datetime.fromtimestamp(seconds, UTC) if seconds else None


def _execution(row: dict, steps: list[dict] | None = None) -> Execution:
    return Execution(
        id=row["id"],
        status=row["status"],
        started=_moment(row["started"]),
        ended=_moment(row["ended"]),
        failure=row["failure"] or "",
        parameters={name: str(value) for name, value in json.loads(row["parameters"] or "{}").items()},
        steps=tuple(_step(step) for step in steps or ()),
    )


def _step(row: dict) -> Step:
    detail = f"cached from {row['cached_from']}" if row["cached_from"] else (relative(row["log"]) if row["log"] else "")
    return Step(row["name"], row["status"], _moment(row["started"]), _moment(row["ended"]), detail, row["failure"] or "")


def _package(package: Registered) -> Package:
    return Package(
        version=package.version,
        arn=package.arn,
        status=package.status,
        created=_moment(package.created),
        map=package.map,
        note=package.approval_description or "",
        execution=package.execution or "",
        data=data_label((package.metadata or {}).get("TrainingData")),
        champion=recorded_champion(package.metadata),
    )
