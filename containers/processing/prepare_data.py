#!/usr/bin/env python3
"""PrepareData: SageMaker Ground Truth bounding-box manifests and their images -> TFRecords for the
TensorFlow Object Detection API.

Runs as the pipeline's Processing job (paths default to SageMaker's /opt/ml/processing/... layout) and,
unchanged, on a laptop or in the local engine with every path given as an argument:

    python containers/processing/prepare_data.py --manifest FILE [--manifest FILE ...] \\
        --images DIR --images-prefix S3URI --output DIR [--label-attribute NAME] \\
        [--validation-fraction F] [--seed N] [--shards N] [--workers N] [--max-invalid-fraction F]

Writes DIR/train/*.tfrecord, DIR/validation/*.tfrecord, DIR/label_map.pbtxt, DIR/report.json, the
report pictures, DIR/images.jsonl (every image written, by key and content sha256, with its split), and
DIR/statistics/data-statistics.json (the input statistics of every image written, summarized: the data's drift
baseline, which Evaluate merges into data-baseline.json; containers/monitoring/statistics.py).
Every manifest line is accounted for once: written as an image, quarantined with a reason, or merged into
another line of the same image. Exit status 0 on success; 1 with a one-line
reason on stderr when no usable image remains, the error budget is exceeded or the input is unusable.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

if __package__ in (None, ""):  # run as a script: make `containers` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from containers.common.arguments import fraction, mapping_pair, non_negative, positive
from containers.common.program import exit_status
from containers.monitoring import statistics
from containers.processing import formats
from containers.processing.formats import Context, Input, Refusal
from containers.processing.images import ImageProblem, Plan, Stamp, encode_image, read_stamped, stamp_files
from containers.processing.labelling import (
    Classes,
    InputError,
    LabelledImage,
    LabelMap,
    Record,
    normalise_class,
)
from containers.processing.ledger import Ledger, choose, where
from containers.processing.parallel import Workers
from containers.processing.records import label_map_text
from containers.processing.report import BoxSizes, Sample, SplitTally, save_samples_picture, save_summary_picture
from containers.processing.shards import Entry, Outcome, write_shard
from containers.processing.split import SPLITS, TRAIN, VALIDATION, Item, assign_splits, shard_names, write_order
from containers.trigger.snapshot import INPUTS, SNAPSHOT_FILE

PROCESSING = Path("/opt/ml/processing")
RESOURCE_CONFIG = Path("/opt/ml/config/resourceconfig.json")
SAMPLES_PER_SPLIT = 4
BOX_FLAGS = ("difficult", "truncated", "occluded")
T = TypeVar("T")


class PreparationError(Exception):
    """The job cannot produce usable training data; the message says why in one line."""


@dataclass(frozen=True)
class Options:
    manifests: list[Path]
    images: Path
    images_prefix: str
    output: Path
    label_attribute: str | None = None
    classes: list[str] | None = None
    validation_fraction: float = 0.2
    seed: int = 2021
    shards: int = 4
    workers: int = 1
    max_invalid_fraction: float = 0.05
    instance_tag: str = ""
    instance: tuple[int, int] = (0, 1)  # (this instance's index, instance count): its share of the images
    progress: bool = False
    label_format: str = formats.AUTO
    class_map: dict[str, str] = field(default_factory=dict)
    via_attribute: str | None = None
    labels_uri: str | None = None  # the S3 URI the labels folder stands for (a dataset snapshot's inputs/)


def prepare(options: Options) -> dict:
    """Run the whole preparation; returns the report (also written to the output folder).

    Raises `PreparationError` after writing a report with status "failed" when the data is unusable."""
    options.output.mkdir(parents=True, exist_ok=True)
    run = Run(options, Ledger([]), LabelMap(options.classes))
    try:
        if options.instance[1] > 1 and options.classes is None:
            raise InputError("with several instances, list the classes (data.classes / --classes) so that every instance numbers them alike")
        run.classes = Classes(options.classes, options.class_map)
        run.inputs = formats.inputs(options.manifests, options.label_format)
        run.ledger.inputs = [str(source.path) for source in run.inputs]
    except InputError as exc:
        raise run.fail(str(exc)) from None
    records: list[tuple[Record, int]] = []
    with Workers(options.workers) as workers:
        try:
            stamps = _stamp_while_reading(run, workers, _read_inputs(run), records)
        except InputError as exc:
            raise run.fail(str(exc)) from None
        chosen = choose(records, stamps, run.ledger, options.images_prefix, run.classes, run.label_map)
        items = [Item(image.key, stamp.sha256, image.class_names) for image, stamp in chosen]
        split = assign_splits(items, options.validation_fraction, options.seed)
        batch = _write_records(options, workers, chosen, split.assignment, run.ledger)
    try:
        _enforce_budget(run, batch.written)
    except PreparationError:
        batch.discard()
        raise
    batch.commit()
    written = batch.written
    ledger, label_map = run.ledger, run.label_map

    report = run.report(status="succeeded")
    report["images_written"] = len(written)
    report["splits"] = {name: batch.splits[name].tally.as_dict(_class_names(label_map), batch.splits[name].shards) for name in SPLITS}
    report["images"] = _image_summary(written)
    report["boxes"] = _box_summary(written)
    report["dropped_boxes"] = dict(sorted(Counter(name for w in written for name in w.image.dropped).items()))
    sizes = BoxSizes()
    for w in written:
        sizes.add(w.image.boxes, w.image.width, w.image.height)
    report["box_stats"] = sizes.stats(_class_names(label_map))
    report["duplicate_content"] = _duplicates(written)
    report["stratification"] = [
        {"class": name, "kept_in_train": key, "reason": f"every image of class {name!r} drew validation; training needs one"}
        for name, key in split.kept_for_class
    ]
    report["stratification"] += [{"class": name, "moved_to_validation": key} for name, key in split.moved]
    if split.kept_in_train:
        report["stratification"].append({"kept_in_train": split.kept_in_train, "reason": "every image drew validation; training needs one"})
    report["warnings"] = _warnings(report)
    accounted = report["images_written"] + len(report["quarantined"]) + len(report["merged"])
    if accounted != ledger.records_read:  # an internal error, not a data problem: never ship a wrong count
        raise RuntimeError(f"record accounting is off: {ledger.records_read} read, {accounted} accounted for")

    (options.output / "label_map.pbtxt").write_text(label_map_text(label_map.items()), encoding="utf-8")
    pictures = _names(options, "report.png", "samples.png")
    save_summary_picture(report, sizes, options.output / pictures[0])
    save_samples_picture(_samples(options, written), options.output / pictures[1])
    report["pictures"] = {"summary": pictures[0], "samples": pictures[1]}
    report["images_list"] = _write_images_list(options, written)
    report["statistics"] = _write_statistics(options, written)
    _write_report(options, report)
    return report


IMAGES_LIST = "images.jsonl"  # one line per image written: key, content sha256 (of the bytes as labelled), split


def _write_images_list(options: Options, written: list[Written]) -> str:
    """What this preparation trained and validated on, by content: `cardamage review` leaves these images out
    of a review batch (an image already labelled is not sent to a person again)."""
    name = _names(options, IMAGES_LIST)[0]
    lines = [json.dumps({"key": w.image.key, "sha256": w.stamp.sha256, "split": w.split}, sort_keys=True) for w in written]
    (options.output / name).write_text("".join(line + "\n" for line in sorted(lines)), encoding="utf-8")
    return name


STATISTICS = "data-statistics.json"  # one per instance (data-statistics-<host>.json with several), under statistics/


def _write_statistics(options: Options, written: list[Written]) -> str:
    """The input statistics of every image this instance wrote (train and validation), summarized into one
    document: Evaluate merges the instances' documents into the package's data baseline. Its path under the
    output is returned for the report."""
    name = f"{statistics.STATISTICS_FOLDER}/{_names(options, STATISTICS)[0]}"
    document = statistics.summarize([w.statistics for w in written], "input")
    path = options.output / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, sort_keys=True) + "\n", encoding="utf-8")
    return name


@dataclass
class Run:
    """One preparation's state: its options, the ledger, the label map and what was found in the inputs."""

    options: Options
    ledger: Ledger
    label_map: LabelMap
    classes: Classes = field(default_factory=Classes)
    inputs: list[Input] = field(default_factory=list)
    records_per_input: Counter = field(default_factory=Counter)
    attributes: dict[str, Counter] = field(default_factory=dict)
    hashes: dict[str, str] = field(default_factory=dict)

    def context(self) -> Context:
        options = self.options  # the readers' context, in its fields' order
        return Context(options.images_prefix, options.images, options.label_attribute, options.via_attribute, self.classes, self.label_map)

    def report(self, *, status: str) -> dict:
        options, ledger = self.options, self.ledger
        used = sorted({attribute for counter in self.attributes.values() for attribute in counter})
        return {
            "status": status,
            "label_attribute": (used[0] if len(used) == 1 else used) if used else None,
            "label_attributes": {manifest: sorted(counter) for manifest, counter in self.attributes.items()},
            "class_map": {str(label): name for label, name in self.label_map.items()},
            "inputs": [
                {
                    "path": str(source.path),
                    "format": source.format,
                    "records": self.records_per_input[str(source.path)],
                    "sha256": self.hashes.get(str(source.path)) or source.sha256(),
                }
                for source in self.inputs
            ],
            "settings": {
                "images": str(options.images),
                "images_prefix": options.images_prefix,
                "label_format": options.label_format,
                "validation_fraction": options.validation_fraction,
                "seed": options.seed,
                "shards": options.shards,
                "max_invalid_fraction": options.max_invalid_fraction,
                "classes": options.classes,
                "class_map": dict(options.class_map),
                "label_attribute_override": options.label_attribute,
                "via_attribute": options.via_attribute,
                "instance_tag": options.instance_tag or None,
                "instance": {"index": options.instance[0], "count": options.instance[1]},
            },
            "labels_uri": options.labels_uri,
            "snapshot": snapshot_uri(options.labels_uri),
            "records_read": ledger.records_read,
            "lines_read": ledger.lines_read,
            "images_written": 0,
            "dropped_boxes": {},
            "quarantined": ledger.quarantined,
            "merged": ledger.merged_entries(),
            "notes": ledger.notes,
        }

    def fail(self, reason: str) -> PreparationError:
        report = self.report(status="failed")
        report["error"] = reason
        _write_report(self.options, report)
        return PreparationError(reason)


def _read_inputs(run: Run) -> Iterator[Record]:
    """The usable records of every input, in input order; the others go to the ledger with their reason.

    With several instances, every instance reads every input and keeps the records of its share of the images
    (by a hash of the image's key), so all the labellings of an image meet on one instance, where the merge rule
    picks one, and a multi-file export is never split. A refused record belongs to the instance its position
    hashes to. Each record is accounted for by exactly one instance."""
    context = run.context()
    ledger = run.ledger
    index, count = run.options.instance
    for source in run.inputs:
        name = str(source.path)
        run.hashes[name] = source.sha256()
        run.attributes.setdefault(name, Counter()) if source.format == "groundtruth" else None
        for item in formats.read(source, context):
            if count > 1 and _owner(item.key if isinstance(item, Record) else str(item.source), count) != index:
                continue
            ledger.records_read += 1
            run.records_per_input[name] += 1
            if source.format == "groundtruth":
                ledger.lines_read += 1
            if isinstance(item, Refusal):
                ledger.quarantine(item.source, item.reason, item.source_ref)
                continue
            if item.label_attribute:
                run.attributes[name][item.label_attribute] += 1
            if item.note:
                ledger.note(item.source, item.note)
            yield item


def _owner(text: str, count: int) -> int:
    """The instance (0 to count - 1) a record belongs to; every instance computes the same."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") % count


def _stamp_while_reading(run: Run, workers: Workers, read: Iterable[Record], records: list[tuple[Record, int]]) -> dict[str, Stamp | ImageProblem]:
    """Hash every image named by the records and read its header (its content decides its split), each key
    once. The workers hash while this process reads the inputs; the records are collected into `records`
    with their position in the input."""
    keys: list[str] = []
    seen: set[str] = set()
    folder = os.fspath(run.options.images)

    def paths() -> Iterator[str]:
        for record in _progress(read, None, "reading labels", run.options.progress):
            records.append((record, run.ledger.records_read))
            if record.key not in seen:
                seen.add(record.key)
                keys.append(record.key)
                yield os.path.join(folder, record.key)

    results = [result for _, result in workers.map_batches(stamp_files, paths())]
    return dict(zip(keys, results, strict=True))


def _enforce_budget(run: Run, written: list) -> None:
    ledger = run.ledger
    if ledger.records_read == 0:
        raise run.fail("no usable image: the inputs hold no records")
    quarantined = ledger.quarantined
    if not written:
        raise run.fail(f"no usable image: all {ledger.records_read} records were quarantined; {_top_reasons(quarantined)}")
    share = len(quarantined) / ledger.records_read
    if share > run.options.max_invalid_fraction:
        raise run.fail(
            f"{len(quarantined)} of {ledger.records_read} records ({share:.1%}) were quarantined, over the error budget of "
            f"{run.options.max_invalid_fraction:.1%} (--max-invalid-fraction / data.max_invalid_fraction); {_top_reasons(quarantined)}"
        )


def _top_reasons(quarantined: list[dict], count: int = 3) -> str:
    reasons = Counter(entry["reason"].split(":")[0].split(" (")[0] for entry in quarantined)
    shown = ", ".join(f"{reason} ({n})" for reason, n in reasons.most_common(count))
    first = quarantined[0] if quarantined else None
    example = f"; first: {where(first)}: {first['reason']}" if first else ""
    return f"most common reasons: {shown}{example}" if shown else "no record was quarantined"


@dataclass(frozen=True)
class Written:
    """An image that was written, and how it was stored."""

    image: LabelledImage
    stamp: Stamp
    plan: Plan
    split: str
    statistics: dict  # the input statistics of the bytes written (containers/monitoring/statistics.py)


@dataclass
class SplitResult:
    shards: list[str]
    tally: SplitTally


@dataclass
class Batch:
    """The records of a run, written to temporary files until the run is known to succeed."""

    written: list[Written]
    splits: dict[str, SplitResult]
    files: list[tuple[Path, Path]]  # (temporary, final)

    def commit(self) -> None:
        for temporary, final in self.files:
            temporary.replace(final)

    def discard(self) -> None:
        for temporary, _ in self.files:
            temporary.unlink(missing_ok=True)


def _write_records(options: Options, workers: Workers, stamped: list, assignment: dict[str, str], ledger: Ledger) -> Batch:
    """Write both splits, each shard one worker's job: records in write order, dealt round-robin. An image
    that fails its check is quarantined and leaves a gap in its shard, nothing more."""
    by_key = {image.key: (image, stamp) for image, stamp in stamped}
    images = os.fspath(options.images)
    jobs, splits, files = [], {}, []
    for split in SPLITS:
        order = write_order([key for key, s in assignment.items() if s == split], lambda key: by_key[key][1].sha256)
        folder = options.output / split
        folder.mkdir(parents=True, exist_ok=True)
        _remove_stale_shards(folder, split, options.instance_tag)
        names = shard_names(split, options.shards, len(order), options.instance_tag)
        for index, name in enumerate(names):
            # Shard `index` of n holds positions index, index + n, index + 2n, ... of the write order.
            positions = range(index, len(order), len(names))
            entries = [_entry(images, *by_key[order[p]]) for p in positions]
            temporary = folder / f"{name}.partial"
            files.append((temporary, folder / name))
            jobs.append((split, positions, entries, temporary))
        splits[split] = SplitResult([f"{split}/{name}" for name in names], SplitTally())

    outcomes = workers.run_each(write_shard, [(temporary, entries) for _, _, entries, temporary in jobs])
    weights = [len(entries) for _, _, entries, _ in jobs]
    by_position: dict[str, dict[int, tuple[Entry, Outcome]]] = {split: {} for split in SPLITS}
    for (split, positions, entries, _), shard in zip(
        jobs, _progress(outcomes, sum(weights), "checking and writing", options.progress, weights), strict=True
    ):
        by_position[split].update(zip(positions, zip(entries, shard, strict=True), strict=True))

    written = []
    for split in SPLITS:
        for position in sorted(by_position[split]):
            entry, outcome = by_position[split][position]
            image, stamp = by_key[entry.key]
            if outcome.problem is not None:
                ledger.quarantine(image.source, f"{outcome.problem} ({image.key})", image.source_ref)
                ledger.image_refused(image.key, outcome.problem)
                continue
            written.append(Written(image, stamp, outcome.plan, split, outcome.statistics))
            splits[split].tally.add(image.boxes)
    return Batch(written, splits, files)


def _entry(images: str, image: LabelledImage, stamp: Stamp) -> Entry:
    # A str path: workers get thousands of them, and a Path costs five times as much to send.
    return Entry(os.path.join(images, image.key), stamp, image.key, image.width, image.height, image.boxes)


def _samples(options: Options, written: list[Written]) -> list[Sample]:
    """The first images written to each split, for the samples picture."""
    samples: list[Sample] = []
    for split in SPLITS:
        for w in [w for w in written if w.split == split][:SAMPLES_PER_SPLIT]:
            try:
                encoded = encode_image(read_stamped(options.images / w.image.key, w.stamp), w.plan)
            except ImageProblem:
                continue
            samples.append(Sample(split, w.image.key, encoded, w.image.width, w.image.height, w.image.boxes))
    return samples


def _remove_stale_shards(folder: Path, split: str, tag: str) -> None:
    """Shards of an earlier run in the same folder (another shard count) would be read with the new ones."""
    if folder.is_dir():
        middle = f"-{tag}" if tag else ""
        for path in folder.glob(f"{split}{middle}-[0-9]*-of-[0-9]*.tfrecord*"):
            path.unlink()


def _image_summary(written: list[Written]) -> dict:
    conversions = Counter(w.plan.convert for w in written if not w.plan.passthrough)
    return {
        "passed_through": sum(1 for w in written if w.plan.passthrough),
        "converted": dict(sorted(conversions.items())),
        "exif_transposed": sum(1 for w in written if w.plan.transpose),
    }


def _duplicates(written: list[Written]) -> list[dict]:
    keys_by_content: dict[str, list[str]] = {}
    for w in written:
        keys_by_content.setdefault(w.stamp.sha256, []).append(w.image.key)
    return [{"sha256": sha, "keys": sorted(keys)} for sha, keys in sorted(keys_by_content.items()) if len(keys) > 1]


def _warnings(report: dict) -> list[str]:
    warnings = []
    for name in report["class_map"].values():
        train = report["splits"][TRAIN]["images"][name]
        validation = report["splits"][VALIDATION]["images"][name]
        if train + validation == 0:
            warnings.append(f"no image holds class {name!r}")
        elif validation == 0 and report["settings"]["validation_fraction"] > 0:
            warnings.append(f"validation holds no image of class {name!r} (only {train} image(s) hold it)")
    if report["duplicate_content"]:
        extra = sum(len(group["keys"]) - 1 for group in report["duplicate_content"])
        warnings.append(f"{extra} image(s) repeat the content of another key (kept, in the same split)")
    for name, count in report["dropped_boxes"].items():
        warnings.append(f"{count} box(es) of class {name!r} dropped: not one of the classes and not mapped (data.class_map / --class-map)")
    if report["boxes"]["crowd_skipped"]:
        warnings.append(f"{report['boxes']['crowd_skipped']} COCO crowd box(es) (iscrowd 1) not trained on")
    empty = sum(report["splits"][split]["images_without_boxes"] for split in SPLITS)
    if empty:
        warnings.append(f"{empty} image(s) have no boxes (kept as background examples)")
    return warnings


def _box_summary(written: list[Written]) -> dict:
    """Boxes clipped to their image, crowd boxes skipped, and the boxes kept with each flag a format records."""
    flags = Counter(flag for w in written for box in w.image.boxes for flag in box.flags)
    return {
        "clipped": sum(w.image.clipped_boxes for w in written),
        "crowd_skipped": sum(w.image.crowd for w in written),
        **{flag: flags[flag] for flag in BOX_FLAGS},
    }


def _class_names(label_map: LabelMap) -> list[str]:
    return [name for _, name in label_map.items()]


def _names(options: Options, *names: str) -> list[str]:
    if not options.instance_tag:
        return list(names)
    return [f"{Path(n).stem}-{options.instance_tag}{Path(n).suffix}" for n in names]


def _write_report(options: Options, report: dict) -> None:
    path = options.output / _names(options, "report.json")[0]
    path.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def _progress(iterable: Iterable[T], total: int | None, description: str, enabled: bool, weights: Sequence[int] | None = None) -> Iterable[T]:
    """A progress bar on a terminal; `weights` counts each item as that many units (a shard's records)."""
    if not enabled:
        return iterable
    from tqdm import tqdm

    if weights is None:
        return tqdm(iterable, total=total, desc=description, unit="img", file=sys.stderr, leave=False)

    def advance() -> Iterator[T]:
        with tqdm(total=total, desc=description, unit="img", file=sys.stderr, leave=False) as bar:
            for item, weight in zip(iterable, weights, strict=True):
                bar.update(weight)
                yield item

    return advance()


def snapshot_uri(labels_uri: str | None) -> str | None:
    """The snapshot.json of a dataset snapshot whose inputs/ the labels are (containers/trigger/snapshot.py lays
    them out so), else None."""
    if labels_uri and labels_uri.endswith(f"/{INPUTS}"):
        return labels_uri[: -len(INPUTS)] + SNAPSHOT_FILE
    return None


def instance_tag(resource_config: Path) -> str:
    """This instance's name when several instances run the job (their outputs share one S3 prefix)."""
    hosts, current = _hosts(resource_config)
    return current if len(hosts) > 1 else ""


def instance_share(resource_config: Path) -> tuple[int, int]:
    """(index, count) of this instance among the job's instances, from SageMaker's resource config."""
    hosts, current = _hosts(resource_config)
    return (sorted(hosts).index(current), len(hosts)) if len(hosts) > 1 and current in hosts else (0, 1)


def _hosts(resource_config: Path) -> tuple[list[str], str]:
    try:
        config = json.loads(resource_config.read_text())
    except (OSError, ValueError):
        return [], ""
    hosts = config.get("hosts") or []
    return [str(h) for h in hosts], str(config.get("current_host", ""))


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="prepare_data.py",
        description="Labelled images (Ground Truth, COCO, VOC, YOLO, Label Studio, CVAT, VIA) -> TFRecords, label map and data report.",
    )
    parser.add_argument(
        "--manifest",
        action="append",
        type=Path,
        help="a labels file or a folder of them, in any format below (repeatable; default: /opt/ml/processing/input/manifests)",
    )
    parser.add_argument(
        "--label-format",
        choices=(formats.AUTO, *formats.FORMATS),
        default=formats.AUTO,
        help="the inputs' format (default: %(default)s, told from each input's content)",
    )
    parser.add_argument(
        "--class-map",
        action="append",
        type=mapping_pair,
        default=[],
        metavar="SOURCE=CLASS",
        help="a class name of the labels onto one of --classes (repeatable; case and spaces do not count)",
    )
    parser.add_argument("--via-attribute", default=None, help="the VIA region attribute holding the class (default: the only one used)")
    parser.add_argument(
        "--labels-uri", default=None, help="the S3 URI the --manifest folder stands for, recorded in the report (a dataset snapshot's inputs/)"
    )
    parser.add_argument(
        "--images", type=Path, default=PROCESSING / "input" / "images", help="local folder standing for --images-prefix (default: %(default)s)"
    )
    parser.add_argument("--images-prefix", required=True, help="the S3 prefix the source-refs start with, e.g. s3://bucket/images/")
    parser.add_argument("--output", type=Path, default=PROCESSING / "output", help="output folder (default: %(default)s)")
    parser.add_argument("--label-attribute", default=None, help="the label attribute to read (default: found in each line)")
    parser.add_argument("--classes", default=None, help="comma-separated class names in label-map order (default: from the manifests' class-map)")
    parser.add_argument(
        "--validation-fraction", type=fraction(upper_open=True), default=0.2, help="share of images for validation, in [0, 1) (default: %(default)s)"
    )
    parser.add_argument("--seed", type=non_negative, default=2021, help="split seed (default: %(default)s)")
    parser.add_argument("--shards", type=positive, default=4, help="TFRecord files per split (default: %(default)s)")
    parser.add_argument("--workers", type=positive, default=None, help="worker processes (default: one per CPU core)")
    parser.add_argument(
        "--max-invalid-fraction",
        type=fraction(),
        default=0.05,
        help="fail when a larger share of records is quarantined (default: %(default)s)",
    )
    parser.add_argument(
        "--instance-tag", default=None, help="names this instance's files when several share an output (default: from the resource config)"
    )
    parser.add_argument("--resource-config", type=Path, default=RESOURCE_CONFIG, help=argparse.SUPPRESS)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars even on a terminal")
    args = parser.parse_args(argv)
    classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
    if classes is not None and (len(set(classes)) != len(classes) or not all(classes)):
        parser.error("--classes must list distinct, non-empty class names")
    class_map = dict(args.class_map)
    if len({normalise_class(source) for source, _ in args.class_map}) != len(args.class_map):
        parser.error("--class-map names a source class twice")
    return Options(
        manifests=args.manifest or [PROCESSING / "input" / "manifests"],
        label_format=args.label_format,
        class_map=class_map,
        via_attribute=args.via_attribute,
        labels_uri=args.labels_uri,
        images=args.images,
        images_prefix=args.images_prefix,
        output=args.output,
        label_attribute=args.label_attribute,
        classes=classes,
        validation_fraction=args.validation_fraction,
        seed=args.seed,
        shards=args.shards,
        workers=args.workers or len(os.sched_getaffinity(0)),
        max_invalid_fraction=args.max_invalid_fraction,
        instance_tag=args.instance_tag if args.instance_tag is not None else instance_tag(args.resource_config),
        instance=instance_share(args.resource_config),
        progress=sys.stderr.isatty() and not args.no_progress,
    )


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    return exit_status("prepare_data", lambda: _print_summary(options, prepare(options)), PreparationError)


def _print_summary(options: Options, report: dict) -> None:
    train, validation = report["splits"][TRAIN], report["splits"][VALIDATION]
    formats_used = Counter(entry["format"] for entry in report["inputs"])
    print(
        f"prepare_data: {report['records_read']} records read from {len(report['inputs'])} input(s) "
        f"({', '.join(f'{n} {name}' for name, n in sorted(formats_used.items()))}): "
        f"{report['images_written']} images written (train {train['images_total']}, validation {validation['images_total']}), "
        f"{len(report['quarantined'])} quarantined, {len(report['merged'])} merged"
    )
    for warning in report["warnings"]:
        print(f"prepare_data: warning: {warning}")
    for entry in report["quarantined"][:10]:
        print(f"prepare_data: quarantined: {where(entry)}: {entry['reason']}")
    if len(report["quarantined"]) > 10:
        print(f"prepare_data: ... {len(report['quarantined']) - 10} more quarantined records in report.json")
    print(f"prepare_data: outputs in {options.output}")


if __name__ == "__main__":
    sys.exit(main())
