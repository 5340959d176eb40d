"""The local engine: a SageMaker pipeline definition, interpreted on this machine.

It reads the same definition JSON that the CDK app deploys. Before anything runs, every step type,
function, condition and reference is checked, and a dependency cycle or a reference to a missing step is
an error naming it. Then steps run one at a time in dependency order (explicit `DependsOn` and the steps
whose properties they read): Processing and Training as subprocesses (jobs.py), Condition and Fail here,
RegisterModel into the local Model Registry, and the champion and deployment Lambdas against the local
registry and endpoint.
Cached steps (CacheConfig) whose cache key is unchanged within the expiry reuse their last success, as
SageMaker does, with the attributes SageMaker puts in its cache keys.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from pipelines.local.expressions import DefinitionProblem, Resolver, check, check_condition, referenced_steps
from pipelines.local.jobs import Images, JobFailed, run_processing, run_training
from pipelines.local.state import DRIFT_CHECK_BASELINES, State
from pipelines.local.storage import LocalS3
from steps.parameters import ParameterError, check_overrides, declared_parameters

STEP_TYPES = ("Processing", "Training", "Condition", "Fail", "RegisterModel", "Lambda")
# The request attributes SageMaker puts in each step type's cache key: "Default cache key attributes by
# pipeline step type", https://docs.aws.amazon.com/sagemaker/latest/dg/pipelines-default-keys.html
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
_DURATION = TypeAdapter(timedelta)  # ISO 8601 durations, as CacheConfig.ExpireAfter holds them


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
    def __init__(self, state_dir: Path, images: Images, invoke: Callable[[dict], dict], reporter: Reporter | None = None, jobs: dict | None = None):
        self.state_dir = state_dir
        self.state = State(state_dir)
        self.s3 = LocalS3(state_dir / "s3")
        self.images = images
        self.invoke = invoke  # the Lambda functions' local stand-in: its event (with FunctionArn) -> its outputs
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
        self.order(steps)
        return steps

    def order(self, steps: dict[str, dict]) -> list[str]:
        """Every step in an order that runs each after what it depends on: its explicit `DependsOn`, the steps
        whose properties it reads, and the condition whose branch holds it. A cycle is a DefinitionProblem."""
        graph = {name: self.dependencies(step) for name, step in steps.items()}
        for name, step in steps.items():
            if step["Type"] == "Condition":
                for branch in ("IfSteps", "ElseSteps"):
                    for inner in step["Arguments"].get(branch, []):
                        graph[inner["Name"]].add(name)
        try:
            return list(TopologicalSorter(graph).static_order())
        except CycleError as exc:
            raise DefinitionProblem(f"dependency cycle: {' -> '.join(reversed(exc.args[1]))}") from None

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
        # The top-level steps run; a condition's step runs when the condition chose its branch.
        active, finished = {step["Name"] for step in definition.get("Steps", [])}, set()
        try:
            for name in self.order(steps):
                if name not in active:
                    continue
                waiting = sorted(self.dependencies(steps[name]) - finished)
                if waiting:
                    raise DefinitionProblem(f"step {name} waits on steps that did not run: {', '.join(waiting)}")
                branch = self._run_step(steps[name], pipeline, execution, resolver)
                finished.add(name)
                active.update(step["Name"] for step in branch)
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
        # Kept as CreateModelPackage takes them: `cardamage monitor` finds the served package's baselines there.
        baselines = {DRIFT_CHECK_BASELINES: arguments["DriftCheckBaselines"]} if arguments.get("DriftCheckBaselines") else {}
        package = self.state.register(
            group=arguments["ModelPackageGroupName"],
            status=arguments.get("ModelApprovalStatus", "PendingManualApproval"),
            model_data_url=containers[0]["ModelDataUrl"],
            image=containers[0].get("Image"),
            metrics_uri=metrics_uri,
            map_value=map_value,
            metadata={**metadata, "Environment": containers[0].get("Environment", {}), **baselines},
            execution=execution,
            card=arguments.get("ModelCard"),  # its model card, kept as CreateModelPackage takes it
        )
        self.reporter.say(f"  registered {package.arn} ({package.status}, mAP {map_value if map_value is not None else '-'})")
        return {**arguments, "ModelPackageArn": package.arn, "ModelPackageVersion": package.version, "ModelApprovalStatus": package.status}

    def _invoke(self, step: dict, arguments: dict) -> dict:
        outputs = self.invoke({**arguments, "FunctionArn": step.get("FunctionArn")})
        wanted = [o["OutputName"] for o in step.get("OutputParameters", [])]
        # `Steps.<name>.OutputParameters['<output>']` reads an output's value, as on SageMaker.
        return {"OutputParameters": {name: outputs.get(name) for name in wanted}, **outputs}

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
    """The execution's parameters: the declared defaults, with `overrides` (strings, as given on a command
    line) checked as `cardamage start` checks them and converted to each parameter's type."""
    declared = declared_parameters(definition)
    try:
        checked = check_overrides(overrides, declared)
    except ParameterError as exc:
        raise DefinitionProblem(str(exc)) from None
    return {name: checked.get(name, parameter.default) for name, parameter in declared.items()}


def _seconds(duration: str | None) -> float:
    """An ISO 8601 duration (a step's cache ExpireAfter) in seconds; none means no expiry."""
    if not duration:
        return float("inf")
    try:
        return _DURATION.validate_strings(duration).total_seconds()
    except ValidationError:
        raise DefinitionProblem(f"CacheConfig.ExpireAfter {duration!r} is not an ISO 8601 duration") from None


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
