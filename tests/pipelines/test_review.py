"""`cardamage review`: the uncertainty measure, what is left out (labelled, sent again, near-duplicates), the
strategies, the batch's file formats, and the command on a local state with captured answers."""

from __future__ import annotations

import hashlib
import io
import json
import re
from datetime import UTC, datetime
from xml.etree import ElementTree

import pytest
from PIL import Image
from typer.testing import CliRunner

from pipelines import review
from pipelines.cli.app import app
from pipelines.config import load_config
from pipelines.local.capture import DataCapture, capture_line
from pipelines.local.runner import LOCAL_VALUES
from pipelines.local.state import State
from pipelines.local.storage import LocalS3
from tests.review_support import answer, capture_answers, corners, detection
from tests.support import ROOT, SAMPLE

PHOTOS = sorted((SAMPLE / "images").rglob("*.jpg"))


def photo(data: bytes, detections=(), source="capture.jsonl:1", size=None) -> review.Captured:
    """A captured photo whose answer is for its own size (the endpoint's), unless `size` says otherwise."""
    if size is None:
        with Image.open(io.BytesIO(data)) as image:
            size = image.size
    return review.Captured(source, data, "image/jpeg", tuple(detections), size[0], size[1], "2026-12-01T10:00:00Z")


def test_uncertainty_is_the_ambiguous_share_or_the_class_disagreement():
    assert review.uncertainty([]) == (0.0, "no detections")
    assert review.uncertainty([detection("dent", 0.9), detection("scratch", 0.95, (0.6, 0.6, 0.9, 0.9))])[0] == 0.0
    half, why = review.uncertainty([detection("dent", 0.3), detection("dent", 0.9, (0.6, 0.6, 0.9, 0.9))])
    assert half == 0.5 and why == "1 of 2 detection(s) scored in [0.2, 0.6)"
    # A dent and a scratch in one place, nearly as sure of both: the class disagreement wins.
    torn, why = review.uncertainty([detection("dent", 0.9), detection("scratch", 0.81, (0.12, 0.1, 0.5, 0.52))])
    assert torn == pytest.approx(0.9) and "dent 0.90 and scratch 0.81 overlap (IoU 0.9" in why
    apart = review.uncertainty([detection("dent", 0.9), detection("scratch", 0.81, (0.6, 0.6, 0.9, 0.9))])
    assert apart[0] == 0.0  # different classes in different places agree


def test_captured_records_that_are_not_answered_photos_are_reported_with_a_reason():
    good = capture_line(PHOTOS[0].read_bytes(), "image/jpeg", answer(), "application/json", when=datetime(2026, 12, 1, tzinfo=UTC), event_id="a")
    as_json = capture_line(
        b'{"instances": []}', "application/json", answer(), "application/json", when=datetime(2026, 12, 1, tzinfo=UTC), event_id="b"
    )
    broken = {"captureData": {"endpointInput": {"encoding": "BASE64", "data": "not base64!"}}}
    old = capture_line(PHOTOS[1].read_bytes(), "image/jpeg", answer(), "application/json", when=datetime(2026, 1, 1, tzinfo=UTC), event_id="c")
    photos, unusable = review.captured_photos([("f", 1, good), ("f", 2, as_json), ("f", 3, broken), ("f", 4, old)], since="2026-06-01")
    assert [p.source for p in photos] == ["f:1"] and photos[0].width == 64 and photos[0].detections[0]["class"] == "dent"
    assert [where for where, _ in unusable] == ["f:2", "f:3"]
    assert "the request is application/json, not a photo" in unusable[0][1] and "not a captured photo and answer" in unusable[1][1]


def recompressed(data: bytes, quality: int) -> bytes:
    out = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").save(out, format="JPEG", quality=quality)
    return out.getvalue()


def test_the_batch_leaves_out_labelled_photos_repeats_and_near_duplicates():
    first, second, third = (path.read_bytes() for path in PHOTOS[:3])
    photos = [
        photo(first, [detection("dent", 0.3), detection("dent", 0.9, (0.6, 0.6, 0.9, 0.9))], "c:1"),
        photo(first, [detection("dent", 0.3)], "c:2"),  # the same photo sent again
        photo(recompressed(first, 60), [detection("dent", 0.35), detection("dent", 0.3)], "c:3"),  # a near-duplicate, more uncertain
        photo(second, [detection("dent", 0.9)], "c:4"),
        photo(third, [detection("dent", 0.5)], "c:5"),
    ]
    selection = review.select(photos, labelled={hashlib.sha256(third).hexdigest()}, count=5)
    assert [(scored.photo.source, why) for scored, why in selection.picked] == [("c:3", "uncertain"), ("c:4", "uncertain")]
    assert selection.skipped == {"sent again": 1, "near-duplicate": 1, "already labelled": 1}
    # Every candidate is accounted for: picked, or left out with a reason.
    assert len(selection.picked) + sum(selection.skipped.values()) == len(photos)


def test_strategies_pick_the_least_sure_at_random_or_a_stated_mix():
    photos = [photo(path.read_bytes(), [detection("dent", 0.2 + 0.05 * i)] * (i % 3 + 1), f"c:{i}") for i, path in enumerate(PHOTOS[:12])]
    uncertain = review.select(photos, set(), 4, "uncertain")
    assert all(why == "uncertain" for _, why in uncertain.picked)
    scores = [scored.score for scored, _ in uncertain.picked]
    assert scores == sorted(scores, reverse=True)
    mixed = review.select(photos, set(), 4, "mixed", seed=7)
    assert [why for _, why in mixed.picked] == ["uncertain"] * 3 + ["random"]
    assert review.select(photos, set(), 4, "random", seed=7).picked == review.select(photos, set(), 4, "random", seed=7).picked
    with pytest.raises(ValueError, match="strategy must be one of"):
        review.select(photos, set(), 4, "loudest")


def test_the_batch_files_speak_label_studio_and_ground_truth(tmp_path):
    scored = review.Scored(photo(PHOTOS[0].read_bytes(), [detection("dent", 0.4, (0.1, 0.2, 0.5, 0.6), (200, 100))], size=(200, 100)), 0.5, "why")
    task = review.label_studio_task("s3://bucket/images/review/x/a.jpg", scored, "car-damage-models/3")
    (result,) = task["predictions"][0]["result"]
    assert task["data"] == {"image": "s3://bucket/images/review/x/a.jpg"} and task["predictions"][0]["model_version"] == "car-damage-models/3"
    assert result["value"]["x"] == pytest.approx(10) and result["value"]["y"] == pytest.approx(20)
    assert result["value"]["width"] == pytest.approx(40) and result["value"]["height"] == pytest.approx(40)
    assert (result["from_name"], result["to_name"], result["type"], result["value"]["rectanglelabels"]) == (
        "label",
        "image",
        "rectanglelabels",
        ["dent"],
    )
    line = review.adjustment_line("s3://b/a.jpg", scored, ["dent", "scratch"], "batch")
    assert line["review"]["annotations"] == [{"class_id": 0, "left": 20, "top": 20, "width": 80, "height": 40}]
    assert line["review-metadata"]["class-map"] == {"0": "dent", "1": "scratch"} and line["review-metadata"]["human-annotated"] == "no"
    config = ElementTree.fromstring(review.labeling_config(["dent", "scratch"]))
    labels = config.find("RectangleLabels")
    assert labels.get("toName") == config.find("Image").get("name") and [label.get("value") for label in labels] == ["dent", "scratch"]


def test_review_writes_a_batch_from_the_local_endpoints_captures(tmp_path):
    config = load_config(ROOT / "pipeline.yaml", profile="local")
    state_dir = tmp_path / "state"
    capture_answers(config, state_dir, PHOTOS[:4])
    state, s3 = State(state_dir), LocalS3(state_dir / "s3")
    DataCapture(s3, str(config.data_capture(LOCAL_VALUES["ArtifactBucket"])), config.endpoint_name, 100).record(
        b'{"not": "a photo"}', "application/json", answer(), "application/json"
    )
    # An execution that prepared (and so labelled) the first photo.
    prepared = "s3://local-artifacts/car-damage-pipeline/e1/prepared-data"
    listing = s3.path(prepared) / "images.jsonl"
    listing.parent.mkdir(parents=True)
    listing.write_text(json.dumps({"key": "a.jpg", "sha256": hashlib.sha256(PHOTOS[0].read_bytes()).hexdigest(), "split": "train"}) + "\n")
    state.start_execution("e1", config.pipeline_name, {})

    out = tmp_path / "batch"
    result = CliRunner().invoke(app, ["review", "--local", "--state-dir", str(state_dir), "--count", "2", "--output", str(out)])
    assert result.exit_code == 0, result.output
    document = json.loads((out / "review.json").read_text())
    assert len(document["images"]) == 2 and document["skipped"] == {"already labelled": 1}
    assert document["images_prefix"].startswith("s3://local-data/images/review/") and len(document["unusable"]) == 1
    assert [entry["score"] for entry in document["images"]] == sorted((entry["score"] for entry in document["images"]), reverse=True)
    tasks = json.loads((out / "tasks.json").read_text())
    for task, entry in zip(tasks, document["images"], strict=True):
        assert task["data"]["image"] == document["images_prefix"] + entry["image"]
        data = (out / "images" / entry["image"]).read_bytes()  # a private copy of a captured photo, named after it
        assert entry["captured_sha256"] in [hashlib.sha256(path.read_bytes()).hexdigest() for path in PHOTOS[1:4]]
        assert entry["image"].startswith(entry["captured_sha256"][:20]) and entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["reason"].startswith("uncertain: ")
    assert len((out / "adjustment.manifest").read_text().splitlines()) == 2
    assert (out / "contact-sheet.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert ElementTree.fromstring((out / "labeling-config.xml").read_text()).tag == "View"
    # Four photos answered (the JSON request is no photo): two picked, one labelled already, one unusable line.
    header = result.stdout.splitlines()[0]
    captures = re.escape(str(config.data_capture(LOCAL_VALUES["ArtifactBucket"])))
    counts = r"2 photo\(s\) of 4 answered"
    assert re.fullmatch(rf"review batch \d{{8}}T\d{{6}}Z: {counts} in {captures} \(1 already labelled; 1 unusable\)", header), header


def test_a_corrected_export_of_the_batch_is_what_prepare_data_trains_on(tmp_path):
    """The person's part, scripted: keep the first box of each task, move it, drop the rest, add a scratch; the
    export (Label Studio's JSON, tasks with annotations) goes through PrepareData with the batch's images."""
    from containers.processing.prepare_data import Options, prepare
    from tests.support import all_records

    picked = []
    for index, path in enumerate(PHOTOS[:3]):
        with Image.open(path) as image:
            size = image.size
        found = [detection("dent", 0.4, (0.1, 0.1, 0.4, 0.4), size), detection("scratch", 0.3, (0.5, 0.5, 0.9, 0.8), size)]
        picked.append((review.Scored(photo(path.read_bytes(), found, f"c:{index}", size), 0.5, "why"), "uncertain"))
    out = tmp_path / "batch"
    document = review.write_batch(out, review.Selection(picked), "s3://data/images/review/b1/", ["dent", "scratch"], "m/1", "b1")
    tasks = json.loads((out / "tasks.json").read_text())
    expected = {}
    for number, task in enumerate(tasks, 1):
        first = dict(task["predictions"][0]["result"][0])
        moved = {**first["value"], "x": first["value"]["x"] + 5}
        added = {**first, "id": "new", "value": {**moved, "y": 60.0, "height": 20.0, "rectanglelabels": ["scratch"]}}
        task["id"], task["annotations"] = number, [{"id": number, "result": [{**first, "value": moved}, added]}]
        key = task["data"]["image"].removeprefix(document["images_prefix"])
        expected[key] = sorted((label, *corners(v)) for label, v in ((1, moved), (2, added["value"])))
    export = tmp_path / "export.json"
    export.write_text(json.dumps(tasks))

    options = Options(
        manifests=[export], images=out / "images", images_prefix=document["images_prefix"], output=tmp_path / "prepared",
        classes=["dent", "scratch"], validation_fraction=0.0, shards=1, workers=1,
    )  # fmt: skip
    report = prepare(options)
    assert report["images_written"] == 3 and report["quarantined"] == []
    found = {
        key: sorted((label, *(round(c, 4) for c in corners)) for label, *corners in record["boxes"])
        for key, record in all_records(tmp_path / "prepared").items()
    }
    assert found == expected


@pytest.mark.parametrize(("since", "expected"), [("2026-13-01", 2), ("yesterday", 2), ("2026-11-30", 0), ("2026-11-30T12:00:00+01:00", 0)])
def test_since_takes_iso_dates_and_refuses_anything_else(tmp_path, since, expected):
    state_dir = tmp_path / "state"
    State(state_dir)
    result = CliRunner().invoke(app, ["review", "--local", "--state-dir", str(state_dir), "--output", str(tmp_path / "out"), "--since", since])
    assert result.exit_code == expected, result.output
    if expected:
        assert "--since must be an ISO 8601 date or time" in result.output


def test_on_aws_review_reads_s3_captures_and_puts_the_batch_under_the_data_buckets_images(tmp_path, monkeypatch):
    """The same command on AWS (moto): captures under the artifact bucket's data-capture prefix, the labelled set
    from the executions' prepared data, the photos under s3://<data>/images/review/<batch>/, the files at --output."""
    from tests.aws_fakes import REGION, client, isolate_aws, moto_server

    data, artifacts = "cardamage-data", "cardamage-artifacts"
    config_file = tmp_path / "pipeline.yaml"
    config_file.write_text(f"project:\n  name: car-damage\naws:\n  region: {REGION}\n  data_bucket: {data}\n  artifact_bucket: {artifacts}\n")
    config = load_config(config_file)
    with moto_server() as server:
        server.reset()  # moto's backends live in the process: another test's server may have left buckets
        isolate_aws(monkeypatch, tmp_path)
        s3 = client("s3", server.url)
        for bucket in (data, artifacts):
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        capture_prefix = config.data_capture(artifacts)
        for index, path in enumerate(PHOTOS[:3]):
            with Image.open(path) as image:
                size = image.size
            found = [detection("dent", 0.3 + 0.1 * index, size=size)]
            line = capture_line(
                path.read_bytes(),
                "image/jpeg",
                answer(found, size),
                "application/json",
                when=datetime(2026, 12, 1, 10, tzinfo=UTC),
                event_id=str(index),
            )
            key = f"{capture_prefix.key}{config.endpoint_name}/AllTraffic/2026/12/01/10/00-0{index}-000-{index}.jsonl"
            s3.put_object(Bucket=artifacts, Key=key, Body=json.dumps(line).encode() + b"\n")
        listing = json.dumps({"key": "a.jpg", "sha256": hashlib.sha256(PHOTOS[0].read_bytes()).hexdigest(), "split": "train"})
        s3.put_object(Bucket=artifacts, Key=f"{config.pipeline_name}/exec-1/prepared-data/images.jsonl", Body=listing.encode())

        result = CliRunner().invoke(
            app, ["review", "--config", str(config_file), "--endpoint-url", server.url, "--output", f"s3://{artifacts}/reviews/first/", "-n", "5"]
        )
        assert result.exit_code == 0, result.output
        document = json.loads(s3.get_object(Bucket=artifacts, Key="reviews/first/review.json")["Body"].read())
        assert document["images_prefix"].startswith(f"s3://{data}/images/review/") and document["skipped"] == {"already labelled": 1}
        assert document["model_version"] == "unknown"  # no endpoint serves a package in this account
        prefix = document["images_prefix"].removeprefix(f"s3://{data}/")
        stored = {item["Key"].removeprefix(prefix) for item in s3.list_objects_v2(Bucket=data, Prefix=prefix)["Contents"]}
        assert stored == {entry["image"] for entry in document["images"]} and len(stored) == 2
        tasks = json.loads(s3.get_object(Bucket=artifacts, Key="reviews/first/tasks.json")["Body"].read())
        assert sorted(task["data"]["image"] for task in tasks) == sorted(document["images_prefix"] + key for key in stored)
        files = {item["Key"] for item in s3.list_objects_v2(Bucket=artifacts, Prefix="reviews/first/")["Contents"]}
        assert files == {
            f"reviews/first/{name}" for name in ("tasks.json", "labeling-config.xml", "adjustment.manifest", "review.json", "contact-sheet.png")
        }


def test_an_output_that_is_not_an_s3_uri_is_refused_before_anything_is_read(tmp_path):
    state_dir = tmp_path / "state"
    State(state_dir)
    result = CliRunner().invoke(app, ["review", "--local", "--state-dir", str(state_dir), "--output", "s3://Not_A_Bucket/batch/"])
    assert result.exit_code == 2 and "--output 's3://Not_A_Bucket/batch/' is not an S3 URI" in result.output, result.output


def darkened(data: bytes, factor: float = 0.25) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        pixels = Image.eval(image.convert("RGB"), lambda value: int(value * factor))
    out = io.BytesIO()
    pixels.save(out, format="JPEG", quality=90)
    return out.getvalue()


@pytest.fixture(scope="module")
def data_baseline():
    """The data baseline of the sample's photos, as Evaluate writes it: each photo of the sample is one of its
    values, so none is beyond all of them as a darkened photo is."""
    from containers.monitoring import statistics

    return statistics.summarize([statistics.input_statistics(path.read_bytes()) for path in PHOTOS], "input")


def test_atypical_picks_the_photos_least_like_the_data_baseline_after_the_same_filtering(data_baseline):
    from containers.monitoring import statistics

    usual = [photo(path.read_bytes(), [detection("dent", 0.3)], f"c:{i}") for i, path in enumerate(PHOTOS[24:30])]
    dark = [photo(darkened(path.read_bytes()), [detection("dent", 0.9)], f"d:{i}") for i, path in enumerate(PHOTOS[30:33])]
    again = photo(recompressed(dark[1].data, 60), [detection("dent", 0.9)], "d:again")  # a near-duplicate of a dark one
    labelled = {dark[0].sha256}  # one dark photo is labelled already
    selection = review.select([*usual, *dark, again], labelled, 2, "atypical", baseline=data_baseline)
    assert sorted(scored.photo.source for scored, _ in selection.picked) == ["d:1", "d:2"]
    assert selection.skipped == {"already labelled": 1, "near-duplicate": 1}
    for scored, why in selection.picked:
        score, reason = statistics.atypicality(data_baseline, statistics.input_statistics(scored.photo.data))
        assert why == "atypical" and scored.score == pytest.approx(score) and scored.reason == reason
    scores = [scored.score for scored, _ in selection.picked]
    assert scores == sorted(scores, reverse=True) and scores[-1] > max(
        statistics.atypicality(data_baseline, statistics.input_statistics(p.data))[0] for p in usual
    )
    with pytest.raises(ValueError, match="strategy atypical needs the served package's data baseline"):
        review.select(usual, set(), 2, "atypical")


def test_mixed_takes_a_share_of_atypical_photos_when_the_package_has_a_data_baseline(data_baseline):
    candidates = [photo(path.read_bytes(), [detection("dent", 0.2 + 0.05 * i)] * (i % 3 + 1), f"c:{i}") for i, path in enumerate(PHOTOS[24:32])]
    candidates.append(photo(darkened(PHOTOS[32].read_bytes()), [detection("dent", 0.95)], "dark"))  # sure of itself, unlike the rest
    mixed = review.select(candidates, set(), 4, "mixed", seed=7, baseline=data_baseline)
    assert [why for _, why in mixed.picked] == ["uncertain", "uncertain", "atypical", "random"]
    assert mixed.picked[2][0].photo.source == "dark" and len({scored.photo.source for scored, _ in mixed.picked}) == 4
    without = review.select(candidates, set(), 4, "mixed", seed=7)
    assert [why for _, why in without.picked] == ["uncertain"] * 3 + ["random"]  # the old split


def test_review_atypical_reads_the_served_packages_data_baseline_here_or_refuses_without_one(tmp_path):
    from tests.pipelines.test_monitor_command import CONFIG, baseline_documents, photos, served_state

    window = [*photos(range(100, 106)), *photos(range(106, 108), factor=0.3)]
    state_dir, _ = served_state(tmp_path, baseline_documents(range(40)), window=window)
    arguments = ["review", "--local", "--state-dir", str(state_dir), "--config", str(CONFIG), "--count", "2"]
    result = CliRunner().invoke(app, [*arguments, "--strategy", "atypical", "--output", str(tmp_path / "batch")])
    assert result.exit_code == 0, result.output
    assert (
        "data baseline of car-damage-models/1: s3://local-artifacts/car-damage-pipeline/run-1/evaluation/data-baseline.json (40 photo(s))"
        in result.stdout
    )
    document = json.loads((tmp_path / "batch" / "review.json").read_text())
    dark = {hashlib.sha256(data).hexdigest() for data in window[6:]}
    assert {entry["captured_sha256"] for entry in document["images"]} == dark
    assert all(entry["reason"].startswith("atypical: ") and "of the baseline" in entry["reason"] for entry in document["images"])
    mixed = CliRunner().invoke(app, [*arguments[:-1], "4", "--strategy", "mixed", "--output", str(tmp_path / "mixed-batch")])
    assert mixed.exit_code == 0, mixed.output
    reasons = [entry["reason"].split(":")[0] for entry in json.loads((tmp_path / "mixed-batch" / "review.json").read_text())["images"]]
    assert reasons == ["uncertain", "uncertain", "atypical", "random"]

    bare, _ = served_state(tmp_path / "bare", {}, metrics_uri=None, window=window)
    arguments = ["review", "--local", "--state-dir", str(bare), "--config", str(CONFIG), "--count", "4"]
    refused = CliRunner().invoke(app, [*arguments, "--strategy", "atypical", "--output", str(tmp_path / "none")])
    assert (
        refused.exit_code == 2 and "--strategy atypical ranks photos against the served package's data baseline, and there is none" in refused.stderr
    )
    assert "it records neither DriftCheckBaselines nor an evaluation" in refused.stderr and not (tmp_path / "none").exists()
    mixed = CliRunner().invoke(app, [*arguments, "--strategy", "mixed", "--output", str(tmp_path / "mixed")])
    assert mixed.exit_code == 0, mixed.output
    assert "mixed picks 75% uncertain and 25% random, none atypical" in mixed.stderr
    reasons = [entry["reason"].split(":")[0] for entry in json.loads((tmp_path / "mixed" / "review.json").read_text())["images"]]
    assert reasons == ["uncertain"] * 3 + ["random"]


def test_on_aws_the_review_place_names_the_served_packages_recorded_data_baseline(tmp_path, monkeypatch, data_baseline):
    """On AWS (moto) the data baseline is the one the served package records (DriftCheckBaselines), read from S3;
    a package that records none is said, for `atypical` to refuse and `mixed` to fall back on."""
    from pipelines.backends.aws import AwsBackend
    from tests.aws_fakes import REGION, client, isolate_aws, moto_server
    from tests.containers.deploy.test_monitor_start import register, serve

    config_file = tmp_path / "pipeline.yaml"
    config_file.write_text(f"project:\n  name: car-damage\naws:\n  region: {REGION}\n  data_bucket: data\n  artifact_bucket: artifacts\n")
    uri = "s3://artifacts/car-damage-pipeline/exec-1/evaluation/data-baseline.json"
    with moto_server() as server:
        server.reset()
        isolate_aws(monkeypatch, tmp_path)
        s3, sagemaker = client("s3", server.url), client("sagemaker", server.url)
        s3.create_bucket(Bucket="artifacts", CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_object(Bucket="artifacts", Key=uri.removeprefix("s3://artifacts/"), Body=json.dumps(data_baseline).encode())
        sagemaker.create_model_package_group(ModelPackageGroupName="car-damage-models")
        recorded = {"ModelDataQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": uri}}}
        serve(sagemaker, "car-damage-endpoint", register(sagemaker, recorded), 1)
        place = AwsBackend(load_config(config_file), endpoint_url=server.url).review_place()
        assert place.data_baseline == uri and place.model_version == "car-damage-models/1"
        assert review.data_baseline(place.s3, place.data_baseline) == (data_baseline, "")

        server.reset()
        sagemaker.create_model_package_group(ModelPackageGroupName="car-damage-models")
        serve(sagemaker, "car-damage-endpoint", register(sagemaker, None), 1)
        place = AwsBackend(load_config(config_file), endpoint_url=server.url).review_place()
        assert place.data_baseline is None
        assert (
            place.no_baseline
            == "version 1 of car-damage-models, which car-damage-endpoint serves, records no data baseline (DriftCheckBaselines.ModelDataQuality)"
        )
