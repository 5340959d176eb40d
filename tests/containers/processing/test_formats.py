"""Every label format PrepareData reads: detection, each format's own rules, classes, and the ledger."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest

from containers.processing import formats
from containers.processing.formats import Context, Input, Refusal
from containers.processing.labelling import Classes, InputError
from containers.processing.prepare_data import Options, PreparationError, main, prepare
from tests.label_files import (
    Labelled,
    labelstudio_task,
    write_coco,
    write_cvat,
    write_groundtruth,
    write_labelstudio,
    write_via,
    write_voc,
    write_yolo,
)
from tests.support import PREFIX, Dataset, all_records, jpeg_bytes

CLASSES = ["dent", "scratch"]


@pytest.fixture
def data(tmp_path) -> Dataset:
    return Dataset(tmp_path / "data")


def images(data: Dataset, count: int = 6, size=(64, 48)) -> list[Labelled]:
    """`count` images on disk, each with a dent and a scratch box."""
    found = []
    for i in range(count):
        key = data.image(f"cars/{i}.jpg", size=size)
        found.append(Labelled(key, *size, [("dent", 4 + i, 8, 20 + i, 16), ("scratch", 30, 2.5, 40, 12.5)]))
    return found


def run(data: Dataset, inputs: list[Path], output: Path, **overrides) -> dict:
    options = {
        "manifests": inputs,
        "images": data.images,
        "images_prefix": data.prefix,
        "output": output,
        "classes": CLASSES,
        "validation_fraction": 0.25,
        "seed": 7,
        "shards": 1,
        "workers": 1,
        "max_invalid_fraction": 1.0,
    } | overrides
    return prepare(Options(**options))


def read(path: Path, fmt: str | None = None, **context) -> list:
    source = Input(path, fmt or formats.detect(path))
    return list(formats.read(source, Context(PREFIX, **context)))


def boxes_of(output: Path) -> dict[str, list[tuple]]:
    """Each written image's boxes as (name, xmin, ymin, xmax, ymax) in pixels, from the TFRecords."""
    found = {}
    for key, record in all_records(output).items():
        width, height = record["size"]
        found[key] = [  # to a thousandth of a pixel: the records hold float32 fractions
            (name, *(round(v, 3) for v in (x0 * width, y0 * height, x1 * width, y1 * height)))
            for name, (_, x0, y0, x1, y1) in zip(record["names"], record["boxes"], strict=True)
        ]
    return found


def expected(images_: list[Labelled]) -> dict[str, list[tuple]]:
    return {image.key: [tuple(box) for box in image.boxes] for image in images_}


def assert_same_boxes(found: dict, wanted: dict, tolerance: float = 0.01) -> None:
    assert found.keys() == wanted.keys()
    for key, boxes in wanted.items():
        assert [b[0] for b in found[key]] == [b[0] for b in boxes], key
        np.testing.assert_allclose([b[1:] for b in found[key]], [b[1:] for b in boxes], atol=tolerance, err_msg=key)


WRITERS = {
    "groundtruth": lambda imgs, folder: write_groundtruth(imgs, folder / "labels.manifest", PREFIX, CLASSES),
    "coco": lambda imgs, folder: write_coco(imgs, folder / "coco.json", CLASSES),
    "voc": lambda imgs, folder: write_voc(imgs, folder / "voc"),
    "yolo": lambda imgs, folder: write_yolo(imgs, folder / "yolo", CLASSES),
    "labelstudio": lambda imgs, folder: write_labelstudio(imgs, folder / "export.json", PREFIX),
    "cvat": lambda imgs, folder: write_cvat(imgs, folder / "annotations.xml", CLASSES),
    "via": lambda imgs, folder: write_via(imgs, folder / "via.json"),
}


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_each_format_is_detected_and_gives_the_same_records(data, tmp_path, fmt):
    labelled = images(data)
    path = WRITERS[fmt](labelled, tmp_path)
    found = formats.inputs([path])
    assert {source.format for source in found} == {fmt}
    report = run(data, [path], tmp_path / "out")
    tolerance = 1.0 if fmt == "yolo" else 0.01  # YOLO's six decimals of 64 pixels
    assert_same_boxes(boxes_of(tmp_path / "out"), expected(labelled), tolerance)
    assert report["records_read"] == report["images_written"] == len(labelled)
    assert report["dropped_boxes"] == {} and report["quarantined"] == []
    assert {entry["format"] for entry in report["inputs"]} == {fmt}
    assert sum(entry["records"] for entry in report["inputs"]) == len(labelled)
    assert {entry["path"]: entry["sha256"] for entry in report["inputs"]} == {str(source.path): content_hash(source.path) for source in found}


def content_hash(path: Path) -> str:
    """A file's sha256; a folder's is that of its `sha256sum`-style listing (hash, two spaces, relative path)."""
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    files = sorted(p for p in path.rglob("*") if p.is_file())
    listing = "".join(f"{content_hash(p)}  {p.relative_to(path).as_posix()}\n" for p in files)
    return hashlib.sha256(listing.encode()).hexdigest()


def test_inputs_of_several_formats_merge_under_one_rule(data, tmp_path):
    labelled = images(data, 4)
    coco = write_coco(labelled, tmp_path / "old.json", CLASSES)
    relabelled = [Labelled(labelled[0].key, 64, 48, [("scratch", 1, 1, 9, 9)])]
    studio = write_labelstudio(relabelled, tmp_path / "new.json", PREFIX)
    # COCO's labellings carry no date, so the later input wins: in a snapshot, the newer upload.
    report = run(data, [coco, studio], tmp_path / "out")
    assert report["images_written"] == 4
    assert [(m["manifest"], m["record"]) for m in report["merged"]] == [(str(coco), "image id 1 (cars/0.jpg)")]
    assert report["merged"][0]["kept"] == {"manifest": str(studio), "record": "task id 1"}
    assert boxes_of(tmp_path / "out")["cars/0.jpg"] == [("scratch", 1, 1, 9, 9)]


def test_an_undetectable_input_names_the_file_and_what_was_looked_for(tmp_path):
    for name, content in (("notes.txt", "hello"), ("other.json", '{"a": 1}'), ("svg.xml", "<svg/>")):
        path = tmp_path / name
        path.write_text(content)
        with pytest.raises(InputError, match=rf"{name}: .*looked for a Ground Truth manifest .*COCO JSON .*YOLO folder"):
            formats.inputs([path])
    with pytest.raises(InputError, match=r"notes\.txt: --label-format yolo reads a YOLO dataset folder"):
        formats.inputs([tmp_path / "notes.txt"], "yolo")


def test_a_folder_stands_for_its_files_and_a_yolo_dataset_in_it_for_one_input(data, tmp_path):
    labelled = images(data, 3)
    folder = tmp_path / "labels"
    write_coco(labelled[:1], (folder / "a").mkdir(parents=True) or folder / "a" / "coco.json", CLASSES)
    write_yolo(labelled[1:2], folder / "b" / "yolo", CLASSES)
    write_voc(labelled[2:], folder / "c")
    (folder / ".hidden").write_text("skipped")
    found = formats.inputs([folder])
    assert [(source.path.relative_to(folder).as_posix(), source.format) for source in found] == [
        ("a/coco.json", "coco"),
        ("b/yolo", "yolo"),
        ("c/00000.xml", "voc"),
    ]
    report = run(data, [folder], tmp_path / "out")
    assert report["images_written"] == 3


# COCO


def coco_document(**changes) -> dict:
    document = {
        "images": [
            {"id": 0, "file_name": "cars/0.jpg", "width": 64, "height": 48},
            {"id": 1, "file_name": "cars/1.jpg", "width": 64, "height": 48},
        ],
        "annotations": [
            {"id": 1, "image_id": 0, "category_id": 0, "bbox": [1.25, 2.5, 10.5, 5.75], "iscrowd": 0},
            {"id": 2, "image_id": 7, "category_id": 1, "bbox": [1, 1, 5, 5]},
            {"id": 3, "image_id": 7, "category_id": 1, "bbox": [2, 2, 5, 5]},
        ],
        "categories": [{"id": 0, "name": "dent"}, {"id": 1, "name": "scratch"}],
    }
    return document | changes


def test_coco_category_zero_float_boxes_background_images_and_missing_image_ids(data, tmp_path):
    images(data, 2)
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(coco_document()))
    report = run(data, [path], tmp_path / "out")
    assert boxes_of(tmp_path / "out") == {"cars/0.jpg": [("dent", 1.25, 2.5, 11.75, 8.25)], "cars/1.jpg": []}
    assert report["records_read"] == 3
    (orphans,) = report["quarantined"]
    assert orphans["record"] == "annotations of image id 7"
    assert orphans["reason"] == "2 annotation(s) (the first is annotations[1]) name image id 7, which 'images' does not list"
    assert "1 image(s) have no boxes (kept as background examples)" in report["warnings"]


def test_coco_crowd_boxes_are_skipped_and_counted(data, tmp_path):
    images(data, 2)
    document = coco_document()
    document["annotations"] = [
        {"id": 1, "image_id": 0, "category_id": 0, "bbox": [1, 1, 10, 10], "iscrowd": 1},
        {"id": 2, "image_id": 0, "category_id": 1, "bbox": [2, 2, 10, 10], "iscrowd": 0},
    ]
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(document))
    report = run(data, [path], tmp_path / "out")
    assert [b[0] for b in boxes_of(tmp_path / "out")["cars/0.jpg"]] == ["scratch"]
    assert report["boxes"]["crowd_skipped"] == 1
    assert "1 COCO crowd box(es) (iscrowd 1) not trained on" in report["warnings"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"annotations": [{"id": 1, "image_id": 0, "category_id": 9, "bbox": [1, 1, 2, 2]}]}, r"category_id 9 is not one of the categories \[0, 1\]"),
        ({"annotations": [{"id": 1, "image_id": 0, "category_id": 0, "bbox": [1, 1, 2]}]}, r"'bbox' must be a list \[x, y, width, height\]"),
        ({"annotations": [{"id": 1, "image_id": 0, "category_id": 0, "bbox": [1, "a", 2, 2]}]}, "bbox y must be a number"),
        ({"images": [{"id": 0, "file_name": "../up.jpg", "width": 64, "height": 48}]}, "does not name a file inside the images folder"),
        ({"images": [{"id": 0, "file_name": "cars/0.jpg", "width": 0, "height": 48}]}, "integer width and height"),
    ],
)
def test_unusable_coco_records_are_refused_with_their_reason(tmp_path, change, reason):
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(coco_document(**change)))
    refusals = [item for item in read(path) if isinstance(item, Refusal)]
    assert any(re.search(reason, r.reason) for r in refusals), [r.reason for r in refusals]


def test_a_coco_file_without_categories_stops_the_job_naming_it(tmp_path):
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(coco_document(categories={"0": "dent"})))
    with pytest.raises(InputError, match=r"coco\.json: 'categories' must be a list"):
        read(path)


# Pascal VOC


def voc_xml(filename="cars/0.jpg", size=(64, 48), objects=(("dent", (1, 1, 10, 10), {}),)) -> str:
    parts = [f"<annotation><filename>{filename}</filename>"]
    if size is not None:
        parts.append(f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>")
    for name, (x0, y0, x1, y1), flags in objects:
        extra = "".join(f"<{k}>{v}</{k}>" for k, v in flags.items())
        parts.append(
            f"<object><name>{name}</name>{extra}<bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
        )
    return "".join(parts) + "</annotation>"


def test_voc_corners_are_one_based_and_inclusive(data, tmp_path):
    images(data, 1)
    (tmp_path / "voc").mkdir()
    (tmp_path / "voc" / "a.xml").write_text(
        voc_xml(objects=(("dent", (1, 1, 64, 48), {"difficult": 1}), ("scratch", (11, 21, 30, 40), {"truncated": 1})))
    )
    report = run(data, [tmp_path / "voc"], tmp_path / "out")
    assert boxes_of(tmp_path / "out")["cars/0.jpg"] == [("dent", 0, 0, 64, 48), ("scratch", 10, 20, 30, 40)]
    assert report["boxes"]["difficult"] == 1 and report["boxes"]["truncated"] == 1  # kept, and counted
    assert report["quarantined"] == []


def test_a_voc_size_that_disagrees_with_the_file_is_refused_and_a_zero_size_means_the_files(data, tmp_path):
    images(data, 2)
    folder = tmp_path / "voc"
    folder.mkdir()
    (folder / "a.xml").write_text(voc_xml(size=(640, 480)))
    (folder / "b.xml").write_text(voc_xml(filename="cars/1.jpg", size=(0, 0)))
    report = run(data, [folder], tmp_path / "out")
    (refused,) = report["quarantined"]
    assert refused["manifest"] == str(folder / "a.xml") and refused["record"] == "file a.xml"
    assert refused["reason"].startswith("image is 64x48 but the labels' image size is 640x480")
    assert report["images_written"] == 1


# YOLO


def test_yolo_values_outside_the_image_are_clipped_and_empty_and_missing_label_files_differ(data, tmp_path):
    images(data, 3)
    folder = tmp_path / "yolo"
    (folder / "labels" / "cars").mkdir(parents=True)
    (folder / "classes.txt").write_text("dent\nscratch\n")
    (folder / "labels" / "cars" / "0.txt").write_text("0 0.05 0.5 0.2 0.5\n1 0.5 0.5 0.25 0.25\n")  # the dent reaches x = -0.05
    (folder / "labels" / "cars" / "1.txt").write_text("")  # no damage
    (folder / "images" / "cars").mkdir(parents=True)
    for key in ("cars/0.jpg", "cars/1.jpg", "cars/2.jpg"):  # cars/2.jpg has no label file
        (folder / "images" / key).write_bytes((data.images / key).read_bytes())
    report = run(data, [folder], tmp_path / "out")
    found = boxes_of(tmp_path / "out")
    np.testing.assert_allclose([b[1:] for b in found["cars/0.jpg"]], [(0, 12, 9.6, 36), (24, 18, 40, 30)], atol=1e-3)
    assert found["cars/1.jpg"] == []
    assert report["boxes"]["clipped"] == 1
    (missing,) = report["quarantined"]
    assert missing["record"] == "image images/cars/2.jpg" and missing["reason"].startswith("no label file labels/cars/2.txt")


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("2 0.5 0.5 0.1 0.1", r"class '2' is not an index of the 2 class names"),
        ("0 0.5 0.5 0.1", "expected 'class cx cy w h'"),
        ("0 0.5 x 0.1 0.1", "line 1: value 2 must be a number"),
        ("0 1.5 0.5 0.2 0.2", "degenerate box after clipping"),
    ],
)
def test_unusable_yolo_lines_are_refused_with_their_reason(data, tmp_path, line, reason):
    images(data, 1)
    folder = tmp_path / "yolo"
    (folder / "labels" / "cars").mkdir(parents=True)
    (folder / "data.yaml").write_text("names: [dent, scratch]\n")
    (folder / "labels" / "cars" / "0.txt").write_text(line + "\n")
    with pytest.raises(PreparationError, match=rf"no usable image: all 1 records were quarantined.*labels/cars/0\.txt\): .*{reason}"):
        run(data, [folder], tmp_path / "out")


def test_a_yolo_label_without_an_image_is_refused(data, tmp_path):
    folder = tmp_path / "yolo"
    (folder / "labels").mkdir(parents=True)
    (folder / "data.yaml").write_text("names: {0: dent, 1: scratch}\n")
    (folder / "labels" / "ghost.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (refusal,) = read(folder, images=data.images)
    assert refusal.reason.startswith("no image ghost.jpg (or .jpeg, .png, ...) in the images folder")


# Label Studio


def studio_annotation(identifier, boxes, *, cancelled=False, updated="2025-05-01T10:00:00Z", rotation=0, size=(64, 48)):
    result = [
        {
            "type": "rectanglelabels",
            "original_width": size[0],
            "original_height": size[1],
            "value": {"x": x, "y": y, "width": w, "height": h, "rotation": rotation, "rectanglelabels": [name]},
        }
        for name, x, y, w, h in boxes
    ]
    result.append({"type": "choices", "value": {"choices": ["ok"]}})
    return {"id": identifier, "was_cancelled": cancelled, "updated_at": updated, "result": result}


def test_label_studio_cancelled_and_several_annotations_the_newest_wins_and_is_reported(data, tmp_path):
    images(data, 3)
    image = Labelled("cars/0.jpg", 64, 48)
    tasks = [
        labelstudio_task(
            1,
            image,
            PREFIX + "cars/0.jpg",
            [
                studio_annotation(11, [("dent", 0, 0, 50, 50)], updated="2025-05-01T10:00:00Z"),
                studio_annotation(12, [("scratch", 50, 50, 25, 25)], updated="2025-06-01T10:00:00Z"),
                studio_annotation(13, [("dent", 10, 10, 10, 10)], cancelled=True, updated="2025-07-01T10:00:00Z"),
            ],
        ),
        labelstudio_task(2, image, "/data/upload/3/ab12cd34-1.jpg", [studio_annotation(21, [], cancelled=True)]),
        labelstudio_task(3, image, "/data/local-files/?d=cars%2F2.jpg", [studio_annotation(31, [("dent", 25, 25, 50, 50)])]),
        labelstudio_task(4, image, PREFIX + "cars/1.jpg", []),
    ]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks))
    report = run(data, [path], tmp_path / "out")
    assert boxes_of(tmp_path / "out") == {"cars/0.jpg": [("scratch", 32, 24, 48, 36)], "cars/2.jpg": [("dent", 16, 12, 48, 36)]}
    notes = {note["record"]: note["note"] for note in report["notes"]}
    assert notes["task id 1"] == (
        "3 annotations: used annotation 12 (the newest); not used: 11; 1 cancelled; 1 result(s) that are not rectangles ignored"
    )
    reasons = {entry["record"]: entry["reason"] for entry in report["quarantined"]}
    assert reasons == {
        "task id 2": "every annotation was cancelled: an unlabelled image is not an image without damage",
        "task id 4": "nobody annotated this task: an unlabelled image is not an image without damage",
    }


def test_label_studio_rotated_boxes_and_foreign_urls_are_refused(tmp_path):
    image = Labelled("cars/0.jpg", 64, 48)
    tasks = [
        labelstudio_task(1, image, PREFIX + "a.jpg", [studio_annotation(1, [("dent", 1, 1, 5, 5)], rotation=30)]),
        labelstudio_task(2, image, "https://example.com/a.jpg", [studio_annotation(2, [])]),
        labelstudio_task(3, image, "s3://elsewhere/a.jpg", [studio_annotation(3, [])]),
    ]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks))
    reasons = [item.reason for item in read(path)]
    assert reasons[0] == "annotation 1 result 0 is rotated by 30 degrees; the detector trains on upright boxes only"
    assert reasons[1].startswith("the image URL 'https://example.com/a.jpg' is not an s3:// URI, an uploaded file")
    assert "is not under the images prefix" in reasons[2]


def test_label_studio_upload_urls_map_under_the_media_folder(tmp_path):
    image = Labelled("x", 64, 48)
    path = tmp_path / "export.json"
    path.write_text(json.dumps([labelstudio_task(1, image, "/data/upload/3/ab12cd34-car%201.jpg", [studio_annotation(1, [])])]))
    (record,) = read(path)
    assert record.key == "upload/3/ab12cd34-car 1.jpg"


# CVAT


def test_cvat_rotated_boxes_are_refused_occluded_kept_polygons_boxed_tracks_refused(data, tmp_path):
    images(data, 3)
    path = tmp_path / "annotations.xml"
    path.write_text(
        """<annotations><version>1.1</version><meta><dumped>2025-05-01 10:00:00.000000+00:00</dumped></meta>
        <image id="0" name="cars/0.jpg" width="64" height="48">
          <box label="dent" occluded="1" xtl="1.5" ytl="2" xbr="30" ybr="40" z_order="0"/>
          <polygon label="scratch" occluded="0" points="40,5;60,10;50,20"/>
          <tag label="reviewed"/>
        </image>
        <image id="1" name="cars/1.jpg" width="64" height="48">
          <box label="dent" occluded="0" xtl="1" ytl="2" xbr="30" ybr="40" rotation="15.5"/>
        </image>
        <image id="2" name="cars/2.jpg" width="64" height="48"><ellipse label="dent" cx="5" cy="5" rx="2" ry="2"/></image>
        <track id="0" label="dent"/>
        </annotations>"""
    )
    report = run(data, [path], tmp_path / "out")
    assert boxes_of(tmp_path / "out") == {"cars/0.jpg": [("dent", 1.5, 2, 30, 40), ("scratch", 40, 5, 60, 20)]}
    assert report["boxes"]["occluded"] == 1
    reasons = {entry["record"]: entry["reason"] for entry in report["quarantined"]}
    assert reasons == {
        "image id 1 (cars/1.jpg)": "shape 0 (<box>) (dent) is rotated by 15.5 degrees; the detector trains on upright boxes only",
        "image id 2 (cars/2.jpg)": "shape 0 (<ellipse>): a ellipse has no box; draw boxes, or polygons, for damage",
        "track id 0": "a video track: only images (CVAT for images) are read",
    }


# VIA


def test_via_polygons_become_boxes_and_other_shapes_are_refused(data, tmp_path):
    images(data, 2)
    metadata = {
        "a": {
            "filename": "cars/0.jpg",
            "size": 123,
            "regions": [
                {"shape_attributes": {"name": "rect", "x": 1, "y": 2, "width": 10, "height": 5}, "region_attributes": {"damage": "dent"}},
                {
                    "shape_attributes": {"name": "polygon", "all_points_x": [20, 30, 25], "all_points_y": [5, 8, 15]},
                    "region_attributes": {"damage": {"scratch": True, "dent": False}},
                },
            ],
        },
        "b": {
            "filename": "cars/1.jpg",
            "size": 9,
            "regions": [{"shape_attributes": {"name": "circle", "cx": 5, "cy": 5, "r": 2}, "region_attributes": {}}],
        },
    }
    path = tmp_path / "via.json"
    path.write_text(json.dumps(metadata))
    report = run(data, [path], tmp_path / "out")
    assert boxes_of(tmp_path / "out") == {"cars/0.jpg": [("dent", 1, 2, 11, 7), ("scratch", 20, 5, 30, 15)]}
    (refused,) = report["quarantined"]
    assert refused["record"] == "key b" and refused["reason"].startswith("region 0: no class in the region attribute 'damage'")


def test_a_via_export_saved_as_a_list_goes_through_like_the_object_form(data, tmp_path):
    """What code that loads an export with `list(json.load(f).values())` writes back; VIA 1's regions object too."""
    labelled = images(data, 3)
    as_object = json.loads(write_via(labelled, tmp_path / "object.json", project=False).read_text())
    entries = list(as_object.values())
    entries[1]["regions"] = dict(enumerate(entries[1]["regions"]))  # VIA 1: regions keyed "0", "1", ...
    entries.append({"filename": "cars/missing.jpg", "size": 1, "regions": "none"})
    as_list = tmp_path / "list.json"
    as_list.write_text(json.dumps(entries))
    assert formats.detect(as_list) == "via"
    report = run(data, [as_list], tmp_path / "list")
    object_report = run(data, [tmp_path / "object.json"], tmp_path / "object")
    assert boxes_of(tmp_path / "list") == boxes_of(tmp_path / "object") == expected(labelled)
    assert report["images_written"] == object_report["images_written"] == 3
    (refused,) = report["quarantined"]
    assert (refused["record"], refused["reason"]) == ("index 3", "'regions' must be a list, got \"none\" (cars/missing.jpg)")


def test_via_with_several_attributes_needs_the_class_attribute_named(data, tmp_path):
    images(data, 1)
    region = {"shape_attributes": {"name": "rect", "x": 1, "y": 2, "width": 10, "height": 5}, "region_attributes": {"type": "dent", "note": "x"}}
    path = tmp_path / "via.json"
    path.write_text(json.dumps({"a": {"filename": "cars/0.jpg", "size": 1, "regions": [region]}}))
    with pytest.raises(PreparationError, match=r"several attributes \['note', 'type'\]; name the class attribute with --via-attribute"):
        run(data, [path], tmp_path / "out")
    run(data, [path], tmp_path / "out", via_attribute="type")
    assert boxes_of(tmp_path / "out") == {"cars/0.jpg": [("dent", 1, 2, 11, 7)]}


# Classes


def test_source_classes_map_onto_the_configured_ones_and_the_rest_are_dropped_and_counted(data, tmp_path, capsys):
    images(data, 3)
    labelled = [
        Labelled("cars/0.jpg", 64, 48, [("Gocuk", 1, 1, 10, 10), ("rayure", 2, 2, 12, 12)]),
        Labelled("cars/1.jpg", 64, 48, [("minor-dent", 1, 1, 10, 10), ("severe-dent", 2, 2, 12, 12), ("rust", 3, 3, 9, 9)]),
        Labelled("cars/2.jpg", 64, 48, [("rust", 3, 3, 9, 9), ("Broken  Glass", 3, 3, 9, 9)]),
    ]
    path = write_coco(labelled, tmp_path / "coco.json")
    argv = ["--manifest", str(path), "--images", str(data.images), "--images-prefix", PREFIX, "--output", str(tmp_path / "out")]
    argv += ["--classes", "dent,scratch", "--workers", "1", "--max-invalid-fraction", "0", "--no-progress"]
    for pair in ("gocuk=dent", " RAYURE =scratch", "minor-dent=dent", "severe-dent=Dent"):
        argv += ["--class-map", pair]
    assert main(argv) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    found = boxes_of(tmp_path / "out")
    assert [b[0] for b in found["cars/0.jpg"]] == ["dent", "scratch"]
    assert [b[0] for b in found["cars/1.jpg"]] == ["dent", "dent"]
    assert found["cars/2.jpg"] == []  # the image stays, as background
    assert report["dropped_boxes"] == {"Broken  Glass": 1, "rust": 2}
    out = capsys.readouterr().out
    assert "warning: 2 box(es) of class 'rust' dropped: not one of the classes and not mapped" in out


def test_a_class_map_onto_an_unknown_class_stops_the_job_naming_it(data, tmp_path):
    images(data, 1)
    path = write_coco(images(data, 1), tmp_path / "coco.json")
    with pytest.raises(PreparationError, match=r"class map rayure=paint: 'paint' is not one of the classes \['dent', 'scratch'\]"):
        run(data, [path], tmp_path / "out", class_map={"rayure": "paint"})


def test_a_bad_class_map_argument_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--manifest", "x", "--images-prefix", PREFIX, "--class-map", "nonsense"])
    assert exit_.value.code == 2
    assert "'nonsense' is not SOURCE=CLASS" in capsys.readouterr().err


def test_classes_are_matched_without_case_or_spaces():
    classes = Classes(["dent", "scratch"], {"Minor  Dent": "DENT"})
    assert [classes.resolve(n) for n in ("Dent", " scratch ", "minor dent", "MINOR DENT", "rust")] == ["dent", "scratch", "dent", "dent", None]
    assert Classes(None, {"rayure": "scratch"}).resolve("Rayure") == "scratch"
    assert Classes(None).resolve("rust") == "rust"


def test_without_configured_classes_new_names_take_the_next_ids(data, tmp_path):
    images(data, 2)
    path = write_coco(images(data, 2), tmp_path / "coco.json")
    report = run(data, [path], tmp_path / "out", classes=None)
    assert report["class_map"] == {"1": "dent", "2": "scratch"}  # in the order the boxes named them


# The merge rule never gives up a usable labelling for a refused one.


def test_a_newer_labelling_that_is_refused_does_not_cost_the_older_usable_one(data, tmp_path):
    data.image("a.jpg", size=(64, 48))
    older = data.line("a.jpg", boxes=[(0, 1, 1, 10, 10)], created="2024-01-01T00:00:00")
    newer = data.line("a.jpg", boxes=[(1, 2, 2, 10, 10)], size=(640, 480), created="2024-06-01T00:00:00")
    manifest = data.manifest("m.manifest", [older, newer])
    report = run(data, [manifest], tmp_path / "out")
    assert report["images_written"] == 1 and report["merged"] == []
    (refused,) = report["quarantined"]
    assert refused["line"] == 2 and "labels' image size is 640x480" in refused["reason"]
    (note,) = report["notes"]
    assert note == {
        "manifest": str(manifest),
        "line": 1,
        "note": f"used for a.jpg: the newer labelling(s) {manifest}:2 could not be used (see quarantined)",
    }
    assert boxes_of(tmp_path / "out") == {"a.jpg": [("dent", 1, 1, 11, 11)]}
    assert report["records_read"] == report["images_written"] + len(report["quarantined"]) + len(report["merged"])


def test_when_the_image_itself_is_unusable_every_labelling_of_it_is_quarantined(data, tmp_path):
    data.image("ok.jpg")
    data.image("bad.jpg", data=jpeg_bytes((64, 48), seed=3)[:-200])
    lines = [data.line("bad.jpg", created="2024-01-01T00:00:00"), data.line("bad.jpg", created="2024-02-01T00:00:00"), data.line("ok.jpg")]
    report = run(data, [data.manifest("m.manifest", lines)], tmp_path / "out")
    assert report["merged"] == []
    assert [entry["line"] for entry in report["quarantined"]] == [1, 2]
    assert all("corrupt or truncated JPEG" in entry["reason"] for entry in report["quarantined"])
    assert report["records_read"] == 3 == report["images_written"] + len(report["quarantined"])
