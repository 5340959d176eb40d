"""The real car damage data in ../shared: what the TFRecords hold is exactly what the manifests say."""

from __future__ import annotations

import json

import numpy as np
import pytest

from containers.processing.prepare_data import Options, prepare
from tests.support import SAMPLE_PREFIX, all_records

pytestmark = pytest.mark.slow


def test_records_read_back_give_exactly_the_manifest_boxes(shared_data, tmp_path):
    manifests = sorted(shared_data.glob("*/manifests/*.manifest"))
    assert len(manifests) == 3
    report = prepare(
        Options(
            manifests=manifests,
            images=shared_data,
            images_prefix=SAMPLE_PREFIX,
            output=tmp_path / "out",
            classes=["dent", "scratch"],
            workers=2,
            max_invalid_fraction=0.0,
        )
    )
    # Read the manifests independently of the program's parser.
    expected = {}
    for manifest in manifests:
        for line in manifest.read_text().splitlines():
            record = json.loads(line)
            size = record["car-damage"]["image_size"][0]
            w, h = size["width"], size["height"]
            boxes = [
                (a["class_id"] + 1, a["left"] / w, a["top"] / h, (a["left"] + a["width"]) / w, (a["top"] + a["height"]) / h)
                for a in record["car-damage"]["annotations"]
            ]
            expected[record["source-ref"].removeprefix(SAMPLE_PREFIX)] = boxes

    assert report["lines_read"] == len(expected) == 1310
    assert report["quarantined"] == [] and report["merged"] == []
    written = all_records(tmp_path / "out")
    assert written.keys() == expected.keys()
    for key, boxes in expected.items():
        np.testing.assert_allclose(written[key]["boxes"], boxes, rtol=1e-6, err_msg=key)
        assert written[key]["names"] == [("dent", "scratch")[label - 1] for label, *_ in boxes]
    validation = report["splits"]["validation"]
    assert 0.15 < validation["images_total"] / report["images_written"] < 0.25
    assert min(validation["images"].values()) > 0


@pytest.mark.parametrize("fmt", ["coco", "voc", "yolo", "labelstudio", "cvat", "via"])
def test_a_real_manifest_written_in_each_format_gives_the_same_records(shared_data, tmp_path, fmt):
    """The round trip: a shared manifest written out as `fmt` and read back through PrepareData holds the same
    boxes, within a pixel, as the manifest read directly."""
    from tests.label_files import from_manifest, write_coco, write_cvat, write_labelstudio, write_via, write_voc, write_yolo

    manifest = shared_data / "lensor_vehicle_damage" / "manifests" / "val.manifest"
    labelled = from_manifest(manifest, SAMPLE_PREFIX)
    classes = ["dent", "scratch"]
    written = {
        "coco": lambda: write_coco(labelled, tmp_path / "coco.json", classes),
        "voc": lambda: write_voc(labelled, tmp_path / "voc"),
        "yolo": lambda: write_yolo(labelled, tmp_path / "yolo", classes),
        "labelstudio": lambda: write_labelstudio(labelled, tmp_path / "export.json", SAMPLE_PREFIX),
        "cvat": lambda: write_cvat(labelled, tmp_path / "annotations.xml", classes),
        "via": lambda: write_via(labelled, tmp_path / "via.json"),
    }[fmt]()

    def prepared(inputs, output):
        options = Options(inputs, shared_data, SAMPLE_PREFIX, output, classes=classes, workers=2, shards=1, max_invalid_fraction=0.0)
        return prepare(options), all_records(output)

    direct_report, direct = prepared([manifest], tmp_path / "direct")
    report, records = prepared([written], tmp_path / fmt)
    assert report["records_read"] == direct_report["records_read"] == len(labelled) == 134
    assert report["quarantined"] == [] and report["dropped_boxes"] == {}
    assert records.keys() == direct.keys()
    for key, record in records.items():
        assert record["split"] == direct[key]["split"] and record["names"] == direct[key]["names"], key
        width, height = record["size"]
        pixels = np.asarray([b[1:] for b in record["boxes"]]).reshape(-1, 4) * [width, height, width, height]
        wanted = np.asarray([b[1:] for b in direct[key]["boxes"]]).reshape(-1, 4) * [width, height, width, height]
        np.testing.assert_allclose(pixels, wanted, atol=1.0, err_msg=key)
