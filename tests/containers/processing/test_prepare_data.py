"""The PrepareData program end to end on datasets the tests build: outputs, accounting and failures."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from containers.processing.prepare_data import Options, PreparationError, main, prepare
from tests.support import PREFIX, ROOT, Dataset, all_records, jpeg_bytes

PROGRAM = ROOT / "containers" / "processing" / "prepare_data.py"


def run(dataset: Dataset, manifests, output: Path, **overrides) -> dict:
    options = {
        "manifests": list(manifests),
        "images": dataset.images,
        "images_prefix": dataset.prefix,
        "output": output,
        "classes": ["dent", "scratch"],
        "validation_fraction": 0.25,
        "seed": 7,
        "shards": 2,
        "workers": 2,
        "max_invalid_fraction": 1.0,
    } | overrides
    return prepare(Options(**options))


def outputs(output: Path) -> dict[str, bytes]:
    return {str(p.relative_to(output)): p.read_bytes() for p in sorted(output.rglob("*")) if p.is_file() and p.suffix != ".png"}


def test_records_hold_the_manifest_boxes_and_decode_with_the_od_api(dataset, tmp_path):
    lines = [dataset.labelled(f"cars/{i}.jpg", boxes=[(i % 2, 4, 8, 20, 16), (1, 30, 2, 10, 10)], size=(64, 48)) for i in range(12)]
    report = run(dataset, [dataset.manifest("batch.manifest", lines)], tmp_path / "out")
    assert report["status"] == "succeeded"
    assert report["class_map"] == {"1": "dent", "2": "scratch"}
    assert report["label_attribute"] == "car-damage"
    assert report["images_written"] == 12 and report["lines_read"] == 12

    written = all_records(tmp_path / "out")
    assert set(written) == {f"cars/{i}.jpg" for i in range(12)}
    for i in range(12):
        record = written[f"cars/{i}.jpg"]
        assert record["size"] == (64, 48)
        assert record["names"] == ["dent" if i % 2 == 0 else "scratch", "scratch"]
        expected = [(i % 2 + 1, 4 / 64, 8 / 48, 24 / 64, 24 / 48), (2, 30 / 64, 2 / 48, 40 / 64, 12 / 48)]
        np.testing.assert_allclose(record["boxes"], expected, rtol=1e-6)
        assert record["encoded"] == (dataset.images / f"cars/{i}.jpg").read_bytes()

    from containers.common import odapi

    odapi.patch()
    import tensorflow as tf
    from object_detection.data_decoders.tf_example_decoder import TfExampleDecoder
    from object_detection.utils import label_map_util

    assert label_map_util.get_label_map_dict(str(tmp_path / "out" / "label_map.pbtxt")) == {"dent": 1, "scratch": 2}
    decoder = TfExampleDecoder()
    shard = sorted((tmp_path / "out" / "train").glob("*.tfrecord"))[0]
    decoded = decoder.decode(next(iter(tf.data.TFRecordDataset(str(shard)))))
    key = decoded["source_id"].numpy().decode()
    assert decoded["image"].shape == (48, 64, 3)
    assert decoded["groundtruth_classes"].numpy().tolist() == [b[0] for b in written[key]["boxes"]]
    # The OD API orders boxes ymin, xmin, ymax, xmax.
    np.testing.assert_allclose(decoded["groundtruth_boxes"].numpy(), [[b[2], b[1], b[4], b[3]] for b in written[key]["boxes"]], rtol=1e-6)


def test_a_corpus_of_bad_lines_and_images_is_accounted_for_line_by_line(dataset, tmp_path):
    good = [dataset.labelled(f"good/{i}.jpg") for i in range(6)]
    dataset.image("broken/truncated.jpg", data=jpeg_bytes((128, 128), seed=99)[:-300])
    dataset.image("odd/rgba.png", data=jpeg_bytes(mode="RGBA", fmt="PNG"))
    dataset.image("odd/gray.jpg", data=jpeg_bytes(mode="L"))
    dataset.image("odd/rotated.jpg", data=jpeg_bytes((64, 48), exif_orientation=6))
    first = dataset.manifest(
        "first.manifest",
        [
            *good[:3],
            "{this is not json",
            "",  # blank lines are not lines of data
            {"source-ref": PREFIX + "good/0.jpg"},  # no label attribute
            dataset.line("broken/truncated.jpg", size=(128, 128)),
            dataset.line("missing/nowhere.jpg"),
            dataset.line("good/3.jpg", boxes=[(0, 70, 10, 5, 5)]),  # box right of the 64-wide image
            dataset.line("odd/rgba.png"),
            dataset.line("odd/gray.jpg"),
            dataset.line("odd/rotated.jpg", size=(48, 64)),
        ],
    )
    second = dataset.manifest("second.manifest", [*good[3:], dataset.line("good/0.jpg", boxes=[(1, 1, 1, 9, 9)], created="2024-06-01T00:00:00")])

    report = run(dataset, [first, second], tmp_path / "out")
    reasons = {(Path(e["manifest"]).name, e["line"]): e["reason"] for e in report["quarantined"]}
    assert list(reasons) == [("first.manifest", n) for n in (4, 6, 7, 8, 9)]  # in input order, whatever stage found them
    assert reasons[("first.manifest", 4)].startswith("not valid JSON")
    assert reasons[("first.manifest", 6)].startswith("no bounding-box label attribute")
    assert reasons[("first.manifest", 7)].startswith("corrupt or truncated JPEG") and "broken/truncated.jpg" in reasons[("first.manifest", 7)]
    assert reasons[("first.manifest", 8)].startswith("image file not found (missing/nowhere.jpg)")
    assert reasons[("first.manifest", 9)].startswith("box 0 (dent): degenerate box")
    assert [(Path(m["manifest"]).name, m["line"]) for m in report["merged"]] == [("first.manifest", 1)]
    assert Path(report["merged"][0]["kept"]["manifest"]).name == "second.manifest"
    assert report["lines_read"] == report["records_read"] == 15
    assert report["images_written"] == 9
    assert report["records_read"] == report["images_written"] + len(report["quarantined"]) + len(report["merged"])
    assert report["images"] == {
        "passed_through": 6,
        "converted": {"EXIF orientation 6": 1, "PNG, mode RGBA": 1, "mode L": 1},
        "exif_transposed": 1,
    }
    written = all_records(tmp_path / "out")
    assert written["good/0.jpg"]["names"] == ["scratch"]  # the newer labelling won
    assert written["odd/rotated.jpg"]["size"] == (48, 64)


def test_a_rerun_is_byte_identical_whatever_the_workers_or_manifest_order(dataset, tmp_path):
    lines = [dataset.labelled(f"a/{i}.jpg", boxes=[(i % 2, 2, 2, 10, 10)]) for i in range(20)]
    one = dataset.manifest("one.manifest", lines[:9])
    two = dataset.manifest("two.manifest", lines[9:])
    run(dataset, [one, two], tmp_path / "first", workers=1)
    run(dataset, [one, two], tmp_path / "second", workers=3)
    run(dataset, [two, one], tmp_path / "swapped", workers=2)
    first = outputs(tmp_path / "first")
    assert first == outputs(tmp_path / "second")
    swapped = outputs(tmp_path / "swapped")
    assert {k: v for k, v in swapped.items() if k != "report.json"} == {k: v for k, v in first.items() if k != "report.json"}


def test_equal_file_names_in_two_folders_are_two_images(dataset, tmp_path):
    manifest = dataset.manifest("m.manifest", [dataset.labelled("batch-1/car.jpg"), dataset.labelled("batch-2/car.jpg")])
    report = run(dataset, [manifest], tmp_path / "out")
    assert report["images_written"] == 2 and not report["merged"]


def test_identical_images_under_two_keys_share_a_split_and_are_reported(dataset, tmp_path):
    data = jpeg_bytes(seed=42)
    lines = []
    for i in range(30):
        dataset.image(f"first/{i}.jpg", data=jpeg_bytes(seed=1000 + i))
        dataset.image(f"copy/{i}.jpg", data=jpeg_bytes(seed=1000 + i))
        lines += [dataset.line(f"first/{i}.jpg"), dataset.line(f"copy/{i}.jpg")]
    dataset.image("x/a.jpg", data=data)
    report = run(dataset, [dataset.manifest("m.manifest", lines)], tmp_path / "out", validation_fraction=0.5)
    written = all_records(tmp_path / "out")
    assert all(written[f"first/{i}.jpg"]["split"] == written[f"copy/{i}.jpg"]["split"] for i in range(30))
    assert {w["split"] for w in written.values()} == {"train", "validation"}
    assert len(report["duplicate_content"]) == 30
    assert "30 image(s) repeat the content of another key (kept, in the same split)" in report["warnings"]


def test_over_the_error_budget_the_job_fails_after_writing_its_report(dataset, tmp_path):
    lines = [dataset.labelled(f"a/{i}.jpg") for i in range(8)] + [dataset.line(f"gone/{i}.jpg") for i in range(2)]
    manifest = dataset.manifest("m.manifest", lines)
    with pytest.raises(
        PreparationError, match=r"2 of 10 records \(20\.0%\) were quarantined, over the error budget of 10\.0%.*image file not found \(2\)"
    ) as failure:
        run(dataset, [manifest], tmp_path / "out", max_invalid_fraction=0.1)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["status"] == "failed" and report["error"] == str(failure.value)
    assert len(report["quarantined"]) == 2
    assert not list((tmp_path / "out").glob("train/*.tfrecord"))


def test_no_usable_image_and_an_empty_manifest_fail_clearly(dataset, tmp_path):
    with pytest.raises(PreparationError, match="no usable image: all 2 records were quarantined; most common reasons: image file not found"):
        run(dataset, [dataset.manifest("m.manifest", [dataset.line("a.jpg"), dataset.line("b.jpg")])], tmp_path / "out")
    with pytest.raises(PreparationError, match="no usable image: the inputs hold no records"):
        run(dataset, [dataset.manifest("empty.manifest", ["", "  "])], tmp_path / "out2")


def test_a_label_attribute_no_line_has_stops_the_job(dataset, tmp_path):
    manifest = dataset.manifest("m.manifest", [dataset.labelled("a.jpg")])
    with pytest.raises(PreparationError, match=r"m\.manifest: no line has the label attribute 'other'"):
        run(dataset, [manifest], tmp_path / "out", label_attribute="other")


def test_several_instances_write_apart_and_agree_with_one(dataset, tmp_path):
    lines = [dataset.labelled(f"a/{i}.jpg", boxes=[(i % 2, 2, 2, 10, 10)]) for i in range(40)]
    # The same images labelled again in a second input, newer: whichever instance has an image sees both.
    relabelled = [dataset.line(f"a/{i}.jpg", boxes=[(1, 3, 3, 9, 9)], created="2025-01-01T00:00:00") for i in range(0, 40, 3)]
    inputs = [dataset.manifest("first.manifest", lines), dataset.manifest("second.manifest", relabelled)]
    single = run(dataset, inputs, tmp_path / "single")
    shared_output = tmp_path / "shared"
    reports = []
    for index, host in enumerate(("algo-1", "algo-2")):
        report = run(dataset, inputs, shared_output, instance_tag=host, instance=(index, 2))
        assert report["pictures"] == {"summary": f"report-{host}.png", "samples": f"samples-{host}.png"}
        reports.append(report)
    assert (shared_output / "report-algo-1.json").is_file() and (shared_output / "report-algo-2.json").is_file()
    assert all(0 < r["images_written"] < 40 for r in reports)  # each did a share
    assert sum(r["images_written"] for r in reports) == 40  # and no image was written by both
    assert sum(r["records_read"] for r in reports) == single["records_read"] == 40 + 14
    assert sum(len(r["merged"]) for r in reports) == len(single["merged"]) == 14
    combined = all_records(shared_output)
    assert len(combined) == 40  # every image once, whichever instance wrote it
    assert {key: (r["split"], r["names"]) for key, r in combined.items()} == {
        key: (r["split"], r["names"]) for key, r in all_records(tmp_path / "single").items()
    }


def test_several_instances_need_the_classes_listed(dataset, tmp_path):
    manifest = dataset.manifest("m.manifest", [dataset.labelled("a.jpg")])
    with pytest.raises(PreparationError, match="with several instances, list the classes"):
        run(dataset, [manifest], tmp_path / "out", classes=None, instance=(0, 2))


def test_shards_of_an_earlier_run_are_replaced(dataset, tmp_path):
    manifest = dataset.manifest("m.manifest", [dataset.labelled(f"a/{i}.jpg") for i in range(10)])
    run(dataset, [manifest], tmp_path / "out", shards=4)
    run(dataset, [manifest], tmp_path / "out", shards=2)
    assert sorted(p.name for p in (tmp_path / "out" / "train").iterdir()) == [f"train-0000{i}-of-00002.tfrecord" for i in range(2)]


def test_the_report_has_box_statistics_and_pictures(dataset, tmp_path):
    lines = [dataset.labelled(f"a/{i}.jpg", boxes=[(0, 0, 0, 10 + i, 20), (1, 5, 5, 40, 30)], size=(64, 48)) for i in range(10)]
    report = run(dataset, [dataset.manifest("m.manifest", lines)], tmp_path / "out")
    assert report["box_stats"]["dent"]["count"] == 10
    assert report["box_stats"]["dent"]["width_px"]["min"] == 10 and report["box_stats"]["dent"]["width_px"]["max"] == 19
    assert report["box_stats"]["scratch"]["small_under_32px"] == 0
    splits = report["splits"]
    assert splits["train"]["images_total"] + splits["validation"]["images_total"] == 10
    for split in ("train", "validation"):
        images = splits[split]["images_total"]  # every image holds one dent and one scratch
        assert splits[split]["images"] == splits[split]["boxes"] == {"dent": images, "scratch": images}
        assert (splits[split]["boxes_total"], splits[split]["images_without_boxes"]) == (2 * images, 0)
        assert splits[split]["shards"] == sorted(f"{split}/{p.name}" for p in (tmp_path / "out" / split).glob("*.tfrecord"))
    from PIL import Image

    for name in report["pictures"].values():
        with Image.open(tmp_path / "out" / name) as picture:
            assert picture.format == "PNG" and picture.width > 400
    # Every image written, by its content: what `cardamage review` counts as already labelled.
    listed = [json.loads(line) for line in (tmp_path / "out" / report["images_list"]).read_text().splitlines()]
    assert sorted(entry["key"] for entry in listed) == sorted(f"a/{i}.jpg" for i in range(10))
    written = all_records(tmp_path / "out")
    assert {entry["key"]: entry["split"] for entry in listed} == {key: record["split"] for key, record in written.items()}
    assert {entry["key"]: entry["sha256"] for entry in listed} == {
        f"a/{i}.jpg": hashlib.sha256((dataset.images / "a" / f"{i}.jpg").read_bytes()).hexdigest() for i in range(10)
    }


def test_the_program_runs_as_a_script_with_the_documented_interface(dataset, tmp_path):
    dataset.manifest("m.manifest", [dataset.labelled(f"a/{i}.jpg") for i in range(6)])
    # A folder of manifests stands for a Processing input; no --classes: the class-map gives the label map.
    command = [
        sys.executable,
        str(PROGRAM),
        "--manifest",
        str(dataset.manifests),
        "--images",
        str(dataset.images),
        "--images-prefix",
        PREFIX,
        "--output",
        str(tmp_path / "out"),
        "--workers",
        "2",
        "--shards",
        "1",
        "--seed",
        "3",
        "--validation-fraction",
        "0.3",
        "--max-invalid-fraction",
        "0",
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    splits = json.loads((tmp_path / "out" / "report.json").read_text())["splits"]
    train, validation = splits["train"]["images_total"], splits["validation"]["images_total"]
    assert train + validation == 6
    summary = f"6 images written (train {train}, validation {validation}), 0 quarantined, 0 merged"
    assert result.stdout.splitlines()[0] == f"prepare_data: 6 records read from 1 input(s) (1 groundtruth): {summary}"
    assert (tmp_path / "out" / "label_map.pbtxt").read_text().count("item {") == 2
    assert (tmp_path / "out" / "train" / "train-00000-of-00001.tfrecord").is_file()


def test_failures_exit_non_zero_with_one_line_and_no_traceback(dataset, tmp_path, capsys):
    manifest = dataset.manifest("m.manifest", [dataset.line("missing.jpg")])
    status = main(["--manifest", str(manifest), "--images", str(dataset.images), "--images-prefix", PREFIX, "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert status == 1
    assert err.count("\n") == 1 and err.startswith("prepare_data: error: no usable image")
    assert "Traceback" not in err
    assert (
        main(
            [
                "--manifest",
                str(tmp_path / "absent.manifest"),
                "--images",
                str(dataset.images),
                "--images-prefix",
                PREFIX,
                "--output",
                str(tmp_path / "o2"),
            ]
        )
        == 1
    )
    assert "absent.manifest: no such file or folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["--manifest", str(manifest), "--images-prefix", PREFIX, "--validation-fraction", "1.5"])
    assert exit_info.value.code == 2
    assert "1.5 is not in [0, 1)" in capsys.readouterr().err


def test_a_class_held_by_one_image_trains_on_it_and_the_report_says_so(dataset, tmp_path):
    """Whatever the seed, the only dent image goes to train, and the report says why (and that dent is not measured)."""
    lines = [dataset.labelled("cars/dent.jpg", boxes=[(0, 4, 8, 20, 16)])]
    lines += [dataset.labelled(f"cars/{i}.jpg", boxes=[(1, 30, 2, 10, 10)]) for i in range(8)]
    manifest = dataset.manifest("batch.manifest", lines)
    drew_validation = 0
    for seed in range(6):
        report = run(dataset, [manifest], tmp_path / f"out-{seed}", seed=seed, validation_fraction=0.5, workers=1)
        assert report["splits"]["train"]["images"]["dent"] == 1 and report["splits"]["validation"]["images"]["dent"] == 0, seed
        assert "validation holds no image of class 'dent' (only 1 image(s) hold it)" in report["warnings"]
        kept = [entry for entry in report["stratification"] if entry.get("class") == "dent"]
        if kept:
            drew_validation += 1
            reason = "every image of class 'dent' drew validation; training needs one"
            assert kept == [{"class": "dent", "kept_in_train": "cars/dent.jpg", "reason": reason}]
    assert 0 < drew_validation < 6  # some seeds needed the rule, some did not


def _statistics_of(records: list[dict]) -> dict:
    """What an instance's statistics document must hold for these written records: their stored bytes measured."""
    from containers.monitoring.statistics import input_statistics, summarize

    return summarize([input_statistics(record["encoded"]) for record in records], "input")


def _as_multisets(document: dict) -> dict:
    """A statistics document without the order its images were measured in."""
    return {**document, "continuous": {name: sorted(values) for name, values in document["continuous"].items()}}


def test_every_image_written_is_measured_upright_and_a_quarantined_one_is_not(dataset, tmp_path):
    lines = [dataset.labelled(f"good/{i}.jpg") for i in range(6)]
    dataset.image("odd/rotated.jpg", data=jpeg_bytes((64, 48), seed=5, exif_orientation=6))
    dataset.image("odd/rgba.png", data=jpeg_bytes(mode="RGBA", fmt="PNG"))
    dataset.image("broken/truncated.jpg", data=jpeg_bytes((128, 128), seed=99)[:-300])
    lines += [dataset.line("odd/rotated.jpg", size=(48, 64)), dataset.line("odd/rgba.png"), dataset.line("broken/truncated.jpg", size=(128, 128))]
    report = run(dataset, [dataset.manifest("m.manifest", lines)], tmp_path / "out")
    assert report["images_written"] == 8 and len(report["quarantined"]) == 1
    assert report["statistics"] == "statistics/data-statistics.json"
    document = json.loads((tmp_path / "out" / report["statistics"]).read_text())
    assert document["kind"] == "input" and document["images"] == 8
    assert document["categorical"]["format"] == {"JPEG": 8}  # the PNG as written: converted to JPEG
    # The rotated photo is measured as stored, upright: 48 wide, 64 high.
    sizes = sorted(zip(document["continuous"]["width"], document["continuous"]["height"], strict=True))
    assert sizes == [(48.0, 64.0)] + [(64.0, 48.0)] * 7
    written = all_records(tmp_path / "out")
    assert "broken/truncated.jpg" not in written
    assert _as_multisets(document) == _as_multisets(_statistics_of(list(written.values())))


def test_each_instance_measures_the_images_it_wrote(dataset, tmp_path):
    lines = [dataset.labelled(f"a/{i}.jpg", seed=300 + i) for i in range(24)]
    dataset.image("gone-bad.jpg", data=jpeg_bytes((96, 96), seed=98)[:-200])
    manifest = dataset.manifest("m.manifest", [*lines, dataset.line("gone-bad.jpg", size=(96, 96))])
    output = tmp_path / "shared"
    written = {}
    for index, host in enumerate(("algo-1", "algo-2")):
        report = run(dataset, [manifest], output, instance_tag=host, instance=(index, 2))
        assert report["statistics"] == f"statistics/data-statistics-{host}.json"
        document = json.loads((output / report["statistics"]).read_text())
        assert 0 < document["images"] == report["images_written"] < 24
        mine = {json.loads(line)["key"] for line in (output / report["images_list"]).read_text().splitlines()}
        records = all_records(output)
        assert _as_multisets(document) == _as_multisets(_statistics_of([records[key] for key in sorted(mine)]))
        written.update({key: records[key] for key in mine})
    assert sorted(p.name for p in (output / "statistics").iterdir()) == ["data-statistics-algo-1.json", "data-statistics-algo-2.json"]
    assert len(written) == 24  # the truncated image, quarantined by whichever instance owns it, is in neither document


def test_an_image_the_statistics_cannot_read_is_quarantined_not_written(dataset, tmp_path, monkeypatch):
    from containers.monitoring.statistics import StatisticsError, input_statistics
    from containers.processing import shards

    unreadable = jpeg_bytes(seed=77)
    dataset.image("odd.jpg", data=unreadable)

    def measure(data: bytes) -> dict:
        if data == unreadable:
            raise StatisticsError("not a readable photo (OSError: broken data stream)")
        return input_statistics(data)

    monkeypatch.setattr(shards, "input_statistics", measure)  # one process: workers would import their own
    manifest = dataset.manifest("m.manifest", [dataset.labelled("a.jpg"), dataset.line("odd.jpg")])
    report = run(dataset, [manifest], tmp_path / "out", workers=1)
    assert report["images_written"] == 1 and set(all_records(tmp_path / "out")) == {"a.jpg"}
    (quarantined,) = report["quarantined"]
    assert quarantined["reason"] == "the input statistics cannot be computed: not a readable photo (OSError: broken data stream) (odd.jpg)"
    assert json.loads((tmp_path / "out" / report["statistics"]).read_text())["images"] == 1
