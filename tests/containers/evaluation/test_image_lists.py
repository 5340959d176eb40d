"""The photos a model learnt from, kept beside its evaluation.json, and what changed since the champion's: new,
no longer present and unchanged photos told by content on known lists, either file name the champion's data
input gives, and every way the champion's data can be missing, which makes the comparison "not known" and
never fails the evaluation."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from containers.deploy.champion import EVALUATION_FILE
from containers.evaluation.image_lists import (
    IMAGE_LIST,
    ChampionData,
    ImageList,
    ListError,
    Photo,
    compare,
    read_kept,
    read_prepared,
    training_data,
)

SNAPSHOT = "s3://data/snapshots/20261130T101500Z-0123456789ab/snapshot.json"


def digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def photo(key: str, split: str = "train", content: str | None = None) -> Photo:
    return Photo(key, digest(content or key), split)


def test_photos_are_compared_by_content_new_gone_and_unchanged():
    champion = ImageList(
        (photo("a.jpg"), photo("b.jpg"), photo("c.jpg", "validation"), photo("old.jpg"), photo("v.jpg")), SNAPSHOT, "s3://data/snapshots/x/inputs/"
    )
    challenger = ImageList(
        (
            photo("a.jpg"),  # unchanged
            photo("copies/b.jpg", content="b.jpg"),  # b.jpg uploaded again under another key: not new
            photo("c.jpg", "validation"),  # unchanged, and validation for both
            photo("new-1.jpg"),
            photo("new-2.jpg", "validation"),
            photo("v.jpg", "validation"),  # the champion trained on it: its figures on it flatter it
            photo("z.jpg", content="another photo"),
        )
    )
    since = compare(challenger, champion, 3)
    assert since == {
        "known": True,
        "version": 3,
        "snapshot": SNAPSHOT,
        "labels_uri": "s3://data/snapshots/x/inputs/",
        "new": 3,
        "new_by_split": {"train": 2, "validation": 1},
        "new_examples": ["new-1.jpg", "new-2.jpg", "z.jpg"],
        "gone": 1,
        "gone_examples": ["old.jpg"],
        "unchanged": 4,
        "validation_in_champion_training": 1,
    }


def test_a_key_overwritten_with_another_photo_is_new_and_its_old_photo_gone():
    since = compare(ImageList((photo("a.jpg", content="after"),)), ImageList((photo("a.jpg", content="before"),)), 1)
    assert (since["new"], since["gone"], since["unchanged"]) == (1, 1, 0)
    assert since["new_examples"] == since["gone_examples"] == ["a.jpg"]


def test_identical_data_has_nothing_new_and_only_a_few_names_are_listed():
    many = ImageList(tuple(photo(f"car-{i:03d}.jpg") for i in range(25)))
    same = compare(many, many, 2)
    assert (same["new"], same["gone"], same["unchanged"], same["new_examples"]) == (0, 0, 25, [])
    nothing = compare(many, ImageList(()), 2)
    assert nothing["new"] == 25 and nothing["new_examples"] == [f"car-{i:03d}.jpg" for i in range(10)]


def lines(*photos: Photo) -> str:
    return "".join(json.dumps({"key": p.key, "sha256": p.sha256, "split": p.split}) + "\n" for p in photos)


def test_prepare_datas_lists_of_every_instance_are_read_under_either_name(tmp_path):
    """A file of the `<prepared>/images` prefix under its own name, or under what follows the prefix (the local engine's)."""
    (tmp_path / "images.jsonl").write_text(lines(photo("a.jpg")))
    (tmp_path / "-algo-2.jsonl").write_text(lines(photo("b.jpg", "validation")) + "\n")
    (tmp_path / "report.json").write_text("{}")  # not a list: left alone
    found = read_prepared(tmp_path, SNAPSHOT, "s3://labels/")
    assert found == ImageList((photo("b.jpg", "validation"), photo("a.jpg")), SNAPSHOT, "s3://labels/")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"key": "a.jpg", "sha256": "abc", "split": "train"}', "images.jsonl line 2: sha256 must be 64 lowercase hex digits (got 'abc')"),
        ('{"key": "", "sha256": "' + digest("a") + '", "split": "train"}', "images.jsonl line 2: key must be the photo's key (got '')"),
        ('{"key": "a.jpg", "sha256": "' + digest("a") + '", "split": "x"}', "images.jsonl line 2: split must be one of train, validation (got 'x')"),
        ("[1]", "images.jsonl line 2: not a JSON object"),
        ("{not json", "images.jsonl line 2: not JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"),
    ],
)  # fmt: skip
def test_a_bad_line_is_named_by_file_and_line(tmp_path, content, message):
    (tmp_path / "images.jsonl").write_text(lines(photo("ok.jpg")) + content + "\n")
    with pytest.raises(ListError) as caught:
        read_prepared(tmp_path)
    assert str(caught.value) == message


def test_the_kept_list_is_found_under_either_name_beside_evaluation_json(tmp_path):
    kept = ImageList((photo("a.jpg"), photo("b.jpg", "validation")), SNAPSHOT, None)
    for name in (IMAGE_LIST, "-images.json"):  # its own name, and the local engine's (what follows `evaluation`)
        folder = tmp_path / name
        folder.mkdir()
        (folder / EVALUATION_FILE).write_text("{}")
        (folder / name).write_text(json.dumps(kept.document()))
        assert read_kept(folder) == ImageList((photo("a.jpg"), photo("b.jpg", "validation")), SNAPSHOT, None)
    only_evaluation = tmp_path / "old"
    only_evaluation.mkdir()
    (only_evaluation / EVALUATION_FILE).write_text("{}")
    assert read_kept(only_evaluation) is None


def test_the_list_starts_as_evaluation_json_does_so_the_champions_prefix_holds_both():
    """The champion function names the champion's data as its evaluation.json's URI less ".json"."""
    assert IMAGE_LIST.startswith(EVALUATION_FILE.removesuffix(".json")) and IMAGE_LIST != EVALUATION_FILE


# evaluation.json's training_data, and every way the champion's data can be missing


@pytest.fixture
def prepared(tmp_path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "images.jsonl").write_text(lines(photo("a.jpg"), photo("new.jpg", "validation")))
    return folder


def kept_folder(tmp_path: Path, *photos: Photo, name: str = "-images.json") -> Path:
    folder = tmp_path / "champion-data"
    folder.mkdir()
    (folder / ".json").write_text("{}")  # the champion's evaluation.json, as the local engine names it
    (folder / name).write_text(json.dumps(ImageList(photos, SNAPSHOT).document()))
    return folder


def test_the_photos_are_kept_beside_evaluation_json_and_compared_with_the_champions(tmp_path, prepared):
    output = tmp_path / "out"
    output.mkdir()
    logged: list[str] = []
    champion = ChampionData(kept_folder(tmp_path, photo("a.jpg"), photo("gone.jpg")))
    section = training_data(output, prepared, champion, 3, snapshot="s3://data/snapshots/y/snapshot.json", labels_uri=None, log=logged.append)
    assert section["images"] == 2 and section["image_list"] == IMAGE_LIST and section["snapshot"] == "s3://data/snapshots/y/snapshot.json"
    assert section["since_champion"]["new_examples"] == ["new.jpg"] and section["since_champion"]["gone_examples"] == ["gone.jpg"]
    assert section["text"] == "1 image(s) new since the champion's data (version 3), 1 no longer present"
    kept = json.loads((output / IMAGE_LIST).read_text())
    assert kept["snapshot"] == "s3://data/snapshots/y/snapshot.json" and [entry["key"] for entry in kept["images"]] == ["a.jpg", "new.jpg"]
    assert logged == [f"evaluate: image list: 2 photo(s) -> {IMAGE_LIST}; {section['text']}"]


def corrupt(tmp_path: Path) -> ChampionData:
    folder = kept_folder(tmp_path)
    (folder / "-images.json").write_text(json.dumps({"images": [{"key": "a.jpg", "sha256": "x", "split": "train"}]}))
    return ChampionData(folder)


NOTHING_SERVED = "there is no endpoint car-damage-endpoint: nothing is served"
NOT_NAMED = "version 2's package names no evaluation.json (ModelMetrics)"


@pytest.mark.parametrize(
    ("champion", "version", "reason"),
    [
        (lambda tmp: ChampionData(tmp, NOTHING_SERVED), 0, NOTHING_SERVED),
        (lambda tmp: ChampionData(tmp, NOT_NAMED), 2, NOT_NAMED),
        (lambda tmp: ChampionData(None), 0, "there is no champion"),
        (lambda tmp: ChampionData(None), 2, "Evaluate was not given the champion's data (--champion-data)"),
        (lambda tmp: ChampionData(kept_folder(tmp)), 2, None),  # stands for itself: a kept list of no photo is a list
        (lambda tmp: ChampionData(tmp / "empty"), 2, "version 2's evaluation kept no image list (it ran before Evaluate kept one)"),
        (corrupt, 2, "version 2's image list: -images.json: images[0]: sha256 must be 64 lowercase hex digits (got 'x')"),
    ],
    ids=["no champion", "no evaluation named", "no champion, by hand", "not given", "an empty list", "an evaluation before lists", "a broken list"],
)  # fmt: skip
def test_champions_data_that_is_missing_or_unreadable_is_not_known_and_says_why(tmp_path, prepared, champion, version, reason):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / ".json").write_text("{}")
    section = training_data(tmp_path, prepared, champion(tmp_path), version, snapshot=None, labels_uri=None, log=lambda line: None)
    assert (tmp_path / IMAGE_LIST).is_file()  # this model's photos are kept whatever the champion's
    if reason is None:
        assert section["since_champion"]["known"] and section["since_champion"]["new"] == 2
    else:
        assert section["since_champion"] == {"known": False, "reason": reason}
        assert section["text"] == f"images new since the champion's data: not known ({reason})"


def test_without_prepare_datas_list_nothing_is_kept_and_an_earlier_list_is_removed(tmp_path):
    (tmp_path / IMAGE_LIST).write_text("{}")  # an earlier run's, in the same folder
    logged: list[str] = []
    section = training_data(tmp_path, None, ChampionData(), 0, snapshot=None, labels_uri=None, log=logged.append)
    assert not (tmp_path / IMAGE_LIST).exists()
    reason = "Evaluate was not given PrepareData's image list (--images)"
    assert section == {
        "images": None,
        "image_list": None,
        "reason": reason,
        "since_champion": {"known": False, "reason": f"this model's photos are not known: {reason}"},
        "text": f"images new since the champion's data: not known (this model's photos are not known: {reason})",
    }
    assert logged == [f"evaluate: no image list kept: {reason}"]
    empty = tmp_path / "images"
    empty.mkdir()
    assert training_data(tmp_path, empty, ChampionData(), 0, snapshot=None, labels_uri=None, log=logged.append)["reason"] == (
        f"{empty} holds no PrepareData image list (images.jsonl)"
    )
