"""One interface, two places the workflow runs: SageMaker on AWS, or the local engine's state directory.

The commands that exist on both sides (`cardamage executions`, `models`, `approve`, `reject`, `deploy`, `promote`,
`review`, `monitor`) talk to a `Backend` and print what it returns; they never ask where they are. The CLI chooses
the backend once, from its shared options (`--local`, `--state-dir`, `--region`, `--endpoint-url`): `aws.AwsBackend` or
`local.LocalBackend`. Each answers in the types below, so a table looks the same for both.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from containers.deploy.deploy import DeployResult
    from containers.evaluation.intervals import ReportIntervals
    from pipelines.config import Config
    from pipelines.promote import Promotion


class BackendError(Exception):
    """A problem with a one-line message for a person: exit status 2 for a wrong invocation or setup (a bad
    value, no region, no local state yet), 1 for what was found (no such package, a failed execution)."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Step:
    """One step of an execution."""

    name: str
    status: str
    started: datetime | None = None
    ended: datetime | None = None
    detail: str = ""  # the job it ran, its condition's outcome, the package it registered, where its log is, its cache source
    failure: str = ""


@dataclass(frozen=True)
class Execution:
    id: str
    status: str
    started: datetime | None = None
    ended: datetime | None = None  # None while it runs
    failure: str = ""
    arn: str = ""
    parameters: dict[str, str] = field(default_factory=dict)
    steps: tuple[Step, ...] = ()  # filled when one execution is asked for


@dataclass(frozen=True)
class ServiceQuality:
    """A package's accuracy in service: the monitor's `quality` (containers/monitoring/quality.py), Evaluate's mAP of
    an endpoint's captured answers to photos that came back labelled from review batches."""

    map: float | None  # COCO mAP@[.5:.95]; None when no labelled photo had a box
    map50: float | None
    images: int  # the labelled photos scored
    when: datetime | None  # the end of the monitored window, else when the monitor ran
    endpoint: str = ""
    since: datetime | None = None  # the window's bounds, None when open
    until: datetime | None = None

    @property
    def text(self) -> str:
        """As `cardamage models` and the console show it: `0.3812 on 12 photos (2026-12-07)`, the day in UTC."""
        figure = f"{self.map:.4f}" if self.map is not None else "-"
        day = f" ({self.when.astimezone(UTC):%Y-%m-%d})" if self.when else ""
        return f"{figure} on {self.images} photo{'' if self.images == 1 else 's'}{day}"

    @classmethod
    def of(cls, document: Mapping[str, Any], endpoint: str, ran: datetime | None) -> tuple[str, ServiceQuality] | None:
        """("<group>/<version>" of the package the monitor scored, its figure) from a monitor.json, or None when it
        has no `quality` or names no package. `ran`: when the monitor ran (the report's time)."""
        quality, package = document.get("quality"), (document.get("baseline") or {}).get("package")
        if not isinstance(quality, Mapping) or not isinstance(package, str) or not package:
            return None
        window = document.get("window") or {}
        since, until = (_moment_of(window.get(bound)) for bound in ("since", "until"))
        figures = (_figure(quality.get("map")), _figure(quality.get("map50")))
        return package, cls(*figures, int(quality.get("images") or 0), until or ran, endpoint, since, until)


def _figure(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _moment_of(text: Any) -> datetime | None:
    from containers.monitoring.captures import parse_time

    try:
        return parse_time(text) if isinstance(text, str) and text else None
    except ValueError:
        return None


@dataclass(frozen=True)
class Package:
    """A model package of the project's group in the Model Registry."""

    version: int
    arn: str
    status: str
    created: datetime | None = None
    map: float | None = None  # COCO mAP@[.5:.95] of its evaluation
    note: str = ""  # the approval description: who, and why
    serving: bool = False  # the (production) endpoint serves it
    stages: tuple[str, ...] = ()  # with release stages: the stages whose endpoint serves it
    execution: str = ""  # the pipeline execution that registered it, where known
    data: str = ""  # what it was trained on: its registered TrainingData (a dataset snapshot's inputs/)
    # The champion it was judged against at registration: (version, its mAP on the same records); (0, None):
    # nothing was served; None: registered before champions were recorded.
    champion: tuple[int, float | None] | None = None
    intervals: ReportIntervals | None = None  # its evaluation.json's bootstrap intervals; None: evaluated before them
    baselines: tuple[str, ...] = ()  # the drift baselines it records whose files exist: "data", "model" (BASELINE_KINDS)
    in_service: ServiceQuality | None = None  # its latest accuracy in service, when the monitor measured one


# Where a package's DriftCheckBaselines (CreateModelPackage's shape, steps/register.py) hold each drift baseline's
# statistics: the photos' (data-baseline.json) and the answers' (model-baseline.json).
BASELINE_KINDS = {"data": "ModelDataQuality", "model": "ModelQuality"}
MONITORED_AS = {"data": "input", "model": "output"}  # the kind of statistics the monitor compares each baseline as


def baseline_file(kind: str) -> str:
    """The name Evaluate writes a drift baseline under (containers/monitoring/statistics.py), and the monitor reads."""
    from containers.monitoring.statistics import DATA_BASELINE, MODEL_BASELINE

    return {"data": DATA_BASELINE, "model": MODEL_BASELINE}[kind]


def baseline_uris(drift_check_baselines: Mapping[str, Any] | None) -> dict[str, str]:
    """The S3 URI of each drift baseline a package's DriftCheckBaselines record ({kind: uri}, kinds of BASELINE_KINDS)."""
    uris = {}
    for kind, field_name in BASELINE_KINDS.items():
        uri = ((drift_check_baselines or {}).get(field_name) or {}).get("Statistics", {}).get("S3Uri")
        if isinstance(uri, str) and uri:
            uris[kind] = uri
    return uris


def present_baselines(drift_check_baselines: Mapping[str, Any] | None, exists: Callable[[str], bool]) -> tuple[str, ...]:
    """The drift baselines a package records whose file `exists` (an evaluation that had no photo statistics
    registers a data baseline it did not write)."""
    return tuple(kind for kind, uri in baseline_uris(drift_check_baselines).items() if exists(uri))


def mark_serving(packages: list[Package], served: dict[str, str | None]) -> list[Package]:
    """The packages with what serves them marked: `served` maps each release stage, in order (the last is
    production), to the ARN of the package its endpoint serves (None: nothing)."""
    from dataclasses import replace

    production = list(served.values())[-1]
    return [
        replace(package, serving=production == package.arn, stages=tuple(stage for stage, arn in served.items() if arn == package.arn))
        for package in packages
    ]


def data_label(uri: str | None) -> str:
    """How a package's training data is shown: the snapshot id for a dataset snapshot's inputs/, else the URI."""
    match = re.search(r"/snapshots/([^/]+)/inputs/$", uri or "")
    return match.group(1) if match else (uri or "")


@dataclass(frozen=True)
class Approval:
    """What approving or rejecting a package did."""

    version: int
    previous: str
    status: str
    note: str
    still_served: bool = False  # a rejected package that the endpoint still serves
    deployment: DeployResult | None = None  # the deployment an approval started, where the backend does it at once


@dataclass(frozen=True)
class PackageReport:
    """A package's report page (report.html, which Evaluate wrote beside its evaluation.json): where it is, and its bytes."""

    version: int
    uri: str
    body: bytes


def report_uri(version: int, metadata: Mapping[str, Any] | None) -> str:
    """The S3 URI of a package's report page, from its metadata (steps/register.py `METADATA_REPORT`); a
    BackendError for a package registered before packages carried one."""
    from steps.register import METADATA_REPORT

    uri = (metadata or {}).get(METADATA_REPORT)
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise BackendError(
            f"version {version} has no report page: it was registered before packages carried one (its metadata has no {METADATA_REPORT}); "
            "`cardamage models` shows its figures"
        )
    return uri


@dataclass(frozen=True)
class ReviewPlace:
    """Where `cardamage review` (pipelines/review.py) reads and writes on one backend."""

    s3: Any  # a boto3 S3 client, or the local engine's stand-in for one (LocalS3Client)
    captures: str  # the production endpoint's data-capture prefix
    artifact_bucket: str  # where executions write: their prepared data lists what is already labelled
    images_prefix: str  # the images prefix executions read (ImagesS3Prefix); a batch goes under review/<batch>/
    labels_prefix: str  # where label exports start the next execution (the new-data trigger's prefix)
    model_version: str  # the package the endpoint serves, as "<group>/<version>", or "unknown"
    data_baseline: str | None = None  # the S3 URI of the served package's data baseline (`--strategy atypical`)
    no_baseline: str = ""  # why there is none, when there is none

    @classmethod
    def of(
        cls, config: Config, s3: Any, *, data: str, artifacts: str, images_prefix: str | None, served: tuple[str, int] | None,
        data_baseline: str | None = None, no_baseline: str = "",
    ) -> ReviewPlace:  # fmt: skip
        """The configuration's places in these buckets; `images_prefix` None: ImagesS3Prefix's default. `served` is
        the (group, version) the endpoint serves, if any, and `data_baseline` its data baseline's URI."""
        images = images_prefix or str(config.images_prefix(data))
        version = f"{served[0]}/{served[1]}" if served else "unknown"
        return cls(s3, str(config.data_capture(artifacts)), artifacts, images, str(config.labels_prefix(data)), version, data_baseline, no_baseline)


@dataclass(frozen=True)
class MonitorInputs:
    """What the monitor program (containers/monitoring/monitor.py) reads for one endpoint, in local folders: its
    captures, the served package's baselines (under the names the program reads), the labels of answered photos
    and the capture files of their answers outside the window; what was used (`said`, for stdout) and what is
    missing (`notes`, for stderr)."""

    captures: Path
    baseline: Path
    package: str | None  # "<group>/<version>" served, when known
    labels: Path | None = None
    served_since: datetime | None = None  # when the package began answering, when known: earlier answers are another's
    said: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    # Capture files read for the accuracy in service only (the program's --labelled-captures): on AWS, the ones
    # review batches took photos from, as the scheduled job gets them; None: the window's captures only.
    labelled_captures: Path | None = None


class Backend(Protocol):
    """What the commands that work on AWS and here ask of the place they run."""

    where: str  # for messages: "AWS (eu-west-1)", "local (.cardamage)"

    def executions(self, limit: int) -> list[Execution]:
        """The pipeline's newest executions, newest first."""
        ...

    def execution(self, reference: str) -> Execution:
        """One execution (an id, an ARN, or a unique start of an id) with its parameters and steps."""
        ...

    def packages(self, limit: int) -> list[Package]:
        """The group's newest packages, newest first, the one the endpoint serves marked."""
        ...

    def set_approval(self, reference: str, status: str, comment: str | None) -> Approval:
        """Approve or reject a package (a version number or an ARN), recording who and why."""
        ...

    def deploy(self, reference: str | None, *, force: bool = False, reason: str = "") -> DeployResult:
        """Deploy a package (default: the newest Approved one) to the endpoint approvals deploy to (the first
        release stage's), by the deployment rule (containers/deploy/deploy.py `decide`); `force` with a
        `reason` lets an older or worse one in."""
        ...

    def review_place(self) -> ReviewPlace:
        """Where the endpoint's captures, the executions' prepared data, images and labels are."""
        ...

    def monitor_inputs(self, endpoint: str, since: datetime | None, until: datetime | None, work: Path) -> MonitorInputs:
        """Fetch into `work` what the monitor reads for `endpoint` over [since, until): its captures, the baselines
        of the package it serves, and the labels of answered photos."""
        ...

    def report(self, reference: str) -> PackageReport:
        """A package's report page (a version number or an ARN), as its metadata's ReportUri names it."""
        ...

    # fmt: off
    def promote(self, reference: str | None, *, source: str | None, images: Path | None, count: int, force: bool = False,
                reason: str = "", role_arn: str | None = None) -> Promotion:
        # fmt: on
        """Smoke-test the package a stage serves (pipelines/promote.py), then deploy it to the next stage by the
        deployment rule. `reference`, when given, must be the package the stage serves. `role_arn`: on AWS, the role to
        assume in the next stage's account (deployment.accounts); here there are no accounts."""
        ...
