"""The label readers against an independent, well-kept reader of the same formats (globox, from PyPI; a test
dependency only): on every fixture it can read, the same images with the same boxes.

globox takes VOC corners as they are written; the VOC development kit's corners are 1-based and inclusive,
which the reader here converts (a box's left and top edges one pixel further left and up), so VOC boxes
agree within that one pixel. Label Studio is not among globox's formats; its reader is checked against the
writer of tests/label_files.py, written from Label Studio's documentation, in test_formats.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import globox
import numpy as np
import pytest

from containers.processing import formats
from containers.processing.formats import Context, Input
from containers.processing.labelling import Classes, LabelMap, Record, resolve
from tests.label_files import Labelled, write_coco, write_cvat, write_via, write_voc, write_yolo
from tests.support import PREFIX

CLASSES = ["dent", "scratch"]


def dataset(seed: int = 3, count: int = 12) -> list[Labelled]:
    """Images of several sizes with float boxes, a few with no box (background examples)."""
    rng = np.random.default_rng(seed)
    found = []
    for index in range(count):
        width, height = int(rng.integers(64, 1200)), int(rng.integers(64, 900))
        boxes = []
        for _ in range(int(rng.integers(0, 5)) if index % 4 else 0):
            x0, y0 = rng.uniform(0, width - 20), rng.uniform(0, height - 20)
            x1, y1 = rng.uniform(x0 + 2, width), rng.uniform(y0 + 2, height)
            boxes.append((CLASSES[int(rng.integers(0, 2))], round(x0, 2), round(y0, 2), round(x1, 2), round(y1, 2)))
        found.append(Labelled(f"car-{index}.jpg", width, height, boxes))
    return found


def ours(path: Path, fmt: str, labelled: list[Labelled], images: Path | None = None) -> dict[str, list[tuple]]:
    sizes = {image.key: (image.width, image.height) for image in labelled}
    context = Context(PREFIX, images=images, classes=Classes(CLASSES), label_map=LabelMap(CLASSES))
    found = {}
    for item in formats.read(Input(path, fmt), context):
        assert isinstance(item, Record), item
        image = resolve(item, 1, sizes[item.key], 1, PREFIX, context.classes, context.label_map)
        found[image.key] = sorted((box.name, box.xmin, box.ymin, box.xmax, box.ymax) for box in image.boxes)
    return found


def theirs(annotations: globox.AnnotationSet, names: dict[str, str] | None = None) -> dict[str, list[tuple]]:
    found = {}
    for annotation in annotations:
        found[annotation.image_id] = sorted(((names or {}).get(box.label, box.label), *box.ltrb) for box in annotation.boxes)
    return found


def assert_agree(mine: dict, other: dict, tolerance: float) -> None:
    assert mine.keys() == other.keys()
    for key, boxes in mine.items():
        assert [b[0] for b in boxes] == [b[0] for b in other[key]], key
        if boxes:
            np.testing.assert_allclose([b[1:] for b in boxes], [b[1:] for b in other[key]], atol=tolerance, err_msg=key)


@pytest.mark.parametrize("first_category", [0, 1])
def test_coco_agrees_with_globox(tmp_path, first_category):
    labelled = dataset()
    path = write_coco(labelled, tmp_path / "coco.json", CLASSES, first_category=first_category)
    assert_agree(ours(path, "coco", labelled), theirs(globox.AnnotationSet.from_coco(path)), 1e-6)


def test_voc_agrees_with_globox_within_its_one_based_pixel(tmp_path):
    labelled = dataset()
    folder = write_voc(labelled, tmp_path / "voc")
    mine = ours_folder(folder, "voc", labelled)
    other = theirs(globox.AnnotationSet.from_pascal_voc(folder))
    assert_agree(mine, other, 1.0 + 1e-6)
    shifted = {key: [(n, x0 + 1, y0 + 1, x1, y1) for n, x0, y0, x1, y1 in boxes] for key, boxes in mine.items()}
    assert_agree(shifted, other, 1e-6)  # exactly the 1-based convention, nothing else


def ours_folder(folder: Path, fmt: str, labelled: list[Labelled]) -> dict:
    found = {}
    for path in sorted(folder.glob("*.xml")):
        found |= ours(path, fmt, labelled)
    return found


def test_yolo_agrees_with_globox(tmp_path):
    labelled = dataset()
    folder = write_yolo(labelled, tmp_path / "yolo", CLASSES, classes_file="classes.txt")
    images = tmp_path / "images"
    images.mkdir()
    from PIL import Image

    for image in labelled:
        Image.new("RGB", (image.width, image.height)).save(images / image.key)
    other = globox.AnnotationSet.from_yolo_darknet(folder / "labels", image_folder=images)
    # Six decimals of a fraction: a millionth of up to 1200 pixels.
    assert_agree(ours(folder, "yolo", labelled, images), theirs(other, {"0": "dent", "1": "scratch"}), 2e-3)


def test_cvat_agrees_with_globox(tmp_path):
    labelled = dataset()
    path = write_cvat(labelled, tmp_path / "annotations.xml", CLASSES)
    assert_agree(ours(path, "cvat", labelled), theirs(globox.AnnotationSet.from_cvat(path)), 1e-6)


def test_via_agrees_with_globox(tmp_path):
    labelled = dataset()
    path = write_via(labelled, tmp_path / "via.json", attribute="label_id")
    assert_agree(ours(path, "via", labelled), theirs(globox.AnnotationSet.from_via_json(path, label_key="label_id")), 1e-6)
    exported = tmp_path / "export.json"  # the export without the project around it
    exported.write_text(json.dumps(json.loads(path.read_text())["_via_img_metadata"]))
    assert_agree(ours(exported, "via", labelled), theirs(globox.AnnotationSet.from_via_json(exported, label_key="label_id")), 1e-6)


def test_globox_written_files_read_here(tmp_path):
    """The other direction: files globox writes, read by these readers."""
    labelled = dataset(seed=11)
    source = globox.AnnotationSet.from_coco(write_coco(labelled, tmp_path / "in.json", CLASSES))
    coco = tmp_path / "globox.json"
    source.save_coco(coco, auto_ids=True)
    assert formats.detect(coco) == "coco"
    assert_agree(ours(coco, "coco", labelled), theirs(source), 1e-6)
    cvat = tmp_path / "globox-cvat.xml"
    source.save_cvat(cvat)
    assert formats.detect(cvat) == "cvat"
    assert_agree(ours(cvat, "cvat", labelled), theirs(source), 1e-6)
    voc = tmp_path / "globox-voc"
    source.save_pascal_voc(voc)
    assert {formats.detect(path) for path in voc.glob("*.xml")} == {"voc"}
    mine = ours_folder(voc, "voc", labelled)
    assert_agree({k: [(n, x0 + 1, y0 + 1, x1, y1) for n, x0, y0, x1, y1 in v] for k, v in mine.items()}, theirs(source), 1e-6)
