"""`cardamage run` stages labels into the local S3 as a team uploads them to S3, and trains on a snapshot of all
labelled data there, taken by the trigger function's own code."""

from __future__ import annotations

import json
import os
import time

from containers.processing.prepare_data import Options, prepare
from pipelines.config import load_config
from pipelines.local.runner import Inputs, sample_inputs, stage
from pipelines.local.storage import LocalS3
from tests.label_files import from_manifest, write_coco
from tests.support import ROOT, SAMPLE_PREFIX


def snapshot(s3: LocalS3, inputs_uri: str) -> dict:
    return json.loads(s3.path(inputs_uri.removesuffix("inputs/") + "snapshot.json").read_text())


def test_runs_train_on_every_labelled_input_staged_and_an_unchanged_input_keeps_its_snapshot(tmp_path):
    config = load_config(ROOT / "pipeline.yaml", profile="local")
    s3 = LocalS3(tmp_path / "s3")
    sample = sample_inputs(config)
    first = stage(sample, s3, config)
    assert stage(sample, s3, config) == first  # nothing new: the same snapshot, so the steps' cache keys hold
    document = snapshot(s3, first["InputManifestUri"])
    assert [entry["key"].rsplit("/", 1)[-1] for entry in document["inputs"]] == ["batch-1.manifest", "batch-2.manifest"]

    # A Label Studio team's next batch arrives as COCO: relabelled images of the sample, with one more class name.
    labelled = from_manifest(sample.manifests[0], SAMPLE_PREFIX)[:5]
    for image in labelled:
        image.boxes = [("Rayure", 1, 1, 30, 30)]
    time.sleep(1.1)  # S3 dates uploads to the second, and the newest upload is last in the snapshot
    export = write_coco(labelled, tmp_path / "batch-3.coco.json")
    second = stage(Inputs([export], sample.images, sample.images_prefix), s3, config)
    assert second["InputManifestUri"] != first["InputManifestUri"]
    document = snapshot(s3, second["InputManifestUri"])
    assert [entry["key"].rsplit("/", 1)[-1] for entry in document["inputs"]][-1] == "batch-3.coco.json"
    assert len(document["inputs"]) == 3 and all(len(entry["sha256"]) == 64 for entry in document["inputs"])

    # What PrepareData sees there: every input, the COCO export's labelling winning for its five images.
    options = Options(
        [s3.path(second["InputManifestUri"])],
        s3.path(second["ImagesS3Prefix"]),
        second["ImagesS3Prefix"],
        tmp_path / "prepared",
        classes=["dent", "scratch"],
        class_map={"rayure": "scratch"},
        workers=1,
        max_invalid_fraction=0.0,
    )
    report = prepare(options)
    assert sorted(entry["format"] for entry in report["inputs"]) == ["coco", "groundtruth", "groundtruth"]
    assert report["records_read"] == 49 + 5 and len(report["merged"]) == 1 + 5
    by_coco = [entry for entry in report["merged"] if os.path.basename(entry["kept"]["manifest"]) == "batch-3.coco.json"]
    assert {entry["key"] for entry in by_coco} == {image.key for image in labelled}


def test_prepare_data_runs_here_on_two_instances_that_share_the_images_and_agree(tmp_path):
    """ProcessingInstanceCount=2 runs PrepareData as algo-1 and algo-2, each in its own sandbox with SageMaker's
    resource config; together they write every image of the sample once."""
    from pipelines.local.runner import local_definition, run_local
    from tests.support import all_records

    config = load_config(ROOT / "pipeline.yaml", profile="local")
    definition = local_definition(config)
    definition["Steps"] = [step for step in definition["Steps"] if step["Name"] == "PrepareData"]
    result = run_local(config, tmp_path / "state", parameters={"ProcessingInstanceCount": "2"}, definition=definition)
    assert result.status == "Succeeded"
    (output,) = {path.parent for path in (tmp_path / "state" / "s3").rglob("report-algo-1.json")}
    reports = [json.loads((output / f"report-{host}.json").read_text()) for host in ("algo-1", "algo-2")]
    assert [r["settings"]["instance"] for r in reports] == [{"index": 0, "count": 2}, {"index": 1, "count": 2}]
    # The data report names the snapshot it was made from, and the snapshot lists the inputs the report hashed.
    snapshot_json = reports[0]["snapshot"]
    assert snapshot_json == reports[0]["labels_uri"].removesuffix("inputs/") + "snapshot.json"
    listed = {entry["sha256"] for entry in json.loads(LocalS3(tmp_path / "state" / "s3").path(snapshot_json).read_text())["inputs"]}
    assert {entry["sha256"] for entry in reports[0]["inputs"]} == listed
    assert sum(r["records_read"] for r in reports) == 49 and sum(len(r["merged"]) for r in reports) == 1
    records = all_records(output)
    assert len(records) == 48 == sum(r["images_written"] for r in reports)
