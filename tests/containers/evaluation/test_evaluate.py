"""The evaluation program end to end, on a stand-in model (tests/fake_model.py) that answers every image
with the same detections, and validation records written by containers/processing/records.py. The mAP of
1.0 below tests the metric plumbing: the fake's boxes are the ground truth, it is no trained model's score.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from containers.evaluation.bootstrap import Settings
from containers.evaluation.errors import EvaluationError
from containers.evaluation.evaluate import ChampionOptions, Options, evaluate, main
from containers.evaluation.image_lists import IMAGE_LIST, ChampionData
from containers.evaluation.validation import parse_example
from containers.processing.records import ShardWriter, build_example, bytes_feature, float_feature, serialize_example
from tests.containers.evaluation.helpers import DENT, ELSEWHERE, SCRATCH, box, detection, write_validation
from tests.fake_model import write_model_dir
from tests.support import ROOT, jpeg_bytes

SCRIPT = ROOT / "containers" / "evaluation" / "evaluate.py"
PNG = b"\x89PNG\r\n\x1a\n"
IMAGES = 5


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("evaluation")


@pytest.fixture(scope="module")
def dents(work) -> Path:
    """Five images, one dent each, in two shards."""
    return write_validation(work / "dents", [[box(1, "dent", DENT)]] * IMAGES)


@pytest.fixture(scope="module")
def dents_and_scratches(work) -> Path:
    return write_validation(work / "two-classes", [[box(1, "dent", DENT), box(2, "scratch", SCRATCH)]] * 3)


@pytest.fixture(scope="module")
def models(work) -> dict[str, Path]:
    return {
        "perfect": write_model_dir(work / "models" / "perfect", [detection(1, 0.9, DENT)]),
        "elsewhere": write_model_dir(work / "models" / "elsewhere", [detection(1, 0.9, ELSEWHERE)]),
        "blind": write_model_dir(work / "models" / "blind", []),
    }


def run(model: Path, validation: Path, output: Path, **options) -> dict:
    report = evaluate(Options(model=model, validation=validation, output=output, **options), log=lambda line: None)
    assert json.loads((output / "evaluation.json").read_text()) == report
    return report


def assert_pictures(output: Path) -> None:
    for name in ("pr_curves.png", "predictions.png"):
        assert (output / name).read_bytes()[:8] == PNG, name


def test_the_fakes_own_boxes_as_ground_truth_give_map_one(models, dents, tmp_path, capsys):
    report = evaluate(Options(models["perfect"], dents, tmp_path, batch_size=2, pictures=3))
    metrics = report["metrics"]
    assert metrics["mAP"]["value"] == 1.0 and metrics["mAP_50"]["value"] == 1.0 and metrics["mAP_75"]["value"] == 1.0
    assert metrics["recall"]["value"] == 1.0 and metrics["mAP_large"]["value"] == 1.0
    assert metrics["mAP_small"]["value"] is None and metrics["mAP_medium"]["value"] is None
    assert metrics["AP/dent"]["value"] == 1.0 and metrics["AP_50/dent"]["value"] == 1.0 and metrics["recall/dent"]["value"] == 1.0
    assert report["per_class"]["dent"] == {"AP": 1.0, "AP_50": 1.0, "recall": 1.0, "ground_truth_boxes": IMAGES}
    assert report["per_class"]["scratch"] == {"AP": None, "AP_50": None, "recall": None, "ground_truth_boxes": 0}
    assert (report["images"], report["ground_truth_boxes"], report["detections"]) == (IMAGES, IMAGES, IMAGES)
    assert report["warnings"] == ["validation holds no box of class 'scratch': it cannot be measured, its AP is null and left out of mAP"]
    assert report["model"]["label_map"] == {"1": "dent", "2": "scratch"} and report["model"]["packaging"] == "folder"
    assert report["validation"]["files"] == ["validation-00000-of-00002.tfrecord", "validation-00001-of-00002.tfrecord"]
    assert set(report) >= {"metrics", "per_class", "images", "ground_truth_boxes", "detections", "warnings", "model"}
    assert_pictures(tmp_path)
    # pycocotools' own printing is captured; its summary is logged once.
    out = capsys.readouterr().out
    assert "Loading and preparing results" not in out and "DONE" not in out
    assert out.count("Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all") == 1


def test_boxes_elsewhere_give_zero(models, dents, tmp_path):
    report = run(models["elsewhere"], dents, tmp_path)
    assert report["metrics"]["mAP"]["value"] == 0.0 and report["metrics"]["recall"]["value"] == 0.0
    assert report["per_class"]["dent"]["AP"] == 0.0 and report["detections"] == IMAGES


def test_one_class_perfect_and_one_missed_average_to_a_half(models, dents_and_scratches, tmp_path):
    report = run(models["perfect"], dents_and_scratches, tmp_path)
    assert report["per_class"]["dent"]["AP"] == 1.0 and report["per_class"]["scratch"]["AP"] == 0.0
    assert report["per_class"]["scratch"]["recall"] == 0.0 and report["per_class"]["scratch"]["ground_truth_boxes"] == 3
    assert report["metrics"]["mAP"]["value"] == pytest.approx(0.5) and report["warnings"] == []


def test_the_champion_is_scored_on_the_same_records_and_its_lead_is_what_the_gate_reads(models, dents, tmp_path):
    arn = "arn:aws:sagemaker:eu-west-1:123456789012:model-package/car-damage-models/3"
    champion = ChampionOptions(models["perfect"], 3, arn)
    report = run(models["elsewhere"], dents, tmp_path, champion=champion)
    section = report["champion"]
    assert (section["version"], section["package_arn"]) == (3, arn)
    assert section["metrics"]["mAP"]["value"] == 1.0 and report["metrics"]["mAP"]["value"] == 0.0
    assert section["map_lead"] == 1.0 and section["map_text"] == "1.000000"
    assert section["text"] == "1.000000 (version 3, on the same validation records)"
    assert section["images"] == report["images"] == IMAGES and section["per_class"]["dent"]["AP"] == 1.0
    assert section["model"]["label_map"] == report["model"]["label_map"]
    assert_pictures(tmp_path)
    # Much better on every image: every resample's lead is 1, an interval that excludes 0; the gate's scalars beside it.
    assert section["lead_interval"] == [1.0, 1.0] and section["lead_low"] == 1.0 and section["lead_text"] == "1.00 (1.00-1.00)"
    assert section["intervals"]["metrics"]["mAP"] == [1.0, 1.0] and report["intervals"]["metrics"]["mAP"] == [0.0, 0.0]
    # The challenger ahead: a negative lead, below any tolerance of zero or more.
    ahead = run(models["perfect"], dents, tmp_path / "ahead", champion=ChampionOptions(models["elsewhere"], 2, arn))
    assert ahead["champion"]["map_lead"] == -1.0 and ahead["champion"]["lead_interval"] == [-1.0, -1.0]


def test_a_champion_that_is_the_challengers_very_archive_is_scored_once(models, dents, tmp_path):
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(models["perfect"].iterdir()):
            tar.add(path, arcname=path.name)
    copy = tmp_path / "champion" / "model.tar.gz"  # as a Processing input downloads it: a folder holding the archive
    copy.parent.mkdir()
    copy.write_bytes(archive.read_bytes())
    lines: list[str] = []
    report = evaluate(Options(archive, dents, tmp_path / "out", champion=ChampionOptions(copy.parent, 2)), log=lines.append)
    assert any("is the challenger's very model file: scored once" in line for line in lines)
    assert sum("champion: detecting" in line or line.startswith("evaluate: champion ") for line in lines) == 0
    assert report["champion"]["map_lead"] == 0.0 and report["champion"]["metrics"] == report["metrics"]
    assert report["champion"]["lead_interval"] == [0.0, 0.0] and report["champion"]["intervals"] == report["intervals"]


def test_without_a_champion_the_gate_reads_version_zero(models, dents, tmp_path):
    section = run(models["perfect"], dents, tmp_path)["champion"]
    assert section == {
        "version": 0,
        "package_arn": "none",
        "map_lead": 0.0,
        "map_text": "none",
        "text": "none (nothing is served)",
        "lead_interval": None,
        "lead_low": 0.0,  # the gate reads a number: version 0 waves it through
        "lead_text": "none (nothing is served)",
    }


@pytest.fixture(scope="module")
def hits_and_misses(work) -> Path:
    """Six images the fakes answer alike: three dents where they look, three elsewhere, so resamples differ."""
    return write_validation(work / "mixed", [[box(1, "dent", DENT)]] * 3 + [[box(1, "dent", ELSEWHERE)]] * 3)


def test_every_figure_has_its_bootstrap_interval_and_a_rerun_gives_the_same(models, hits_and_misses, tmp_path):
    report = run(models["perfect"], hits_and_misses, tmp_path / "a", bootstrap=Settings(1000, seed=5))
    intervals = report["intervals"]
    assert {key: intervals[key] for key in ("method", "resamples", "confidence", "seed")} == {
        "method": "percentile bootstrap over validation images",
        "resamples": 1000,
        "confidence": 0.95,
        "seed": 5,
    }
    assert list(intervals["metrics"]) == ["mAP", "mAP_50", "AP/dent", "AP/scratch"]
    assert intervals["metrics"]["AP/scratch"] == [None, None]  # no scratch in the set: undefined
    low, high = intervals["metrics"]["mAP"]
    assert 0.0 <= low < report["metrics"]["mAP"]["value"] < high <= 1.0
    assert intervals["metrics"]["AP/dent"] == intervals["metrics"]["mAP"]  # the only class with boxes
    assert report["map_interval_text"] == f"{report['metrics']['mAP']['value']:.2f} ({low:.2f}-{high:.2f})"
    again = run(models["perfect"], hits_and_misses, tmp_path / "b", bootstrap=Settings(1000, seed=5))
    assert again["intervals"] == intervals  # (that another seed draws other resamples: test_bootstrap.py)


def test_the_same_detections_from_two_models_give_a_lead_interval_of_zero(models, hits_and_misses, tmp_path):
    twin = write_model_dir(tmp_path / "twin", [detection(1, 0.9, DENT)])  # another model file, the same answers
    section = run(models["perfect"], hits_and_misses, tmp_path / "out", champion=ChampionOptions(twin, 1))["champion"]
    assert section["lead_interval"] == [0.0, 0.0] and section["lead_low"] == 0.0 and section["lead_text"] == "0.00 (0.00-0.00)"


def test_a_champion_of_other_classes_is_compared_with_a_warning(models, dents, tmp_path):
    other = write_model_dir(tmp_path / "severity", [detection(1, 0.9, DENT)], classes=("minor-dent", "severe-dent"))
    section = run(models["perfect"], dents, tmp_path / "out", champion=ChampionOptions(other, 1))["champion"]
    assert section["warnings"] == [
        "validation holds no box of class 'severe-dent': it cannot be measured, its AP is null and left out of mAP",
        "the champion detects minor-dent, severe-dent and the challenger dent, scratch: their mAPs average different classes",
    ]


def test_the_command_line_takes_the_champion_and_version_zero_means_none(models, dents, tmp_path, capsys):
    common = ["--model", str(models["elsewhere"]), "--validation", str(dents), "--no-progress"]
    assert main([*common, "--output", str(tmp_path / "a"), "--champion", str(models["perfect"]), "--champion-version", "4"]) == 0
    out = capsys.readouterr().out
    assert "champion (version 4) on the same records: mAP 1.000, ahead of the challenger by 1.000" in out
    assert "95% intervals (1000 bootstrap resamples of the validation images, seed 23): mAP 0.00 (0.00-0.00), mAP@0.5 0.00 (0.00-0.00)" in out
    assert out.rstrip().count("the champion's lead 1.00 (1.00-1.00)") == 1
    # What the pipeline passes when nothing is served: the challenger's model again, and version 0.
    assert main([*common, "--output", str(tmp_path / "b"), "--champion", str(models["elsewhere"]), "--champion-version", "0"]) == 0
    assert json.loads((tmp_path / "b" / "evaluation.json").read_text())["champion"]["version"] == 0
    assert "no champion: nothing is served" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main([*common, "--output", str(tmp_path / "c"), "--champion-version", "2"])
    assert exit_info.value.code == 2 and "--champion-version needs --champion" in capsys.readouterr().err


def images_list(folder: Path, *photos: tuple[str, str, str]) -> Path:
    """PrepareData's images.jsonl: (key, content, split) per photo, the content's sha256 as its digest."""
    folder.mkdir(parents=True)
    lines = [json.dumps({"key": key, "sha256": hashlib.sha256(content.encode()).hexdigest(), "split": split}) for key, content, split in photos]
    (folder / "images.jsonl").write_text("".join(line + "\n" for line in lines))
    return folder


def test_the_photos_are_kept_and_the_next_evaluation_counts_those_new_since_them(models, dents, tmp_path):
    first = run(
        models["perfect"], dents, tmp_path / "first", images=images_list(tmp_path / "p1", ("a.jpg", "a", "train"), ("b.jpg", "b", "validation"))
    )
    assert first["training_data"]["image_list"] == IMAGE_LIST and (tmp_path / "first" / IMAGE_LIST).is_file()
    # The champion's data input: the prefix <its evaluation>/evaluation, named as the local engine names what follows it.
    champion_data = tmp_path / "champion-data"
    champion_data.mkdir()
    for name in ("evaluation.json", IMAGE_LIST):
        (champion_data / name.removeprefix("evaluation")).write_bytes((tmp_path / "first" / name).read_bytes())
    images = images_list(tmp_path / "p2", ("copies/b.jpg", "b", "train"), ("c.jpg", "c", "train"), ("d.jpg", "d", "validation"))
    champion = ChampionOptions(models["perfect"], 1)
    second = run(models["elsewhere"], dents, tmp_path / "second", images=images, champion=champion, champion_data=ChampionData(champion_data))
    since = second["training_data"]["since_champion"]
    assert (since["new"], since["gone"], since["unchanged"]) == (2, 1, 1)
    assert (since["new_examples"], since["gone_examples"]) == (["c.jpg", "d.jpg"], ["a.jpg"])
    page = (tmp_path / "second" / "report.html").read_text()
    assert "<p>New: c.jpg, d.jpg.</p>" in page and "<p>No longer present: a.jpg.</p>" in page
    # The model card's training section says it in one line.
    card = json.loads(second["model_card"])
    assert "2 image(s) new since the champion's data (version 1), 1 no longer present." in card["training_details"]["training_observations"]


def test_the_command_line_takes_the_images_and_the_champions_data(models, dents, tmp_path, capsys):
    images = images_list(tmp_path / "images", ("a.jpg", "a", "train"))
    common = ["--model", str(models["perfect"]), "--validation", str(dents), "--no-progress", "--images", str(images)]
    champion = ["--champion", str(models["perfect"]), "--champion-version", "2", "--champion-data", str(models["perfect"])]
    reason = "version 2's package names no evaluation.json (ModelMetrics)"
    assert main([*common, "--output", str(tmp_path / "out"), *champion, "--champion-data-missing", reason]) == 0
    section = json.loads((tmp_path / "out" / "evaluation.json").read_text())["training_data"]
    assert section["images"] == 1 and section["since_champion"] == {"known": False, "reason": reason}
    assert f"{IMAGE_LIST})" in capsys.readouterr().out  # among the outputs listed
    # Without the reason the folder is read as the champion's data: a model folder holds no image list.
    assert main([*common, "--output", str(tmp_path / "read"), *champion]) == 0
    since = json.loads((tmp_path / "read" / "evaluation.json").read_text())["training_data"]["since_champion"]
    assert since["reason"] == "version 2's evaluation kept no image list (it ran before Evaluate kept one)"


def test_the_command_line_takes_the_resamples_and_the_seed(models, dents, tmp_path, capsys):
    common = ["--model", str(models["perfect"]), "--validation", str(dents), "--no-progress", "--output", str(tmp_path)]
    assert main([*common, "--bootstrap-resamples", "1200", "--bootstrap-seed", "7"]) == 0
    intervals = json.loads((tmp_path / "evaluation.json").read_text())["intervals"]
    assert (intervals["resamples"], intervals["seed"]) == (1200, 7)
    assert "(1200 bootstrap resamples of the validation images, seed 7)" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main([*common, "--bootstrap-resamples", "999"])
    assert exit_info.value.code == 2 and "999 is fewer than 1000 resamples" in capsys.readouterr().err


def test_a_model_archive_or_a_folder_holding_one_is_extracted(models, dents, tmp_path):
    archive = tmp_path / "input" / "model.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:  # files at the archive's root, as SageMaker packs SM_MODEL_DIR
        for path in sorted(models["perfect"].iterdir()):
            tar.add(path, arcname=path.name)
    for given in (archive, archive.parent):
        report = run(given, dents, tmp_path / f"out-{given.name}")
        assert report["metrics"]["mAP"]["value"] == 1.0
        assert report["model"]["packaging"] == "model.tar.gz" and report["model"]["source"] == str(given)
        # The archive's digest: Register records it, and the deployment function deploys no other archive.
        assert report["model"]["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert run(models["perfect"], dents, tmp_path / "out-folder")["model"]["sha256"] == ""  # a folder: no archive to vouch for


@pytest.mark.parametrize(
    ("content", "warning"),
    [
        (None, "no validation records: {validation} holds no *.tfrecord files; mAP is reported as 0"),
        (b"", "the validation records (1 file(s) in {validation}) hold no images; mAP is reported as 0"),
    ],
    ids=["no files", "an empty file"],
)
def test_an_empty_validation_set_gives_zero_with_a_warning(models, tmp_path, capsys, content, warning):
    validation = tmp_path / "validation"
    validation.mkdir()
    if content is not None:
        (validation / "validation-00000-of-00001.tfrecord").write_bytes(content)
    output = tmp_path / "out"
    assert main(["--model", str(models["perfect"]), "--validation", str(validation), "--output", str(output), "--no-progress"]) == 0
    report = json.loads((output / "evaluation.json").read_text())
    assert report["metrics"]["mAP"]["value"] == 0.0 and report["images"] == 0
    assert all(entry["value"] == 0.0 for entry in report["metrics"].values())
    assert report["warnings"] == [warning.format(validation=validation)]
    assert f"evaluate: warning: {report['warnings'][0]}" in capsys.readouterr().err
    assert_pictures(output)


def test_a_model_that_detects_nothing_gives_zero_with_a_warning(models, dents, tmp_path):
    report = run(models["blind"], dents, tmp_path)
    assert report["metrics"]["mAP"]["value"] == 0.0 and report["detections"] == 0
    assert report["per_class"]["dent"] == {"AP": 0.0, "AP_50": 0.0, "recall": 0.0, "ground_truth_boxes": IMAGES}
    assert report["warnings"][0] == f"the model detected nothing in {IMAGES} validation image(s): mAP is 0"
    assert_pictures(tmp_path)


def _broken_inputs(root: Path, models: dict[str, Path], dents: Path) -> dict[str, tuple[list[str], str]]:
    no_saved_model = root / "no-saved-model"
    (no_saved_model / "1").mkdir(parents=True)
    (no_saved_model / "model.json").write_text((models["perfect"] / "model.json").read_text())
    no_metadata = root / "no-metadata"
    (no_metadata / "1").mkdir(parents=True)
    (no_metadata / "1" / "saved_model.pb").write_bytes((models["perfect"] / "1" / "saved_model.pb").read_bytes())
    (no_metadata / "label_map.pbtxt").write_text('item { id: 1 name: "dent" }\n')  # what names the classes is model.json
    bad_metadata = root / "bad-metadata"
    (bad_metadata / "1").mkdir(parents=True)
    (bad_metadata / "1" / "saved_model.pb").write_bytes((models["perfect"] / "1" / "saved_model.pb").read_bytes())
    (bad_metadata / "model.json").write_text(json.dumps({"classes": {"1": "dent", "two": "scratch"}}))
    garbage = root / "garbage"
    garbage.mkdir()
    (garbage / "validation-00000-of-00001.tfrecord").write_bytes(b"this is not a TFRecord file at all")
    broken_image = root / "broken-image"
    with ShardWriter(broken_image, ["validation-00000-of-00001.tfrecord"]) as writer:
        writer.write(build_example(encoded=b"not an image", key="broken.jpg", width=320, height=240, boxes=[box(1, "dent", DENT)]))
    empty_folder = root / "empty-folder"
    empty_folder.mkdir()
    perfect = str(models["perfect"])
    return {
        "missing model": ([str(root / "absent"), str(dents)], "no model found: no such file or folder"),
        "folder without a model": ([str(empty_folder), str(dents)], "no model found: expected model.tar.gz"),
        "no 1/ SavedModel": ([str(no_saved_model), str(dents)], "no 1/ SavedModel"),
        "no model.json": ([str(no_metadata), str(dents)], "no model.json beside the SavedModel (training writes it there)"),
        "a broken model.json": ([str(bad_metadata), str(dents)], f"{bad_metadata / 'model.json'}: class id 'two' is not a whole number; expected"),
        "unreadable records": ([perfect, str(garbage)], "unreadable TFRecord"),
        "an image the model cannot decode": ([perfect, str(broken_image)], "the model failed on a batch holding broken.jpg"),
        "missing validation": ([perfect, str(root / "absent")], "the validation folder does not exist"),
    }


def test_unusable_inputs_exit_one_with_one_line_and_no_traceback(models, dents, tmp_path, capsys):
    for case, ((model, validation), message) in _broken_inputs(tmp_path, models, dents).items():
        output = tmp_path / "out"
        assert main(["--model", model, "--validation", validation, "--output", str(output)]) == 1, case
        err = capsys.readouterr().err
        assert err.startswith("evaluate: error: ") and err.count("\n") == 1 and message in err, (case, err)
        assert not (output / "evaluation.json").exists(), case


def _script(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, cwd=ROOT.parent, timeout=300, check=False)


def test_the_program_runs_as_a_script_with_the_documented_interface(models, dents_and_scratches, tmp_path):
    output = tmp_path / "evaluation"
    result = _script(
        "--model", str(models["perfect"]),
        "--validation", str(dents_and_scratches),
        "--output", str(output),
        "--batch-size", "2",
        "--pictures", "2",
        "--picture-score-threshold", "0.5",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    report = json.loads((output / "evaluation.json").read_text())
    assert report["metrics"]["mAP"]["value"] == pytest.approx(0.5)
    assert report["settings"] == {"iou_type": "bbox", "max_detections": 100, "batch_size": 2, "pictures": 2, "picture_score_threshold": 0.5}
    assert "evaluate: 3 images, 6 ground-truth boxes, 3 detections: mAP 0.500" in result.stdout
    assert "Average Precision" in result.stdout and "Loading and preparing results" not in result.stdout
    assert_pictures(output)

    missing = _script("--model", str(tmp_path / "nowhere"), "--validation", str(dents_and_scratches), "--output", str(output))
    assert missing.returncode == 1
    assert missing.stderr.startswith("evaluate: error: ") and missing.stderr.count("\n") == 1 and "no model found" in missing.stderr


def test_records_without_size_or_label_ids_are_read_from_the_image_and_class_names():
    encoded = jpeg_bytes((80, 60))
    features = {
        "image/encoded": bytes_feature([encoded]),
        "image/source_id": bytes_feature([b"k.jpg"]),
        "image/object/bbox/xmin": float_feature([0.25]),
        "image/object/bbox/ymin": float_feature([0.5]),
        "image/object/bbox/xmax": float_feature([0.75]),
        "image/object/bbox/ymax": float_feature([1.0]),
        "image/object/class/text": bytes_feature([b"scratch"]),
    }
    truth, image = parse_example(serialize_example(features), {"dent": 1, "scratch": 2}, "here")
    assert (truth.key, truth.width, truth.height, truth.labels, image) == ("k.jpg", 80, 60, (2,), encoded)
    assert truth.boxes == ((0.25, 0.5, 0.75, 1.0),)
    with pytest.raises(EvaluationError, match=r"here \(k.jpg\): 1 box\(es\) but no matching"):
        parse_example(serialize_example(features), {"dent": 1}, "here")
    with pytest.raises(EvaluationError, match=r"here: not a tf\.train\.Example"):
        parse_example(b"\xff\xff\xff", {}, "here")


# The drift baselines (baselines.py)


def _statistics_folder(folder: Path, instances: dict[str, list[bytes]]) -> Path:
    """PrepareData's statistics/ output: one summarized input document per instance."""
    from containers.monitoring.statistics import input_statistics, summarize

    folder.mkdir(parents=True)
    for host, photos in instances.items():
        document = summarize([input_statistics(photo) for photo in photos], "input")
        (folder / f"data-statistics-{host}.json").write_text(json.dumps(document))
    return folder


@pytest.fixture(scope="module")
def two_detections(work) -> Path:
    """A dent at 0.9 and a scratch at 0.4 in every image."""
    return write_model_dir(work / "models" / "two", [detection(1, 0.9, DENT), detection(2, 0.4, SCRATCH)])


def test_the_data_baseline_merges_every_instances_statistics(models, dents, tmp_path):
    from containers.monitoring.statistics import merge

    photos = {"algo-1": [jpeg_bytes((64, 48), seed=s) for s in range(3)], "algo-2": [jpeg_bytes((80, 60), seed=s) for s in range(3, 5)]}
    folder = _statistics_folder(tmp_path / "statistics", photos)
    lines: list[str] = []
    report = evaluate(Options(models["perfect"], dents, tmp_path / "out", statistics=folder), log=lines.append)
    baseline = json.loads((tmp_path / "out" / "data-baseline.json").read_text())
    documents = [json.loads((folder / f"data-statistics-{host}.json").read_text()) for host in photos]
    assert baseline == merge(documents) and baseline["images"] == 5
    assert sorted(baseline["continuous"]["width"]) == [64.0] * 3 + [80.0] * 2
    assert report["baselines"]["data"] == {"file": "data-baseline.json", "images": 5, "documents": sorted(f.name for f in folder.iterdir())}
    assert "evaluate: data baseline: 5 photo(s) from 2 statistics document(s) -> data-baseline.json" in lines


def test_the_model_baseline_is_what_the_endpoint_answers_at_its_threshold(two_detections, dents, tmp_path):
    from containers.evaluation.validation import read_records, validation_files
    from containers.inference.local import LocalEndpoint
    from containers.monitoring.statistics import output_statistics, summarize

    common = ["--model", str(two_detections), "--validation", str(dents), "--no-progress"]
    assert main([*common, "--output", str(tmp_path / "low"), "--score-threshold", "0.3"]) == 0
    assert main([*common, "--output", str(tmp_path / "high"), "--score-threshold", "0.5"]) == 0
    assert main([*common, "--output", str(tmp_path / "one"), "--max-detections", "1"]) == 0
    low, high, one = (json.loads((tmp_path / name / "model-baseline.json").read_text()) for name in ("low", "high", "one"))
    assert low["kind"] == "output" and low["images"] == high["images"] == IMAGES
    assert low["continuous"]["detections"] == [2.0] * IMAGES and high["continuous"]["detections"] == [1.0] * IMAGES
    assert low["categorical"]["class_mix"] == {"dent": IMAGES, "scratch": IMAGES} and high["categorical"]["class_mix"] == {"dent": IMAGES}
    assert one == high  # at most one detection: the best, as the endpoint cuts
    # Boxes in pixels of the photo: the dent covers about 0.4 x 0.4 of it (normalised boxes would cover nothing).
    assert high["continuous"]["area_share:dent"] == [pytest.approx(0.16, abs=0.01)] * IMAGES
    assert high["continuous"]["area_share:scratch"] == [0.0] * IMAGES  # every class of the label map, found or not
    report = json.loads((tmp_path / "high" / "evaluation.json").read_text())
    assert report["baselines"]["model"] == {"file": "model-baseline.json", "images": IMAGES, "score_threshold": 0.5, "max_detections": 100}
    assert report["detections"] == 2 * IMAGES  # mAP still counts every detection, whatever the endpoint's threshold

    # The same figures as the statistics of the local endpoint's own answers to the validation photos.
    endpoint = LocalEndpoint(two_detections)
    rows = [
        output_statistics(endpoint.predict_image(r.encoded, score_threshold=0.3), r.truth.width, r.truth.height)
        for r in read_records(validation_files(dents), {"dent": 1, "scratch": 2})
    ]
    assert low == json.loads(json.dumps(summarize(rows, "output", classes=["dent", "scratch"])))


@pytest.mark.parametrize("given", ["none", "empty folder", "missing folder"])
def test_without_statistics_there_is_no_data_baseline_and_the_report_says_why(models, dents, tmp_path, capsys, given):
    output = tmp_path / "out"
    output.mkdir()
    (output / "data-baseline.json").write_text("{}")  # an earlier run's: it must not pass for this model's
    statistics = {"none": None, "empty folder": tmp_path / "statistics", "missing folder": tmp_path / "absent"}[given]
    if given == "empty folder":
        statistics.mkdir()
    arguments = ["--model", str(models["perfect"]), "--validation", str(dents), "--output", str(output), "--no-progress"]
    assert main([*arguments, *(["--statistics", str(statistics)] if statistics else [])]) == 0
    report = json.loads((output / "evaluation.json").read_text())
    data = report["baselines"]["data"]
    assert data["file"] is None and not (output / "data-baseline.json").exists()
    assert data["reason"] == ("no --statistics folder was given" if statistics is None else f"{statistics} holds no statistics documents") + (
        ""
        if statistics is None
        else " (a PrepareData output from before them, reused from the step cache: pipeline.caching: false prepares the data again)"
    )
    out = capsys.readouterr().out
    assert f"evaluate: no data baseline: {data['reason']}" in out
    assert (output / "model-baseline.json").is_file() and out.rstrip().endswith("model-baseline.json)")
    assert report["metrics"]["mAP"]["value"] == 1.0


def test_an_unreadable_statistics_document_stops_before_the_model_runs(models, dents, tmp_path, capsys):
    folder = _statistics_folder(tmp_path / "statistics", {"algo-1": [jpeg_bytes()]})
    cases = {
        "not JSON": ("{", "not JSON"),
        "an old version": (json.dumps({"version": 0, "kind": "input"}), "version must be 1, found 0"),
        "answers, not photos": (json.dumps({"version": 1, "kind": "output", "images": 0, "continuous": {}, "categorical": {}}), "kind must be input"),
    }
    for case, (text, message) in cases.items():
        (folder / "data-statistics-algo-2.json").write_text(text)
        output = tmp_path / "out"
        arguments = ["--model", str(models["perfect"]), "--validation", str(dents), "--output", str(output), "--statistics", str(folder)]
        assert main(arguments) == 1, case
        err = capsys.readouterr().err
        assert err.startswith(f"evaluate: error: {folder / 'data-statistics-algo-2.json'}: ") and message in err, (case, err)
        assert err.count("\n") == 1 and not output.exists(), case
