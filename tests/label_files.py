"""Writers of label files in every format PrepareData reads, written here from each format's documentation
and independently of the readers, so a test can write a dataset out and read it back.

An image is a `Labelled`: its key under the images folder, the size the annotator saw, and its boxes as
(class name, xmin, ymin, xmax, ymax) in pixels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree as ET

import yaml

from tests.support import ATTRIBUTE


@dataclass
class Labelled:
    key: str
    width: int
    height: int
    boxes: list[tuple[str, float, float, float, float]] = field(default_factory=list)


def class_names(images: list[Labelled], classes: list[str] | None = None) -> list[str]:
    return list(classes) if classes else sorted({box[0] for image in images for box in image.boxes})


def from_manifest(path: Path, prefix: str) -> list[Labelled]:
    """The images of a Ground Truth manifest (one label attribute, `car-damage`)."""
    images = []
    for line in path.read_text().splitlines():
        record = json.loads(line)
        label, metadata = record[ATTRIBUTE], record[f"{ATTRIBUTE}-metadata"]
        size = label["image_size"][0]
        boxes = [
            (metadata["class-map"][str(a["class_id"])], a["left"], a["top"], a["left"] + a["width"], a["top"] + a["height"])
            for a in label["annotations"]
        ]
        images.append(Labelled(record["source-ref"].removeprefix(prefix), size["width"], size["height"], boxes))
    return images


def write_groundtruth(images: list[Labelled], path: Path, prefix: str, classes: list[str] | None = None) -> Path:
    names = class_names(images, classes)
    lines = []
    for image in images:
        annotations = [{"class_id": names.index(n), "left": x0, "top": y0, "width": x1 - x0, "height": y1 - y0} for n, x0, y0, x1, y1 in image.boxes]
        lines.append(
            {
                "source-ref": prefix + image.key,
                ATTRIBUTE: {"image_size": [{"width": image.width, "height": image.height, "depth": 3}], "annotations": annotations},
                f"{ATTRIBUTE}-metadata": {
                    "class-map": {str(i): n for i, n in enumerate(names)},
                    "type": "groundtruth/object-detection",
                    "creation-date": "2024-01-01T00:00:00",
                },
            }
        )
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def write_coco(images: list[Labelled], path: Path, classes: list[str] | None = None, first_category: int = 0) -> Path:
    names = class_names(images, classes)
    categories = [{"id": first_category + i, "name": n, "supercategory": "damage"} for i, n in enumerate(names)]
    document = {"info": {"description": "test"}, "images": [], "annotations": [], "categories": categories}
    for image_id, image in enumerate(images, start=1):
        document["images"].append({"id": image_id, "file_name": image.key, "width": image.width, "height": image.height})
        for n, x0, y0, x1, y1 in image.boxes:
            document["annotations"].append(
                {
                    "id": len(document["annotations"]) + 1,
                    "image_id": image_id,
                    "category_id": first_category + names.index(n),
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),
                    "iscrowd": 0,
                }
            )
    path.write_text(json.dumps(document))
    return path


def write_voc(images: list[Labelled], folder: Path) -> Path:
    """One XML per image; corners 1-based and inclusive, so a box [x0, x1) in pixels is xmin x0 + 1, xmax x1."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, image in enumerate(images):
        root = ET.Element("annotation")
        ET.SubElement(root, "folder").text = "images"
        ET.SubElement(root, "filename").text = image.key
        size = ET.SubElement(root, "size")
        for tag, value in (("width", image.width), ("height", image.height), ("depth", 3)):
            ET.SubElement(size, tag).text = str(value)
        for n, x0, y0, x1, y1 in image.boxes:
            obj = ET.SubElement(root, "object")
            ET.SubElement(obj, "name").text = n
            ET.SubElement(obj, "difficult").text = "0"
            box = ET.SubElement(obj, "bndbox")
            for tag, value in (("xmin", x0 + 1), ("ymin", y0 + 1), ("xmax", x1), ("ymax", y1)):
                ET.SubElement(box, tag).text = f"{value:g}"
        ET.ElementTree(root).write(folder / f"{index:05d}.xml")
    return folder


def write_yolo(images: list[Labelled], folder: Path, classes: list[str] | None = None, classes_file: str = "data.yaml") -> Path:
    names = class_names(images, classes)
    (folder / "labels").mkdir(parents=True, exist_ok=True)
    if classes_file == "data.yaml":
        (folder / "data.yaml").write_text(yaml.safe_dump({"path": ".", "train": "images", "names": dict(enumerate(names))}))
    else:
        (folder / classes_file).write_text("".join(n + "\n" for n in names))
    for image in images:
        label = folder / "labels" / Path(image.key).with_suffix(".txt")
        label.parent.mkdir(parents=True, exist_ok=True)
        lines = [
            f"{names.index(n)} {(x0 + x1) / 2 / image.width:.6f} {(y0 + y1) / 2 / image.height:.6f} "
            f"{(x1 - x0) / image.width:.6f} {(y1 - y0) / image.height:.6f}"
            for n, x0, y0, x1, y1 in image.boxes
        ]
        label.write_text("".join(line + "\n" for line in lines))
    return folder


def labelstudio_task(task_id: int, image: Labelled, url: str, annotations: list[dict] | None = None) -> dict:
    result = [
        {
            "id": f"r{task_id}-{i}",
            "type": "rectanglelabels",
            "from_name": "label",
            "to_name": "image",
            "original_width": image.width,
            "original_height": image.height,
            "image_rotation": 0,
            "value": {
                "x": x0 / image.width * 100,
                "y": y0 / image.height * 100,
                "width": (x1 - x0) / image.width * 100,
                "height": (y1 - y0) / image.height * 100,
                "rotation": 0,
                "rectanglelabels": [n],
            },
        }
        for i, (n, x0, y0, x1, y1) in enumerate(image.boxes)
    ]
    annotation = {"id": task_id * 10, "completed_by": 1, "result": result, "was_cancelled": False, "created_at": "2025-05-01T10:00:00.000000Z"}
    return {"id": task_id, "data": {"image": url}, "annotations": annotations if annotations is not None else [annotation], "predictions": []}


def write_labelstudio(images: list[Labelled], path: Path, prefix: str) -> Path:
    tasks = [labelstudio_task(i, image, prefix + image.key) for i, image in enumerate(images, start=1)]
    path.write_text(json.dumps(tasks))
    return path


def write_cvat(images: list[Labelled], path: Path, classes: list[str] | None = None) -> Path:
    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = "1.1"
    meta = ET.SubElement(root, "meta")
    labels = ET.SubElement(ET.SubElement(meta, "task"), "labels")
    for n in class_names(images, classes):
        ET.SubElement(ET.SubElement(labels, "label"), "name").text = n
    for index, image in enumerate(images):
        element = ET.SubElement(root, "image", id=str(index), name=image.key, width=str(image.width), height=str(image.height))
        for n, x0, y0, x1, y1 in image.boxes:
            corners = {"xtl": f"{x0:.2f}", "ytl": f"{y0:.2f}", "xbr": f"{x1:.2f}", "ybr": f"{y1:.2f}"}
            ET.SubElement(element, "box", {"label": n, "source": "manual", "occluded": "0", **corners, "z_order": "0"})
    ET.ElementTree(root).write(path)
    return path


def write_via(images: list[Labelled], path: Path, attribute: str = "damage", project: bool = True) -> Path:
    metadata = {}
    for image in images:
        regions = [
            {"shape_attributes": {"name": "rect", "x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0}, "region_attributes": {attribute: n}}
            for n, x0, y0, x1, y1 in image.boxes
        ]
        metadata[f"{image.key}-1"] = {"filename": image.key, "size": -1, "regions": regions, "file_attributes": {}}
    document = (
        {"_via_settings": {}, "_via_img_metadata": metadata, "_via_attributes": {"region": {attribute: {"type": "text"}}, "file": {}}}
        if project
        else metadata
    )
    path.write_text(json.dumps(document))
    return path
