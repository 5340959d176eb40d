"""What each worker of a multi-worker job reads and how its batch is split, without training: the training
program's input pipeline for two workers, through the OD API's own input builder."""

from __future__ import annotations

import pytest

from containers.processing.labelling import Box
from containers.processing.records import ShardWriter, build_example, label_map_text
from containers.training.distributed import Cluster
from containers.training.hyperparameters import parse_hyperparameters
from containers.training.pipeline_config import render_pipeline_config
from containers.training.train import TrainingError, check_batch, check_shares, worker_input
from tests.support import jpeg_bytes

FILES = 8


@pytest.fixture(scope="module")
def configs(tmp_path_factory):
    """The OD API configs of a run on FILES training files of one photo each, read once to the end (num_epochs 1,
    so that one pass shows which files a worker reads), each record's source id kept."""
    from containers.common import odapi

    odapi.patch()
    from object_detection.utils import config_util

    folder = tmp_path_factory.mktemp("records")
    box = Box("dent", 8, 8, 48, 40, label=1)
    for index in range(FILES):
        with ShardWriter(folder / "train", [f"train-{index:05d}-of-{FILES:05d}.tfrecord"]) as writer:
            writer.write(build_example(encoded=jpeg_bytes(seed=index), key=f"photo-{index}.jpg", width=64, height=48, boxes=[box]))
    (folder / "label_map.pbtxt").write_text(label_map_text([(1, "dent")]))
    hp = parse_hyperparameters({"image_size": "256", "batch_size": "2", "horizontal_flip": "false", "scale_crop": "false"})
    text = render_pipeline_config(
        hp, num_classes=1, label_map=folder / "label_map.pbtxt", train_pattern=str(folder / "train" / "*.tfrecord"), validation_pattern="/v/*"
    )
    (folder / "pipeline.config").write_text(text)
    configs = config_util.get_configs_from_pipeline_file(str(folder / "pipeline.config"))
    configs["train_input_config"].num_epochs = 1
    configs["train_input_config"].include_source_id = True
    return configs


def read_by(configs, worker: int, workers: int = 2) -> tuple[set[str], list[int]]:
    """The photos a worker's input pipeline gives in one pass over its files, and its batches' sizes."""
    import tensorflow as tf

    context = tf.distribute.InputContext(num_input_pipelines=workers, input_pipeline_id=worker, num_replicas_in_sync=workers)
    dataset = worker_input(configs["train_config"], configs["train_input_config"], configs["model"], None, context)
    photos, sizes = set(), []
    for features, _ in dataset.take(FILES // workers):
        photos.update(name.decode() for name in features["source_id"].numpy())
        sizes.append(int(features["image"].shape[0]))
    return photos, sizes


def test_each_worker_reads_its_own_share_of_the_files_and_a_per_replica_batch(configs):
    first, second = read_by(configs, 0), read_by(configs, 1)
    assert not first[0] & second[0], (first[0], second[0])  # no photo read by both
    assert first[0] | second[0] == {f"photo-{i}.jpg" for i in range(FILES)}
    # The files dealt round-robin in name order: worker 0 the even ones, worker 1 the odd ones; every file read once.
    assert first[0] == {f"photo-{i}.jpg" for i in range(0, FILES, 2)}
    assert second[0] == {f"photo-{i}.jpg" for i in range(1, FILES, 2)}
    # batch_size 2 is the global batch: each of the 2 replicas takes 1 image a step.
    assert first[1] == second[1] == [1] * (FILES // 2)


def test_one_worker_of_one_reads_every_file_at_the_whole_batch(configs):
    import tensorflow as tf

    context = tf.distribute.InputContext(num_input_pipelines=1, input_pipeline_id=0, num_replicas_in_sync=1)
    dataset = worker_input(configs["train_config"], configs["train_input_config"], configs["model"], None, context)
    features, _ = next(iter(dataset))
    assert features["image"].shape[0] == 2


CLUSTER = Cluster(("algo-1", "algo-2"), ("algo-1:2222", "algo-2:2222"), 1)


def test_a_batch_that_does_not_split_across_the_replicas_names_batch_size_the_replicas_and_the_hosts():
    with pytest.raises(TrainingError) as info:
        check_batch(3, 2, 0, CLUSTER)
    assert str(info.value).startswith("batch_size 3 on 2 replica(s) (0 GPU(s) a host, 2 hosts: algo-1, algo-2): the batch size 3 does not divide")
    with pytest.raises(TrainingError, match=r"^batch_size 6 on 4 replica\(s\) \(4 GPU\(s\) a host, 1 host\)"):
        check_batch(6, 4, 4, None)
    check_batch(4, 2, 0, CLUSTER)


def test_fewer_training_files_than_workers_is_an_error_naming_the_folder(tmp_path):
    (tmp_path / "train-00000-of-00001.tfrecord").write_bytes(b"")
    with pytest.raises(TrainingError, match=f"^{tmp_path}: 1 training record file\\(s\\) for 2 workers \\(algo-1, algo-2\\)"):
        check_shares(tmp_path, CLUSTER)
    (tmp_path / "train-00001-of-00002.tfrecord").write_bytes(b"")
    check_shares(tmp_path, CLUSTER)
