"""The local engine: a SageMaker pipeline definition, interpreted on this machine.

It reads the same definition JSON that the CDK app deploys. Before anything runs, every step type,
function, condition and reference is checked, and a dependency cycle or a reference to a missing step is
an error naming it. Then steps run one at a time in dependency order (explicit `DependsOn` and the steps
whose properties they read): Processing and Training as subprocesses (jobs.py), Condition and Fail here,
RegisterModel into the local Model Registry, and the deployment Lambda against the local endpoint.
Cached steps (CacheConfig) whose cache key is unchanged within the expiry reuse their last success, as
SageMaker does, with the attributes SageMaker puts in its cache keys.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.local.expressions import DefinitionProblem, Resolver, check, check_condition, referenced_steps
from pipelines.local.jobs import Images, JobFailed, run_processing, run_training
from pipelines.local.state import State
from pipelines.local.storage import LocalS3

STEP_TYPES = ("Processing", "Training", "Condition", "Fail", "RegisterModel", "Lambda")
# The request attributes SageMaker puts in each step type's cache key (its documentation's "default cache
# key attributes").
CACHE_KEY = {
    "Processing": ("AppSpecification", "Environment", "ProcessingInputs"),
    "Training": (
        "AlgorithmSpecification",
        "CheckpointConfig",
        "DebugHookConfig",
        "DebugRuleConfigurations",
        "Environment",
        "HyperParameters",
        "InputDataConfig",
    ),
}
_DURATION = re.compile(r"^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$", re.IGNORECASE)


class ExecutionFailed(Exception):
    """The execution ended in a Fail step or a failed step; the message says which and why."""

    def __init__(self, message: str, execution: str, log: Path | None = None):
        super().__init__(message)
        self.execution = execution
        self.log = log


@dataclass
class Reporter:
    """Where the engine says what it does: a line per event (the CLI prints them, tests collect them)."""

    say: Callable[[str], None] = print
    job_line: Callable[[str, str], None] = lambda step, line: None

    def step(self, event: str, name: str, detail: str = "") -> None:
        self.say(f"{event} {name}{(' ' + detail) if detail else ''}")


@dataclass(frozen=True)
class ExecutionResult:
    execution: str
    status: str
    steps: list[dict] = field(default_factory=list)


class Engine:
    def __init__(self, state_dir: Path, images: Images, deploy: Callable[[dict], dict], reporter: Reporter | None = None, jobs: dict | None = None):
        self.state_dir = state_dir
        self.state = State(state_dir)
        self.s3 = LocalS3(state_dir / "s3")
        self.images = images
        self.deploy = deploy  # the deployment Lambda's local stand-in: its event -> its outputs
        self.reporter = reporter or Reporter()
        # How Processing and Training jobs run: (arguments, job name, work folder, echo) -> properties.
        self.jobs = jobs or {
            "Processing": lambda arguments, name, work, echo: run_processing(arguments, name, self.s3, work, echo),
            "Training": lambda arguments, name, work, echo: run_training(arguments, name, self.images, self.s3, work, echo),
        }

    # Checking ---------------------------------------------------------------------------------------
    def validate(self, definition: dict) -> dict[str, dict]:
        """Check the whole definition before running it; returns every step by name."""
        steps: dict[str, dict] = {}
        parameters = {p["Name"] for p in definition.get("Parameters", [])}

        def collect(items: list, where: str) -> None:
            for index, step in enumerate(items):
                name, kind = step.get("Name"), step.get("Type")
                if kind not in STEP_TYPES:
                    raise DefinitionProblem(
                        f"{where}[{index}] ({name}): the step type {kind!r} is not supported by the local engine (supported: {', '.join(STEP_TYPES)})"
                    )
                if name in steps:
                    raise DefinitionProblem(f"{where}[{index}]: two steps are named {name!r}")
                steps[name] = step
                if kind == "Condition":
                    collect(step["Arguments"].get("IfSteps", []), f"{name}.IfSteps")
                    collect(step["Arguments"].get("ElseSteps", []), f"{name}.ElseSteps")

        collect(definition.get("Steps", []), "Steps")
        files = {name: {f["PropertyFileName"] for f in step.get("PropertyFiles", [])} for name, step in steps.items()}
        for name, step in steps.items():
            arguments = {k: v for k, v in step.get("Arguments", {}).items() if k not in ("IfSteps", "ElseSteps", "Conditions")}
            check(arguments, f"{name}.Arguments", parameters, set(steps), files)
            for index, condition in enumerate(step.get("Arguments", {}).get("Conditions", []) if step["Type"] == "Condition" else []):
                check_condition(condition, f"{name}.Conditions[{index}]", parameters, set(steps), files)
            for dependency in step.get("DependsOn", []):
                if dependency not in steps:
                    raise DefinitionProblem(f"{name}.DependsOn: no step named {dependency!r}")
        self._check_cycles(steps)
        return steps

    def _check_cycles(self, steps: dict[str, dict]) -> None:
        graph = {name: self.dependencies(step) for name, step in steps.items()}
        visiting, done = set(), set()

        def visit(name: str, trail: list[str]) -> None:
            if name in done:
                return
            if name in visiting:
                cycle = [*trail[trail.index(name) :], name]
                raise DefinitionProblem(f"dependency cycle: {' -> '.join(cycle)}")
            visiting.add(name)
            for dependency in graph[name]:
                visit(dependency, [*trail, name])
            visiting.discard(name)
            done.add(name)

        for name in graph:
            visit(name, [])

    @staticmethod
    def dependencies(step: dict) -> set[str]:
        arguments = {k: v for k, v in step.get("Arguments", {}).items() if k not in ("IfSteps", "ElseSteps")}
        return (set(step.get("DependsOn", [])) | referenced_steps(arguments) | referenced_steps(step.get("FunctionArn", ""))) - {step["Name"]}

    # Running ----------------------------------------------------------------------------------------
    def run(self, definition: dict, pipeline: str, overrides: dict[str, str] | None = None) -> ExecutionResult:
        """Run the definition as pipeline `pipeline` (a definition does not carry its name)."""
        steps = self.validate(definition)
        parameters = parameter_values(definition, overrides or {})
        execution = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        started = time.time()
        variables = {
            "PipelineExecutionId": execution,
            "PipelineExecutionArn": f"arn:aws:sagemaker:local:000000000000:pipeline/{pipeline}/execution/{execution}",
            "PipelineName": pipeline,
            "StartDateTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "CurrentDateTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        }
        properties: dict[str, dict] = {}
        resolver = Resolver(parameters, variables, self._property_file_reader(steps, properties))
        resolver.properties = properties
        self.state.start_execution(execution, pipeline, parameters)
        self.reporter.say(f"execution {execution} of {pipeline}")
        active, finished = list(definition.get("Steps", [])), set()
        try:
            while active:
                runnable = next((s for s in active if self.dependencies(s) <= finished), None)
                if runnable is None:
                    waiting = {s["Name"]: sorted(self.dependencies(s) - finished) for s in active}
                    raise DefinitionProblem(f"steps wait on steps that did not run: {waiting}")
                active.remove(runnable)
                branch = self._run_step(runnable, pipeline, execution, resolver)
                finished.add(runnable["Name"])
                active.extend(branch)
        except ExecutionFailed as exc:
            self.state.end_execution(execution, "Failed", str(exc))
            raise
        except KeyboardInterrupt:
            self.state.end_execution(execution, "Stopped", "stopped by Ctrl-C")
            raise
        except DefinitionProblem as exc:
            self.state.end_execution(execution, "Failed", str(exc))
            raise ExecutionFailed(str(exc), execution) from None
        self.state.end_execution(execution, "Succeeded")
        self.reporter.say(f"execution {execution} succeeded in {time.time() - started:.0f} s")
        return ExecutionResult(execution, "Succeeded", self.state.steps(execution))

    def _run_step(self, step: dict, pipeline: str, execution: str, resolver: Resolver) -> list[dict]:
        """Run one step; returns the steps it activates (a condition's branch)."""
        name, kind = step["Name"], step["Type"]
        started = time.time()
        self.state.record_step(execution, name, kind, "Executing", started=started)
        try:
            if kind == "Condition":
                outcome = all(resolver.condition(c) for c in step["Arguments"]["Conditions"])
                branch = step["Arguments"]["IfSteps" if outcome else "ElseSteps"]
                skipped = step["Arguments"]["ElseSteps" if outcome else "IfSteps"]
                resolver.properties[name] = {"Outcome": outcome}
                self.state.record_step(execution, name, kind, "Succeeded", ended=time.time(), properties={"Outcome": outcome})
                self.reporter.step("✔", name, f"{'true' if outcome else 'false'}: {', '.join(s['Name'] for s in branch) or 'nothing'} next")
                for other in skipped:
                    self.state.record_step(execution, other["Name"], other["Type"], "NotRun")
                return list(branch)
            if kind == "Fail":
                message = str(resolver.resolve(step["Arguments"].get("ErrorMessage", "")))
                self.state.record_step(execution, name, kind, "Failed", ended=time.time(), failure=message)
                self.reporter.step("✖", name, message)
                raise ExecutionFailed(message, execution)
            arguments = resolver.resolve(step.get("Arguments", {}))
            properties = self._run_job(step, arguments, pipeline, execution, started)
        except JobFailed as exc:
            self.state.record_step(execution, name, kind, "Failed", ended=time.time(), failure=str(exc), log=str(exc.log))
            self.reporter.step("✖", name, f"failed: {exc} (log: {exc.log})")
            raise ExecutionFailed(f"{name} failed: {exc}", execution, exc.log) from None
        except DefinitionProblem as exc:
            self.state.record_step(execution, name, kind, "Failed", ended=time.time(), failure=str(exc))
            self.reporter.step("✖", name, str(exc))
            raise ExecutionFailed(f"{name} failed: {exc}", execution) from None
        except KeyboardInterrupt:
            self.state.record_step(execution, name, kind, "Stopped", ended=time.time(), failure="stopped by Ctrl-C")
            raise
        resolver.properties[name] = properties
        return []

    def _run_job(self, step: dict, arguments: dict, pipeline: str, execution: str, started: float) -> dict:
        name, kind = step["Name"], step["Type"]
        key = self._cache_key(step, arguments)
        if key is not None:
            hit = self.state.cached(pipeline, name, key, _seconds(step["CacheConfig"].get("ExpireAfter")))
            if hit is not None:
                source, properties = hit
                self.state.record_step(execution, name, kind, "Succeeded", ended=time.time(), cached_from=source, properties=properties)
                self.reporter.step("↺", name, f"cached: unchanged since execution {source}")
                return properties
        work = self.state_dir / "runs" / execution / name
        if kind in ("Processing", "Training"):
            log = work / ("training.log" if kind == "Training" else "algo-1.log")
            self.state.record_step(execution, name, kind, "Executing", log=str(log))
        self.reporter.step("▶", name, f"({kind})")
        job_name = f"{pipeline}-{name}-{execution}"[:63].rstrip("-")

        def echo(line: str) -> None:
            self.reporter.job_line(name, line)

        if kind in ("Processing", "Training"):
            properties = self.jobs[kind](arguments, job_name, work, echo)
        elif kind == "RegisterModel":
            properties = self._register(arguments, execution)
        else:  # Lambda
            properties = self._invoke(step, arguments)
        if key is not None:
            self.state.remember(pipeline, name, key, execution, properties)
        self.state.record_step(execution, name, kind, "Succeeded", ended=time.time(), properties=properties)
        self.reporter.step("✔", name, f"{time.time() - started:.0f} s")
        return properties

    def _cache_key(self, step: dict, arguments: dict) -> str | None:
        cache = step.get("CacheConfig") or {}
        if not cache.get("Enabled") or step["Type"] not in CACHE_KEY:
            return None
        attributes = {name: arguments.get(name) for name in CACHE_KEY[step["Type"]]}
        return hashlib.sha256(json.dumps([step["Type"], attributes], sort_keys=True).encode()).hexdigest()

    def _register(self, arguments: dict, execution: str) -> dict:
        containers = arguments.get("InferenceSpecification", {}).get("Containers", [])
        if not containers or "ModelDataUrl" not in containers[0]:
            raise DefinitionProblem("RegisterModel: the inference specification has no container with ModelDataUrl")
        metrics_uri = arguments.get("ModelMetrics", {}).get("ModelQuality", {}).get("Statistics", {}).get("S3Uri")
        metadata = arguments.get("CustomerMetadataProperties") or {}
        map_value = _map_of(self.s3, metrics_uri, metadata)
        package = self.state.register(
            group=arguments["ModelPackageGroupName"],
            status=arguments.get("ModelApprovalStatus", "PendingManualApproval"),
            model_data_url=containers[0]["ModelDataUrl"],
            image=containers[0].get("Image"),
            metrics_uri=metrics_uri,
            map_value=map_value,
            metadata={**metadata, "Environment": containers[0].get("Environment", {})},
            execution=execution,
        )
        self.reporter.say(f"  registered {package.arn} ({package.status}, mAP {map_value if map_value is not None else '-'})")
        return {**arguments, "ModelPackageArn": package.arn, "ModelPackageVersion": package.version, "ModelApprovalStatus": package.status}

    def _invoke(self, step: dict, arguments: dict) -> dict:
        outputs = self.deploy({**arguments, "FunctionArn": step.get("FunctionArn")})
        wanted = [o["OutputName"] for o in step.get("OutputParameters", [])]
        return {"OutputParameters": [{"OutputName": name, "OutputValue": outputs.get(name)} for name in wanted], **outputs}

    def _property_file_reader(self, steps: dict[str, dict], properties: dict[str, dict]) -> Callable[[str, str], Any]:
        """Property files are read from the step's output in (local) S3 when a JsonGet first asks."""
        cache: dict[tuple[str, str], Any] = {}

        def read(step_name: str, file_name: str) -> Any:
            if (step_name, file_name) not in cache:
                declared = next(f for f in steps[step_name].get("PropertyFiles", []) if f["PropertyFileName"] == file_name)
                outputs = properties[step_name]["ProcessingOutputConfig"]["Outputs"]
                output = next(o for o in outputs if o["OutputName"] == declared["OutputName"])
                path = self.s3.path(output["S3Output"]["S3Uri"].rstrip("/") + "/" + declared["FilePath"])
                if not path.is_file():
                    raise DefinitionProblem(f"{step_name}: its property file {file_name} ({declared['FilePath']}) was not written")
                cache[step_name, file_name] = json.loads(path.read_text())
            return cache[step_name, file_name]

        return read


def parameter_values(definition: dict, overrides: dict[str, str]) -> dict[str, Any]:
    """The execution's parameters: defaults, with `overrides` (strings, as given on a command line)
    converted to each parameter's type. An unknown name or a value of the wrong type is an error."""
    declared = {p["Name"]: p for p in definition.get("Parameters", [])}
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise DefinitionProblem(f"unknown parameter(s) {unknown}; the pipeline's parameters: {', '.join(declared)}")
    values = {}
    for name, parameter in declared.items():
        if name not in overrides:
            values[name] = parameter.get("DefaultValue")
            continue
        text, kind = overrides[name], parameter.get("Type", "String")
        try:
            values[name] = {"Integer": int, "Float": float, "Boolean": _boolean}.get(kind, str)(text)
        except ValueError:
            raise DefinitionProblem(f"parameter {name}: {text!r} is not a valid {kind}") from None
        allowed = parameter.get("EnumValues")
        if allowed and values[name] not in allowed:
            raise DefinitionProblem(f"parameter {name}: {text!r} is not one of {allowed}")
    return values


def _boolean(text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise ValueError(text)
    return text.lower() == "true"


def _seconds(duration: str | None) -> float:
    """An ISO 8601 duration (a step's cache ExpireAfter) in seconds; none means no expiry."""
    if not duration:
        return float("inf")
    match = _DURATION.match(duration)
    if not match:
        raise DefinitionProblem(f"CacheConfig.ExpireAfter {duration!r} is not an ISO 8601 duration")
    years, months, weeks, days, hours, minutes, seconds = (int(v or 0) for v in match.groups())
    return ((years * 365 + months * 30 + weeks * 7 + days) * 24 + hours) * 3600 + minutes * 60 + seconds


def _map_of(s3: LocalS3, metrics_uri: str | None, metadata: dict) -> float | None:
    """The mAP a package was registered with: from its evaluation.json, else its metadata."""
    if metrics_uri:
        path = s3.path(metrics_uri)
        if path.is_file():
            try:
                return float(json.loads(path.read_text())["metrics"]["mAP"]["value"])
            except (ValueError, KeyError, TypeError):
                pass
    try:
        return float(metadata["mAP"])
    except (KeyError, TypeError, ValueError):
        return None
