"""The training job's hyperparameters: what a run may set, their defaults, and their checks.

SageMaker hands every hyperparameter to the container as a string in
/opt/ml/input/config/hyperparameters.json, so values are read leniently ("8" is 8, "true" is True) but
checked strictly: an unknown name or an impossible value stops the job with a message naming it.
Names starting with `sagemaker_` are SageMaker's own and are ignored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

# EfficientDet variants as the TF2 model zoo defines them: backbone, BiFPN repeats and width, box
# predictor depth, input size, and how BiFPN combines its inputs (D6 and D7 use a plain sum, for stability).
VARIANTS = {
    "efficientdet-d0": {"backbone": "b0", "bifpn_iterations": 3, "filters": 64, "predictor_layers": 3, "size": 512, "combine": ""},
    "efficientdet-d1": {"backbone": "b1", "bifpn_iterations": 4, "filters": 88, "predictor_layers": 3, "size": 640, "combine": ""},
    "efficientdet-d2": {"backbone": "b2", "bifpn_iterations": 5, "filters": 112, "predictor_layers": 3, "size": 768, "combine": ""},
    "efficientdet-d3": {"backbone": "b3", "bifpn_iterations": 6, "filters": 160, "predictor_layers": 4, "size": 896, "combine": ""},
    "efficientdet-d4": {"backbone": "b4", "bifpn_iterations": 7, "filters": 224, "predictor_layers": 4, "size": 1024, "combine": ""},
    "efficientdet-d5": {"backbone": "b5", "bifpn_iterations": 7, "filters": 288, "predictor_layers": 4, "size": 1280, "combine": ""},
    "efficientdet-d6": {"backbone": "b6", "bifpn_iterations": 8, "filters": 384, "predictor_layers": 5, "size": 1408, "combine": "sum"},
    "efficientdet-d7": {"backbone": "b6", "bifpn_iterations": 8, "filters": 384, "predictor_layers": 5, "size": 1536, "combine": "sum"},
}
ZOO_BATCH, ZOO_LEARNING_RATE = 128, 0.08  # the zoo's schedule, scaled linearly to the batch size by default

# The rules a training run's settings keep, written once: pipeline.yaml's `training` section, the pipeline's
# parameters (ImageSize, BatchSize, TrainingSteps, ModelVariant) and this program all check with these types.
IMAGE_SIZE_STEP = 128  # EfficientDet's feature levels 3-7 halve the input five times: 2**7
IMAGE_SIZE_RULE = f"must be a multiple of {IMAGE_SIZE_STEP} (EfficientDet's feature levels 3-7 need it)"


def _multiple_of_step(size: int) -> int:
    if size % IMAGE_SIZE_STEP:
        raise ValueError(IMAGE_SIZE_RULE)
    return size


# From 256: the feature extractor needs inputs over 128 pixels.
ImageSize = Annotated[int, Field(ge=2 * IMAGE_SIZE_STEP, le=2048), AfterValidator(_multiple_of_step)]
BatchSize = Annotated[int, Field(ge=1, le=1024)]
TrainingSteps = Annotated[int, Field(ge=1)]
LearningRate = Annotated[float, Field(gt=0, le=10)]
ModelVariant = Literal[tuple(VARIANTS)]  # type: ignore[valid-type]


# GPUs per training instance, for the types this project trains on ("Accelerated computing instances", Amazon EC2
# User Guide, and the instance family pages: P3 1/4/8/8 V100, G4dn 1 T4 (4 on 12xlarge, 8 on metal), G5 1 A10G
# (4 on 12xlarge and 24xlarge, 8 on 48xlarge), P4d/P4de 8 A100, P5 8 H100). MirroredStrategy makes one replica per
# GPU, MultiWorkerMirroredStrategy one per GPU of every instance; an instance without GPUs is one replica.
GPUS_PER_INSTANCE = {
    "ml.p3.2xlarge": 1,
    "ml.p3.8xlarge": 4,
    "ml.p3.16xlarge": 8,
    "ml.p3dn.24xlarge": 8,
    **{f"ml.g4dn.{size}": 1 for size in ("xlarge", "2xlarge", "4xlarge", "8xlarge", "16xlarge")},
    "ml.g4dn.12xlarge": 4,
    "ml.g4dn.metal": 8,
    **{f"ml.g5.{size}": 1 for size in ("xlarge", "2xlarge", "4xlarge", "8xlarge", "16xlarge")},
    "ml.g5.12xlarge": 4,
    "ml.g5.24xlarge": 4,
    "ml.g5.48xlarge": 8,
    "ml.p4d.24xlarge": 8,
    "ml.p4de.24xlarge": 8,
    "ml.p5.48xlarge": 8,
}
# Families with GPUs that the table above does not list by size: their replica count is not known before the job.
_GPU_FAMILIES = ("ml.p", "ml.g")


def replicas(instance_type: str, instance_count: int) -> int | None:
    """How many replicas train: instances times GPUs per instance (one for an instance without GPUs); None for a
    GPU type the table does not know (the training program checks the batch then, with the GPUs it finds)."""
    gpus = GPUS_PER_INSTANCE.get(instance_type)
    if gpus is None and instance_type.startswith(_GPU_FAMILIES):
        return None
    return instance_count * (gpus or 1)


def batch_problem(batch_size: int, replica_count: int | None) -> str:
    """Why the global batch cannot be split evenly across the replicas ("" when it can): each replica takes
    batch_size / replicas examples a step, so the division must be exact."""
    if replica_count is None or batch_size % replica_count == 0:
        return ""
    return (
        f"the batch size {batch_size} does not divide evenly across {replica_count} replicas "
        f"(each replica takes an equal share of the global batch): use a multiple of {replica_count}"
    )


class HyperparameterError(ValueError):
    """Unknown or invalid hyperparameters; the message names each one."""


class Hyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: ModelVariant = "efficientdet-d0"
    image_size: ImageSize | None = None
    batch_size: BatchSize = 8
    num_steps: TrainingSteps = 2000
    learning_rate: LearningRate | None = None
    warmup_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.05
    warmup_learning_rate: Annotated[float, Field(ge=0)] | None = None
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9
    horizontal_flip: bool = True
    scale_crop: bool = True
    scale_min: Annotated[float, Field(gt=0)] = 0.1
    scale_max: Annotated[float, Field(gt=0)] = 2.0
    max_boxes: Annotated[int, Field(ge=1, le=1000)] = 100
    checkpoint_every: Annotated[int, Field(ge=1)] = 500
    checkpoints_to_keep: Annotated[int, Field(ge=1, le=100)] = 3
    log_every: Annotated[int, Field(ge=1)] = 10
    mixed_precision: Literal["auto", "true", "false"] = "auto"
    fine_tune: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> Hyperparameters:
        if self.scale_min > self.scale_max:
            raise ValueError(f"scale_min ({self.scale_min}) is larger than scale_max ({self.scale_max})")
        if self.warmup_learning_rate is not None and self.warmup_learning_rate > self.peak_learning_rate:
            raise ValueError(f"warmup_learning_rate ({self.warmup_learning_rate}) exceeds the learning rate ({self.peak_learning_rate})")
        return self

    @property
    def input_size(self) -> int:
        return self.image_size or VARIANTS[self.model]["size"]

    @property
    def peak_learning_rate(self) -> float:
        """The given learning rate, else the zoo's (0.08 at batch 128) scaled linearly to the batch size."""
        return self.learning_rate if self.learning_rate is not None else ZOO_LEARNING_RATE * self.batch_size / ZOO_BATCH

    @property
    def warmup_steps(self) -> int:
        """Warm-up as a share of this run's steps (a 2500-step warm-up never ends in a 1000-step job)."""
        if self.num_steps < 2:
            return 0
        return min(self.num_steps - 1, max(1, round(self.num_steps * self.warmup_fraction))) if self.warmup_fraction > 0 else 0

    @property
    def warmup_start(self) -> float:
        return self.warmup_learning_rate if self.warmup_learning_rate is not None else self.peak_learning_rate / 10


def parse_hyperparameters(values: dict[str, object], source: str = "hyperparameters") -> Hyperparameters:
    """Validate hyperparameters (strings as SageMaker passes them, or typed values)."""
    ours = {key: _from_json_string(value) for key, value in values.items() if not key.startswith("sagemaker_")}
    try:
        return Hyperparameters.model_validate(ours)
    except ValidationError as exc:
        raise HyperparameterError(f"{source}: " + "; ".join(_describe(error) for error in exc.errors())) from None


def load_hyperparameters(path: Path) -> Hyperparameters:
    """The hyperparameters file of a training job; no file means every default (a local run)."""
    if not path.is_file():
        return parse_hyperparameters({}, str(path))
    try:
        values = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise HyperparameterError(f"{path}: not readable JSON: {exc}") from None
    if not isinstance(values, dict):
        raise HyperparameterError(f"{path}: expected a JSON object of name -> value")
    return parse_hyperparameters(values, str(path))


def _from_json_string(value: object) -> object:
    # The SageMaker SDK JSON-encodes hyperparameter values (a string "8", or "\"efficientdet-d0\"").
    if isinstance(value, str) and value.startswith('"') and value.endswith('"') and len(value) >= 2:
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _describe(error: dict) -> str:
    name = ".".join(str(part) for part in error["loc"] if not str(part).startswith(("int", "float", "none"))) or "(all)"
    if error["type"] == "extra_forbidden":
        return f"'{name}' is not a hyperparameter (known: {', '.join(Hyperparameters.model_fields)})"
    message = error["msg"]
    if error["type"] == "value_error":
        message = str((error.get("ctx") or {}).get("error", message))
    return f"'{name}': {message} (got {error.get('input')!r})" if name != "(all)" else message
