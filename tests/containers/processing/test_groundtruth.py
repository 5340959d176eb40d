"""Ground Truth manifest lines -> labelled images: every rule, and a property test that nothing else escapes."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from containers.processing.formats.base import Context
from containers.processing.formats.groundtruth import object_detection_attributes, parse_line
from containers.processing.labelling import Classes, LabelMap, LineError, ManifestError, Source, image_key, newest_first, resolve
from tests.support import PREFIX, Dataset, json_containers

SOURCE = Source("m.manifest", 3)


def parse(line, *, classes=("dent", "scratch"), attribute=None, label_map=None, source=SOURCE):
    """The line read, then resolved against an image of the size it states."""
    raw = line if isinstance(line, bytes) else (line if isinstance(line, str) else json.dumps(line)).encode()
    label_map = label_map or LabelMap(classes)
    context = Context(PREFIX, label_attribute=attribute, classes=Classes(classes if label_map.fixed else None), label_map=label_map)
    record = parse_line(raw, source, images_prefix=PREFIX, context=context)
    return resolve(record, 1, record.size, 1, PREFIX, context.classes, label_map)


@pytest.fixture
def gt(tmp_path) -> Dataset:
    return Dataset(tmp_path)


def test_a_valid_line_gives_label_map_ids_from_one_and_pixel_boxes(gt):
    image = parse(gt.line("cars/a.jpg", boxes=[(0, 1, 2, 10, 20), (1, 5, 5, 3, 4)], size=(64, 48)))
    assert image.key == "cars/a.jpg"
    assert (image.width, image.height) == (64, 48)
    assert [(b.label, b.name) for b in image.boxes] == [(1, "dent"), (2, "scratch")]
    assert (image.boxes[0].xmin, image.boxes[0].ymin, image.boxes[0].xmax, image.boxes[0].ymax) == (1, 2, 11, 22)
    assert image.label_attribute == "car-damage"
    assert image.clipped_boxes == 0


def test_the_label_attribute_is_found_from_its_metadata_type_whatever_its_name(gt):
    line = gt.line("a.jpg", attribute="my-labelling-job-2024")
    line["other-metadata"] = {"type": "groundtruth/image-classification"}
    line["other"] = 1
    assert object_detection_attributes(line) == ["my-labelling-job-2024"]
    assert parse(line).label_attribute == "my-labelling-job-2024"


def test_several_box_attributes_stop_the_job_unless_one_is_chosen(gt):
    line = gt.line("a.jpg", attribute="first")
    line.update({k: v for k, v in gt.line("a.jpg", attribute="second").items() if k != "source-ref"})
    with pytest.raises(ManifestError, match=r"m\.manifest:3: several bounding-box label attributes \['first', 'second'\].*--label-attribute"):
        parse(line)
    assert parse(line, attribute="second").label_attribute == "second"


def test_an_override_that_the_line_lacks_is_reported_with_what_it_has(gt):
    with pytest.raises(LineError, match=r"label attribute 'nope' not found; this line has \['car-damage'\]"):
        parse(gt.line("a.jpg"), attribute="nope")


def test_an_override_naming_a_non_box_attribute_is_refused(gt):
    line = gt.line("a.jpg")
    line["car-damage-metadata"]["type"] = "groundtruth/image-classification"
    with pytest.raises(LineError, match="not bounding-box metadata"):
        parse(line, attribute="car-damage")


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda line: line.pop("source-ref"), "missing 'source-ref'"),
        (lambda line: line.update({"source-ref": 7}), "'source-ref' must be a non-empty string"),
        (lambda line: line.update({"source-ref": "/local/a.jpg"}), "is not an s3:// URI"),
        (lambda line: line.update({"source-ref": "s3://other-bucket/a.jpg"}), "is not under the images prefix"),
        (lambda line: line.update({"source-ref": PREFIX + "../secret.jpg"}), "does not name a file under the images prefix"),
        (lambda line: line.update({"source-ref": PREFIX}), "does not name a file"),
        (lambda line: line.pop("car-damage-metadata"), "no bounding-box label attribute"),
        (lambda line: line.pop("car-damage"), "missing 'car-damage'"),
        (lambda line: line["car-damage"].pop("image_size"), "'car-damage.image_size' is missing"),
        (lambda line: line["car-damage"].update({"image_size": [{"width": 0, "height": 5}]}), "integer width and height from 1 to 65535"),
        (lambda line: line["car-damage"].pop("annotations"), "'car-damage.annotations' is missing or not a list"),
        (lambda line: line["car-damage-metadata"].pop("class-map"), "has no 'class-map'"),
        (lambda line: line["car-damage"]["annotations"][0].pop("width"), "annotation 0 lacks 'width'"),
        (lambda line: line["car-damage"]["annotations"][0].update({"left": "3"}), "left must be a number"),
        (lambda line: line["car-damage"].update({"image_size": [{"width": 10**400, "height": 5}]}), "from 1 to 65535"),
        (lambda line: line["car-damage"]["annotations"][0].update({"width": 10**400}), "width must be a number within"),
        (lambda line: line["car-damage"]["annotations"][0].update({"top": float("nan")}), "top must be a number within"),
        (lambda line: line["car-damage"]["annotations"][0].update({"class_id": 7}), r"unknown class_id 7 \(the class-map has"),
        (lambda line: line["car-damage"]["annotations"][0].update({"class_id": -1}), "class_id must be a non-negative integer"),
        (lambda line: line["car-damage"]["annotations"].append("box"), "annotation 1 is not an object"),
    ],
)
def test_unusable_lines_are_reported_with_their_reason(gt, mutate, reason):
    line = gt.line("a.jpg")
    mutate(line)
    with pytest.raises(LineError, match=reason):
        parse(line)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "not valid JSON: .* at column"),
        (b'["a list"]', "not a JSON object but a list"),
        (b"\xff\xfe{}", "not UTF-8|not valid JSON"),
        (b"null", "not a JSON object but a NoneType"),
    ],
)
def test_lines_that_are_not_json_objects_are_reported(raw, reason):
    with pytest.raises(LineError, match=reason):
        parse(raw)


def test_boxes_are_clipped_to_the_image_and_counted(gt):
    image = parse(gt.line("a.jpg", boxes=[(0, -5, -5, 20, 20), (1, 50, 40, 100, 100)], size=(64, 48)))
    first, second = image.boxes
    assert (first.xmin, first.ymin, first.xmax, first.ymax) == (0, 0, 15, 15)
    assert (second.xmin, second.ymin, second.xmax, second.ymax) == (50, 40, 64, 48)
    assert image.clipped_boxes == 2


@pytest.mark.parametrize(
    "box",
    [(0, 10, 10, 0, 5), (0, 10, 10, 5, -1), (0, 70, 10, 5, 5), (0, -20, 10, 10, 5), (0, 10, 48, 5, 5)],
    ids=["zero width", "negative height", "right of the image", "left of the image", "below the image"],
)
def test_degenerate_boxes_make_the_line_unusable(gt, box):
    with pytest.raises(LineError, match=r"box 0 \(dent\): degenerate box after clipping to the 64x48 image"):
        parse(gt.line("a.jpg", boxes=[box], size=(64, 48)))


def test_a_line_without_boxes_is_a_background_image(gt):
    assert parse(gt.line("a.jpg", boxes=[])).boxes == ()


def test_configured_classes_map_by_name_whatever_the_ground_truth_order(gt):
    line = gt.line("a.jpg", boxes=[(0, 1, 1, 5, 5), (1, 1, 1, 5, 5)], class_map={"0": "scratch", "1": "dent"})
    assert [(b.label, b.name) for b in parse(line).boxes] == [(2, "scratch"), (1, "dent")]


def test_a_box_of_a_class_outside_the_configured_ones_is_dropped_and_named(gt):
    image = parse(gt.line("a.jpg", boxes=[(0, 1, 1, 5, 5), (1, 1, 1, 5, 5)], class_map={"0": "rust", "1": "scratch"}))
    assert [b.name for b in image.boxes] == ["scratch"]
    assert image.dropped == ("rust",)


def test_without_configured_classes_ids_are_ground_truth_ids_plus_one(gt):
    label_map = LabelMap(None)
    parse(gt.line("a.jpg", boxes=[(5, 1, 1, 5, 5)], class_map={"5": "bone"}), label_map=label_map)
    parse(gt.line("b.jpg", boxes=[(0, 1, 1, 5, 5)], class_map={"0": "dog", "2": "cat"}), label_map=label_map)
    assert label_map.items() == [(1, "dog"), (3, "cat"), (6, "bone")]  # cat: in the class-map, on no box yet


def test_without_configured_classes_conflicting_class_maps_stop_the_job(gt):
    label_map = LabelMap(None)
    parse(gt.line("a.jpg", class_map={"0": "dent", "1": "scratch"}), label_map=label_map)
    with pytest.raises(ManifestError, match=r"class '(dent|scratch)' has class_id [01], but m\.manifest:3 gives it class_id [01].*data\.classes"):
        parse(gt.line("b.jpg", boxes=[(1, 1, 1, 5, 5)], class_map={"0": "scratch", "1": "dent"}), label_map=label_map)
    with pytest.raises(ManifestError, match=r"class_id 0 is 'rust', but m\.manifest:3 names it 'dent'"):
        parse(gt.line("c.jpg", boxes=[(0, 1, 1, 5, 5)], class_map={"0": "rust"}), label_map=label_map)


def test_image_keys_keep_folders_so_equal_file_names_stay_apart():
    assert image_key(PREFIX + "batch-1/car.jpg", PREFIX) != image_key(PREFIX + "batch-2/car.jpg", PREFIX)
    assert image_key(PREFIX + "a/b.jpg", PREFIX.rstrip("/")) == "a/b.jpg"


def test_the_merge_rule_prefers_the_newest_labelling_then_the_later_line(gt):
    def record(created, name):
        context = Context(PREFIX, classes=Classes(["dent", "scratch"]))
        return parse_line(json.dumps(gt.line("a.jpg", created=created)).encode(), Source(name, 1), images_prefix=PREFIX, context=context)

    old, new = record("2024-03-01T10:00:00", "b"), record("2024-03-01T10:00:00.5+00:00", "a")
    assert newest_first([(old, 9), (new, 1)])[0][0] is new
    same_date = record("2024-03-01T10:00:00", "c")
    assert newest_first([(same_date, 10), (old, 9)])[0][0] is same_date
    undated = record("not a date", "d")
    assert newest_first([(undated, 5), (new, 1)])[0][0] is undated  # no date to compare: the later input wins
    assert newest_first([(undated, 1), (new, 5)])[0][0] is new


# Random lines: the parser either accepts a line or rejects it with a reason (LineError); a ManifestError
# only for the two whole-job conditions. Any other exception would crash a Processing job on bad data.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.integers(-(10**400), 10**400) | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)


def _mutations(base: dict):
    keys = st.sampled_from(
        [
            "source-ref",
            "car-damage",
            "car-damage-metadata",
            "image_size",
            "annotations",
            "class-map",
            "type",
            "class_id",
            "left",
            "top",
            "width",
            "height",
            "creation-date",
        ]
    )

    def apply(path_and_value):
        line = json.loads(json.dumps(base))
        (key, value), drop = path_and_value
        for container in json_containers(line):
            if key in container:
                if drop:
                    del container[key]
                else:
                    container[key] = value
                break
        return line

    return st.tuples(st.tuples(keys, json_values), st.booleans()).map(apply)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_lines_never_crash_the_parser(gt, data):
    base = gt.line("cars/a.jpg", boxes=[(0, 4, 4, 20, 16), (1, 30, 2, 8, 8)])
    line = data.draw(
        st.one_of(
            _mutations(base),
            _mutations(base).flatmap(_mutations),
            json_values,
            st.binary(max_size=60),
        )
    )
    raw = line if isinstance(line, bytes) else json.dumps(line).encode()
    try:
        parse(raw)
    except LineError as exc:
        assert str(exc)
    except ManifestError as exc:  # several box attributes in one line: the mutation created a second one
        assert "several bounding-box label attributes" in str(exc)
