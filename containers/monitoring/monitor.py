#!/usr/bin/env python3
"""The monitor: a window of the endpoint's captured photos and answers against the served package's baselines.

    python3 containers/monitoring/monitor.py --captures DIR --baseline DIR --output DIR
        [--since ISO] [--until ISO] [--package GROUP/VERSION] [--endpoint NAME] [--atypical N] [--no-progress]
        [--labels DIR [--label-attribute NAME] [--served-since ISO] [--labelled-captures DIR]]

--captures is a folder of capture files (*.jsonl at any depth: SageMaker's `<endpoint>/<variant>/yyyy/mm/dd/hh/`
layout, or the local endpoint's, which is the same), read by containers/monitoring/captures.py. --baseline is a
folder holding the package's data-baseline.json (input statistics) and model-baseline.json (output statistics);
either may be missing, and then its kind is reported as having no baseline. The window is the inference times
in [--since, --until); a bound not given is open.

For every answered photo of the window it computes the input statistics of the photo and the output statistics
of the answer (containers/monitoring/statistics.py), summarizes the window, compares each statistic with the
baseline, and ranks the photos by how unlike the data baseline they are. With --labels (a folder of label exports,
such as a review batch's pulled back), it also scores the window's captured answers to the photos labelled there:
the accuracy in service (containers/monitoring/quality.py); --served-since leaves out answers captured before the
served package began answering. Photos are labelled after they were answered, so their answers are usually older
than the window: --labelled-captures is a second folder of capture files read for the accuracy in service only
(the scheduled job on AWS gives it the capture files that review batches took photos from), whose photos are not
measured for drift and whose records the window does not limit. Writes into --output:
- monitor.json: {"drift", "window": {"since", "until", "images"}, "baseline": {"package", "images", "missing"},
  "statistics": [...], "atypical": [{"capture", "score", "why"}], "unusable": [{"capture", "reason"}],
  "quality": {"images", "boxes", "map", "map50", "labels", "unmatched", "package", "refused", "dropped"} or null};
  a window with no captures is reported with images 0 and no drift;
- atypical.json: the --atypical most atypical photos, each with its statistics;
- report.html: one self-contained page (containers/monitoring/report.py), owner-only since it shows photos.

Exit status 0 when it ran, whatever it found; 2 for a bad argument (argparse names it); 1 with one line on stderr
when a baseline or a labels file cannot be read. It makes no network call: on AWS it runs network-isolated.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import sys
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `containers` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from containers.common.arguments import positive
from containers.common.program import exit_status
from containers.monitoring import quality, statistics
from containers.monitoring.captures import OPEN, Captured, Unusable, Window, decode, iso, parse_time, read_folder
from containers.monitoring.quality import Answer, Labels, LabelsError
from containers.monitoring.statistics import AREA, DATA_BASELINE, MODEL_BASELINE, Result, StatisticsError

MONITOR = "monitor.json"
ATYPICAL = "atypical.json"
REPORT = "report.html"
DEFAULT_ATYPICAL = 20  # photos ranked in atypical.json, monitor.json and the report's thumbnails
BASELINES = {"input": DATA_BASELINE, "output": MODEL_BASELINE}


class MonitorError(Exception):
    """An input the monitor cannot use (a baseline that is not one, a labels file that cannot be read); the
    message names the file."""


@dataclass(frozen=True)
class Options:
    """One run: the command line's options, same names."""

    captures: Path
    baseline: Path | None  # None: no baseline of either kind
    output: Path
    window: Window = OPEN
    package: str | None = None
    endpoint: str | None = None
    atypical: int = DEFAULT_ATYPICAL
    progress: bool = False
    labels: Path | None = None  # label exports of photos the endpoint answered: the accuracy in service
    label_attribute: str | None = None  # of Ground Truth manifests with several bounding-box attributes
    served_since: datetime | None = None  # answers captured before it came from another package: not scored
    labelled_captures: Path | None = None  # capture files read for the accuracy in service only, whatever their time


@dataclass(frozen=True)
class Atypical:
    """A photo of the window and how unlike the data baseline it is (statistics.atypicality)."""

    photo: Captured
    score: float
    why: str
    inputs: dict
    outputs: dict


@dataclass
class Findings:
    """What a window holds and how it compares with the baselines."""

    window: Window
    baselines: dict[str, dict | None]
    rows: dict[str, list[dict]] = field(default_factory=lambda: {"input": [], "output": []})
    unusable: list[Unusable] = field(default_factory=list)
    outside: int = 0  # records read whose inference time is outside the window
    atypical: list[Atypical] = field(default_factory=list)  # most atypical first
    documents: dict[str, dict] = field(default_factory=dict)  # the window's summaries, by kind
    results: list[Result] = field(default_factory=list)
    answers: dict[str, Answer] = field(default_factory=dict)  # the newest answer to each labelled photo, by its digits
    earlier: int = 0  # answers to labelled photos captured before --served-since (or at a time that cannot be read)
    read: int = 0  # records read, the window's and then --labelled-captures': a record's place orders equal times
    extra: dict[str, int] = field(default_factory=dict)  # --labelled-captures: what its records were, by kind

    @property
    def images(self) -> int:
        return len(self.rows["input"])

    @property
    def drift(self) -> bool:
        return any(result.drifted for result in self.results)


def read_baselines(folder: Path | None) -> dict[str, dict | None]:
    """The data and model baselines in `folder`, by kind; None for a file that is not there (or no folder)."""
    found: dict[str, dict | None] = {}
    for kind, name in BASELINES.items():
        path = Path(folder) / name if folder is not None else None
        if path is None or not path.is_file():
            found[kind] = None
            continue
        try:
            document = statistics.check(json.loads(path.read_text(encoding="utf-8")), str(path))
        except (ValueError, StatisticsError) as exc:  # json.JSONDecodeError is a ValueError
            raise MonitorError(f"{path}: not a statistics document ({exc})") from None
        if document["kind"] != kind:
            raise MonitorError(f"{path}: holds {document['kind']} statistics; {name} holds the {kind} statistics")
        found[kind] = document
    return found


def area_classes(baseline: Mapping[str, Any] | None) -> list[str]:
    """The classes whose damaged-area share the model baseline keeps, so the window keeps the same ones."""
    return [name[len(AREA) :] for name in (baseline or {}).get("continuous", {}) if name.startswith(AREA)]


def watch(
    records: Iterable[tuple[str, int, str]],
    baselines: dict[str, dict | None],
    window: Window = OPEN,
    *,
    atypical: int = DEFAULT_ATYPICAL,
    labelled: Collection[str] = frozenset(),
    served_since: datetime | None = None,
) -> Findings:
    """Read the window's records, compute each photo's statistics, and compare the window with the baselines.
    `labelled`: the captured digits of photos that came back labelled, whose newest answer since `served_since`
    is kept (Findings.answers)."""
    findings = Findings(window, baselines)
    unlike = statistics.Atypicality(baselines["input"]) if baselines["input"] is not None and atypical > 0 else None
    ranked: list[tuple[float, int, Atypical]] = []  # a min-heap of the most atypical so far; ties keep the earlier
    for index, (file, line, raw) in enumerate(records):
        findings.read = index + 1
        item = decode(file, line, raw, window)
        if item is None:
            findings.outside += 1
            continue
        if isinstance(item, Unusable):
            findings.unusable.append(item)
            continue
        try:
            inputs = statistics.input_statistics(item.data)
            outputs = statistics.output_statistics(item.detections, item.width, item.height)
        except (StatisticsError, KeyError, TypeError, ValueError) as exc:
            findings.unusable.append(Unusable(item.source, f"its photo or answer cannot be measured ({type(exc).__name__}: {exc})"))
            continue
        findings.rows["input"].append(inputs)
        findings.rows["output"].append(outputs)
        if labelled and item.digits in labelled:
            _keep_answer(findings, item, index, (inputs["width"], inputs["height"]), served_since)
        if unlike is not None:
            score, why = unlike(inputs)
            heapq.heappush(ranked, (score, -index, Atypical(item, round(score, 4), why, inputs, outputs)))
            if len(ranked) > atypical:
                heapq.heappop(ranked)
    findings.atypical = [entry for _, _, entry in sorted(ranked, key=lambda e: (-e[0], -e[1]))]
    classes = area_classes(baselines["output"])
    findings.documents = {
        "input": statistics.summarize(findings.rows["input"], "input"),
        "output": statistics.summarize(findings.rows["output"], "output", classes=classes),
    }
    # Bonferroni over every statistic of both kinds: each kind's family gets its share of ALPHA, so that every
    # threshold is ALPHA over all the statistics tested and a window like the baselines alarms with chance ALPHA.
    compared = {kind: (baseline, findings.documents[kind]) for kind, baseline in baselines.items() if baseline is not None}
    total = sum(_family(*pair) for pair in compared.values())
    for baseline, summary in compared.values():
        findings.results += statistics.compare(baseline, summary, alpha=statistics.ALPHA * _family(baseline, summary) / max(1, total))
    return findings


def labelled_answers(findings: Findings, records: Iterable[tuple[str, int, str]], labelled: Collection[str], served_since: datetime | None) -> None:
    """Keep the answers to labelled photos from capture files read for the accuracy in service only
    (--labelled-captures): their photos are not measured for drift and the window does not limit them, since a
    photo is labelled after it was answered; --served-since still does. Each record is counted by what it was
    (findings.extra): an answer to a labelled photo, another photo, or not a captured photo and answer."""
    for file, line, raw in records:
        findings.read += 1
        item = decode(file, line, raw)
        kind = "unusable" if isinstance(item, Unusable) else "labelled" if item.digits in labelled else "other"
        if kind == "labelled":
            try:
                inputs = statistics.input_statistics(item.data)
            except StatisticsError:
                kind = "unusable"
            else:
                _keep_answer(findings, item, findings.read, (inputs["width"], inputs["height"]), served_since)
        findings.extra[kind] = findings.extra.get(kind, 0) + 1


def _keep_answer(findings: Findings, photo: Captured, index: int, upright: tuple[int, int], served_since: datetime | None) -> None:
    """Keep a labelled photo's answer when it is the newest so far that the served package gave."""
    try:
        when = parse_time(photo.inference_time)
    except ValueError:
        when = None
    if served_since is not None and (when is None or when < served_since):
        findings.earlier += 1
        return
    answer = Answer(photo.source, when, index, photo.detections, (photo.width, photo.height), upright)
    kept = findings.answers.get(photo.digits)
    if kept is None or answer.newer_than(kept):
        findings.answers[photo.digits] = answer


def _family(baseline: Mapping[str, Any], window: Mapping[str, Any]) -> int:
    """How many statistics `statistics.compare` tests: the baseline's that the window has too."""
    return sum(len(set(baseline[part]) & set(window[part])) for part in ("continuous", "categorical"))


def monitor_document(findings: Findings, package: str | None, service: dict | None = None) -> dict:
    """monitor.json: the contract other tools read (module docstring)."""
    window, data = findings.window, findings.baselines["input"]
    return {
        "drift": findings.drift,
        "window": {
            "since": iso(window.since) if window.since else None,
            "until": iso(window.until) if window.until else None,
            "images": findings.images,
        },
        "baseline": {
            "package": package,
            "images": data["images"] if data else None,
            "missing": [kind for kind, baseline in findings.baselines.items() if baseline is None],
        },
        "statistics": [result.as_dict() for result in findings.results],
        "atypical": [{"capture": entry.photo.source, "score": entry.score, "why": entry.why} for entry in findings.atypical],
        "unusable": [{"capture": item.capture, "reason": item.reason} for item in findings.unusable],
        "quality": service,  # the accuracy in service, once labels come back for answered photos
    }


def monitor(options: Options, *, log: Callable[[str], None] = print) -> dict:
    """Run the monitor and write its three files into `options.output`; returns monitor.json's document.
    Raises MonitorError for a baseline or a labels file that cannot be read (nothing is written then)."""
    from containers.monitoring.report import render

    baselines = read_baselines(options.baseline)
    for kind, baseline in baselines.items():
        if baseline is None:
            where = f"in {options.baseline}" if options.baseline else "(no --baseline)"
            log(f"monitor: no {BASELINES[kind]} {where}: the {kind} statistics are reported, not compared")
    labels = read_labels(options.labels, options.label_attribute) if options.labels else None
    findings = watch(
        _progress(read_folder(options.captures), options.progress),
        baselines,
        options.window,
        atypical=options.atypical,
        labelled=frozenset(labels.labelled) if labels else frozenset(),
        served_since=options.served_since,
    )
    if labels is not None and options.labelled_captures is not None:
        labelled_answers(findings, read_folder(options.labelled_captures), frozenset(labels.labelled), options.served_since)
    service = quality.service_quality(labels, findings.answers, area_classes(baselines["output"]), options.package) if labels else None
    document = monitor_document(findings, options.package, service)
    options.output.mkdir(parents=True, exist_ok=True)
    listing = [
        {**entry, "statistics": {"input": atypical.inputs, "output": atypical.outputs}}
        for entry, atypical in zip(document["atypical"], findings.atypical, strict=True)
    ]
    write(options.output / ATYPICAL, (json.dumps(listing, indent=2, allow_nan=False) + "\n").encode("utf-8"))
    photos = [(entry.photo.source, entry.score, entry.why, entry.photo.data) for entry in findings.atypical]
    page = render(document, findings.baselines, findings.documents, photos, endpoint=options.endpoint)
    write(options.output / REPORT, page.encode("utf-8"), private=True)  # it shows captured photos: the owner's alone
    write(options.output / MONITOR, (json.dumps(document, indent=2, allow_nan=False) + "\n").encode("utf-8"))  # last: it says the run ended
    log(summary(document))
    if findings.outside:
        log(f"monitor: {findings.outside} captured record(s) outside the window were left out")
    if labels is not None:
        log(_quality_line(labels, findings, service, options))
    log(f"monitor: outputs in {options.output} ({MONITOR}, {REPORT}, {ATYPICAL})")
    return document


def read_labels(folder: Path, label_attribute: str | None = None) -> Labels:
    try:
        return quality.read_labels(folder, label_attribute)
    except LabelsError as exc:
        raise MonitorError(f"--labels: {exc}") from None


def summary(document: Mapping[str, Any]) -> str:
    """The one line a person reads first, from monitor.json alone (also for a report read back from S3)."""
    window = document["window"]
    span = f"[{window['since'] or 'the first capture'}, {window['until'] or 'the last'})"
    drifted = [f"{result['name']} ({result['kind']})" for result in document["statistics"] if result["drifted"]]
    verdict = f"DRIFT in {', '.join(drifted)}" if drifted else f"no drift in {len(document['statistics'])} statistic(s) tested"
    if not window["images"]:
        verdict = "an empty window: nothing to compare, no drift"
    return f"monitor: window {span}: {window['images']} photo(s), {len(document['unusable'])} unusable record(s): {verdict}"


def _quality_line(labels: Labels, findings: Findings, service: dict | None, options: Options) -> str:
    notes = [f"labels in {labels.folder}: {len(labels.labelled)} photo(s) from review batches"]
    if options.labelled_captures is not None:
        extra = findings.extra
        notes.append(
            f"--labelled-captures: {extra.get('labelled', 0)} answer(s) to labelled photos, {extra.get('other', 0)} to other photos, "
            f"{extra.get('unusable', 0)} record(s) that are not a usable photo and answer"
        )
    if findings.earlier:
        notes.append(f"{findings.earlier} answer(s) captured before --served-since {iso(options.served_since)} left out")
    if labels.others:
        notes.append(f"{labels.others} labelled record(s) of other photos left out")
    return f"monitor: accuracy in service: {quality.describe(service)} ({'; '.join(notes)})"


def write(path: Path, data: bytes, *, private: bool = False) -> None:
    """Write `path` whole (a reader never sees half a file); `private`: owner-only (0o600), whatever the umask."""
    partial = path.with_name(path.name + ".partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(descriptor, "wb") as file:
        if private:
            os.fchmod(file.fileno(), 0o600)
        file.write(data)
    partial.replace(path)


def _progress(items: Iterable, enabled: bool) -> Iterable:
    """A progress bar (records read, rate) on a terminal; nothing in a job's log."""
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc="monitor: reading captures", unit="record", file=sys.stderr, leave=False)


def _moment(text: str) -> datetime:
    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="monitor.py", description="A window of captured photos and answers against the served package's baselines.")
    parser.add_argument("--captures", type=Path, required=True, help="folder of capture files (*.jsonl, any depth)")
    parser.add_argument(
        "--baseline", type=Path, help=f"folder holding {DATA_BASELINE} and {MODEL_BASELINE} (either may be missing; none: no baseline of either kind)"
    )
    parser.add_argument("--output", type=Path, required=True, help=f"output folder ({MONITOR}, {REPORT}, {ATYPICAL})")
    parser.add_argument("--since", type=_moment, help="the window's start, an ISO 8601 date or time (UTC without a zone); default: open")
    parser.add_argument("--until", type=_moment, help="the window's end, excluded; default: open")
    parser.add_argument("--package", help="the served package, as GROUP/VERSION, for the report")
    parser.add_argument("--endpoint", help="the endpoint the captures are of, for the report")
    parser.add_argument(
        "--atypical", type=positive, default=DEFAULT_ATYPICAL, help="how many of the most atypical photos to list (default: %(default)s)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    parser.add_argument("--labels", type=Path, help="folder of label exports of answered photos (review batches): the accuracy in service")
    parser.add_argument("--label-attribute", help="with --labels: the label attribute of Ground Truth manifests that have several")
    parser.add_argument(
        "--served-since", type=_moment, help="with --labels: when the served package began answering; answers captured before are not scored"
    )
    parser.add_argument(
        "--labelled-captures", type=Path, help="with --labels: a folder of capture files read for the accuracy in service only, outside the window"
    )
    args = parser.parse_args(argv)
    for name in ("captures", "baseline", "labels", "labelled_captures"):
        if getattr(args, name) is not None and not getattr(args, name).is_dir():
            parser.error(f"--{name.replace('_', '-')} {getattr(args, name)}: no such folder")
    if args.since and args.until and args.since >= args.until:
        parser.error(f"--since {iso(args.since)} is not before --until {iso(args.until)}: the window is empty")
    for name in ("label_attribute", "served_since", "labelled_captures"):
        if getattr(args, name) is not None and args.labels is None:
            parser.error(f"--{name.replace('_', '-')} goes with --labels")
    progress = sys.stderr.isatty() and not args.no_progress
    window = Window(args.since, args.until)
    labels = {name: getattr(args, name) for name in ("labels", "label_attribute", "served_since", "labelled_captures")}
    return Options(args.captures, args.baseline, args.output, window, args.package, args.endpoint, args.atypical, progress, **labels)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    return exit_status("monitor", lambda: monitor(options), MonitorError, OSError)


if __name__ == "__main__":
    sys.exit(main())
