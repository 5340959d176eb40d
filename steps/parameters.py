"""The pipeline's parameters: what a run may set without editing code, their defaults from pipeline.yaml, and
the rule each value keeps.

The names are an interface: `cardamage start --param NAME=VALUE`, `cardamage run --local --param`, the
EventBridge trigger (InputManifestUri) and the acceptance checks use them as they are. A value given for a
run is checked before anything starts, on AWS and on this machine alike (`check_overrides`), with the same
types that check pipeline.yaml and the training program's hyperparameters: one rule, one place.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError

from containers.training.hyperparameters import BatchSize, ImageSize, ModelVariant, TrainingSteps, batch_problem, replicas
from pipelines.config import ChampionRule, Config, Fraction, InstanceCount, InstanceType, S3Uri, Tolerance, explain

if TYPE_CHECKING:
    from sagemaker.core.workflow.functions import Join
    from sagemaker.core.workflow.parameters import ParameterFloat, ParameterInteger, ParameterString


@dataclass(frozen=True)
class Parameters:
    """The pipeline's parameters as the SDK objects the steps refer to."""

    input_manifest_uri: ParameterString
    images_prefix: ParameterString
    processing_instance_count: ParameterInteger
    processing_instance_type: ParameterString
    training_instance_type: ParameterString
    training_instance_count: ParameterInteger
    model_variant: ParameterString
    training_steps: ParameterInteger
    batch_size: ParameterInteger
    image_size: ParameterInteger
    evaluation_instance_type: ParameterString
    map_threshold: ParameterFloat
    champion_tolerance: ParameterFloat
    champion_rule: ParameterString

    def all(self) -> list[ParameterString | ParameterInteger | ParameterFloat]:
        return [getattr(self, f.name) for f in fields(self)]


def build_parameters(config: Config, data_bucket: str) -> Parameters:
    """The parameters with their defaults; `data_bucket` is the data bucket's name (or its placeholder)."""
    from sagemaker.core.workflow.parameters import ParameterFloat, ParameterInteger, ParameterString

    training = config.training
    return Parameters(
        input_manifest_uri=ParameterString("InputManifestUri", default_value=str(config.input_manifests(data_bucket))),
        images_prefix=ParameterString("ImagesS3Prefix", default_value=str(config.images_prefix(data_bucket))),
        processing_instance_count=ParameterInteger("ProcessingInstanceCount", default_value=config.data.processing.instance_count),
        processing_instance_type=ParameterString("ProcessingInstanceType", default_value=config.data.processing.instance_type),
        training_instance_type=ParameterString("TrainingInstanceType", default_value=training.instance_type),
        training_instance_count=ParameterInteger("TrainingInstanceCount", default_value=training.instance_count),
        model_variant=ParameterString("ModelVariant", default_value=training.model),
        training_steps=ParameterInteger("TrainingSteps", default_value=training.steps),
        batch_size=ParameterInteger("BatchSize", default_value=training.batch_size),
        image_size=ParameterInteger("ImageSize", default_value=training.input_size),
        evaluation_instance_type=ParameterString("EvaluationInstanceType", default_value=config.evaluation.instance_type),
        map_threshold=ParameterFloat("MapThreshold", default_value=config.evaluation.map_threshold),
        champion_tolerance=ParameterFloat("ChampionTolerance", default_value=config.evaluation.champion_tolerance),
        # No EnumValues: AWS's published definition schema has none for a String parameter and no AWS page documents
        # it; the definition's first step refuses a rule pipeline.yaml does not allow, and check_overrides any other.
        champion_rule=ParameterString("ChampionRule", default_value=config.evaluation.champion_rule),
    )


def as_string(parameter: ParameterString | ParameterInteger | ParameterFloat) -> Join:
    """A parameter as a string expression (hyperparameters and environment values must be strings)."""
    from sagemaker.core.workflow.functions import Join

    return Join(on="", values=[parameter])


# The rule each parameter of this pipeline keeps: the types pipeline.yaml's keys and the hyperparameters
# are checked with. A parameter a definition declares beyond these is checked by its declared type.
RULES: dict[str, Any] = {
    "InputManifestUri": S3Uri,
    "ImagesS3Prefix": S3Uri,
    "ProcessingInstanceCount": InstanceCount,
    "ProcessingInstanceType": InstanceType,
    "TrainingInstanceType": InstanceType,
    "TrainingInstanceCount": InstanceCount,
    "ModelVariant": ModelVariant,
    "TrainingSteps": TrainingSteps,
    "BatchSize": BatchSize,
    "ImageSize": ImageSize,
    "EvaluationInstanceType": InstanceType,
    "MapThreshold": Fraction,
    "ChampionTolerance": Tolerance,
    "ChampionRule": ChampionRule,
}
# Former parameters, with why a run cannot set them any more.
RETIRED = {
    "ModelApprovalStatus": "the approval status packages are registered with is pipeline.yaml's registry.approval_status, "
    "not a run's choice; a person approves a package with `cardamage approve`",
}
# SageMaker's parameter types (ParameterType in the definition).
TYPES: dict[str, Any] = {"String": str, "Integer": int, "Float": Annotated[float, Field(allow_inf_nan=False)], "Boolean": bool}
_RULE_ADAPTERS = {name: TypeAdapter(rule) for name, rule in RULES.items()}
_TYPE_ADAPTERS = {kind: TypeAdapter(rule) for kind, rule in TYPES.items()}


class ParameterError(ValueError):
    """An override names no parameter of the pipeline, or its value breaks the parameter's rule."""


@dataclass(frozen=True)
class Declared:
    """A parameter as a pipeline definition declares it."""

    name: str
    type: str = "String"  # String, Integer, Float or Boolean
    default: Any = None
    enum_values: tuple[Any, ...] = ()


def declared_parameters(definition: Mapping[str, Any]) -> dict[str, Declared]:
    """The parameters a definition (its JSON, parsed) declares, by name, in its order."""
    return {
        item["Name"]: Declared(item["Name"], item.get("Type", "String"), item.get("DefaultValue"), tuple(item.get("EnumValues") or ()))
        for item in definition.get("Parameters", [])
        if isinstance(item, Mapping) and "Name" in item
    }


def check_value(parameter: Declared, text: str) -> Any:
    """The value of `text` for `parameter`, of the parameter's type; ValueError saying what it must be."""
    adapter = _RULE_ADAPTERS.get(parameter.name) or _TYPE_ADAPTERS.get(parameter.type, _TYPE_ADAPTERS["String"])
    try:
        value = adapter.validate_strings(text.strip() if parameter.type != "String" else text)
    except ValidationError as exc:
        raise ValueError(explain(exc.errors()[0])) from None
    if parameter.enum_values and value not in parameter.enum_values:
        raise ValueError(f"must be one of {', '.join(map(str, parameter.enum_values))}")
    return value


def check_overrides(overrides: Mapping[str, str], declared: Mapping[str, Declared]) -> dict[str, Any]:
    """Every override checked against the declared parameters, all problems reported at once; the values,
    typed. Raises ParameterError."""
    unknown = sorted(set(overrides) - set(declared))
    retired = [f"{name}: {RETIRED[name]}" for name in unknown if name in RETIRED]
    if retired:
        raise ParameterError("; ".join(retired))
    if unknown:
        raise ParameterError(f"unknown parameter(s) {', '.join(unknown)}; the pipeline's parameters are: {', '.join(declared)}")
    values, problems = {}, []
    for name, text in overrides.items():
        try:
            values[name] = check_value(declared[name], text)
        except ValueError as exc:
            problems.append(f"{name}={text!r} {exc}")
    if problems:
        raise ParameterError("invalid parameter value(s): " + "; ".join(problems))
    problem = _batch_split(values, declared)
    if problem:
        raise ParameterError(problem)
    return values


def _batch_split(values: Mapping[str, Any], declared: Mapping[str, Declared]) -> str:
    """The training job's batch must split evenly across its replicas (every GPU of every instance): checked on
    the values a run would train with, its overrides over the definition's defaults, when a run sets any of them."""
    names = ("BatchSize", "TrainingInstanceType", "TrainingInstanceCount")
    if not set(names) & set(values) or not set(names) <= set(declared):
        return ""
    batch, kind, count = (values.get(name, declared[name].default) for name in names)
    try:
        problem = batch_problem(int(batch), replicas(str(kind), int(count)))
    except (TypeError, ValueError):  # a default the definition does not give: SageMaker's own check applies
        return ""
    return f"BatchSize={batch} with TrainingInstanceCount={count} of {kind}: {problem}" if problem else ""


def as_text(value: Any) -> str:
    """A checked value as StartPipelineExecution takes it (every parameter value is a string there)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    return str(value)
