"""The train/validation split and the shard layout: deterministic, and local to each image.

An image's split comes from a hash of the seed and the image's content hash, so
- a re-run over the same input gives the same split (and, with the sorted write order, the same bytes);
- identical images (the same bytes under several keys) always share a split;
- several Processing instances, each holding a slice of the manifests, agree on every image they share
  without talking to each other.
A hash split can leave a rare class out of training or out of validation on a small dataset, so
corrections follow, each reported, each needing only the images of the slice:
- a class whose every image drew validation keeps the one with the largest hash value in train (a class
  held by one image trains on it, and is not measured: the report's warnings say so);
- for each class that has no validation image although at least two distinct images hold it, the image
  holding it with the smallest hash value moves to validation, never taking a class's last training image;
  it is what makes the result "stratified enough";
- when every image of a (tiny) input drew validation, the one with the largest hash value stays in train.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

TRAIN, VALIDATION = "train", "validation"
SPLITS = (TRAIN, VALIDATION)


@dataclass(frozen=True)
class Item:
    """What the split needs to know of an image."""

    key: str
    sha256: str
    classes: frozenset[str]


def split_value(seed: int, sha256: str) -> float:
    """A number in [0, 1) fixed by the seed and the content: validation when below the fraction."""
    digest = hashlib.sha256(f"{seed}:{sha256}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True)
class SplitResult:
    assignment: dict[str, str]  # key -> split
    moved: tuple[tuple[str, str], ...]  # (class, key) moved to validation for stratification
    kept_in_train: str | None = None  # the key kept in train because every image of the input drew validation
    kept_for_class: tuple[tuple[str, str], ...] = ()  # (class, key) kept in train: every image of the class drew validation


def assign_splits(items: Sequence[Item], fraction: float, seed: int) -> SplitResult:
    """Assign every item to train or validation (see the module's docstring for the rules)."""
    groups: dict[str, set[str]] = {}  # content -> classes of every key holding it
    for item in items:
        groups.setdefault(item.sha256, set()).update(item.classes)
    value = {sha: split_value(seed, sha) for sha in groups}
    validation = {sha for sha, v in value.items() if v < fraction}

    moved: list[tuple[str, str]] = []
    kept: list[tuple[str, str]] = []
    keep: str | None = None
    if fraction > 0:
        all_classes = sorted(set().union(*groups.values())) if groups else []
        # Each class's images, smallest value first (then by content hash, for ties).
        holders_of = {
            name: sorted((sha for sha, classes in groups.items() if name in classes), key=lambda sha: (value[sha], sha)) for name in all_classes
        }
        for name, holders in holders_of.items():
            if all(sha in validation for sha in holders):
                stays = holders[-1]  # the largest value
                validation.discard(stays)
                kept.append((name, stays))
        for name, holders in holders_of.items():
            if len(holders) < 2 or any(sha in validation for sha in holders):
                continue
            # The holder with the smallest value whose move leaves each of its classes an image in train.
            for candidate in holders:
                if all(_train_holders(groups, validation, other) > 1 for other in groups[candidate]):
                    validation.add(candidate)
                    moved.append((name, candidate))
                    break
        if groups and len(validation) == len(groups) and len(groups) > 1:
            # A tiny input drew every image into validation: training needs at least one.
            keep = max(validation, key=lambda sha: (value[sha], sha))
            validation.discard(keep)

    assignment = {item.key: VALIDATION if item.sha256 in validation else TRAIN for item in items}
    first_key = {}
    for item in sorted(items, key=lambda i: i.key):
        first_key.setdefault(item.sha256, item.key)
    return SplitResult(
        assignment,
        tuple((name, first_key[sha]) for name, sha in moved),
        first_key[keep] if keep else None,
        tuple((name, first_key[sha]) for name, sha in kept),
    )


def _train_holders(groups: dict[str, set[str]], validation: set[str], name: str) -> int:
    return sum(1 for sha, classes in groups.items() if name in classes and sha not in validation)


def write_order(keys: Iterable[str], sha256: Callable[[str], str]) -> list[str]:
    """The order records are written in: by content hash, then key. It depends on the input alone (not on
    the manifest order or the number of workers) and spreads similar images across shards."""
    return sorted(keys, key=lambda key: (sha256(key), key))


def shard_names(split: str, shards: int, count: int, tag: str = "") -> list[str]:
    """File names of a split's shards: at most `shards`, no more than its records, at least one (an empty
    file keeps the channel present for the jobs that read it)."""
    n = max(1, min(shards, count))
    middle = f"-{tag}" if tag else ""
    return [f"{split}{middle}-{i:05d}-of-{n:05d}.tfrecord" for i in range(n)]
