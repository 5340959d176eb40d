"""report.html: one page per model package for the person who approves it, written by Evaluate beside
evaluation.json and registered in the package's metadata (steps/register.py, `ReportUri`).

Everything is inside the file, so it opens the same from S3, a mail or a laptop, and fetches nothing: the
pictures are inline as data: URIs, the style is inline, and the page's Content Security Policy lets it load
nothing else. Text that comes from the data (class names, photo keys, reasons, hyperparameters) is escaped with
html.escape: the Processing image does not have Jinja2.

The page has four parts:
- the metrics: the challenger against the champion, with their bootstrap intervals when evaluation.json holds
  them (`intervals`, `champion.lead_interval`), the deltas, the AP of each class and the PR curves;
- the photos where the two models differ most (`select_photos`), the ground truth, the champion's boxes and
  the challenger's side by side, worst first;
- the data: PrepareData's report (the snapshot, the inputs, boxes per class, dropped boxes, quarantined records)
  and the photos new since the champion's data (evaluation.json's `training_data`, image_lists.py);
- training and monitoring: the model's hyperparameters (its model.json) and the drift baselines' summary.

`render` is pure: dictionaries and photos in, the page out. `write_report` gathers what it needs from the
evaluation's folders and writes the page.
"""

from __future__ import annotations

import base64
import io
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
from PIL import UnidentifiedImageError

from containers.common.pictures import box_iou
from containers.processing.split import SPLITS

from .intervals import format_interval
from .model import Detections
from .pictures import Drawn, draw, prediction_boxes, truth_boxes
from .validation import GroundTruth, read_records

PAGE = "report.html"
PR_CURVES = "pr_curves.png"  # evaluate.py draws it; the page shows it
MATCH_IOU = 0.5  # a detection finds a ground-truth box of its class at this IoU or more (COCO's AP@.5)
THUMBNAIL = 320  # pixels of the longer side of each photo as shown
JPEG_QUALITY = 75
QUARANTINED_SHOWN = 50  # quarantined records listed on the page; PrepareData's report.json lists them all
POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
HEADLINE = (("mAP", "mAP@[.5:.95]"), ("mAP_50", "mAP@.5"), ("mAP_75", "mAP@.75"), ("recall", "recall (AR@100)"))
AREAS = (("mAP_small", "mAP small"), ("mAP_medium", "mAP medium"), ("mAP_large", "mAP large"))
STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; max-width: 1200px; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
td, th { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; font-size: 0.9em; vertical-align: top; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
tr.differs td { background: #fff4d6; }
.worse { color: #b00020; }
.better { color: #1b7f3b; }
.note { color: #555; font-size: 0.9em; }
.warning { color: #b00020; }
.photo { margin: 0 0 1.5em; }
.panels { display: flex; flex-wrap: wrap; gap: 0.5em; }
figure { margin: 0; }
figcaption { font-size: 0.8em; overflow-wrap: anywhere; max-width: 320px; }
"""


# The photos: where the two models differ most ---------------------------------------------------------------


@dataclass(frozen=True)
class Tally:
    """One model on one photo, at IoU >= MATCH_IOU and a score at or above the threshold: ground-truth boxes it
    found and missed, and its detections that found none (false)."""

    found: int
    missed: int
    false: int

    @property
    def errors(self) -> int:
        return self.missed + self.false


def tally(truth: GroundTruth, found: Detections, threshold: float) -> Tally:
    """Match the detections scoring at least `threshold` to the ground truth as COCO does at one IoU: best score
    first, each to the unmatched box of its class it overlaps most, if that IoU is MATCH_IOU or more. Boxes are
    compared normalised: IoU does not change when both axes are scaled."""
    unmatched = [(tuple(box), int(label)) for box, label in zip(truth.boxes, truth.labels, strict=True)]
    hits = false = 0
    for index in np.argsort(-np.asarray(found.scores, dtype=np.float64), kind="stable"):
        score = float(found.scores[index])
        if score < threshold or score <= 0:  # a score of 0 is the model's padding
            break
        ymin, xmin, ymax, xmax = (float(value) for value in found.boxes[index])
        label = int(found.classes[index])
        overlaps = [(box_iou((xmin, ymin, xmax, ymax), box), position) for position, (box, kind) in enumerate(unmatched) if kind == label]
        best = max(overlaps, default=(0.0, -1))
        if best[0] >= MATCH_IOU:
            unmatched.pop(best[1])
            hits += 1
        else:
            false += 1
    return Tally(hits, len(unmatched), false)


@dataclass(frozen=True)
class Ranked:
    """A validation photo with each model's tally."""

    index: int  # its position in record order
    challenger: Tally
    champion: Tally | None = None  # None: no champion to compare with

    @property
    def gap(self) -> int:
        """How many more errors the challenger makes than the champion; without a champion, its errors."""
        return self.challenger.errors - (self.champion.errors if self.champion else 0)


@dataclass(frozen=True)
class Selection:
    """The photos to show, worst first, and against what: "champion" (where the two differ), "agree" (a
    champion that makes the same number of errors on every photo: the challenger's worst instead) or "none"
    (no champion: the challenger's worst)."""

    photos: list[Ranked]
    basis: str
    images: int  # validation photos ranked


def select_photos(
    truths: Sequence[GroundTruth], challenger: Sequence[Detections], champion: Sequence[Detections] | None, threshold: float, count: int
) -> Selection:
    """The `count` photos where the challenger's errors and the champion's differ most (errors: ground-truth
    boxes missed plus detections that match none, `tally`), ordered worst first: the most errors more than the
    champion's first, those where the challenger does better last. Without a champion, or when the two make the
    same number of errors everywhere, the challenger's `count` photos with the most errors. Photos without a
    difference (or without an error) are not shown. Ties: the challenger's errors, then record order."""
    own = [tally(truth, found, threshold) for truth, found in zip(truths, challenger, strict=True)]
    if champion is not None:
        served = [tally(truth, found, threshold) for truth, found in zip(truths, champion, strict=True)]
        ranked = [Ranked(index, mine, theirs) for index, (mine, theirs) in enumerate(zip(own, served, strict=True))]
        chosen = _worst(ranked, count, lambda row: abs(row.gap))
        if chosen:
            return Selection(sorted(chosen, key=lambda row: (-row.gap, -row.challenger.errors, row.index)), "champion", len(truths))
    alone = [Ranked(index, mine) for index, mine in enumerate(own)]
    return Selection(_worst(alone, count, lambda row: row.gap), "agree" if champion is not None else "none", len(truths))


def _worst(rows: Iterable[Ranked], count: int, size: Callable[[Ranked], int]) -> list[Ranked]:
    differing = [row for row in rows if size(row) > 0]
    return sorted(differing, key=lambda row: (-size(row), -row.challenger.errors, row.index))[: max(0, count)]


@dataclass(frozen=True)
class Photo:
    """A photo to show: its ranking, its record (ground truth and encoded image), and each model's detections."""

    ranked: Ranked
    truth: GroundTruth
    encoded: bytes
    challenger: Detections
    champion: Detections | None = None


# The page ------------------------------------------------------------------------------------------------


def render(
    evaluation: Mapping[str, Any],
    *,
    selection: Selection,
    photos: Sequence[Photo],
    threshold: float,
    data: DataReports,
    baselines: Mapping[str, Mapping[str, Any] | None],
    pr_curves: bytes | None,
) -> str:
    """The page for `evaluation` (evaluation.json's dictionary): `photos` in the order of `selection`, drawn at
    score `threshold`; `data` PrepareData's report(s); `baselines` the drift baselines' documents by kind
    ("data", "model"; None: not written); `pr_curves` the PR curves picture."""
    challenger = evaluation["model"]
    digest = challenger.get("sha256") or ""
    title = f"Model report: {digest[:12]}" if digest else "Model report"
    parts = [
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="{POLICY}">',
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="note">Model archive sha256 {escape(digest or "none (a model folder)")}; '
        f"{evaluation['images']} validation photo(s), {evaluation['ground_truth_boxes']} ground-truth box(es).</p>",
        '<h2 id="metrics">Metrics</h2>',
        _metrics(evaluation, pr_curves),
        '<h2 id="photos">Photos</h2>',
        _photos(evaluation, selection, photos, threshold),
        '<h2 id="data">The data</h2>',
        _data(data),
        _since_champion(evaluation.get("training_data")),
        '<h2 id="training">Training and monitoring</h2>',
        _training(evaluation),
        _baselines(evaluation.get("baselines") or {}, baselines),
        "</body></html>\n",
    ]
    return "\n".join(part for part in parts if part)


def _delta(challenger: float | None, champion: float | None) -> str:
    """The challenger's figure less the champion's, signed, to 3 places: the gate's tolerance is that fine."""
    if challenger is None or champion is None:
        return "n/a"
    difference = challenger - champion
    kind = "better" if difference > 0 else "worse" if difference < 0 else ""
    return f'<span class="{kind}">{difference:+.3f}</span>' if kind else f"{difference:+.3f}"


def _metrics(evaluation: Mapping[str, Any], pr_curves: bytes | None) -> str:
    metrics = evaluation["metrics"]
    intervals = (evaluation.get("intervals") or {}).get("metrics") or {}
    champion = evaluation.get("champion") or {}
    served = champion.get("metrics") if champion.get("version") else None
    served_intervals = ((champion.get("intervals") or {}).get("metrics") or {}) if served else {}
    parts = [_verdict(evaluation, served is not None)]
    head = ["figure", "challenger", *([f"champion (version {champion['version']})", "challenger − champion"] if served else [])]
    rows = []
    for name, label in (*HEADLINE, *AREAS):
        mine = metrics.get(name, {}).get("value")
        cells = [escape(label), format_interval(mine, intervals.get(name))]
        if served:
            theirs = served.get(name, {}).get("value")
            cells += [format_interval(theirs, served_intervals.get(name)), _delta(mine, theirs)]
        rows.append(_row(cells, numbers_from=1))
    parts.append(_table(head, rows))
    parts.append("<h3>AP of each class</h3>")
    parts.append(_per_class(evaluation, served, intervals, served_intervals))
    warnings = [*evaluation.get("warnings", []), *(champion.get("warnings") or [] if served else [])]
    parts += [f'<p class="warning">Warning: {escape(warning)}</p>' for warning in warnings]
    described = _intervals_note(evaluation.get("intervals"))
    parts.append(f'<p class="note">{escape(described)}</p>')
    parts.append("<h3>Precision-recall curves</h3>")
    if pr_curves:
        parts.append(f'<img src="{data_uri(pr_curves, "image/png")}" alt="precision-recall curves of each class, IoU 0.5">')
    else:
        parts.append(f"<p>No {PR_CURVES} beside the evaluation.</p>")
    return "\n".join(parts)


def _verdict(evaluation: Mapping[str, Any], with_champion: bool) -> str:
    """The headline: the challenger's mAP and, with a champion, its lead and whether its interval holds 0."""
    intervals = (evaluation.get("intervals") or {}).get("metrics") or {}
    mine = format_interval(evaluation["metrics"]["mAP"]["value"], intervals.get("mAP"))
    champion = evaluation.get("champion") or {}
    if not with_champion:
        return f"<p><strong>Challenger mAP {mine}.</strong> No champion: nothing was served when it was evaluated.</p>"
    lead = float(champion["map_lead"])
    sentence = f"Challenger mAP {mine}; the champion (version {champion['version']}) "
    sentence += f"{'leads by' if lead > 0 else 'trails by' if lead < 0 else 'is level'}{f' {abs(lead):.3f}' if lead else ''} on the same photos"
    bounds = champion.get("lead_interval")
    if not bounds or None in bounds:
        return f"<p><strong>{escape(sentence)}.</strong> No interval for the lead (an evaluation from before intervals).</p>"
    low, high = bounds
    reading = (
        "it holds 0: these photos cannot tell the two models apart"
        if low <= 0 <= high
        else "it excludes 0: the champion is better"
        if low > 0
        else "it excludes 0: the challenger is better"
    )
    lead_text = format_interval(lead, (low, high), digits=3)
    return f"<p><strong>{escape(sentence)}.</strong> The champion's lead with its interval: {escape(lead_text)}; {reading}.</p>"


def _intervals_note(intervals: Mapping[str, Any] | None) -> str:
    if not intervals:
        return "No confidence intervals: this evaluation was made before Evaluate computed them."
    confidence = float(intervals.get("confidence", 0.95))
    return (
        f"In brackets: {confidence:.0%} intervals ({intervals.get('method', 'bootstrap')}, {intervals.get('resamples', '?')} resamples, "
        f"seed {intervals.get('seed', '?')}). Deltas are the challenger's figure less the champion's."
    )


def _per_class(evaluation: Mapping[str, Any], served: Mapping[str, Any] | None, intervals: Mapping, served_intervals: Mapping) -> str:
    per_class = evaluation.get("per_class") or {}
    champion = evaluation.get("champion") or {}
    theirs = champion.get("per_class") or {}
    head = ["class", "ground-truth boxes", "challenger AP", "challenger AP@.5"]
    if served:
        head += ["champion AP", "champion AP@.5", "AP challenger − champion"]
    rows = []
    for name, figures in per_class.items():
        key = f"AP/{name}"
        cells = [
            escape(name),
            str(figures["ground_truth_boxes"]),
            format_interval(figures["AP"], intervals.get(key)),
            format_interval(figures["AP_50"]),
        ]
        if served:
            other = theirs.get(name) or {}
            cells += [
                format_interval(other.get("AP"), served_intervals.get(key)),
                format_interval(other.get("AP_50")),
                _delta(figures["AP"], other.get("AP")),
            ]
        rows.append(_row(cells, numbers_from=1))
    return _table(head, rows) if rows else "<p>No class.</p>"


def _photos(evaluation: Mapping[str, Any], selection: Selection, photos: Sequence[Photo], threshold: float) -> str:
    champion = evaluation.get("champion") or {}
    version = champion.get("version") or 0
    rule = (
        f"Each model's boxes scoring at least {threshold:g} are matched to the ground truth of their class at IoU {MATCH_IOU:g} or more, "
        "best score first; a photo's errors are the ground-truth boxes a model missed plus its boxes that match none."
    )
    if selection.basis == "champion":
        chosen = (
            f"Shown: the photos where the challenger's errors and the champion's (version {version}) differ most, "
            "worst first (the challenger's largest excess of errors first; where it does better, last)."
        )
    elif selection.basis == "agree":
        chosen = (
            f"The champion (version {version}) makes as many errors as the challenger on every photo; "
            "shown: the challenger's photos with the most errors."
        )
    else:
        chosen = "No champion to compare with; shown: the challenger's photos with the most errors against the ground truth."
    parts = [f'<p class="note">{escape(rule)} {escape(chosen)}</p>']
    if not photos:
        if (evaluation.get("settings") or {}).get("pictures") == 0:
            nothing = "No photos requested (--pictures 0)."
        else:
            nothing = f"The challenger makes no error on any of the {selection.images} validation photo(s): nothing to show."
        return "\n".join([*parts, f"<p>{escape(nothing)}</p>"])
    classes = _label_map(evaluation["model"])
    served_classes = _label_map(champion.get("model") or evaluation["model"])
    for rank, photo in enumerate(photos, start=1):
        truth = photo.truth
        mine, theirs = photo.ranked.challenger, photo.ranked.champion
        panels = [_panel(photo, truth_boxes(truth, classes), f"ground truth: {len(truth.boxes)} box(es)")]
        if photo.champion is not None and theirs is not None:
            drawn = prediction_boxes(truth, photo.champion, served_classes, threshold)
            panels.append(_panel(photo, drawn, f"champion (version {version}): {_tally_text(theirs)}"))
        panels.append(_panel(photo, prediction_boxes(truth, photo.challenger, classes, threshold), f"challenger: {_tally_text(mine)}"))
        if theirs is not None:
            gap = photo.ranked.gap
            heading = f"{rank}. {truth.key}: the challenger makes {abs(gap)} error(s) {'more' if gap > 0 else 'fewer'} than the champion"
        else:
            heading = f"{rank}. {truth.key}: {mine.errors} error(s)"
        parts.append(f'<div class="photo"><h3>{escape(heading)}</h3><div class="panels">{"".join(panels)}</div></div>')
    return "\n".join(parts)


def _tally_text(counted: Tally) -> str:
    return f"{counted.found} found, {counted.missed} missed, {counted.false} false"


def _panel(photo: Photo, boxes: Sequence[Drawn], caption: str) -> str:
    """One side of a photo: the project's drawing (pictures.draw, class colours), made small, as an inline JPEG."""
    try:
        image = draw(photo.encoded, boxes, photo.truth.width, photo.truth.height)
    except (UnidentifiedImageError, OSError):
        return f"<figure><figcaption>{escape(caption)}: the image cannot be drawn</figcaption></figure>"
    image.thumbnail((THUMBNAIL, THUMBNAIL))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=JPEG_QUALITY)
    return (
        f'<figure><img src="{data_uri(out.getvalue(), "image/jpeg")}" alt="{escape(caption)}" width="{image.width}" height="{image.height}">'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def _label_map(model: Mapping[str, Any]) -> dict[int, str]:
    return {int(label): name for label, name in (model.get("label_map") or {}).items()}


# The data: PrepareData's report --------------------------------------------------------------------------


@dataclass(frozen=True)
class DataReports:
    """PrepareData's report.json, one per instance (several when it ran on several instances), with their file
    names; or why there are none (`note`), and files that could not be read (`problems`)."""

    reports: tuple[dict, ...] = ()
    files: tuple[str, ...] = ()
    note: str = ""
    problems: tuple[str, ...] = ()


def read_data_reports(folder: Path | None) -> DataReports:
    """The PrepareData reports in `folder` (Evaluate's `prepared` input): every JSON file directly in it. The input
    is the prefix `<prepared>/report`, so it holds report.json, or report-<host>.json per instance; a file that is
    not a readable report is named among the problems, and the page says so (the page is not worth a failed
    evaluation)."""
    if folder is None:
        return DataReports(note="Evaluate was not given PrepareData's report (--prepared)")
    paths = sorted(path for path in folder.iterdir() if path.is_file() and path.name.endswith(".json")) if folder.is_dir() else []
    if not paths:
        return DataReports(note=f"{folder} holds no PrepareData report")
    reports, files, problems = [], [], []
    for path in paths:
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            problems.append(f"{path.name}: not readable as JSON ({type(exc).__name__}: {exc})")
            continue
        missing = [key for key in ("splits", "inputs", "quarantined", "dropped_boxes") if not isinstance(report, dict) or key not in report]
        if missing:
            problems.append(f"{path.name}: not a PrepareData report (no {', '.join(missing)})")
            continue
        reports.append(report)
        files.append(path.name)
    return DataReports(tuple(reports), tuple(files), problems=tuple(problems))


def data_summary(reports: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """PrepareData's reports as one: each instance counts its own share of the records, boxes and quarantine."""
    first = reports[0]
    records: Counter = Counter()
    formats: dict[str, tuple[str, str]] = {}
    for report in reports:
        for entry in report["inputs"]:
            records[entry["path"]] += int(entry.get("records", 0))
            formats[entry["path"]] = (entry.get("format", ""), entry.get("sha256", ""))
    boxes: dict[str, Counter] = {split: Counter() for split in SPLITS}
    images: dict[str, Counter] = {split: Counter() for split in SPLITS}
    for report in reports:
        for split in SPLITS:
            tallied = report["splits"].get(split) or {}
            boxes[split].update(tallied.get("boxes") or {})
            images[split].update(tallied.get("images") or {})
    dropped: Counter = Counter()
    for report in reports:
        dropped.update(report["dropped_boxes"])
    return {
        "snapshot": next((report.get("snapshot") for report in reports if report.get("snapshot")), None),
        "labels_uri": next((report.get("labels_uri") for report in reports if report.get("labels_uri")), None),
        "inputs": [{"path": path, "format": formats[path][0], "sha256": formats[path][1], "records": count} for path, count in records.items()],
        "classes": list((first.get("class_map") or {}).values()),
        "boxes": boxes,
        "images": images,
        "dropped_boxes": dict(sorted(dropped.items())),
        "quarantined": [entry for report in reports for entry in report["quarantined"]],
        "records_read": sum(int(report.get("records_read", 0)) for report in reports),
        "images_written": sum(int(report.get("images_written", 0)) for report in reports),
        "merged": sum(len(report.get("merged") or []) for report in reports),
        "box_flags": dict(sum((Counter(report.get("boxes") or {}) for report in reports), Counter())),
    }


def snapshot_id(snapshot_uri: str | None) -> str | None:
    """A dataset snapshot's id from its snapshot.json URI (`<snapshots prefix><id>/snapshot.json`)."""
    match = re.search(r"/([^/]+)/snapshot\.json$", snapshot_uri or "")
    return match.group(1) if match else None


def _data(data: DataReports) -> str:
    parts = [f'<p class="warning">PrepareData report {escape(problem)}.</p>' for problem in data.problems]
    if not data.reports:
        return "\n".join([*parts, f"<p>No data report: {escape(data.note or 'none could be read')}.</p>"])
    summary = data_summary(data.reports)
    identity = snapshot_id(summary["snapshot"])
    if identity:
        parts.append(f"<p>Dataset snapshot <strong>{escape(identity)}</strong> ({escape(summary['snapshot'])}).</p>")
    else:
        where = f" ({escape(summary['labels_uri'])})" if summary["labels_uri"] else ""
        parts.append(f"<p>No dataset snapshot: the labels were read as they were{where}.</p>")
    parts.append(
        f"<p>{summary['records_read']} labelled record(s) read, {summary['images_written']} image(s) written, "
        f"{len(summary['quarantined'])} record(s) quarantined, {summary['merged']} merged into another labelling of the same image "
        f"(from {escape(', '.join(data.files))}).</p>"
    )
    inputs = [_row([escape(i["path"]), escape(i["format"]), str(i["records"]), escape(i["sha256"][:16])], numbers_from=2) for i in summary["inputs"]]
    parts += ["<h3>Inputs</h3>", _table(["input", "format", "records", "sha256 (start)"], inputs)]
    rows = []
    for name in summary["classes"]:
        cells = [escape(name)]
        for split in SPLITS:
            cells += [str(summary["images"][split][name]), str(summary["boxes"][split][name])]
        rows.append(_row(cells, numbers_from=1))
    head = ["class", "train images", "train boxes", "validation images", "validation boxes"]
    parts += ["<h3>Boxes per class</h3>", _table(head, rows)]
    dropped = summary["dropped_boxes"]
    if dropped:
        listed = ", ".join(f"{name}: {count}" for name, count in dropped.items())
        parts.append(f"<p>Dropped boxes (classes that are not the model's and are not mapped onto one): {escape(listed)}.</p>")
    else:
        parts.append("<p>No box was dropped: every box's class is one of the model's (or mapped onto one).</p>")
    flags = {name: count for name, count in summary["box_flags"].items() if count}
    if flags:
        parts.append(f"<p>Boxes kept with a note: {escape(', '.join(f'{name} {count}' for name, count in sorted(flags.items())))}.</p>")
    parts.append(_quarantined(summary["quarantined"]))
    return "\n".join(parts)


def _quarantined(entries: Sequence[Mapping[str, Any]]) -> str:
    if not entries:
        return "<p>No record was quarantined.</p>"
    rows = []
    for entry in entries[:QUARANTINED_SHOWN]:
        place = f"{entry.get('manifest', '?')}:{entry['line']}" if "line" in entry else f"{entry.get('manifest', '?')} ({entry.get('record', '')})"
        rows.append(_row([escape(place), escape(str(entry.get("reason", "")))]))
    more = len(entries) - QUARANTINED_SHOWN
    tail = f"<p>... and {more} more, listed in PrepareData's report.json.</p>" if more > 0 else ""
    return f"<h3>Quarantined records ({len(entries)})</h3>{_table(['record', 'reason'], rows)}{tail}"


def _since_champion(section: Mapping[str, Any] | None) -> str:
    """The photos new since the champion's data and those no longer present, by content (image_lists.py)."""
    head = "<h3>Images new since the champion's data</h3>"
    since = (section or {}).get("since_champion") or {"reason": "this evaluation was made before Evaluate kept its list of photos"}
    if not since.get("known"):
        return f"{head}<p>Not known: {escape(str(since.get('reason', '')))}.</p>"
    identity = snapshot_id(since.get("snapshot"))
    if identity:
        origin = f"dataset snapshot <strong>{escape(identity)}</strong> ({escape(since['snapshot'])})"
    else:
        origin = f"the labels {escape(since['labels_uri'])}" if since.get("labels_uri") else "data whose origin it did not record"
    by_split = ", ".join(f"{split} {count}" for split, count in (since.get("new_by_split") or {}).items())
    rows = [
        _row(["new: in this model's data, not in the champion's", str(since["new"]), escape(by_split)], numbers_from=1),
        _row(["no longer present: in the champion's data, not in this model's", str(since["gone"]), ""], numbers_from=1),
        _row(["in both", str(since["unchanged"]), ""], numbers_from=1),
    ]
    parts = [
        head,
        f"<p>Against the data of the champion (version {escape(str(since['version']))}): {origin}. Photos are compared by content "
        "(the sha256 of each photo as labelled), so one uploaded again under another key is not new.</p>",
        _table(["photos", "count", "by split"], rows),
        _names("New", since["new"], since.get("new_examples") or []),
        _names("No longer present", since["gone"], since.get("gone_examples") or []),
    ]
    seen = int(since.get("validation_in_champion_training") or 0)
    if seen:
        parts.append(f'<p class="warning">{seen} validation photo(s) were in the champion\'s training data: its figures on them flatter it.</p>')
    return "\n".join(part for part in parts if part)


def _names(label: str, count: int, names: Sequence[str]) -> str:
    if not names:
        return ""
    more = f" and {count - len(names)} more" if count > len(names) else ""
    return f"<p>{label}: {escape(', '.join(names))}{more}.</p>"


# Training and monitoring ---------------------------------------------------------------------------------


def _training(evaluation: Mapping[str, Any]) -> str:
    """The challenger's training settings (model.json: the variant, steps and hyperparameters), beside the
    champion's where there is one; rows that differ are marked."""
    mine = _settings_of(evaluation["model"].get("metadata") or {})
    champion = evaluation.get("champion") or {}
    theirs = _settings_of((champion.get("model") or {}).get("metadata") or {}) if champion.get("version") else None
    if not mine and not theirs:
        return "<h3>Training settings</h3><p>The model's model.json records no training settings.</p>"
    head = ["setting", "challenger", *([f"champion (version {champion['version']})"] if theirs is not None else [])]
    rows = []
    for name in sorted(set(mine) | set(theirs or {})):
        cells = [escape(name), escape(mine.get(name, "-"))]
        if theirs is not None:
            cells.append(escape(theirs.get(name, "-")))
        differs = theirs is not None and mine.get(name) != theirs.get(name)
        rows.append(_row(cells, css="differs" if differs else ""))
    marked = " Rows where the two differ are marked." if theirs is not None else ""
    return f'<h3>Training settings</h3><p class="note">From each model\'s model.json.{marked}</p>{_table(head, rows)}'


def _settings_of(metadata: Mapping[str, Any]) -> dict[str, str]:
    settings = {
        name: _text(value) for name, value in metadata.items() if name not in ("classes", "hyperparameters", "signature", "handler_libraries")
    }
    settings.update({f"hyperparameters.{name}": _text(value) for name, value in (metadata.get("hyperparameters") or {}).items()})
    return settings


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _baselines(section: Mapping[str, Any], documents: Mapping[str, Mapping[str, Any] | None]) -> str:
    """The drift baselines registered with the package: what each holds, and each statistic's spread."""
    if not section:
        return "<h3>Drift baselines</h3><p>This evaluation wrote no drift baselines.</p>"
    parts = ["<h3>Drift baselines</h3>"]
    model = section.get("model") or {}
    data = section.get("data") or {}
    if model.get("file"):
        parts.append(
            f"<p>{escape(model['file'])}: the challenger's answers on {_value(model, 'images')} validation photo(s) as the endpoint gives "
            f"them (score threshold {_value(model, 'score_threshold')}, at most {_value(model, 'max_detections')} detection(s)).</p>"
        )
    if data.get("file"):
        parts.append(f"<p>{escape(data['file'])}: PrepareData's statistics of {_value(data, 'images')} photo(s).</p>")
    elif data:
        parts.append(f"<p>No data baseline: {escape(str(data.get('reason', 'not written')))}.</p>")
    for kind, label in (("data", "photos (data baseline)"), ("model", "answers (model baseline)")):
        document = documents.get(kind)
        if document:
            parts.append(f"<h4>Statistics of the {label}</h4>{_statistics(document)}")
    return "\n".join(parts)


def _value(section: Mapping[str, Any], name: str) -> str:
    return escape(str(section.get(name, "?")))


def _statistics(document: Mapping[str, Any]) -> str:
    rows = []
    for name, values in (document.get("continuous") or {}).items():
        if values:
            low, middle, high = np.percentile(np.asarray(values, dtype=np.float64), [5, 50, 95])
            rows.append(_row([escape(name), str(len(values)), f"{middle:.3g}", f"{low:.3g} to {high:.3g}"], numbers_from=1))
        else:
            rows.append(_row([escape(name), "0", "-", "-"], numbers_from=1))
    table = _table(["statistic", "values", "median", "5th to 95th percentile"], rows) if rows else ""
    counts = []
    for name, categories in (document.get("categorical") or {}).items():
        listed = ", ".join(f"{category}: {count}" for category, count in categories.items()) or "none"
        counts.append(_row([escape(name), escape(listed)]))
    return table + (_table(["category", "counts"], counts) if counts else "")


# HTML pieces ---------------------------------------------------------------------------------------------


def _row(cells: Sequence[str], *, numbers_from: int | None = None, css: str = "") -> str:
    """A table row of cells that are HTML already (escaped by the caller)."""
    tds = "".join(
        f'<td class="number">{cell}</td>' if numbers_from is not None and i >= numbers_from else f"<td>{cell}</td>" for i, cell in enumerate(cells)
    )
    return f'<tr class="{css}">{tds}</tr>' if css else f"<tr>{tds}</tr>"


def _table(head: Sequence[str], rows: Sequence[str]) -> str:
    heading = "".join(f"<th>{escape(name)}</th>" for name in head)
    return f"<table><tr>{heading}</tr>{''.join(rows)}</table>"


def data_uri(data: bytes, media_type: str) -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"


# Writing it ----------------------------------------------------------------------------------------------


def write_report(
    output: Path,
    evaluation: Mapping[str, Any],
    *,
    files: Sequence[Path],
    truths: Sequence[GroundTruth],
    challenger: Sequence[Detections],
    champion: Sequence[Detections] | None,
    threshold: float,
    photos: int,
    prepared: Path | None,
    log: Callable[[str], None] = print,
) -> Path:
    """Write `output`/report.html for `evaluation`, whose pictures and baselines are already in `output`: the
    photos are read again from the validation `files` (only those shown are kept; record order is the order of
    `truths`), PrepareData's reports from `prepared`. Returns the page's path."""
    selection = select_photos(truths, challenger, champion, threshold, photos)
    label_ids = {name: int(label) for label, name in evaluation["model"]["label_map"].items()}
    wanted = {row.index: row for row in selection.photos}
    found: dict[int, Photo] = {}
    if wanted:
        for index, record in enumerate(read_records(files, label_ids)):
            if index in wanted:
                found[index] = Photo(
                    wanted[index], record.truth, record.encoded, challenger[index], champion[index] if champion is not None else None
                )
                if len(found) == len(wanted):
                    break
    data = read_data_reports(prepared)
    for problem in data.problems:
        log(f"evaluate: warning: the data report {problem}")
    section = evaluation.get("baselines") or {}
    documents = {kind: _read_document(output, (section.get(kind) or {}).get("file")) for kind in ("data", "model")}
    curves = output / PR_CURVES
    page = render(
        evaluation,
        selection=selection,
        photos=[found[row.index] for row in selection.photos if row.index in found],
        threshold=threshold,
        data=data,
        baselines=documents,
        pr_curves=curves.read_bytes() if curves.is_file() else None,
    )
    path = output / PAGE
    partial = path.with_name(path.name + ".partial")
    partial.write_text(page, encoding="utf-8")
    partial.replace(path)
    log(f"evaluate: report page: {len(found)} photo(s), {len(page.encode()) / 1024:.0f} KiB -> {PAGE}")
    return path


def _read_document(folder: Path, name: str | None) -> dict | None:
    """A baseline Evaluate wrote in this run (it checked it then)."""
    return json.loads((folder / name).read_text(encoding="utf-8")) if name else None
