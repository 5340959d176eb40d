"""Hyperparameters, the rendered pipeline.config, the log format and the inputs, without training."""

from __future__ import annotations

import json
import re
import tarfile

import pytest

from containers.training.hyperparameters import VARIANTS, HyperparameterError, load_hyperparameters, parse_hyperparameters
from containers.training.metrics import METRIC_DEFINITIONS, format_log_line
from containers.training.pipeline_config import render_pipeline_config
from containers.training.train import TrainingError, find_checkpoint, find_label_map, main, read_label_map, records_in


def test_sagemaker_strings_are_read_as_typed_values():
    hp = parse_hyperparameters(
        {"batch_size": "4", "num_steps": "100", "horizontal_flip": "false", "model": '"efficientdet-d1"', "sagemaker_region": '"eu-west-1"'}
    )
    assert (hp.batch_size, hp.num_steps, hp.horizontal_flip, hp.model) == (4, 100, False, "efficientdet-d1")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"batch_sz": "4"}, r"'batch_sz' is not a hyperparameter \(known: model, image_size"),
        ({"image_size": "320"}, r"'image_size': must be a multiple of 128.*got '320'"),
        ({"model": "efficientdet-d9"}, r"'model': Input should be 'efficientdet-d0'"),
        ({"num_steps": "0"}, r"'num_steps': Input should be greater than or equal to 1"),
        ({"image_size": "128"}, r"'image_size': Input should be greater than or equal to 256"),
        ({"batch_size": "eight"}, r"'batch_size': Input should be a valid integer"),
        ({"mixed_precision": "maybe"}, r"'mixed_precision'"),
        ({"scale_min": "3", "scale_max": "2"}, r"scale_min \(3.0\) is larger than scale_max"),
        ({"learning_rate": "0.01", "warmup_learning_rate": "0.1"}, r"warmup_learning_rate \(0.1\) exceeds the learning rate"),
    ],
)
def test_unknown_or_invalid_hyperparameters_are_named(values, message):
    with pytest.raises(HyperparameterError, match=message):
        parse_hyperparameters(values)


def test_several_problems_are_reported_together(tmp_path):
    path = tmp_path / "hyperparameters.json"
    path.write_text(json.dumps({"batch_size": "-1", "colour": "red"}))
    with pytest.raises(HyperparameterError) as info:
        load_hyperparameters(path)
    assert str(path) in str(info.value) and "'batch_size'" in str(info.value) and "'colour'" in str(info.value)
    assert load_hyperparameters(tmp_path / "absent.json").num_steps == 2000


def test_the_schedule_scales_to_the_run():
    hp = parse_hyperparameters({"num_steps": "1000", "batch_size": "16"})
    assert hp.warmup_steps == 50 and hp.peak_learning_rate == pytest.approx(0.01) and hp.warmup_start == pytest.approx(0.001)
    assert parse_hyperparameters({"num_steps": "1"}).warmup_steps == 0
    assert parse_hyperparameters({"num_steps": "3", "warmup_fraction": "0.9"}).warmup_steps == 2


def _config(tmp_path, ckpt=None, **values):
    from containers.common import odapi

    odapi.patch()
    from object_detection.utils import config_util

    text = render_pipeline_config(
        parse_hyperparameters(values),
        num_classes=2,
        label_map=tmp_path / "label_map.pbtxt",
        train_pattern="/t/*.tfrecord",
        validation_pattern="/v/*.tfrecord",
        fine_tune_checkpoint=ckpt,
    )
    path = tmp_path / "pipeline.config"
    path.write_text(text)
    return config_util.get_configs_from_pipeline_file(str(path))


@pytest.mark.parametrize("model", sorted(VARIANTS))
def test_the_config_of_every_variant_parses_with_the_od_api(tmp_path, model):
    configs = _config(tmp_path, model=model, num_steps="1200", batch_size="4")
    ssd = configs["model"].ssd
    variant = VARIANTS[model]
    assert ssd.num_classes == 2
    assert ssd.feature_extractor.type == f"ssd_efficientnet-{variant['backbone']}_bifpn_keras"
    assert (ssd.feature_extractor.bifpn.num_iterations, ssd.feature_extractor.bifpn.num_filters) == (variant["bifpn_iterations"], variant["filters"])
    assert ssd.image_resizer.keep_aspect_ratio_resizer.max_dimension == variant["size"]
    assert ssd.post_processing.score_converter == ssd.post_processing.SIGMOID
    assert ssd.loss.classification_loss.HasField("weighted_sigmoid_focal")
    schedule = configs["train_config"].optimizer.momentum_optimizer.learning_rate.cosine_decay_learning_rate
    assert (schedule.total_steps, schedule.warmup_steps) == (1200, 60)
    assert configs["train_config"].batch_size == 4 and configs["train_config"].num_steps == 1200
    assert not configs["train_config"].fine_tune_checkpoint


def test_size_augmentation_and_fine_tuning_reach_the_config(tmp_path):
    configs = _config(tmp_path, image_size="256", horizontal_flip="false", ckpt="/pretrained/checkpoint/ckpt-0")
    train = configs["train_config"]
    assert configs["model"].ssd.image_resizer.keep_aspect_ratio_resizer.min_dimension == 256
    options = [option.WhichOneof("preprocessing_step") for option in train.data_augmentation_options]
    assert options == ["random_scale_crop_and_pad_to_square"]
    assert train.data_augmentation_options[0].random_scale_crop_and_pad_to_square.output_size == 256
    assert (train.fine_tune_checkpoint, train.fine_tune_checkpoint_type) == ("/pretrained/checkpoint/ckpt-0", "detection")
    assert configs["train_input_config"].tf_record_input_reader.input_path == ["/t/*.tfrecord"]


def test_every_metric_regex_reads_its_value_from_the_log_line():
    losses = {"Loss/total_loss": 0.8125, "Loss/classification_loss": 0.5, "Loss/localization_loss": 0.1875, "Loss/regularization_loss": 0.125}
    line = format_log_line(120, 2000, losses, 0.0042, 0.5, batch_size=8)
    expected = {
        "train:loss": 0.8125,
        "train:classification_loss": 0.5,
        "train:localization_loss": 0.1875,
        "train:regularization_loss": 0.125,
        "train:learning_rate": 0.0042,
        "train:step_time": 0.5,
        "train:images_per_sec": 16.0,
    }
    assert {d["Name"] for d in METRIC_DEFINITIONS} == set(expected)
    for definition in METRIC_DEFINITIONS:
        found = re.findall(definition["Regex"], line)
        assert len(found) == 1, (definition, line)
        assert float(found[0]) == pytest.approx(expected[definition["Name"]])
    assert not re.search(METRIC_DEFINITIONS[0]["Regex"], "train: resuming from ckpt-4 at step 4")
    nan_line = format_log_line(1, 2, {"Loss/total_loss": float("nan")}, 0.1, 0.1, batch_size=1)
    assert re.findall(METRIC_DEFINITIONS[0]["Regex"], nan_line) == ["nan"]


def _checkpoint(folder, number):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"ckpt-{number}.index").write_bytes(b"x")
    (folder / f"ckpt-{number}.data-00000-of-00001").write_bytes(b"x")


def test_a_pretrained_checkpoint_is_found_in_a_folder_or_the_zoo_tarball(tmp_path):
    zoo = tmp_path / "efficientdet_d0_coco17_tpu-32"
    _checkpoint(zoo / "checkpoint", 0)
    assert find_checkpoint(zoo, tmp_path / "work") == str(zoo / "checkpoint" / "ckpt-0")
    _checkpoint(zoo / "checkpoint", 10)
    assert find_checkpoint(zoo, tmp_path / "work").endswith("ckpt-10")
    channel = tmp_path / "channel"
    channel.mkdir()
    with tarfile.open(channel / "efficientdet_d0_coco17_tpu-32.tar.gz", "w:gz") as archive:
        archive.add(zoo, arcname=zoo.name)
    found = find_checkpoint(channel, tmp_path / "work")
    assert found.endswith("efficientdet_d0_coco17_tpu-32/checkpoint/ckpt-10")
    assert find_checkpoint(tmp_path / "absent", tmp_path / "work") is None
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "readme.txt").write_text("hi")
    with pytest.raises(TrainingError, match="holds no TF2 checkpoint"):
        find_checkpoint(tmp_path / "junk", tmp_path / "work")


def test_inputs_are_checked_with_clear_errors(tmp_path):
    with pytest.raises(TrainingError, match="no training records folder"):
        records_in(tmp_path / "absent", "training records")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TrainingError, match=r"no \*\.tfrecord files"):
        records_in(tmp_path / "empty", "training records")
    with pytest.raises(TrainingError, match="no label map: looked for"):
        find_label_map(None, tmp_path / "empty")
    (tmp_path / "bad.pbtxt").write_text("item { id: 0 name: 'background' }")
    with pytest.raises(TrainingError, match="ids from 1"):
        read_label_map(tmp_path / "bad.pbtxt")


def test_a_bad_job_fails_with_one_line_and_a_failure_file(tmp_path, capsys):
    (tmp_path / "hp.json").write_text(json.dumps({"image_size": "300"}))
    with pytest.raises(SystemExit) as info:
        main(["--hyperparameters", str(tmp_path / "hp.json"), "--failure-file", str(tmp_path / "failure")])
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'image_size': must be a multiple of 128" in err and "Traceback" not in err
    assert "must be a multiple of 128" in (tmp_path / "failure").read_text()
    with pytest.raises(SystemExit):
        main(
            ["train", "--train", str(tmp_path / "nothing"), "--hyperparameters", str(tmp_path / "none.json"), "--failure-file", str(tmp_path / "f2")]
        )
    assert "no label map" in (tmp_path / "f2").read_text()
