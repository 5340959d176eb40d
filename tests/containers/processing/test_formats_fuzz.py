"""Random records never crash a reader: each record is read or refused with a reason; a broken file as a
whole stops the job with an error naming it. Any other exception would crash a Processing job on bad data."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from xml.etree import ElementTree as ET

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from containers.processing import formats
from containers.processing.formats import Context, Input, Refusal
from containers.processing.labelling import Classes, InputError, LabelMap, Record, RecordError, resolve
from tests.label_files import Labelled, write_coco, write_cvat, write_labelstudio, write_via, write_voc, write_yolo
from tests.support import PREFIX, json_containers

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
IMAGES = [
    Labelled("cars/0.jpg", 64, 48, [("dent", 4, 8, 20, 16), ("scratch", 30, 2.5, 40, 12.5)]),
    Labelled("cars/1.jpg", 64, 48, []),
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=10,
)
texts = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12) | st.sampled_from(
    ["", "0", "-1", "1e400", "nan", "inf", "3.5", "../x", "dent", "1"]
)


def check(path: Path, fmt: str, images: Path | None = None) -> None:
    """Read every record; resolve each one against an image of 64 x 48."""
    context = Context(PREFIX, images=images, classes=Classes(["dent", "scratch"]), label_map=LabelMap(["dent", "scratch"]))
    try:
        items = list(formats.read(Input(path, fmt), context))
    except InputError as exc:
        assert str(exc).startswith(str(path)), str(exc)  # the whole path first (a YOLO folder's file under it), then what is wrong
        return
    for item in items:
        assert isinstance(item, Record | Refusal)
        if isinstance(item, Refusal):
            assert item.reason
            continue
        try:
            resolve(item, 1, (64, 48), 1, PREFIX, context.classes, context.label_map)
        except RecordError as exc:
            assert str(exc)


def mutate_json(document: object, data) -> object:
    """Replace, or delete, one value somewhere in the document, a few times over."""
    document = json.loads(json.dumps(document))
    for _ in range(data.draw(st.integers(1, 3))):
        containers = list(json_containers(document))
        container = data.draw(st.sampled_from(containers))
        if not container:
            continue
        key = data.draw(st.sampled_from(sorted(container) if isinstance(container, dict) else list(range(len(container)))))
        if data.draw(st.booleans()):
            container[key] = data.draw(json_values)
        elif isinstance(container, dict):
            del container[key]
        else:
            container.pop(key)
    return document


def json_case(fmt: str, write) -> None:
    @SETTINGS
    @given(data=st.data())
    def test(data):
        with tempfile.TemporaryDirectory() as folder:
            path = write(IMAGES, Path(folder) / "labels.json")
            document = (
                data.draw(st.one_of(st.just(None), json_values))
                if data.draw(st.integers(0, 9)) == 0
                else mutate_json(json.loads(path.read_text()), data)
            )
            path.write_text(json.dumps(document))
            check(path, fmt)

    test()


def test_random_coco_records_never_crash_the_reader():
    json_case("coco", lambda images, path: write_coco(images, path, ["dent", "scratch"]))


def test_random_label_studio_tasks_never_crash_the_reader():
    json_case("labelstudio", lambda images, path: write_labelstudio(images, path, PREFIX))


def test_random_via_regions_never_crash_the_reader():
    json_case("via", write_via)


def mutate_xml(root: ET.Element, data) -> None:
    elements = list(root.iter())
    for _ in range(data.draw(st.integers(1, 3))):
        element = data.draw(st.sampled_from(elements))
        choice = data.draw(st.integers(0, 2))
        if choice == 0 and element.attrib:
            element.set(data.draw(st.sampled_from(sorted(element.attrib))), data.draw(texts))
        elif choice == 1:
            element.text = data.draw(texts)
        else:
            for parent in elements:
                if element in list(parent):
                    parent.remove(element)
                    break


@SETTINGS
@given(data=st.data())
def test_random_voc_files_never_crash_the_reader(data):
    with tempfile.TemporaryDirectory() as folder:
        path = next(write_voc(IMAGES[:1], Path(folder) / "voc").glob("*.xml"))
        tree = ET.parse(path)
        mutate_xml(tree.getroot(), data)
        tree.write(path)
        check(path, "voc")


@SETTINGS
@given(data=st.data())
def test_random_cvat_images_never_crash_the_reader(data):
    with tempfile.TemporaryDirectory() as folder:
        path = write_cvat(IMAGES, Path(folder) / "annotations.xml", ["dent", "scratch"])
        tree = ET.parse(path)
        mutate_xml(tree.getroot(), data)
        if data.draw(st.booleans()):
            image = tree.getroot().find("image")
            if image is not None:
                ET.SubElement(
                    image,
                    data.draw(st.sampled_from(["box", "polygon", "points", "mask", "tag", "other"])),
                    {"label": "dent", "points": data.draw(texts)},
                )
        tree.write(path)
        check(path, "cvat")


yolo_lines = st.lists(
    st.one_of(
        st.lists(texts, max_size=8).map(" ".join),
        st.tuples(st.integers(-1, 3), *[st.floats(allow_nan=True, allow_infinity=True, width=32)] * 4).map(lambda t: " ".join(map(str, t))),
    ),
    max_size=4,
).map("\n".join)


@SETTINGS
@given(lines=yolo_lines, names=st.sampled_from(["names: [dent, scratch]\n", "names: 7\n", "names: {0: dent, 2: x}\n", ": [\n"]))
def test_random_yolo_labels_never_crash_the_reader(lines, names):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        dataset = write_yolo(IMAGES, root / "yolo", ["dent", "scratch"])
        (dataset / "data.yaml").write_text(names)
        (dataset / "labels" / "cars" / "0.txt").write_text(lines)
        (root / "images" / "cars").mkdir(parents=True)
        (root / "images" / "cars" / "0.jpg").write_bytes(b"not read by the reader")
        (root / "images" / "cars" / "1.jpg").write_bytes(b"")
        check(dataset, "yolo", images=root / "images")
