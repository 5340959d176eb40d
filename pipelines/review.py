"""`cardamage review`: the photos the endpoint was least sure of, picked from its captured data, for a person to
correct in Label Studio (or a Ground Truth adjustment job), so that the next execution trains on them.

How unsure the model was of a photo is measured from its own answer (docs/review-loop.md, "How unsure"):

    uncertainty = max(ambiguous share, class disagreement)
    ambiguous share    = the share of its detections whose score lies in the ambiguous band [0.2, 0.6)
    class disagreement = over pairs of its boxes of different classes that overlap (IoU >= 0.5), the largest
                         ratio of the lower score to the higher (1: equally sure of two classes in one place)

A photo without detections scores 0: the model saw nothing, and the random share of a mixed batch is what
finds the misses. `atypical` picks instead the photos least like the served package's data baseline (the photos
it was trained and validated on), by containers/monitoring/statistics.py's atypicality, which the drift monitor
ranks photos by too: new conditions (night, rain, another phone) are labelled first. `mixed` takes a share of
each. Candidates are photos the endpoint answered (captured requests and answers, decoded by
containers/monitoring/captures.py, which the monitor shares) that no
execution has trained on, by content hash (PrepareData's images.jsonl), keeping one photo of each group of
near-duplicates (a 64-bit difference hash within NEAR_DUPLICATE_BITS bits), the most uncertain one.

A photo leaves the capture as a private copy (`private_copy`): no EXIF (GPS position, camera, time) nor any other
metadata, its EXIF orientation applied to the pixels as the endpoint applied it before answering, so the
model's boxes fit it. The copy's name holds the captured photo's hash (`photo_key`), and review.json records
both hashes, so that a photo labelled from a batch is still known by the hash it is captured with.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from containers.common.pictures import box_iou, pixel_box
from containers.common.s3 import parse_s3_uri
from containers.monitoring.captures import NAME_DIGITS, Captured, captured_digits, captured_photos  # noqa: F401  (review.captured_photos, review.Captured)
from containers.processing.formats.groundtruth import OBJECT_DETECTION_TYPE, class_map
from containers.processing.images import JPEG_QUALITY
from containers.processing.prepare_data import IMAGES_LIST
from pipelines.local.storage import private_folder, write_private
from steps.prepare_data import OUTPUT_FOLDER as PREPARED_FOLDER

AMBIGUOUS = (0.2, 0.6)  # scores a detector is unsure of: neither background nor a confident box
OVERLAP_IOU = 0.5
NEAR_DUPLICATE_BITS = 6  # of 64: a re-sent or re-compressed photo differs by a few bits, another car by dozens
MIXED_RANDOM_SHARE = 0.25  # `mixed`: a quarter picked at random, so that the labelled set stays unbiased
MIXED_ATYPICAL_SHARE = 0.25  # `mixed`, when the served package has a data baseline: a quarter the most atypical
STRATEGIES = ("uncertain", "random", "mixed", "atypical")


@dataclass(frozen=True)
class Scored:
    photo: Captured
    score: float
    reason: str
    fingerprint: int = 0


@dataclass
class Selection:
    picked: list[tuple[Scored, str]]  # (photo, why it was picked: "uncertain", "atypical" or "random")
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> how many candidates it removed
    unusable: list[tuple[str, str]] = field(default_factory=list)  # (capture line, reason)


def read_captures(s3: Any, destination: str) -> Iterator[tuple[str, int, str]]:
    """Every line of the capture files under `destination` (s3://bucket/prefix/), oldest file first: (file URI,
    line number, text). `s3` is a boto3 S3 client, or the local engine's stand-in for one (LocalS3Client)."""
    bucket, prefix = parse_s3_uri(destination)
    for key in sorted(_keys(s3, bucket, prefix)):
        if not key.endswith(".jsonl"):
            continue
        text = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                yield f"s3://{bucket}/{key}", number, line


def _keys(s3: Any, bucket: str, prefix: str) -> Iterator[str]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        yield from (item["Key"] for item in page.get("Contents", []))


def object_exists(s3: Any, bucket: str, key: str) -> bool:
    return key in _keys(s3, bucket, key)


def labelled_hashes(s3: Any, artifact_bucket: str, pipeline_name: str) -> set[str]:
    """Every photo a past execution prepared (trained or validated on): the content sha256 of each image listed
    in the images.jsonl that PrepareData writes, and for a review photo also the captured hash's digits that its
    name holds (`captured_digits`), since its own bytes are the private copy's. PrepareData writes under
    s3://<artifacts>/<pipeline>/prepared-data/<execution>/ (steps/prepare_data.py), executions before that layout
    under <pipeline>/<execution>/prepared-data/; both are read. A cached PrepareData's output stays in the folder
    of the execution that made it, so every labelled set is listed once. Prepared data expires
    (infrastructure.artifact_expiration_days): the latest execution's list holds every photo labelled until then."""
    hashes: set[str] = set()
    for folder in _folders(s3, artifact_bucket, f"{pipeline_name}/{PREPARED_FOLDER}/"):
        hashes |= _images_lists(s3, artifact_bucket, folder)
    for folder in _folders(s3, artifact_bucket, f"{pipeline_name}/"):
        hashes |= _images_lists(s3, artifact_bucket, f"{folder}{PREPARED_FOLDER}/")
    return hashes


def _folders(s3: Any, bucket: str, prefix: str) -> Iterator[str]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
        yield from (folder["Prefix"] for folder in page.get("CommonPrefixes", []))


def _images_lists(s3: Any, bucket: str, prepared: str) -> set[str]:
    """The hashes and review names of the images.jsonl files in one prepared-data folder (images-<instance>.jsonl
    from several instances)."""
    found: set[str] = set()
    stem, suffix = IMAGES_LIST.rsplit(".", 1)
    for key in _keys(s3, bucket, f"{prepared}{stem}"):
        if key.endswith(f".{suffix}"):
            text = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
            for line in text.splitlines():
                if line.strip():
                    image = json.loads(line)
                    digits = captured_digits(str(image.get("key", "")))
                    found.update([image["sha256"], digits] if digits else [image["sha256"]])
    return found


def batch_images_prefix(images_prefix: str, batch: str) -> str:
    """Where a review batch's photos go: under the images prefix that executions read (ImagesS3Prefix), in
    review/<batch>/, so the next execution finds them beside the photos already labelled."""
    return f"{images_prefix.rstrip('/')}/review/{batch}/"


def upload_images(s3: Any, folder, images_prefix: str) -> int:
    """Put the batch's photos (OUT/images/) under its images prefix; how many."""
    bucket, prefix = parse_s3_uri(images_prefix)
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file())
    for path in files:
        content_type = "image/png" if path.suffix == ".png" else "image/jpeg"
        s3.put_object(Bucket=bucket, Key=prefix + path.relative_to(folder).as_posix(), Body=path.read_bytes(), ContentType=content_type)
    return len(files)


def uncertainty(detections: Sequence[Mapping]) -> tuple[float, str]:
    """(the photo's uncertainty in [0, 1], why), by the measure in the module's docstring."""
    if not detections:
        return 0.0, "no detections"
    low, high = AMBIGUOUS
    scores = [float(d.get("score", 0.0)) for d in detections]
    ambiguous = sum(1 for s in scores if low <= s < high)
    share = ambiguous / len(scores)
    disagreement, pair = 0.0, ""
    for i, first in enumerate(detections):
        for second in detections[i + 1 :]:
            if first.get("class") == second.get("class"):
                continue
            overlap = box_iou(_box(first), _box(second))
            if overlap >= OVERLAP_IOU:
                a, b = float(first.get("score", 0.0)), float(second.get("score", 0.0))
                ratio = min(a, b) / max(a, b) if max(a, b) > 0 else 0.0
                if ratio > disagreement:
                    disagreement = ratio
                    pair = f"{first.get('class')} {a:.2f} and {second.get('class')} {b:.2f} overlap (IoU {overlap:.2f})"
    reasons = [f"{ambiguous} of {len(scores)} detection(s) scored in [{low}, {high})"]
    if pair:
        reasons.append(pair)
    return round(max(share, disagreement), 6), "; ".join(reasons)


def _box(detection: Mapping) -> tuple[float, float, float, float]:
    box = detection.get("box_normalized") or detection.get("box") or {}
    return float(box.get("xmin", 0)), float(box.get("ymin", 0)), float(box.get("xmax", 0)), float(box.get("ymax", 0))


def fingerprint(data: bytes) -> int:
    """A 64-bit difference hash of the photo upright (9x8 greyscale, each pixel against its right neighbour).
    Hand-written: the `imagehash` package would bring scipy and PyWavelets for these six lines."""
    return _look(data)[0]


def upright(image):
    """The photo's pixels turned by its EXIF orientation, as the endpoint turns them before the model sees them
    (containers/inference/inference.py, prepare_image), so its answer's boxes are in this view. Pillow's
    exif_transpose leaves the pixels alone for an orientation that is none of the eight; an unreadable EXIF block
    leaves them alone too, as the endpoint does."""
    from PIL import ImageOps

    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # Pillow raises many types for a broken EXIF block
        return image.copy()


def _look(data: bytes) -> tuple[int, tuple[int, int]]:
    """(fingerprint, size) of the photo upright, from one decoding."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        turned = upright(image)
    pixels = turned.convert("L").resize((9, 8), Image.Resampling.LANCZOS).tobytes()  # one byte per pixel, row by row
    bits = 0
    for row in range(8):
        for column in range(8):
            bits = (bits << 1) | int(pixels[row * 9 + column] > pixels[row * 9 + column + 1])
    return bits, turned.size


def select(
    photos: Sequence[Captured], labelled: set[str], count: int, strategy: str = "uncertain", seed: int = 0, baseline: Mapping | None = None
) -> Selection:
    """The review batch: at most `count` photos, none already labelled, one per near-duplicate group. A photo
    whose answer is for another size than its upright view is unusable: its boxes would not fit the copy.
    `baseline`: the served package's data baseline, which `atypical` needs and `mixed` takes a share by (without
    one, `mixed` is uncertain and random only). An atypical pick's score is its atypicality, its reason the why."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)} (got {strategy!r})")
    if strategy == "atypical" and baseline is None:
        raise ValueError("strategy atypical needs the served package's data baseline")
    selection = Selection([])
    seen: set[str] = set()
    scored: list[Scored] = []
    for photo in photos:
        digest = photo.sha256
        if digest in labelled or digest[:NAME_DIGITS] in labelled:  # by its bytes, or by the name of its private copy
            selection.skipped["already labelled"] = selection.skipped.get("already labelled", 0) + 1
            continue
        if digest in seen:
            selection.skipped["sent again"] = selection.skipped.get("sent again", 0) + 1
            continue
        seen.add(digest)
        try:
            mark, size = _look(photo.data)
        except OSError as exc:
            selection.unusable.append((photo.source, f"the photo cannot be decoded: {exc}"))
            continue
        if size != (photo.width, photo.height):
            selection.unusable.append(
                (
                    photo.source,
                    f"the answer is for a {photo.width}x{photo.height} image but the photo is {size[0]}x{size[1]} upright "
                    "(its EXIF orientation applied): the model's boxes would not fit it",
                )
            )
            continue
        scored.append(Scored(photo, *uncertainty(photo.detections), fingerprint=mark))
    kept: list[Scored] = []
    for candidate in sorted(scored, key=lambda s: (-s.score, s.photo.source)):  # the most uncertain of a group stays
        if any(bin(candidate.fingerprint ^ other.fingerprint).count("1") <= NEAR_DUPLICATE_BITS for other in kept):
            selection.skipped["near-duplicate"] = selection.skipped.get("near-duplicate", 0) + 1
            continue
        kept.append(candidate)
    randoms = {"uncertain": 0, "random": count, "mixed": round(count * MIXED_RANDOM_SHARE), "atypical": 0}[strategy]
    atypicals = {"atypical": count, "mixed": round(count * MIXED_ATYPICAL_SHARE) if baseline is not None else 0}.get(strategy, 0)
    uncertain = count - randoms - atypicals
    chosen = [(s, "uncertain") for s in kept[:uncertain]]
    rest = kept[uncertain:]
    if atypicals:
        ranked, failed = by_atypicality(rest, baseline)
        selection.unusable += failed
        chosen += [(s, "atypical") for s in ranked[:atypicals]]
        taken = {s.photo.source for s in ranked[:atypicals]} | {where for where, _ in failed}
        rest = [s for s in rest if s.photo.source not in taken]
    chosen += [(s, "random") for s in random.Random(seed).sample(rest, min(randoms, len(rest)))]
    selection.picked = chosen
    return selection


def by_atypicality(candidates: Sequence[Scored], baseline: Mapping) -> tuple[list[Scored], list[tuple[str, str]]]:
    """The candidates from the least like the data baseline (statistics.atypicality), each scored by its
    atypicality with why; and those whose statistics cannot be measured, with the reason."""
    from containers.monitoring import statistics

    ranked, failed = [], []
    unlike = None  # the baseline read once for every candidate (made here: a baseline that is not one fails each, as before)
    for candidate in candidates:
        try:
            unlike = unlike or statistics.Atypicality(baseline)
            score, why = unlike(statistics.input_statistics(candidate.photo.data))
        except statistics.StatisticsError as exc:
            failed.append((candidate.photo.source, f"its statistics cannot be measured: {exc}"))
            continue
        ranked.append(Scored(candidate.photo, round(score, 6), why, candidate.fingerprint))
    return sorted(ranked, key=lambda s: (-s.score, s.photo.source)), failed


def data_baseline(s3: Any, uri: str | None) -> tuple[dict | None, str]:
    """The data baseline at `uri` (a statistics document of the photos), or None and why it cannot be used."""
    from botocore.exceptions import ClientError

    from containers.monitoring import statistics

    if not uri:
        return None, "no data baseline"
    bucket, key = parse_s3_uri(uri)
    try:
        document = statistics.check(json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read()), uri)
    except (OSError, ClientError) as exc:
        return None, f"{uri} cannot be read ({exc})"
    except ValueError as exc:  # not JSON, or not a statistics document (StatisticsError)
        return None, f"{uri} is not a statistics document ({exc})"
    if document["kind"] != "input":
        return None, f"{uri} holds {document['kind']} statistics, not the photos'"
    return document, ""


# The review batch's files.

LABEL_FROM, LABEL_TO = "label", "image"  # the labelling config's RectangleLabels and Image names
ADJUSTMENT_ATTRIBUTE = "review"  # the label attribute of the adjustment manifest (Ground Truth's LabelAttributeName)


def photo_key(photo: Captured) -> str:
    """The picked photo's key under the batch's images prefix: its captured content hash (the first NAME_DIGITS
    digits), with the suffix of its private copy's format (PNG stays PNG, everything else is a JPEG)."""
    suffix = ".png" if photo.data[:8] == b"\x89PNG\r\n\x1a\n" else ".jpg"
    return f"{photo.digits}{suffix}"


def private_copy(data: bytes) -> bytes:
    """The captured photo as it may leave the capture: upright (`upright`, the view the model's boxes are in) and
    without any metadata: no EXIF (GPS position, camera, time), XMP, ICC profile, comment or trailing data. A JPEG
    stays a JPEG, a PNG a PNG; any other format becomes the RGB JPEG the endpoint made of it.

    Re-encoding is the price of writing only pixels: a PNG loses nothing; a JPEG is encoded once more, at
    JPEG_QUALITY (95, as PrepareData and the endpoint re-encode), whose quantisation steps are a tenth of
    libjpeg's base tables: no loss a labeller or the model would notice, for files about 1.5 times those at
    quality 85 (measured on the sample photos)."""
    from PIL import Image

    from containers.inference.inference import to_rgb

    with Image.open(io.BytesIO(data)) as image:
        kind = "PNG" if image.format == "PNG" else "JPEG"
        turned = upright(image)
        if image.format not in ("JPEG", "MPO", "PNG"):
            turned = to_rgb(turned)
    # Pillow writes a JPEG's comment and a PNG's ICC profile from `info`: only a PNG's transparency stays.
    turned.info = {key: value for key, value in turned.info.items() if kind == "PNG" and key == "transparency"}
    out = io.BytesIO()
    turned.save(out, format=kind, **({"quality": JPEG_QUALITY} if kind == "JPEG" else {}))
    return out.getvalue()


def labeling_config(classes: Sequence[str]) -> str:
    """Label Studio's labelling config: one image, a rectangle label per class."""
    from xml.sax.saxutils import quoteattr

    labels = "\n".join(f"    <Label value={quoteattr(name)}/>" for name in classes)
    return (
        f'<View>\n  <Image name="{LABEL_TO}" value="$image"/>\n  <RectangleLabels name="{LABEL_FROM}" toName="{LABEL_TO}">\n'
        f"{labels}\n  </RectangleLabels>\n</View>\n"
    )


def label_studio_task(url: str, scored: Scored, model_version: str) -> dict:
    """A task whose `predictions` are the model's boxes, in percent of the image, for a person to correct."""
    photo = scored.photo
    results = []
    for index, detection in enumerate(photo.detections):
        xmin, ymin, xmax, ymax = pixel_box(detection, photo.width, photo.height)
        results.append(
            {
                "id": f"p{index}",
                "from_name": LABEL_FROM,
                "to_name": LABEL_TO,
                "type": "rectanglelabels",
                "original_width": photo.width,
                "original_height": photo.height,
                "image_rotation": 0,
                "score": float(detection.get("score", 0.0)),
                "value": {
                    "x": 100 * xmin / photo.width,
                    "y": 100 * ymin / photo.height,
                    "width": 100 * (xmax - xmin) / photo.width,
                    "height": 100 * (ymax - ymin) / photo.height,
                    "rotation": 0,
                    "rectanglelabels": [str(detection.get("class"))],
                },
            }
        )
    return {"data": {"image": url}, "predictions": [{"model_version": model_version, "score": scored.score, "result": results}]}


def adjustment_line(url: str, scored: Scored, classes: Sequence[str], batch: str) -> dict:
    """A Ground Truth bounding-box adjustment job's input line: the model's boxes as a prior labelling job's
    output (`<attribute>` and `<attribute>-metadata`, "human-annotated": "no"), for workers to adjust."""
    photo = scored.photo
    annotations, confidences = [], []
    for detection in photo.detections:
        if detection.get("class") not in classes:
            continue
        xmin, ymin, xmax, ymax = pixel_box(detection, photo.width, photo.height)
        annotations.append(
            {
                "class_id": list(classes).index(detection["class"]),
                "left": round(xmin),
                "top": round(ymin),
                "width": round(xmax - xmin),
                "height": round(ymax - ymin),
            }
        )
        confidences.append({"confidence": round(float(detection.get("score", 0.0)), 4)})
    return {
        "source-ref": url,
        ADJUSTMENT_ATTRIBUTE: {"image_size": [{"width": photo.width, "height": photo.height, "depth": 3}], "annotations": annotations},
        f"{ADJUSTMENT_ATTRIBUTE}-metadata": {
            "objects": confidences,
            "class-map": class_map(classes),
            "type": OBJECT_DETECTION_TYPE,
            "human-annotated": "no",
            "creation-date": photo.inference_time or "1970-01-01T00:00:00",
            "job-name": f"labeling-job/cardamage-review-{batch}",
        },
    }


def write_batch(output, selection: Selection, images_prefix: str, classes: Sequence[str], model_version: str, batch: str) -> dict:
    """Write the batch under `output` (tasks.json, labeling-config.xml, adjustment.manifest, review.json,
    images/ with the photos' private copies, contact-sheet.png), every file owner-only (0o600) and the folders it
    makes too (0o700); returns review.json's document."""
    output = Path(output)
    if not output.exists():  # a folder given that exists (`.`) keeps its mode; what is in it is owner-only
        private_folder(output)
    images = private_folder(output / "images")
    prefix = images_prefix.rstrip("/") + "/"
    tasks, lines, entries, copies = [], [], [], []
    for scored, why in selection.picked:
        key = photo_key(scored.photo)
        copy = private_copy(scored.photo.data)
        write_private(images / key, copy)
        copies.append(copy)
        url = prefix + key
        tasks.append(label_studio_task(url, scored, model_version))
        lines.append(json.dumps(adjustment_line(url, scored, classes, batch), sort_keys=True))
        entries.append(
            {
                "image": key,
                "captured_sha256": scored.photo.sha256,  # the photo as the endpoint received it
                "sha256": hashlib.sha256(copy).hexdigest(),  # the private copy written here, as PrepareData lists it
                "score": scored.score,
                "reason": f"{why}: {scored.reason}",
                "captured": scored.photo.source,
            }
        )
    write_private(output / "tasks.json", (json.dumps(tasks, indent=2) + "\n").encode("utf-8"))
    write_private(output / "labeling-config.xml", labeling_config(classes).encode("utf-8"))
    write_private(output / "adjustment.manifest", "".join(line + "\n" for line in lines).encode("utf-8"))
    document = {
        "images_prefix": prefix,
        "images": entries,
        "model_version": model_version,
        "skipped": selection.skipped,
        "unusable": [{"capture": where, "reason": reason} for where, reason in selection.unusable],
    }
    write_private(output / "review.json", (json.dumps(document, indent=2) + "\n").encode("utf-8"))
    sheet = [
        (f"{entry['score']:.2f} {why}  {entry['image']}", copy, scored.photo.detections)
        for entry, copy, (scored, why) in zip(entries, copies, selection.picked, strict=True)
    ]
    save_contact_sheet(sheet, output / "contact-sheet.png")
    return document


def save_contact_sheet(photos: Sequence[tuple[str, bytes, Sequence[Mapping]]], path, columns: int = 4, side: int = 256) -> None:
    """The batch on one picture: each photo (caption, encoded photo, the model's detections) with its boxes
    (containers/common/pictures.py) and its caption (uncertainty, why picked, key); owner-only, as the photos."""
    from PIL import Image, ImageDraw

    from containers.common.pictures import caption_font, draw_detections

    columns = max(1, min(columns, len(photos)))
    rows = max(1, -(-len(photos) // columns))
    sheet = Image.new("RGB", (columns * side, rows * (side + 20)), "white")
    pen = ImageDraw.Draw(sheet)
    font = caption_font(12)
    for index, (caption, data, detections) in enumerate(photos):
        try:
            picture = draw_detections(data, detections)
        except Exception:  # a photo Pillow reads but the drawing refuses: shown as a grey square, still captioned
            picture = Image.new("RGB", (side, side), "lightgrey")
        picture.thumbnail((side, side))
        x, y = (index % columns) * side, (index // columns) * (side + 20)
        sheet.paste(picture, (x + (side - picture.width) // 2, y))
        pen.text((x + 4, y + side + 3), caption, fill="black", font=font)
    if not photos:
        pen.text((10, 10), "no photos to review", fill="black", font=font)  # an empty batch still says so
    out = io.BytesIO()
    sheet.save(out, format="PNG")
    write_private(Path(path), out.getvalue())
