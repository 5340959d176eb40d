"""`cardamage run` stages labels into the local S3 as a team uploads them to S3, and trains on a snapshot of all
labelled data there, taken by the trigger function's own code."""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import pytest

from containers.processing.prepare_data import Options, prepare
from pipelines.config import load_config
from pipelines.local.runner import Inputs, sample_inputs, stage
from pipelines.local.storage import LocalS3
from tests.label_files import from_manifest, write_coco
from tests.support import ROOT, SAMPLE_PREFIX


def snapshot(s3: LocalS3, inputs_uri: str) -> dict:
    return json.loads(s3.path(inputs_uri.removesuffix("inputs/") + "snapshot.json").read_text())


def prepare_staged(s3: LocalS3, staged: dict[str, str], output, **options) -> dict:
    """PrepareData on what a run would read: the snapshot's inputs and the images under ImagesS3Prefix; no record may
    be quarantined."""
    images, labels = staged["ImagesS3Prefix"], s3.path(staged["InputManifestUri"])
    return prepare(Options([labels], s3.path(images), images, output, classes=["dent", "scratch"], workers=1, max_invalid_fraction=0.0, **options))


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
    # S3 dates uploads to the second, and the newest upload is last in the snapshot: the sample was staged earlier.
    for staged in s3.path("s3://local-data/labels/").rglob("*"):
        os.utime(staged, (staged.stat().st_mtime - 60, staged.stat().st_mtime - 60))
    export = write_coco(labelled, tmp_path / "batch-3.coco.json")
    second = stage(Inputs([export], sample.images, sample.images_prefix), s3, config)
    assert second["InputManifestUri"] != first["InputManifestUri"]
    document = snapshot(s3, second["InputManifestUri"])
    assert [entry["key"].rsplit("/", 1)[-1] for entry in document["inputs"]][-1] == "batch-3.coco.json"
    # Each input listed with the hash of its content, as staged (the sample's manifests, then the export).
    assert [entry["sha256"] for entry in document["inputs"]] == [
        hashlib.sha256(path.read_bytes()).hexdigest() for path in (*sample.manifests, export)
    ]

    # What PrepareData sees there: every input, the COCO export's labelling winning for its five images.
    report = prepare_staged(s3, second, tmp_path / "prepared", class_map={"rayure": "scratch"})
    assert sorted(entry["format"] for entry in report["inputs"]) == ["coco", "groundtruth", "groundtruth"]
    assert report["records_read"] == 49 + 5 and len(report["merged"]) == 1 + 5
    by_coco = [entry for entry in report["merged"] if os.path.basename(entry["kept"]["manifest"]) == "batch-3.coco.json"]
    assert {entry["key"] for entry in by_coco} == {image.key for image in labelled}


def test_prepare_data_runs_here_on_two_instances_that_share_the_images_and_agree(tmp_path):
    """ProcessingInstanceCount=2 runs PrepareData as algo-1 and algo-2, each in its own sandbox with SageMaker's
    resource config; together they write every image of the sample once."""
    from pipelines.local.runner import local_definition, run_local
    from tests.support import all_records, step_named

    config = load_config(ROOT / "pipeline.yaml", profile="local")
    definition = local_definition(config)
    definition["Steps"] = [step_named(definition, "PrepareData")]
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


def test_a_run_reads_the_images_of_every_labelled_input_staged_and_stops_early_when_no_prefix_holds_them(tmp_path):
    """A first run with --images-prefix s3://bkt/x/, then a review batch's export whose images are under
    s3://bkt/x/review/<batch>/ (review.json's images_prefix): the second run trains on both, so it reads the images
    through their common root; none is quarantined for its prefix. A prefix in another bucket has no common root:
    the run stops before any job, exit 2, naming the earlier prefix and what works."""
    from pipelines.local.expressions import DefinitionProblem
    from tests.label_files import write_groundtruth, write_labelstudio

    config = load_config(ROOT / "pipeline.yaml", profile="local")
    state = tmp_path / "state"
    s3 = LocalS3(state / "s3")
    sample = sample_inputs(config)
    first = from_manifest(sample.manifests[0], SAMPLE_PREFIX)
    batch_1 = write_groundtruth(first, tmp_path / "batch-1.manifest", "s3://bkt/x/", ["dent", "scratch"])
    assert stage(Inputs([batch_1], sample.images, "s3://bkt/x/"), s3, config)["ImagesS3Prefix"] == "s3://bkt/x/"

    reviewed = from_manifest(sample.manifests[1], SAMPLE_PREFIX)[:4]
    batch_images = tmp_path / "review-batch" / "images"
    for image in reviewed:
        (batch_images / image.key).parent.mkdir(parents=True, exist_ok=True)
        (batch_images / image.key).write_bytes((sample.images / image.key).read_bytes())
    export = write_labelstudio(reviewed, tmp_path / "export.json", "s3://bkt/x/review/20261207-1/")
    second = stage(Inputs([export], batch_images, "s3://bkt/x/review/20261207-1/"), s3, config)
    assert second["ImagesS3Prefix"] == "s3://bkt/x/"
    report = prepare_staged(s3, second, tmp_path / "prepared")
    assert report["quarantined"] == [] and report["records_read"] == len(first) + 4
    assert report["images_written"] == len({image.key for image in first}) + 4

    other = write_groundtruth(reviewed, tmp_path / "elsewhere.manifest", "s3://other-bkt/y/", ["dent", "scratch"])
    (labels,) = [p.name for p in s3.path("s3://local-data/labels/").iterdir() if p.name.startswith("batch-1-")]
    wanted = (
        rf"--images-prefix s3://other-bkt/y/ is in another bucket than the images of the labels already staged in {state} "
        rf"\(labels/{labels}/ reads s3://bkt/x/\); a run trains on every labelled input staged, through one images prefix\. "
        r"Give this data a state folder of its own \(--state-dir DIR\), or put its images beside the others \(--images-prefix s3://bkt/x/<folder>/\)"
    )
    with pytest.raises(DefinitionProblem, match=wanted):
        stage(Inputs([other], sample.images, "s3://other-bkt/y/"), s3, config)
    assert not any(p.name.startswith("elsewhere-") for p in s3.path("s3://local-data/labels/").iterdir())  # nothing staged

    # The command line: exit 2, before any job or execution record.
    from typer.testing import CliRunner

    from pipelines.cli import app
    from pipelines.local.state import State

    result = CliRunner().invoke(
        app,
        ["run", "--state-dir", str(state), "--manifest", str(other), "--images", str(sample.images), "--images-prefix", "s3://other-bkt/y/"],
    )
    assert result.exit_code == 2 and "is in another bucket than the images of the labels already staged" in result.output
    assert State(state).executions(5) == []

    # Started over (the labels deleted), the other bucket's prefix is the only one.
    shutil.rmtree(s3.path("s3://local-data/labels/"))
    assert stage(Inputs([other], sample.images, "s3://other-bkt/y/"), s3, config)["ImagesS3Prefix"] == "s3://other-bkt/y/"
