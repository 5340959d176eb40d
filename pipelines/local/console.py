"""What `cardamage run --local` shows while the engine works, and what it prints when a run ends.

The engine says one line per step event (`▶ Train (Training)`, `✔ Train 42 s`, `↺ Train cached: ...`,
`✖ Evaluate failed: ...`) and passes every line its jobs print. The programs' own lines (`prepare_data:`,
`train:`, `train step=...`, `evaluate:`) and anything that looks like an error are shown; TensorFlow's
chatter goes only to the step's log file, unless `--verbose`. On a terminal a status line under the output
shows the running step, its elapsed time and its latest line.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.local.engine import Reporter
from pipelines.local.state import Package, State
from pipelines.local.storage import LocalS3

# A job line worth showing: the programs' own prefixes, their progress, and errors from anywhere.
SHOWN = re.compile(
    r"^\s*(?:prepare_data|train|evaluate)(?::|\s+step=)|Traceback|(?:^|\s)(?:error|Error|Exception)[:\s]|restored \d+ checkpoint|^instance "
    r"|^stopping the job "
)
_STEP_EVENT = re.compile(r"^(▶|✔|↺|✖) (\S+)(?: (.*))?$")
STYLES = {"▶": "bold cyan", "✔": "bold green", "↺": "bold blue", "✖": "bold red"}


class Progress:
    """A Reporter for the terminal (rich): step events, the programs' lines, and a live status line."""

    def __init__(self, console: Any, *, verbose: bool = False):
        self.console, self.verbose = console, verbose
        self._status: Any = None
        self._step, self._since, self._last = "", 0.0, ""

    def reporter(self) -> Reporter:
        return Reporter(say=self.say, job_line=self.job_line)

    def say(self, line: str) -> None:
        event = _STEP_EVENT.match(line)
        if event is None:
            self.console.print(line, markup=False)
            return
        mark, name, detail = event.group(1), event.group(2), event.group(3) or ""
        if mark == "▶":
            self._start(name)
        else:
            self.stop()
        self.console.print(f"[{STYLES[mark]}]{mark} {name}[/] {_escape(detail)}")

    def job_line(self, step: str, line: str) -> None:
        if self.verbose or SHOWN.search(line):
            self.console.print(f"  [dim]{step} |[/] {_escape(line)}")
        self._last = line.strip()
        self._refresh()

    def _start(self, name: str) -> None:
        self.stop()
        self._step, self._since, self._last = name, time.monotonic(), ""
        if self.console.is_terminal:
            self._status = self.console.status("", spinner="dots")
            self._status.start()
            self._refresh()

    def _refresh(self) -> None:
        if self._status is not None:
            elapsed = int(time.monotonic() - self._since)
            last = self._last if len(self._last) <= 90 else self._last[:87] + "..."
            self._status.update(f"[bold]{self._step}[/] running {elapsed // 60}:{elapsed % 60:02d}  [dim]{_escape(last)}[/]")

    def stop(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


@dataclass(frozen=True)
class Outputs:
    """Where a local execution's results are on this machine."""

    data_report: Path | None = None
    data_pictures: tuple[Path, ...] = ()
    evaluation: Path | None = None
    evaluation_pictures: tuple[Path, ...] = ()
    model: Path | None = None
    package: Package | None = None
    endpoint: str | None = None
    logs: tuple[Path, ...] = ()


def execution_outputs(state_dir: Path, execution: str) -> Outputs:
    """The report, evaluation, model artifact, package and endpoint of an execution, from its steps' records."""
    state, s3 = State(state_dir), LocalS3(state_dir / "s3")
    steps = {step["name"]: step for step in state.steps(execution)}

    def output_folder(name: str) -> Path | None:
        properties = _properties(steps.get(name))
        outputs = properties.get("ProcessingOutputConfig", {}).get("Outputs", [])
        return s3.path(outputs[0]["S3Output"]["S3Uri"]) if outputs else None

    prepared, evaluated = output_folder("PrepareData"), output_folder("Evaluate")
    model_uri = _properties(steps.get("Train")).get("ModelArtifacts", {}).get("S3ModelArtifacts")
    package_arn = _properties(steps.get("Register")).get("ModelPackageArn")
    deploy = _properties(steps.get("Deploy"))
    return Outputs(
        data_report=_existing(prepared, "report.json"),
        data_pictures=_pictures(prepared),
        evaluation=_existing(evaluated, "evaluation.json"),
        evaluation_pictures=_pictures(evaluated),
        model=s3.path(model_uri) if model_uri else None,
        package=state.package(package_arn) if package_arn else None,
        endpoint=deploy.get("endpoint_name") if deploy.get("status") in ("created", "updated") else None,
        logs=tuple(Path(step["log"]) for step in steps.values() if step.get("log")),
    )


def _properties(step: dict | None) -> dict:
    import json

    return json.loads(step["properties"]) if step and step.get("properties") else {}


def _existing(folder: Path | None, name: str) -> Path | None:
    return folder / name if folder is not None and (folder / name).is_file() else None


def _pictures(folder: Path | None) -> tuple[Path, ...]:
    return tuple(sorted(folder.glob("*.png"))) if folder is not None and folder.is_dir() else ()


def relative(path: Path | str) -> str:
    """A path as the user would type it: relative to the working folder when it is under it."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def summary_rows(outputs: Outputs) -> Iterator[tuple[str, str]]:
    if outputs.data_report:
        yield "data report", relative(outputs.data_report)
    for picture in outputs.data_pictures:
        yield "", relative(picture)
    if outputs.evaluation:
        yield "evaluation", relative(outputs.evaluation)
    for picture in outputs.evaluation_pictures:
        yield "", relative(picture)
    if outputs.model:
        yield "model artifact", relative(outputs.model)
    if outputs.package:
        package = outputs.package
        figure = f"mAP {package.map:.4f}" if package.map is not None else "no mAP"
        yield "registered model", f"{package.group} version {package.version}: {package.status}, {figure}"
    if outputs.endpoint:
        yield "endpoint", f"{outputs.endpoint} (local: `cardamage serve`, `cardamage predict IMAGE`)"
