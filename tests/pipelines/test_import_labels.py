"""`cardamage import-labels`: labels in any format -> a Ground Truth manifest that PrepareData reads as it read
the labels themselves, with every refusal reported."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from containers.processing.prepare_data import Options, prepare
from pipelines.cli import app
from tests.label_files import Labelled, labelstudio_task, write_coco, write_yolo
from tests.support import PREFIX, ROOT, Dataset, all_records

CONFIG = str(ROOT / "pipeline.yaml")
runner = CliRunner()


def test_a_manifest_from_coco_and_label_studio_trains_on_what_they_hold(tmp_path):
    data = Dataset(tmp_path / "data")
    labelled = []
    for i in range(5):
        data.image(f"cars/{i}.jpg", size=(64, 48))
        labelled.append(Labelled(f"cars/{i}.jpg", 64, 48, [("Gocuk", 2.5, 3, 20, 16), ("scratch", 30, 2, 40, 12)]))
    coco = write_coco(labelled, tmp_path / "coco.json")
    newer = labelstudio_task(1, Labelled("cars/0.jpg", 64, 48, [("scratch", 1, 1, 9, 9)]), PREFIX + "cars/0.jpg")
    rotated = labelstudio_task(2, Labelled("cars/1.jpg", 64, 48, [("dent", 1, 1, 9, 9)]), PREFIX + "cars/1.jpg")
    rotated["annotations"][0]["result"][0]["value"]["rotation"] = 45
    studio = tmp_path / "export.json"
    studio.write_text(json.dumps([newer, rotated]))
    output = tmp_path / "out" / "imported.manifest"

    result = runner.invoke(
        app,
        [
            "import-labels",
            str(coco),
            str(studio),
            "--images-prefix",
            PREFIX,
            "--class-map",
            "gocuk=dent",
            "--output",
            str(output),
            "--config",
            CONFIG,
        ],
    )
    assert result.exit_code == 0, result.output
    summary = f"5 image(s) written to {output} from 7 record(s): 1 quarantined, 1 merged (report: {output}.report.json)"
    assert result.stdout.splitlines()[-1] == summary
    assert "task id 2): annotation 20 result 0 is rotated by 45 degrees" in result.stderr
    report = json.loads((tmp_path / "out" / "imported.manifest.report.json").read_text())
    assert [entry["format"] for entry in report["inputs"]] == ["coco", "labelstudio"]
    assert report["records_read"] == 7

    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert [line["source-ref"] for line in lines] == [PREFIX + f"cars/{i}.jpg" for i in range(5)]
    assert lines[0]["labels-metadata"]["class-map"] == {"0": "dent", "1": "scratch"}
    assert lines[0]["labels"]["annotations"] == [{"class_id": 1, "left": 1.0, "top": 1.0, "width": 8.0, "height": 8.0}]

    def boxes(inputs, folder, **extra):
        options = Options(inputs, data.images, PREFIX, tmp_path / folder, classes=["dent", "scratch"], workers=1, **extra)
        prepare(options)
        return {key: (record["names"], record["boxes"]) for key, record in all_records(tmp_path / folder).items()}

    direct = boxes([coco, studio], "direct", class_map={"gocuk": "dent"}, max_invalid_fraction=1.0)
    assert boxes([output], "from-manifest") == direct


def test_yolo_without_the_images_folder_is_refused_with_the_reason_and_exit_1(tmp_path):
    data = Dataset(tmp_path / "data")
    data.image("a.jpg")
    folder = write_yolo([Labelled("a.jpg", 64, 48, [("dent", 1, 1, 9, 9)])], tmp_path / "yolo", ["dent", "scratch"])
    output = tmp_path / "yolo.manifest"
    arguments = ["import-labels", str(folder), "--images-prefix", PREFIX, "--output", str(output), "--config", CONFIG]
    result = runner.invoke(app, arguments)
    assert result.exit_code == 1
    assert "YOLO labels do not say the image's extension: give the images folder" in result.stderr
    result = runner.invoke(app, [*arguments, "--images", str(data.images)])
    assert result.exit_code == 0, result.output
    (line,) = [json.loads(text) for text in output.read_text().splitlines()]
    assert line["labels"]["image_size"] == [{"width": 64, "height": 48, "depth": 3}]


def test_an_undetectable_input_is_a_usage_error_naming_it(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    result = runner.invoke(app, ["import-labels", str(path), "--images-prefix", PREFIX, "--output", str(tmp_path / "x"), "--config", CONFIG])
    assert result.exit_code == 2
    assert "notes.txt: cannot tell the label format" in result.output
