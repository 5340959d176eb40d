"""Examples and TFRecord files written without TensorFlow are byte for byte what TensorFlow writes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from containers.processing.labelling import Box
from containers.processing.records import (
    ShardWriter,
    build_example,
    bytes_feature,
    float_feature,
    int64_feature,
    label_map_text,
    serialize_example,
)

tf = pytest.importorskip("tensorflow")


def reference_example(features: dict) -> bytes:
    """The same Example through TensorFlow's own API, serialized deterministically."""
    feature = {}
    for key, (kind, values) in features.items():
        if kind == "bytes":
            feature[key] = tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
        elif kind == "float":
            feature[key] = tf.train.Feature(float_list=tf.train.FloatList(value=values))
        else:
            feature[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=values))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(deterministic=True)


ENCODERS = {"bytes": bytes_feature, "float": float_feature, "int64": int64_feature}
feature_values = st.one_of(
    st.tuples(st.just("bytes"), st.lists(st.binary(max_size=300), max_size=4)),
    st.tuples(st.just("float"), st.lists(st.floats(width=32, allow_nan=False), max_size=6)),
    st.tuples(st.just("int64"), st.lists(st.integers(-(2**63), 2**63 - 1), max_size=6)),
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=20), feature_values, max_size=8))
def test_any_example_serializes_exactly_as_tensorflow_does(features):
    ours = serialize_example({key: ENCODERS[kind](values) for key, (kind, values) in features.items()})
    assert ours == reference_example(features)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 9), st.floats(0, 60), st.floats(0, 40), st.floats(1, 20), st.floats(1, 20)),
        max_size=5,
    ),
    st.text(min_size=1, max_size=30),
)
def test_an_od_api_example_matches_tensorflow(raw_boxes, key):
    boxes = [Box(f"class-{label}", x, y, x + w, y + h, label=label) for label, x, y, w, h in raw_boxes]
    ours = build_example(encoded=b"\xff\xd8 image", key=key, width=80, height=60, boxes=boxes)
    parsed = tf.train.Example.FromString(ours)
    assert parsed.SerializeToString(deterministic=True) == ours
    assert parsed.features.feature["image/object/class/label"].int64_list.value == [b.label for b in boxes]
    assert list(parsed.features.feature["image/object/bbox/xmax"].float_list.value) == pytest.approx([b.xmax / 80 for b in boxes], rel=1e-6)


def test_tfrecord_files_are_identical_to_tensorflow_s(tmp_path):
    records = [b"", b"x", bytes(range(256)) * 40, build_example(encoded=b"abc", key="k", width=4, height=4, boxes=[])]
    with ShardWriter(tmp_path, ["ours.tfrecord"]) as writer:
        for record in records:
            writer.write(record)
    with tf.io.TFRecordWriter(str(tmp_path / "theirs.tfrecord")) as writer:
        for record in records:
            writer.write(record)
    assert (tmp_path / "ours.tfrecord").read_bytes() == (tmp_path / "theirs.tfrecord").read_bytes()
    read_back = [r.numpy() for r in tf.data.TFRecordDataset(str(tmp_path / "ours.tfrecord"))]
    assert read_back == records


def test_shards_take_records_round_robin(tmp_path):
    with ShardWriter(tmp_path, ["a", "b", "c"]) as writer:
        for i in range(7):
            writer.write(bytes([i]))
    counts = [sum(1 for _ in tf.data.TFRecordDataset(str(tmp_path / name))) for name in "abc"]
    assert counts == [3, 2, 2]


def test_the_label_map_parses_with_the_od_api_even_with_awkward_names(tmp_path):
    from containers.common import odapi

    odapi.patch()
    from object_detection.utils import label_map_util

    path = tmp_path / "label_map.pbtxt"
    path.write_text(label_map_text([(1, "dent"), (2, 'paint "chip"'), (3, "back\\slash")]))
    assert label_map_util.get_label_map_dict(str(path)) == {"dent": 1, 'paint "chip"': 2, "back\\slash": 3}
    with pytest.raises(ValueError, match="ids start at 1"):
        label_map_text([(0, "background")])
