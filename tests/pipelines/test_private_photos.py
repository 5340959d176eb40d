"""Customers' photos stay private (issue 21, section 6): a review batch holds the captured photos without their
metadata, turned upright as the endpoint turned them, and a photo labelled from a batch is still known when it is
captured again; on this machine the capture files and the batch folder are their owner's alone."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat

from PIL import Image, ImageChops, ImageOps, PngImagePlugin
from typer.testing import CliRunner

from containers.inference.inference import prepare_image
from pipelines import review
from pipelines.cli.app import app
from pipelines.config import load_config
from pipelines.local.capture import DataCapture
from pipelines.local.runner import LOCAL_VALUES
from pipelines.local.state import State
from pipelines.local.storage import LocalS3
from tests.review_support import answer, capture_answers, detection
from tests.support import ROOT, SAMPLE

ORIENTATION, GPS_IFD, MAKE = 0x0112, 0x8825, 0x010F
RED = (200, 0, 0)


def gps_photo() -> bytes:
    """A phone's JPEG: stored 96x48 with a red block at its stored top-left, EXIF orientation 6 (shown turned a
    quarter clockwise, 48x96), a GPS position, the camera's make and a comment."""
    stored = Image.new("RGB", (96, 48), "white")
    stored.paste(RED, (0, 0, 32, 16))
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    exif[MAKE] = "PhoneMaker"
    exif.get_ifd(GPS_IFD).update({1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)})
    out = io.BytesIO()
    stored.save(out, format="JPEG", quality=95, exif=exif, comment=b"12 rue des Lilas")
    data = out.getvalue()
    with Image.open(io.BytesIO(data)) as image:
        assert image.getexif().get_ifd(GPS_IFD)[1] == "N" and image.info["comment"]  # what the test removes is there
    return data


def capture(state_dir, config, data: bytes) -> None:
    """The local endpoint's capture of `data` and its answer: a dent on the red block, in the view the handler
    answers in (prepare_image turns the photo upright first)."""
    seen = prepare_image(data)
    with Image.open(io.BytesIO(seen.data)) as image:
        away = ImageChops.difference(image.convert("RGB"), Image.new("RGB", image.size, "white")).convert("L")
        red = away.point(lambda value: 255 if value > 60 else 0).getbbox()  # not white, past JPEG's ringing
    box = (red[0] / seen.width, red[1] / seen.height, red[2] / seen.width, red[3] / seen.height)
    found = [detection("dent", 0.4, box, (seen.width, seen.height))]
    DataCapture(LocalS3(state_dir / "s3"), str(config.data_capture(LOCAL_VALUES["ArtifactBucket"])), config.endpoint_name, 100).record(
        data, "image/jpeg", answer(found, (seen.width, seen.height)), "application/json"
    )


def run_review(state_dir, output):
    result = CliRunner().invoke(app, ["review", "--local", "--state-dir", str(state_dir), "--output", str(output)])
    assert result.exit_code == 0, result.output
    return json.loads((output / "review.json").read_text())


def test_a_photo_with_gps_exif_comes_out_of_review_without_it_upright_and_still_known_when_captured_again(tmp_path):
    from containers.processing.prepare_data import Options, prepare

    config = load_config(ROOT / "pipeline.yaml", profile="local")
    state_dir = tmp_path / "state"
    State(state_dir)
    s3 = LocalS3(state_dir / "s3")
    original = gps_photo()
    capture(state_dir, config, original)

    batch = tmp_path / "batch"
    document = run_review(state_dir, batch)
    (entry,) = document["images"]
    copy = (batch / "images" / entry["image"]).read_bytes()
    assert b"Exif\x00\x00" not in copy and b"PhoneMaker" not in copy and b"Lilas" not in copy
    with Image.open(io.BytesIO(copy)) as written, Image.open(io.BytesIO(original)) as captured:
        assert written.format == "JPEG" and not written.getexif() and not {"exif", "comment", "icc_profile"} & set(written.info)
        upright = ImageOps.exif_transpose(captured)
        assert written.size == upright.size == (48, 96)
        difference = ImageChops.difference(written.convert("RGB"), upright.convert("RGB"))
        assert max(high for _, high in difference.getextrema()) < 40  # the same pixels, upright, but for JPEG noise
        # The model's box, as Label Studio gets it, lies on the red block of the pixels written.
        (task,) = json.loads((batch / "tasks.json").read_text())
        value = task["predictions"][0]["result"][0]["value"]
        left, top = value["x"] * written.width / 100, value["y"] * written.height / 100
        right, bottom = left + value["width"] * written.width / 100, top + value["height"] * written.height / 100
        inside = written.convert("RGB").crop((round(left) + 2, round(top) + 2, round(right) - 2, round(bottom) - 2))
        assert all(abs(channel - expected) < 30 for channel, expected in zip(inside.resize((1, 1)).getpixel((0, 0)), RED, strict=True))
    # The copy under the images prefix (what Label Studio and the next execution read) is the same private copy.
    assert s3.path(document["images_prefix"] + entry["image"]).read_bytes() == copy
    assert entry["captured_sha256"] == hashlib.sha256(original).hexdigest() and entry["sha256"] == hashlib.sha256(copy).hexdigest()

    # A person labels the batch; an execution prepares it (PrepareData's images.jsonl lists the copy's hash).
    tasks = json.loads((batch / "tasks.json").read_text())
    for number, task in enumerate(tasks, 1):
        task["id"], task["annotations"] = number, [{"id": number, "result": task["predictions"][0]["result"]}]
    export = tmp_path / "export.json"
    export.write_text(json.dumps(tasks))
    images_prefix = document["images_prefix"].split("review/", 1)[0]  # the prefix executions read
    prepared = s3.path(f"s3://{LOCAL_VALUES['ArtifactBucket']}/{config.pipeline_name}/prepared-data/e1")
    options = Options(
        manifests=[export], images=s3.path(images_prefix), images_prefix=images_prefix, output=prepared,
        classes=["dent", "scratch"], validation_fraction=0.0, shards=1, workers=1,
    )  # fmt: skip
    assert prepare(options)["images_written"] == 1
    (listed,) = [json.loads(line) for line in (prepared / "images.jsonl").read_text().splitlines()]
    assert listed["sha256"] == hashlib.sha256(copy).hexdigest() != entry["captured_sha256"]

    # The customer sends the same photo again: it is labelled already, by the hash it is captured with.
    capture(state_dir, config, original)
    again = run_review(state_dir, tmp_path / "again")
    assert again["images"] == [] and again["skipped"] == {"already labelled": 2}


def test_a_photo_whose_answer_is_for_another_view_of_it_is_left_out_with_the_reason():
    """The endpoint answers in the upright view; boxes in another (a handler that did not turn the photo) would
    land beside the damage once the copy is upright, so such a photo is not picked."""
    unturned = review.Captured("c:1", gps_photo(), "image/jpeg", (detection("dent", 0.4, size=(96, 48)),), 96, 48)
    selection = review.select([unturned], set(), 5)
    assert selection.picked == [] and selection.unusable == [
        ("c:1", "the answer is for a 96x48 image but the photo is 48x96 upright (its EXIF orientation applied): the model's boxes would not fit it")
    ]


def test_a_png_stays_a_png_upright_with_its_transparency_and_without_text_exif_or_colour_profile():
    stored = Image.new("RGBA", (30, 20), (255, 255, 255, 0))
    stored.paste((0, 0, 255, 255), (0, 0, 10, 5))
    exif = Image.Exif()
    exif[ORIENTATION] = 8
    exif.get_ifd(GPS_IFD).update({1: "S", 2: (33.0, 51.0, 54.0)})
    text = PngImagePlugin.PngInfo()
    text.add_text("Location", "12 rue des Lilas")
    out = io.BytesIO()
    stored.save(out, format="PNG", exif=exif, pnginfo=text, icc_profile=b"a colour profile naming the phone")
    original = out.getvalue()

    copy = review.private_copy(original)
    with Image.open(io.BytesIO(copy)) as written, Image.open(io.BytesIO(original)) as captured:
        assert written.format == "PNG" and written.mode == "RGBA" and not written.getexif()
        assert not {"exif", "icc_profile", "Location"} & set(written.info) and not getattr(written, "text", {})
        assert written.size == (prepare_image(original).width, prepare_image(original).height) == (20, 30)  # as the endpoint turned it
        assert ImageChops.difference(written, ImageOps.exif_transpose(captured)).getbbox() is None  # lossless


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_local_captures_and_review_folders_are_owner_only_under_a_permissive_umask(tmp_path):
    config = load_config(ROOT / "pipeline.yaml", profile="local")
    state_dir, batch, existing = tmp_path / "state", tmp_path / "new" / "batch", tmp_path / "existing"
    existing.mkdir(mode=0o755)
    previous = os.umask(0)
    try:
        capture_answers(config, state_dir, sorted((SAMPLE / "images").rglob("*.jpg"))[:2])
        run_review(state_dir, batch)
        run_review(state_dir, existing)
    finally:
        os.umask(previous)

    captures = LocalS3(state_dir / "s3").path(str(config.data_capture(LOCAL_VALUES["ArtifactBucket"])))
    capture_files = [path for path in captures.rglob("*") if path.is_file()]
    assert len(capture_files) == 2 and {mode(path) for path in capture_files} == {0o600}
    assert {mode(path) for path in [captures, *captures.rglob("*")] if path.is_dir()} == {0o700}

    for folder in (batch, existing):
        written = sorted(folder.rglob("*"))
        assert {path.name for path in written} >= {"review.json", "tasks.json", "contact-sheet.png", "images"}
        assert {mode(path) for path in written if path.is_file()} == {0o600}, folder
        assert mode(folder / "images") == 0o700 and len(list((folder / "images").iterdir())) == 2
    assert mode(batch) == 0o700 and mode(tmp_path / "new") == 0o700  # made by review, with the parent it needed
    assert mode(existing) == 0o755  # a folder given that exists keeps its mode (`--output .`)
