"""A local state with packages waiting for approval, made in a moment: registered straight into the local registry
(pipelines/local/state.py) with what a Register step leaves in the local S3 mirror (a model archive and its
sha256, evaluation.json with intervals, report.html as Evaluate renders it), and the console over it."""

from __future__ import annotations

import functools
import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from containers.deploy.champion import METADATA_MAP, METADATA_VERSION
from containers.deploy.deploy import METADATA_SHA256
from pipelines.backends.local import LocalBackend
from pipelines.config import Config, load_config
from pipelines.console.app import Site, create_app
from pipelines.console.server import listen, server
from pipelines.local.runner import LOCAL_VALUES
from pipelines.local.state import State
from pipelines.local.storage import LocalS3
from steps.register import METADATA_REPORT
from tests.support import ROOT
from tests.test_deploy_rule import model_archive

ARTIFACTS = LOCAL_VALUES["ArtifactBucket"]
SNAPSHOT = "20261130T101500Z-0123456789ab"


@dataclass(frozen=True)
class Registered:
    version: int
    map: float
    interval: tuple[float, float]
    report: bool = True
    # (version, its mAP and that figure's interval, the lead's interval); None: nothing was served
    champion: tuple[int, float, tuple[float, float], tuple[float, float]] | None = None
    note: str = ""  # an approval note set on it (the status stays PendingManualApproval)
    data: str = ""  # its TrainingData, when not the snapshot's inputs


@functools.cache
def report_page() -> str:
    """A report.html as Evaluate writes it (containers/evaluation/package_report.py's `render`), on the known
    evaluation and photos of its own tests: the metrics with intervals, and three photos where the models differ
    most, each as ground truth, champion and challenger side by side."""
    from containers.evaluation.package_report import DataReports, render, select_photos
    from tests.containers.evaluation.test_package_report import CHALLENGER, CHAMPION, PHOTOS, known_evaluation, photos_of

    selection = select_photos(PHOTOS, CHALLENGER, CHAMPION, 0.3, 6)
    photos = photos_of(selection)
    return render(
        known_evaluation(), selection=selection, photos=photos, threshold=0.3, data=DataReports(note="not given"), baselines={}, pr_curves=None
    )


def pending_state(root: Path, packages: tuple[Registered, ...]) -> tuple[Config, Path]:
    """A local state holding `packages`, registered PendingManualApproval in this order (versions 1, 2, ...)."""
    config = load_config(ROOT / "pipeline.yaml", profile="local")
    state_dir = root / ".cardamage"
    state, s3 = State(state_dir), LocalS3(state_dir / "s3")
    archive = root / "model.tar.gz"
    archive.write_bytes(model_archive())
    for package in packages:
        folder = f"s3://{ARTIFACTS}/{config.pipeline_name}/execution-{package.version}"
        s3.put_file(archive, f"{folder}/model.tar.gz")
        evaluation = {
            "metrics": {"mAP": {"value": package.map}},
            "intervals": {"metrics": {"mAP": list(package.interval)}},
            "champion": {"version": 0},
        }
        metadata = {
            METADATA_SHA256: hashlib.sha256(archive.read_bytes()).hexdigest(),
            "TrainingData": package.data or f"s3://{LOCAL_VALUES['DataBucket']}/snapshots/{SNAPSHOT}/inputs/",
            METADATA_VERSION: "0",
            METADATA_MAP: "none",
        }
        if package.champion:
            champion, figure, interval, lead = package.champion
            evaluation["champion"] = {
                "version": champion, "map_lead": round(figure - package.map, 4), "lead_interval": list(lead),
                "intervals": {"metrics": {"mAP": list(interval)}},
            }  # fmt: skip
            metadata |= {METADATA_VERSION: str(champion), METADATA_MAP: str(figure)}
        evaluation_file = root / f"evaluation-{package.version}.json"
        evaluation_file.write_text(json.dumps(evaluation))
        s3.put_file(evaluation_file, f"{folder}/evaluation/evaluation.json")
        if package.report:
            page = root / f"report-{package.version}.html"
            page.write_text(report_page(), encoding="utf-8")
            s3.put_file(page, f"{folder}/evaluation/report.html")
            metadata[METADATA_REPORT] = f"{folder}/evaluation/report.html"
        registered = state.register(
            config.model_package_group, "PendingManualApproval", f"{folder}/model.tar.gz", None, f"{folder}/evaluation/evaluation.json",
            package.map, metadata, f"execution-{package.version}",
        )  # fmt: skip
        assert registered.version == package.version
        if package.note:
            state.set_status(registered.arn, "PendingManualApproval", package.note)
    return config, state_dir


@contextmanager
def running_console(config: Config, state_dir: Path) -> Iterator[str]:
    """The console over the local state, served by uvicorn in a thread on a free port of 127.0.0.1; its URL."""
    sock, site = listen(Site("127.0.0.1", 0))
    running = server(create_app(LocalBackend(config, state_dir), config, site, local=True))
    thread = threading.Thread(target=running.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if running.started:
                break
            thread.join(0.05)
        assert running.started, "the console did not start"
        yield site.url
    finally:
        running.should_exit = True
        thread.join(10)
        sock.close()


def models_row(state_dir: Path, version: int, monkeypatch) -> str:
    """`cardamage models --local` as a person reads it: the row of `version`, on a console wide enough that no
    column folds onto a second line (the CLI's own is 200 characters wide off a terminal)."""
    from rich.console import Console
    from typer.testing import CliRunner

    from pipelines.cli import app

    monkeypatch.setattr("pipelines.cli.commands.console", lambda: Console(highlight=False, soft_wrap=False, width=400))
    listed = CliRunner().invoke(app, ["models", "--local", "--state-dir", str(state_dir), "--config", str(ROOT / "pipeline.yaml")])
    assert listed.exit_code == 0, listed.output
    return next(line for line in listed.stdout.splitlines() if line.startswith(f"{version} ")).rstrip()
