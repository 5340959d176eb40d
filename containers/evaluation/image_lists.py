"""The photos a model was trained and validated on, kept with its evaluation, and what changed since the
champion's: the report page's "images new since the champion's data" (evaluation.json's `training_data`).

A photo is known by the sha256 of its bytes as labelled (PrepareData's images.jsonl), not by its S3 key: a photo
uploaded again under another key (a review batch, another images prefix) is not new, and a key overwritten with
another photo is. Keys are only shown, as the photos' names.

Why Evaluate keeps the list: PrepareData's images.jsonl lies with the prepared data, which expires
(infra/storage.py), and a dataset snapshot lists the labelled input files, not the photos they name (the photos
stay where they were uploaded, unversioned). Evaluate writes IMAGE_LIST beside evaluation.json, in the
execution's outputs, which are kept. The champion function (containers/deploy/champion.py) names the champion's
as its evaluation.json's URI less ".json": a prefix that holds evaluation.json and IMAGE_LIST, so IMAGE_LIST must
start with "evaluation". How SageMaker names a file of a prefix that ends inside a name is not documented; the
local engine names it by what follows the prefix ("-images.json"): the list is found by the end of its name,
which either naming keeps.

Nothing here fails an evaluation: a list that is missing or unreadable makes the comparison "not known", with
the reason naming the file and line.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from containers.processing.split import SPLITS, TRAIN, VALIDATION

IMAGE_LIST = "evaluation-images.json"  # beside evaluation.json: this model's photos, by content
LIST_ENDING = "images.json"  # how the list is told in the champion's data folder, under either name
PREPARED_ENDING = ".jsonl"  # PrepareData's images.jsonl, images-<host>.jsonl with several instances
NONE = "none"  # FindChampion's data_missing when it named the champion's data
SHOWN = 10  # photo names listed for new and for no longer present ones
_SHA256 = re.compile(r"[0-9a-f]{64}")


class ListError(ValueError):
    """A list of photos that cannot be read; the message names the file and the line or entry."""


@dataclass(frozen=True)
class Photo:
    key: str  # where it was read from (its S3 key): its name on the page
    sha256: str  # its content: what tells photos apart
    split: str


@dataclass(frozen=True)
class ImageList:
    """The photos one model was trained and validated on, and the data they came from."""

    photos: tuple[Photo, ...]
    snapshot: str | None = None  # the dataset snapshot's snapshot.json URI
    labels_uri: str | None = None  # the labels read (the execution's InputManifestUri)

    def document(self) -> dict:
        entries = [{"key": p.key, "sha256": p.sha256, "split": p.split} for p in sorted(self.photos, key=lambda p: (p.key, p.sha256))]
        return {"snapshot": self.snapshot, "labels_uri": self.labels_uri, "images": entries}


def _photo(entry: object, where: str) -> Photo:
    if not isinstance(entry, dict):
        raise ListError(f"{where}: not a JSON object")
    key, sha256, split = entry.get("key"), entry.get("sha256"), entry.get("split")
    if not isinstance(key, str) or not key:
        raise ListError(f"{where}: key must be the photo's key (got {key!r})")
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise ListError(f"{where}: sha256 must be 64 lowercase hex digits (got {sha256!r})")
    if split not in SPLITS:
        raise ListError(f"{where}: split must be one of {', '.join(SPLITS)} (got {split!r})")
    return Photo(key, sha256, split)


def read_prepared(folder: Path | None, snapshot: str | None = None, labels_uri: str | None = None) -> ImageList:
    """The photos PrepareData wrote: every images list in `folder` (Evaluate's `images` input, the prefix
    `<prepared>/images`), one line per photo."""
    if folder is None:
        raise ListError("Evaluate was not given PrepareData's image list (--images)")
    paths = sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(PREPARED_ENDING)) if folder.is_dir() else []
    if not paths:
        raise ListError(f"{folder} holds no PrepareData image list (images.jsonl)")
    photos = []
    for path in paths:
        for number, line in enumerate(_lines(path), start=1):
            if line.strip():
                photos.append(_photo(_json(line, f"{path.name} line {number}"), f"{path.name} line {number}"))
    return ImageList(tuple(photos), snapshot, labels_uri)


def _lines(path: Path) -> Iterable[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ListError(f"{path.name}: not readable ({type(exc).__name__}: {exc})") from None


def _json(text: str, where: str) -> object:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ListError(f"{where}: not JSON ({exc})") from None


def read_kept(folder: Path) -> ImageList | None:
    """The list an earlier Evaluate kept, from the champion's data folder; None when it holds none (that
    evaluation ran before Evaluate kept one)."""
    paths = sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(LIST_ENDING)) if folder.is_dir() else []
    if not paths:
        return None
    if len(paths) > 1:
        raise ListError(f"{folder} holds {len(paths)} image lists ({', '.join(p.name for p in paths)}): expected one")
    path = paths[0]
    document = _json("\n".join(_lines(path)), path.name)
    if not isinstance(document, dict) or not isinstance(document.get("images"), list):
        raise ListError(f"{path.name}: not an image list (no images)")
    photos = tuple(_photo(entry, f"{path.name}: images[{index}]") for index, entry in enumerate(document["images"]))
    return ImageList(photos, _text(document.get("snapshot")), _text(document.get("labels_uri")))


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def compare(challenger: ImageList, champion: ImageList, version: int) -> dict:
    """What changed since the champion's data, by content: the challenger's photos the champion had no copy of
    (new, per split), the champion's photos the challenger has no copy of (no longer present), those both have,
    and the challenger's validation photos the champion was trained on (its figures on them flatter it)."""
    theirs = {photo.sha256 for photo in champion.photos}
    trained = {photo.sha256 for photo in champion.photos if photo.split == TRAIN}
    mine = {photo.sha256 for photo in challenger.photos}
    new = sorted((p for p in challenger.photos if p.sha256 not in theirs), key=lambda p: p.key)
    gone = sorted((p for p in champion.photos if p.sha256 not in mine), key=lambda p: p.key)
    splits = Counter(photo.split for photo in new)
    return {
        "known": True,
        "version": version,
        "snapshot": champion.snapshot,
        "labels_uri": champion.labels_uri,
        "new": len(new),
        "new_by_split": {split: splits[split] for split in SPLITS},
        "new_examples": [photo.key for photo in new[:SHOWN]],
        "gone": len(gone),
        "gone_examples": [photo.key for photo in gone[:SHOWN]],
        "unchanged": len(challenger.photos) - len(new),
        "validation_in_champion_training": sum(1 for p in challenger.photos if p.split == VALIDATION and p.sha256 in trained),
    }


@dataclass(frozen=True)
class ChampionData:
    """What FindChampion named of the champion's data: the folder Evaluate was given (its `champion-data` input)
    and, when it could not name it, why (`missing`; NONE: it named it)."""

    folder: Path | None = None
    missing: str = NONE


def training_data(
    output: Path, images: Path | None, champion: ChampionData, version: int, *, snapshot: str | None, labels_uri: str | None,
    log: Callable[[str], None] = print,
) -> dict:  # fmt: skip
    """evaluation.json's `training_data`: this model's photos, kept as IMAGE_LIST in `output`, and what changed
    since the data of the champion (package `version`; 0: none). A list that cannot be read makes the section say
    why, never the evaluation fail."""
    stale = output / IMAGE_LIST
    try:
        own = read_prepared(images, snapshot, labels_uri)
    except ListError as exc:
        stale.unlink(missing_ok=True)  # an earlier run's in the same folder would pass for this model's
        log(f"evaluate: no image list kept: {exc}")
        unknown = {"known": False, "reason": f"this model's photos are not known: {exc}"}
        return {"images": None, "image_list": None, "reason": str(exc), "since_champion": unknown, "text": _sentence(unknown)}
    stale.write_text(json.dumps(own.document(), separators=(",", ":")) + "\n", encoding="utf-8")
    since = since_champion(own, champion, version)
    log(f"evaluate: image list: {len(own.photos)} photo(s) -> {IMAGE_LIST}; {_sentence(since)}")
    section = {"images": len(own.photos), "image_list": IMAGE_LIST, "snapshot": snapshot, "labels_uri": labels_uri, "since_champion": since}
    return section | {"text": _sentence(since)}


def since_champion(own: ImageList, champion: ChampionData, version: int) -> dict:
    """The comparison with the champion's kept list, or {"known": false, "reason": ...}."""
    if champion.missing != NONE:
        return _unknown(champion.missing)
    if not version:
        return _unknown("there is no champion")
    if champion.folder is None:
        return _unknown("Evaluate was not given the champion's data (--champion-data)")
    try:
        kept = read_kept(champion.folder)
    except ListError as exc:
        return _unknown(f"version {version}'s image list: {exc}")
    if kept is None:
        return _unknown(f"version {version}'s evaluation kept no image list (it ran before Evaluate kept one)")
    return compare(own, kept, version)


def _unknown(reason: str) -> dict:
    return {"known": False, "reason": reason}


def _sentence(since: dict) -> str:
    """One line for the log and the model card."""
    if not since["known"]:
        return f"images new since the champion's data: not known ({since['reason']})"
    return f"{since['new']} image(s) new since the champion's data (version {since['version']}), {since['gone']} no longer present"
