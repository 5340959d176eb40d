"""The pipeline definition's expression language, as SageMaker evaluates it: `Get` (parameters, execution
variables, step properties, property files), `Std:Join`, `Std:JsonGet`, and the condition types.

`check` walks a definition before anything runs and names every expression or condition it does not
support; `Resolver` evaluates them while the pipeline runs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

FUNCTIONS = ("Get", "Std:Join", "Std:JsonGet")
CONDITIONS = ("Equals", "GreaterThan", "GreaterThanOrEqualTo", "LessThan", "LessThanOrEqualTo", "In", "Not", "Or")
EXECUTION_VARIABLES = ("PipelineExecutionId", "PipelineExecutionArn", "PipelineName", "StartDateTime", "CurrentDateTime")
_TOKEN = re.compile(r"([A-Za-z0-9_:-]+)((?:\[(?:'[^']*'|\"[^\"]*\"|\d+)\])*)")
_INDEX = re.compile(r"\[(?:'([^']*)'|\"([^\"]*)\"|(\d+))\]")


class DefinitionProblem(ValueError):
    """The definition uses something the local engine cannot run; the message names it and where."""


def is_expression(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and (next(iter(value)) in FUNCTIONS or next(iter(value)).startswith("Std:"))


def check(value: Any, where: str, parameters: set[str], steps: set[str], property_files: dict[str, set[str]]) -> None:
    """Raise DefinitionProblem for an unsupported function, or a reference to a parameter, step or
    property file that does not exist, anywhere in `value`."""
    for path, expression in _expressions(value, where):
        name, argument = next(iter(expression.items()))
        if name not in FUNCTIONS:
            raise DefinitionProblem(f"{path}: the function {name!r} is not supported by the local engine (supported: {', '.join(FUNCTIONS)})")
        if name == "Get":
            _check_get(argument, path, parameters, steps, property_files)
        elif name == "Std:Join":
            if not isinstance(argument, dict) or not isinstance(argument.get("Values"), list):
                raise DefinitionProblem(f"{path}: Std:Join needs {{'On': ..., 'Values': [...]}}")
            check(argument["Values"], f"{path}.Values", parameters, steps, property_files)
        else:  # Std:JsonGet
            if not isinstance(argument, dict) or "Path" not in argument or "PropertyFile" not in argument:
                raise DefinitionProblem(f"{path}: Std:JsonGet needs a PropertyFile and a Path")
            check(argument["PropertyFile"], f"{path}.PropertyFile", parameters, steps, property_files)


def check_condition(condition: Any, where: str, parameters: set[str], steps: set[str], property_files: dict[str, set[str]]) -> None:
    kind = condition.get("Type") if isinstance(condition, dict) else None
    if kind not in CONDITIONS:
        raise DefinitionProblem(f"{where}: the condition type {kind!r} is not supported by the local engine (supported: {', '.join(CONDITIONS)})")
    check(condition, where, parameters, steps, property_files)
    for index, inner in enumerate(condition.get("Conditions", []) + ([condition["Condition"]] if "Condition" in condition else [])):
        check_condition(inner, f"{where}.Conditions[{index}]", parameters, steps, property_files)


def _check_get(argument: Any, path: str, parameters: set[str], steps: set[str], property_files: dict[str, set[str]]) -> None:
    if not isinstance(argument, str) or "." not in argument:
        raise DefinitionProblem(f"{path}: Get needs a 'Parameters.X', 'Execution.X' or 'Steps.X...' path, got {argument!r}")
    scope, rest = argument.split(".", 1)
    if scope == "Parameters" and rest not in parameters:
        raise DefinitionProblem(f"{path}: Get refers to an unknown parameter {rest!r}")
    if scope == "Execution" and rest not in EXECUTION_VARIABLES:
        raise DefinitionProblem(f"{path}: the execution variable {rest!r} is not supported (supported: {', '.join(EXECUTION_VARIABLES)})")
    if scope == "Steps":
        step = rest.split(".", 1)[0]
        if step not in steps:
            raise DefinitionProblem(f"{path}: Get refers to a step that does not exist: {step!r}")
        if ".PropertyFiles." in f".{rest}" and rest.split(".PropertyFiles.", 1)[1] not in property_files.get(step, set()):
            raise DefinitionProblem(f"{path}: the step {step!r} has no property file {rest.split('.PropertyFiles.', 1)[1]!r}")
    if scope not in ("Parameters", "Execution", "Steps"):
        raise DefinitionProblem(f"{path}: Get scope {scope!r} is not supported (Parameters, Execution, Steps)")


def _expressions(value: Any, where: str) -> Iterator[tuple[str, dict]]:
    if is_expression(value):
        yield where, value
        return
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _expressions(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _expressions(item, f"{where}[{index}]")


def referenced_steps(value: Any) -> set[str]:
    """The steps whose properties `value` reads: the implicit dependencies of a step."""
    found: set[str] = set()
    for _, expression in _expressions(value, ""):
        name, argument = next(iter(expression.items()))
        if name == "Get" and isinstance(argument, str) and argument.startswith("Steps."):
            found.add(argument.split(".")[1])
        elif isinstance(argument, dict):
            for inner in argument.values():
                found |= referenced_steps(inner)
    return found


class Resolver:
    """Evaluates expressions against one execution's parameters, variables and finished steps."""

    def __init__(self, parameters: dict[str, Any], execution: dict[str, Any], read_property_file: Callable[[str, str], Any]):
        self.parameters = parameters
        self.execution = execution
        self.properties: dict[str, dict] = {}  # step name -> its properties (what Describe* would return)
        self._read_property_file = read_property_file

    def resolve(self, value: Any) -> Any:
        """`value` with every expression replaced by its value."""
        if is_expression(value):
            name, argument = next(iter(value.items()))
            if name == "Get":
                return self.get(argument)
            if name == "Std:Join":
                return str(argument.get("On", "")).join(_as_text(self.resolve(item)) for item in argument["Values"])
            return self.json_get(argument)
        if isinstance(value, dict):
            return {key: self.resolve(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        return value

    def get(self, path: str) -> Any:
        scope, rest = path.split(".", 1)
        if scope == "Parameters":
            return self.parameters[rest]
        if scope == "Execution":
            return self.execution[rest]
        step, _, property_path = rest.partition(".")
        if step not in self.properties:
            raise DefinitionProblem(f"{path}: the step {step!r} has not run (or was skipped by a condition)")
        return navigate(self.properties[step], property_path, where=path)

    def json_get(self, argument: dict) -> Any:
        reference = argument["PropertyFile"]["Get"] if isinstance(argument["PropertyFile"], dict) else argument["PropertyFile"]
        _, step, _, name = reference.split(".", 3)
        document = self._read_property_file(step, name)
        return navigate(document, self.resolve(argument["Path"]), where=f"{reference} {argument['Path']}", json_path=True)

    def condition(self, condition: dict) -> bool:
        kind = condition["Type"]
        if kind == "Not":
            return not self.condition(condition["Condition"])
        if kind == "Or":
            return any(self.condition(inner) for inner in condition["Conditions"])
        if kind == "In":
            return self.resolve(condition["QueryValue"]) in [self.resolve(v) for v in condition["Values"]]
        left, right = self.resolve(condition["LeftValue"]), self.resolve(condition["RightValue"])
        if kind == "Equals":
            return left == right
        left, right = float(left), float(right)
        return {"GreaterThan": left > right, "GreaterThanOrEqualTo": left >= right, "LessThan": left < right, "LessThanOrEqualTo": left <= right}[
            kind
        ]


def navigate(document: Any, path: str, *, where: str, json_path: bool = False) -> Any:
    """Follow a property path (`ProcessingOutputConfig.Outputs['prepared'].S3Output.S3Uri`) or a JsonGet
    path (`metrics.mAP.value`, `items[0].name`) into a document. A `['name']` index into a list picks the
    item whose *Name field is `name`, as SageMaker's property references do."""
    current = document
    for token in _split(path):
        match = _TOKEN.fullmatch(token)
        if not match:
            raise DefinitionProblem(f"{where}: cannot read the path segment {token!r}")
        key, indexes = match.group(1), match.group(2)
        if key:
            if not isinstance(current, dict) or key not in current:
                raise DefinitionProblem(f"{where}: {key!r} not found" + ("" if json_path else " in the step's properties"))
            current = current[key]
        for quoted, double, number in _INDEX.findall(indexes):
            current = _index(current, quoted or double or None, int(number) if number else None, where)
    return current


def _split(path: str) -> list[str]:
    parts, depth, token = [], 0, ""
    for char in path:
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        if char == "." and depth == 0:
            parts.append(token)
            token = ""
        else:
            token += char
    return [*parts, token] if token else parts


def _index(current: Any, name: str | None, number: int | None, where: str) -> Any:
    if number is not None:
        if not isinstance(current, list) or number >= len(current):
            raise DefinitionProblem(f"{where}: index {number} out of range")
        return current[number]
    if isinstance(current, dict) and name in current:
        return current[name]
    if isinstance(current, list):
        for item in current:
            if isinstance(item, dict) and any(k.endswith("Name") and v == name for k, v in item.items()):
                return item
    raise DefinitionProblem(f"{where}: no item named {name!r}")


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)
