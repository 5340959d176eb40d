#!/usr/bin/env python3
"""Train: fine-tune (or, locally, train from scratch) EfficientDet with the TF2 Object Detection API.

Runs as the pipeline's SageMaker Training job and, unchanged, on a laptop or in the local engine:

    python containers/training/train.py [--train DIR] [--validation DIR] [--label-map FILE]
        [--pretrained DIR|TAR] [--hyperparameters FILE] [--set NAME=VALUE ...]
        [--model-dir DIR] [--checkpoints DIR] [--tensorboard-dir DIR]

Paths default to SageMaker's training contract: the channels `SM_CHANNEL_TRAIN`, `SM_CHANNEL_VALIDATION`,
`SM_CHANNEL_LABEL_MAP` and the optional `SM_CHANNEL_PRETRAINED` (a COCO EfficientDet checkpoint, the
zoo's tarball or its extracted folder), `/opt/ml/input/config/hyperparameters.json`, `SM_MODEL_DIR`,
`/opt/ml/checkpoints` (synced to S3 for managed spot training) and `/opt/ml/output/tensorboard`.

What it does: renders pipeline.config from the hyperparameters; trains with the OD API's model builder,
input pipeline and train step on every GPU (MirroredStrategy), with mixed precision on GPUs that have
tensor cores; checkpoints every `checkpoint_every` steps and at the end, and resumes from the newest
checkpoint when restarted, finishing at `num_steps`; logs progress in the fixed format of metrics.py
and writes TensorBoard summaries; exports a SavedModel for TF Serving into SM_MODEL_DIR/1/ with the
inference handler in SM_MODEL_DIR/code/ and the label map, pipeline.config and model.json beside it.

On several instances (SageMaker's resource config names more than one host, see distributed.py) every
instance is a worker of MultiWorkerMirroredStrategy: `batch_size` is the global batch, split evenly across
every replica of every worker; each worker reads its own share of the training files; only the chief
(algo-1) writes the checkpoint folder, TensorBoard and the model; a worker that stops answering ends the
others with a message that names it.
Exit status 0 on success; 1 with a one-line reason on stderr (and in /opt/ml/output/failure, which
SageMaker shows as the job's failure reason) when the input or the hyperparameters are unusable.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `containers` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from containers.common import archives
from containers.inference import libraries
from containers.training import distributed
from containers.training.hyperparameters import HyperparameterError, Hyperparameters, batch_problem, load_hyperparameters, parse_hyperparameters
from containers.training.metrics import format_log_line
from containers.training.pipeline_config import render_pipeline_config

OPT_ML = Path("/opt/ml")
SERVING_OUTPUTS = ("detection_boxes", "detection_scores", "detection_classes", "num_detections")
INFERENCE = Path(__file__).resolve().parents[1] / "inference"


class TrainingError(Exception):
    """The job cannot train; the message says why in one line."""


class Interrupted(Exception):
    """SageMaker asked the job to stop (SIGTERM: a spot interruption or a stop request)."""


@dataclass(frozen=True)
class Paths:
    train: Path
    validation: Path
    label_map: Path
    pretrained: Path | None
    model_dir: Path
    checkpoints: Path
    tensorboard: Path


def _channel(name: str) -> Path:
    return Path(os.environ.get(f"SM_CHANNEL_{name.upper()}", OPT_ML / "input" / "data" / name))


def find_label_map(explicit: Path | None, train: Path) -> Path:
    """The label map: given, else the `label_map` channel, else beside the training records."""
    candidates = [explicit] if explicit else [_channel("label_map") / "label_map.pbtxt", train / "label_map.pbtxt", train.parent / "label_map.pbtxt"]
    for candidate in candidates:
        if candidate and candidate.is_file():
            return candidate
    raise TrainingError(f"no label map: looked for {', '.join(str(c) for c in candidates)} (pass --label-map)")


def read_label_map(path: Path) -> dict[int, str]:
    """Label-map ids -> names, through the OD API's own parser."""
    from containers.common import odapi

    odapi.patch()
    from object_detection.utils import label_map_util

    try:
        items = label_map_util.load_labelmap(str(path)).item
    except Exception as exc:
        raise TrainingError(f"{path}: not a valid label map: {exc}") from None
    classes = {item.id: item.name for item in items}
    if not classes or min(classes) < 1:
        raise TrainingError(f"{path}: the label map needs at least one item, with ids from 1 (0 is the background)")
    return classes


def find_checkpoint(pretrained: Path | None, work: Path) -> str | None:
    """The newest `ckpt-N` prefix in a pretrained checkpoint (a zoo tarball or a folder), or None."""
    if pretrained is None or not pretrained.exists():
        return None
    if pretrained.is_file() and tarfile.is_tarfile(pretrained):
        target = work / "pretrained"
        try:
            archives.extract_tar(pretrained, target)
        except archives.ArchiveError as exc:
            raise TrainingError(f"the pretrained checkpoint cannot be used: {exc}") from None
        pretrained = target
    elif pretrained.is_dir() and len(files := [p for p in pretrained.iterdir() if p.is_file() and tarfile.is_tarfile(p)]) == 1:
        return find_checkpoint(files[0], work)
    indexes = sorted(pretrained.rglob("ckpt-*.index"), key=lambda p: (int(p.stem.split("-")[-1]), str(p)))
    if not indexes:
        if any(pretrained.iterdir()):
            raise TrainingError(f"{pretrained}: the pretrained channel holds no TF2 checkpoint (ckpt-N.index)")
        return None
    return str(indexes[-1].with_suffix(""))


def records_in(folder: Path, what: str) -> str:
    """The glob of a channel's TFRecord files, checked to match at least one (an empty file is fine)."""
    if not folder.is_dir():
        raise TrainingError(f"no {what} folder at {folder}")
    if not any(folder.glob("*.tfrecord")):
        raise TrainingError(f"{folder}: no *.tfrecord files for {what}")
    return str(folder / "*.tfrecord")


def mixed_precision_wanted(setting: str, gpus: list) -> bool:
    """`auto`: on for tensor-core GPUs only (compute capability 7.0 and up: V100, T4, A10, A100, H100),
    where float16 maths is faster; `true` forces it (on a CPU it runs, slowly); `false` keeps float32."""
    if setting != "auto":
        return setting == "true"
    if not gpus:
        return False
    import tensorflow as tf

    capabilities = [tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0)) for gpu in gpus]
    return all(tuple(c) >= (7, 0) for c in capabilities)


def train(hp: Hyperparameters, paths: Paths, *, log=print, cluster: distributed.Cluster | None = None, resume_from: Path | None = None) -> int:
    """Train to `hp.num_steps`, resuming from the newest checkpoint in `resume_from` (default: the checkpoint folder
    it saves to, `paths.checkpoints`); returns the final step. With a cluster, this process is one of its workers."""
    from containers.common import odapi

    odapi.patch()
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    strategy = make_strategy(gpus, cluster)  # before any other TensorFlow op, as MultiWorkerMirroredStrategy requires
    from object_detection import inputs, model_lib_v2
    from object_detection.builders import model_builder, optimizer_builder
    from object_detection.utils import config_util

    configs = config_util.get_configs_from_pipeline_file(str(paths.checkpoints / "pipeline.config"))
    model_config, train_config, input_config = configs["model"], configs["train_config"], configs["train_input_config"]

    replicas = strategy.num_replicas_in_sync
    check_batch(hp.batch_size, replicas, len(gpus), cluster)
    mixed = mixed_precision_wanted(hp.mixed_precision, gpus)
    tf.keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")
    precision = "on" if mixed else "off"
    # batch_size is the global batch, as the OD API's train_config.batch_size is: each replica's input pipeline takes
    # batch_size / replicas a step (builders/dataset_builder.py, input_context.get_per_replica_batch_size). The
    # learning rate (Hyperparameters.peak_learning_rate, linear in batch_size) therefore follows the global batch.
    workers = f" on {cluster.describe()}" if cluster else ""
    log(
        f"train: {hp.model} at {hp.input_size}px, batch {hp.batch_size} ({hp.batch_size // replicas} per replica), "
        f"{len(gpus)} GPU(s), {replicas} replica(s){workers}, mixed precision {precision}"
    )
    chief = cluster is None or cluster.chief

    with strategy.scope(), _peers_named(cluster):
        model = model_builder.build(model_config=model_config, is_training=True)
        if mixed:
            _float32_predictions(model)

        def dataset_fn(context):
            if cluster is not None:
                return worker_input(train_config, input_config, model_config, model, context)
            return inputs.train_input(train_config, input_config, model_config, model=model, input_context=context).repeat()

        dataset = strategy.distribute_datasets_from_function(dataset_fn)
        step = tf.Variable(0, trainable=False, dtype=tf.int64, name="global_step", aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        optimizer, (learning_rate,) = optimizer_builder.build(train_config.optimizer, global_step=step)
        if mixed:
            optimizer = tf.keras.mixed_precision.LossScaleOptimizer(optimizer)
        rate = learning_rate if callable(learning_rate) else (lambda: learning_rate)
        checkpoint = tf.train.Checkpoint(step=step, model=model, optimizer=optimizer)
        manager = tf.train.CheckpointManager(checkpoint, str(paths.checkpoints), max_to_keep=hp.checkpoints_to_keep)
        # Every worker restores from the checkpoint folder: "the checkpoints from this S3 bucket are restored to
        # checkpoint_local_path in each instance" ("Resume training from a checkpoint", SageMaker Developer Guide). A
        # worker other than the chief saves to its scratch folder (`paths.checkpoints`) and leaves the checkpoint folder
        # as it was restored (whether SageMaker also uploads the other instances' folders is not documented in the pages
        # we found: unverified).
        source = manager if resume_from is None else tf.train.CheckpointManager(checkpoint, str(resume_from), max_to_keep=None)
        if source.latest_checkpoint:
            checkpoint.restore(source.latest_checkpoint)
            log(f"train: resuming from {Path(source.latest_checkpoint).name} at step {int(step.numpy())}")
        elif train_config.fine_tune_checkpoint:
            model_lib_v2.load_fine_tune_checkpoint(
                model,
                train_config.fine_tune_checkpoint,
                "detection",
                "V2",
                train_config.run_fine_tune_checkpoint_dummy_computation,
                dataset,
                train_config.unpad_groundtruth_tensors,
            )
            log(f"train: fine-tuning from {train_config.fine_tune_checkpoint}")
        else:
            log("train: no pretrained checkpoint: training from random initialisation")
        checkpointed = source.latest_checkpoint is not None  # the same on every worker, unlike their managers' own

        unpad = train_config.unpad_groundtruth_tensors
        clip = train_config.gradient_clipping_by_norm or None

        def replica_step(features, labels):
            if mixed:
                losses = _loss_scaled_step(model, features, labels, optimizer, step, unpad, clip, replicas, train_config.add_regularization_loss)
            else:
                losses = model_lib_v2.eager_train_step(
                    model,
                    features,
                    labels,
                    unpad,
                    optimizer,
                    training_step=step,
                    add_regularization_loss=train_config.add_regularization_loss,
                    clip_gradients_value=clip,
                    num_replicas=replicas,
                )
            step.assign_add(1)
            return losses

        @tf.function
        def distributed_step(iterator):
            features, labels = next(iterator)
            return model_lib_v2.reduce_dict(strategy, strategy.run(replica_step, args=(features, labels)), tf.distribute.ReduceOp.SUM)

        iterator = iter(dataset)
        writer = tf.summary.create_file_writer(str(paths.tensorboard)) if chief else tf.summary.create_noop_writer()
        stop = _StopFlag()
        stopping = _agreed_stop(strategy, stop) if cluster is not None else (lambda: stop.requested)
        start = int(step.numpy())
        saved, window_start, window_steps = start, time.perf_counter(), 0
        while (current := int(step.numpy())) < hp.num_steps:
            if stopping():
                manager.save(checkpoint_number=current)
                raise Interrupted(_stopped(current, cluster, stop.requested))
            losses = distributed_step(iterator)
            current, window_steps = int(step.numpy()), window_steps + 1
            if current % hp.log_every == 0 or current == hp.num_steps or current == start + 1:
                now = time.perf_counter()
                values = {name: float(value) for name, value in losses.items()}
                lr = float(rate())
                step_time = (now - window_start) / window_steps
                log(
                    format_log_line(current, hp.num_steps, values, lr, step_time, hp.batch_size)
                    + (" (includes tracing)" if current == start + 1 else "")
                )
                with writer.as_default(step=current):
                    for name, value in values.items():
                        tf.summary.scalar(name, value)
                    tf.summary.scalar("learning_rate", lr)
                    tf.summary.scalar("steps_per_sec", 1.0 / step_time)
                writer.flush()
                window_start, window_steps = time.perf_counter(), 0
            if current - saved >= hp.checkpoint_every:
                manager.save(checkpoint_number=current)
                saved, checkpointed = current, True
        final = int(step.numpy())
        if final != saved or not checkpointed:
            manager.save(checkpoint_number=final)
        writer.close()
        stop.restore()
    tf.keras.mixed_precision.set_global_policy("float32")
    return final


def check_batch(batch_size: int, replicas: int, gpus: int, cluster: distributed.Cluster | None) -> None:
    """The global batch must split evenly across the replicas (hyperparameters.batch_problem, the rule pipeline.yaml
    and the pipeline's parameters check too): here with the GPUs the job found."""
    problem = batch_problem(batch_size, replicas)
    if problem:
        hosts = f"{cluster.size} hosts: {', '.join(cluster.hosts)}" if cluster else "1 host"
        raise TrainingError(f"batch_size {batch_size} on {replicas} replica(s) ({gpus} GPU(s) a host, {hosts}): {problem}")


def make_strategy(gpus: list, cluster: distributed.Cluster | None):
    """One worker: every GPU of this machine (MirroredStrategy), or TensorFlow's default strategy on a CPU. Several:
    MultiWorkerMirroredStrategy over the cluster's TF_CONFIG."""
    import tensorflow as tf

    if cluster is None:
        return tf.distribute.MirroredStrategy() if gpus else tf.distribute.get_strategy()
    distributed.configure(cluster)
    # Between GPUs NCCL, the fastest all-reduce there (TensorFlow uses its ring for what NCCL does not do); on CPUs
    # TensorFlow's ring all-reduce, the only implementation there, which runs over the gRPC connections the workers
    # open to each other. The timeout ends a collective that waits for a peer alive but stuck (distributed.py).
    kinds = tf.distribute.experimental.CommunicationImplementation
    options = tf.distribute.experimental.CommunicationOptions(
        implementation=kinds.NCCL if gpus else kinds.RING, timeout_seconds=distributed.COLLECTIVE_TIMEOUT
    )
    return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)


def worker_input(train_config, input_config, model_config, model, context):
    """One worker's input pipeline: its own share of the training files, batched per replica.

    The OD API's dataset builder can shard files by `input_pipeline_id` itself (builders/dataset_builder.py,
    `shard_function_for_context`), but it shards after shuffling the file names without a seed, so two workers
    shard two different orders and their shares overlap. Here the files, sorted, are dealt round-robin (worker 0
    the first, worker 1 the second, ...): the shares are disjoint and each worker still shuffles its own. The
    builder is then told of one input pipeline with the cluster's replicas, so it reads every file it is given and
    takes batch_size / replicas per batch."""
    import tensorflow as tf
    from object_detection import inputs

    files = sorted(name for pattern in input_config.tf_record_input_reader.input_path for name in tf.io.gfile.glob(pattern))
    mine = files[context.input_pipeline_id :: context.num_input_pipelines]
    if not mine:
        raise TrainingError(f"{len(files)} training file(s) for {context.num_input_pipelines} workers: worker {context.input_pipeline_id} has none")
    share = type(input_config)()
    share.CopyFrom(input_config)
    del share.tf_record_input_reader.input_path[:]
    share.tf_record_input_reader.input_path.extend(mine)
    whole = tf.distribute.InputContext(num_input_pipelines=1, input_pipeline_id=0, num_replicas_in_sync=context.num_replicas_in_sync)
    return inputs.train_input(train_config, share, model_config, model=model, input_context=whole).repeat()


def _agreed_stop(strategy, stop: _StopFlag):
    """Whether a SIGTERM reached any worker, decided by all of them between steps: a save reads the batch norm
    statistics across workers, so they must all save at the same step, and so stop together."""
    import tensorflow as tf

    @tf.function
    def requests(flag):
        def replica(value):
            return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, tf.identity(value))

        return strategy.experimental_local_results(strategy.run(replica, args=(flag,)))[0]

    return lambda: float(requests(tf.constant(1.0 if stop.requested else 0.0))) > 0


def _stopped(step: int, cluster: distributed.Cluster | None, here: bool) -> str:
    if cluster is None:
        return f"stopped by SIGTERM at step {step}; checkpoint saved, a restart resumes from it"
    where = "here" if here else "on another worker"
    saved = "checkpoint saved" if cluster.chief else f"the chief ({cluster.hosts[0]}) saved the checkpoint"
    return f"stopped by SIGTERM ({where}) at step {step}; {saved}, a restart resumes from it"


@contextlib.contextmanager
def _peers_named(cluster: distributed.Cluster | None):
    """With several workers, TensorFlow's error when a peer went away (a collective aborted by the coordination
    service's missed heartbeats, a refused connection, a timeout) becomes a TrainingError naming the peer."""
    if cluster is None:
        yield
        return
    import tensorflow as tf

    try:
        yield
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.AbortedError, tf.errors.CancelledError) as exc:
        raise TrainingError(distributed.peer_lost(cluster, str(exc))) from None


def leave_together(cluster: distributed.Cluster) -> None:
    """Every worker waits here until the chief has exported, then all end together: a worker that ended at once
    would be reported to the chief as a lost peer while it exports. The barrier is the coordination service's that
    MultiWorkerMirroredStrategy started (TensorFlow's eager context; the public API has none)."""
    from tensorflow.python.eager import context

    with _peers_named(cluster):
        context.context().wait_at_barrier("train-exported", distributed.EXPORT_WAIT * 1000)


def _float32_predictions(model) -> None:
    """Under mixed precision the box predictor computes in float16, but the OD API's losses, anchors and
    box coder expect float32 (its own mixed precision path is bfloat16 on TPUs): cast what predict() returns."""
    import tensorflow as tf

    predict = model.predict

    def predict_in_float32(*args, **kwargs):
        def cast(value):
            return tf.cast(value, tf.float32) if isinstance(value, tf.Tensor) and value.dtype in (tf.float16, tf.bfloat16) else value

        return tf.nest.map_structure(cast, predict(*args, **kwargs))

    model.predict = predict_in_float32


def _loss_scaled_step(model, features, labels, optimizer, step, unpad, clip, replicas, regularization):
    """The OD API's train step with loss scaling, so float16 gradients do not underflow under mixed precision."""
    import tensorflow as tf
    from object_detection import model_lib, model_lib_v2

    model._is_training = True  # as the OD API's own train step does
    tf.keras.backend.set_learning_phase(True)
    labels = model_lib.unstack_batch(labels, unpad_groundtruth_tensors=unpad)
    with tf.GradientTape() as tape:
        losses, _ = model_lib_v2._compute_losses_and_predictions_dicts(  # the OD API's step, minus its unscaled gradient
            model, features, labels, training_step=step, add_regularization_loss=regularization
        )
        losses = model_lib_v2.normalize_dict(losses, replicas)
        scaled = optimizer.get_scaled_loss(losses["Loss/total_loss"])
    variables = model.trainable_variables
    gradients = optimizer.get_unscaled_gradients(tape.gradient(scaled, variables))
    if clip:
        gradients, _ = tf.clip_by_global_norm(gradients, clip)
    optimizer.apply_gradients(zip(gradients, variables, strict=True))
    return losses


class _StopFlag:
    """Turns SIGTERM into a flag the training loop checks between steps, to checkpoint before stopping."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = signal.signal(signal.SIGTERM, self._handle) if _main_thread() else None

    def _handle(self, *_args) -> None:
        self.requested = True

    def restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def export(hp: Hyperparameters, paths: Paths, classes: dict[int, str], final_step: int, *, log=print) -> None:
    """Write the model artifact: SavedModel in 1/, handler in code/, label map, pipeline.config, model.json."""
    from containers.common import odapi

    odapi.patch()
    import tensorflow as tf
    from object_detection import exporter_lib_v2
    from object_detection.builders import model_builder
    from object_detection.utils import config_util

    started = time.perf_counter()
    config = config_util.get_configs_from_pipeline_file(str(paths.checkpoints / "pipeline.config"))
    model = model_builder.build(config["model"], is_training=False)
    restored = tf.train.Checkpoint(model=model).restore(tf.train.latest_checkpoint(str(paths.checkpoints))).expect_partial()
    module = exporter_lib_v2.DetectionFromEncodedImageModule(model)
    all_outputs = module.__call__.get_concrete_function()  # traces the model, creating the variables to restore
    restored.assert_existing_objects_matched()

    # TF Serving's REST reply holds every output of the signature: the exporter's also returns the raw
    # scores and boxes of all anchors (tens of thousands per image, megabytes of JSON). The default
    # signature returns what the endpoint uses; the full one stays available as "all_outputs".
    @tf.function(input_signature=[tf.TensorSpec(shape=[None], dtype=tf.string, name="input_tensor")])
    def serve(input_tensor):
        outputs = module(input_tensor)
        return {name: outputs[name] for name in SERVING_OUTPUTS}

    module.serve = serve
    version = paths.model_dir / "1"
    shutil.rmtree(version, ignore_errors=True)
    paths.model_dir.mkdir(parents=True, exist_ok=True)
    with odapi.without_keras_traces():  # the signatures are what is served
        tf.saved_model.save(module, str(version), signatures={"serving_default": serve.get_concrete_function(), "all_outputs": all_outputs})
    code = paths.model_dir / "code"
    shutil.rmtree(code, ignore_errors=True)
    code.mkdir()
    shutil.copy2(INFERENCE / "inference.py", code / "inference.py")
    try:  # the handler's libraries as code/lib: the serving container then installs nothing at start
        bundled = libraries.bundle(code)
    except libraries.BundleError as exc:
        raise TrainingError(f"cannot bundle the endpoint handler's libraries: {exc}") from None
    shutil.copy2(paths.label_map, paths.model_dir / "label_map.pbtxt")
    shutil.copy2(paths.checkpoints / "pipeline.config", paths.model_dir / "pipeline.config")
    metadata = {
        "model": hp.model,
        "input_size": hp.input_size,
        "classes": {str(i): name for i, name in sorted(classes.items())},  # the names the endpoint and evaluation give
        "trained_steps": final_step,
        "hyperparameters": hp.model_dump(mode="json"),
        "signature": {"name": "serving_default", "input": "input_tensor: [N] tf.string of encoded JPEG/PNG images"},
        "tensorflow": tf.__version__,
        "handler_libraries": bundled,  # in code/lib, for the serving image's Python (containers/inference/requirements.txt)
    }
    (paths.model_dir / "model.json").write_text(json.dumps(metadata, indent=2) + "\n")
    log(f"train: exported the SavedModel to {version} in {time.perf_counter() - started:.0f} s")


def write_pipeline_config(hp: Hyperparameters, paths: Paths, fine_tune_checkpoint: str | None = None) -> dict[int, str]:
    """Check the label map and the training records, and write this run's pipeline.config where train()
    and export() read it (the checkpoint folder); returns the label map."""
    classes = read_label_map(paths.label_map)
    text = render_pipeline_config(
        hp,
        num_classes=max(classes),
        label_map=paths.label_map,
        train_pattern=records_in(paths.train, "training records"),
        validation_pattern=str(paths.validation / "*.tfrecord"),
        fine_tune_checkpoint=fine_tune_checkpoint,
    )
    paths.checkpoints.mkdir(parents=True, exist_ok=True)
    (paths.checkpoints / "pipeline.config").write_text(text)
    return classes


def run(hp: Hyperparameters, paths: Paths, *, log=print, cluster: distributed.Cluster | None = None) -> int:
    """Check the inputs, render pipeline.config, train, export; returns the final step.

    With several workers only the chief writes the checkpoint folder, TensorBoard and the model. The others keep
    their pipeline.config and checkpoints (every worker must take part in a save) in a scratch folder deleted at
    the end, skip the export, and wait for the chief's before they end."""
    chief = cluster is None or cluster.chief
    if cluster is not None:
        check_shares(paths.train, cluster)
    with tempfile.TemporaryDirectory(prefix="train-") as work:
        own = paths if chief else dataclasses.replace(paths, checkpoints=Path(work) / "checkpoints", tensorboard=Path(work) / "tensorboard")
        own.tensorboard.mkdir(parents=True, exist_ok=True)
        fine_tune = find_checkpoint(paths.pretrained, Path(work)) if hp.fine_tune else None
        classes = write_pipeline_config(hp, own, fine_tune)
        final = train(hp, own, log=log, cluster=cluster, resume_from=None if chief else paths.checkpoints)
    if chief:
        export(hp, paths, classes, final, log=log)
    if cluster is not None:
        if not chief:
            log(f"train: waiting for the chief ({cluster.hosts[0]}) to export the model")
        leave_together(cluster)
    return final


def check_shares(train: Path, cluster: distributed.Cluster) -> None:
    """Each worker reads its own training files (worker_input), so there must be one at least per worker."""
    files = len(list(train.glob("*.tfrecord")))
    if files < cluster.size:
        raise TrainingError(
            f"{train}: {files} training record file(s) for {cluster.size} workers ({', '.join(cluster.hosts)}): each worker reads "
            "files of its own, so write at least one per worker (PrepareData's --shards)"
        )


def check_handler_libraries() -> None:
    try:
        libraries.choose_wheels(libraries.wheels_folder(), libraries.read_pins())
    except libraries.BundleError as exc:
        raise TrainingError(f"cannot bundle the endpoint handler's libraries: {exc}") from None


def parse_args(argv: list[str] | None = None) -> tuple[Hyperparameters, Paths, Path, Path]:
    parser = argparse.ArgumentParser(
        prog="train.py", description="Train EfficientDet with the TF2 Object Detection API (SageMaker training contract)."
    )
    parser.add_argument("--train", type=Path, default=_channel("train"), help="folder of training TFRecords (default: SM_CHANNEL_TRAIN)")
    parser.add_argument(
        "--validation", type=Path, default=_channel("validation"), help="folder of validation TFRecords (default: SM_CHANNEL_VALIDATION)"
    )
    parser.add_argument("--label-map", type=Path, default=None, help="label_map.pbtxt (default: the label_map channel, else beside the records)")
    parser.add_argument(
        "--pretrained", type=Path, default=_channel("pretrained"), help="COCO EfficientDet checkpoint: the zoo tarball or its folder (optional)"
    )
    parser.add_argument("--hyperparameters", type=Path, default=OPT_ML / "input" / "config" / "hyperparameters.json")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE", help="override a hyperparameter (repeatable)")
    parser.add_argument("--model-dir", type=Path, default=Path(os.environ.get("SM_MODEL_DIR", OPT_ML / "model")))
    parser.add_argument("--checkpoints", type=Path, default=OPT_ML / "checkpoints", help="checkpoint folder, synced to S3 for spot training")
    parser.add_argument("--tensorboard-dir", type=Path, default=OPT_ML / "output" / "tensorboard", help="TensorBoard event files")
    parser.add_argument("--failure-file", type=Path, default=OPT_ML / "output" / "failure", help=argparse.SUPPRESS)
    parser.add_argument("--resource-config", type=Path, default=distributed.RESOURCE_CONFIG, help=argparse.SUPPRESS)  # the local engine's
    parser.add_argument("mode", nargs="?", choices=["train"], help=argparse.SUPPRESS)  # SageMaker runs `IMAGE train`
    args = parser.parse_args(argv)
    try:
        hp = load_hyperparameters(args.hyperparameters)
        if args.overrides:
            pairs = dict(_pair(item) for item in args.overrides)
            hp = parse_hyperparameters({**hp.model_dump(exclude_unset=True), **pairs}, "--set")
    except HyperparameterError as exc:
        _fail(args.failure_file, str(exc))
    paths = Paths(
        train=args.train,
        validation=args.validation,
        label_map=args.label_map,  # resolved in main(), where a missing one is reported as such
        pretrained=args.pretrained,
        model_dir=args.model_dir,
        checkpoints=args.checkpoints,
        tensorboard=args.tensorboard_dir,
    )
    return hp, paths, args.failure_file, args.resource_config


def _pair(item: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    if not sep or not name:
        raise HyperparameterError(f"--set {item!r}: expected NAME=VALUE")
    return name, value


def _fail(failure_file: Path, reason: str) -> None:
    print(f"train: error: {reason}", file=sys.stderr)
    try:
        failure_file.parent.mkdir(parents=True, exist_ok=True)
        failure_file.write_text(reason + "\n")
    except OSError:
        pass
    sys.exit(1)


def main(argv: list[str] | None = None) -> int:
    hp, paths, failure_file, resource_config = parse_args(argv)
    try:
        cluster = distributed.from_environment(resource_config)
        paths = Paths(**{**paths.__dict__, "label_map": find_label_map(paths.label_map, paths.train)})
        check_handler_libraries()  # before hours of training, not at the export
        final = run(hp, paths, log=lambda line: print(line, flush=True), cluster=cluster)
    except (TrainingError, HyperparameterError, distributed.ClusterError) as exc:
        _fail(failure_file, str(exc))
    except Interrupted as exc:
        print(f"train: {exc}", file=sys.stderr)
        return 143
    where = f"model in {paths.model_dir}" if cluster is None or cluster.chief else f"the chief ({cluster.hosts[0]}) exported the model"
    print(f"train: done at step {final}; {where}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
