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
