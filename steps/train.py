"""Train: the Training step that runs containers/training/train.py in the training image on a GPU instance.

Choices made on purpose:
- Managed spot training (pipeline.yaml `training.spot`, on by default) with `max_wait`: interruptions are
  survived through checkpoints in S3, which the program writes every `checkpoint_every` steps and resumes
  from. The checkpoint prefix is made from the prepared data's location and the hyperparameters, so a
  restarted job finds its own checkpoints and a run with other data or settings never resumes from them.
- No SageMaker Debugger and no profiler: the Debugger hook (smdebug) does not support TensorFlow 2.20 or
  the OD API's custom training loop, and framework profiling ended with TF 2.11; the rules that need
  neither (system metrics) would add a rule-evaluation job and a region-specific image to every run for
  what CloudWatch already shows (the job's CPU, GPU and memory utilisation). The program logs step time
  and images per second, which METRIC_DEFINITIONS turn into metrics. ModelTrainer sends no ProfilerConfig
  or DebugHookConfig, which is how SageMaker runs neither.
- TensorBoard event files are collected to S3 through TensorBoardOutputConfig.
- Network isolation: the container gets its data through channels and SageMaker copies checkpoints and
  TensorBoard files to and from S3 itself, so the training program never needs the network (nor AWS
  credentials) and runs without either.
"""

from __future__ import annotations

import hashlib
import json

from containers.training.metrics import METRIC_DEFINITIONS
from steps.common import cache, job_retries
from steps.context import BuildContext
from steps.parameters import Parameters, as_string
from steps.prepare_data import prepared_uri

NAME = "Train"
CHECKPOINTS = "/opt/ml/checkpoints"


def static_hyperparameters(context: BuildContext) -> dict[str, str]:
    """The hyperparameters fixed by pipeline.yaml (the parameters supply the others)."""
    training = context.config.training
    values = {"checkpoint_every": str(training.checkpoint_every), "log_every": "10"}
    if training.learning_rate is not None:
        values["learning_rate"] = repr(training.learning_rate)
    return values


def train_step(context: BuildContext, params: Parameters, prepare):
    from sagemaker.core import shapes
    from sagemaker.core.training.configs import Compute, InputData, Networking
    from sagemaker.core.workflow.functions import Join
    from sagemaker.mlops.workflow.steps import TrainingStep
    from sagemaker.train import ModelTrainer

    training = context.config.training
    static = static_hyperparameters(context)
    hyperparameters = {
        **static,
        "model": params.model_variant,
        "num_steps": as_string(params.training_steps),
        "batch_size": as_string(params.batch_size),
        "image_size": as_string(params.image_size),
    }
    # Checkpoints belong to one (data, hyperparameters) combination: exactly what the cache key covers.
    settings = hashlib.sha256(json.dumps(static, sort_keys=True).encode()).hexdigest()[:12]
    checkpoint_uri = Join(
        on="-",
        values=[prepared_uri(prepare, "checkpoints", settings), params.model_variant, params.image_size, params.batch_size, params.training_steps],
    )
    trainer = ModelTrainer(
        training_image=context.placeholder("TrainingImageUri"),
        role=context.role,
        compute=Compute(
            instance_type=params.training_instance_type,
            # The TrainingInstanceCount parameter: the program trains on every GPU of every instance, one
            # MultiWorkerMirroredStrategy worker per instance (containers/training/distributed.py).
            instance_count=params.training_instance_count,
            volume_size_in_gb=training.volume_size_gb,
            volume_kms_key_id=context.kms_key,
            enable_managed_spot_training=training.spot,
        ),
        stopping_condition=shapes.StoppingCondition(
            max_runtime_in_seconds=training.max_run_minutes * 60,
            max_wait_time_in_seconds=training.max_wait_minutes * 60 if training.spot else None,
        ),
        output_data_config=shapes.OutputDataConfig(s3_output_path=context.execution_uri("model"), kms_key_id=context.kms_key),
        checkpoint_config=shapes.CheckpointConfig(s3_uri=checkpoint_uri, local_path=CHECKPOINTS),
        networking=Networking(enable_network_isolation=True),
        hyperparameters=hyperparameters,
        environment={"PYTHONUNBUFFERED": "1"},
        sagemaker_session=context.session,
        base_job_name=f"{context.config.project.name}-train",
    )
    trainer = trainer.with_tensorboard_output_config(
        shapes.TensorBoardOutputConfig(s3_output_path=context.execution_uri("tensorboard"), local_path="/opt/ml/output/tensorboard")
    ).with_metric_definitions([shapes.MetricDefinition(name=d["Name"], regex=d["Regex"]) for d in METRIC_DEFINITIONS])
    channels = [
        InputData(channel_name="train", data_source=prepared_uri(prepare, "train")),
        InputData(channel_name="validation", data_source=prepared_uri(prepare, "validation")),
        InputData(channel_name="label_map", data_source=prepared_uri(prepare, "label_map.pbtxt")),
    ]
    if training.pretrained_checkpoint_uri:
        channels.append(InputData(channel_name="pretrained", data_source=training.pretrained_checkpoint_uri))
    step_args = trainer.train(input_data_config=channels)
    return TrainingStep(
        name=NAME, step_args=step_args, cache_config=cache(context), retry_policies=job_retries(), description="EfficientDet with the TF2 OD API"
    )
