#!/usr/bin/env python3
"""Evaluate: COCO box metrics of the exported detector on the validation records, and pictures of them.

Runs as the pipeline's Evaluate step (a SageMaker Processing job; paths default to SageMaker's
/opt/ml/processing/... layout) and, unchanged, on a laptop or in the local engine:

    python containers/evaluation/evaluate.py --model PATH --validation DIR --output DIR \\
        [--statistics DIR] [--score-threshold F] [--max-detections N] [--prepared DIR] [--images DIR] \\
        [--champion DIR --champion-version N [--champion-data DIR] [--champion-data-missing REASON]] \\
        [--batch-size N] [--pictures N] [--picture-score-threshold F] [--bootstrap-resamples N] [--bootstrap-seed N]

--model is a model.tar.gz, a folder holding one (a Processing input of the training job's artifact), or an
extracted model folder (`1/` SavedModel and `model.json`). --validation is a folder of OD API
TFRecords as PrepareData writes them. Writes OUTPUT/evaluation.json (the metrics in SageMaker's
model-quality shape; the quality gate reads metrics.mAP.value), OUTPUT/pr_curves.png,
OUTPUT/predictions.png, and the package's drift baselines (baselines.py): OUTPUT/model-baseline.json (the
model's answers as the endpoint gives them at --score-threshold and --max-detections) and, when --statistics
holds PrepareData's statistics documents, OUTPUT/data-baseline.json (evaluation.json's `baselines` says which
were written, and why one was not), and OUTPUT/report.html, the approver's page (package_report.py; --prepared:
PrepareData's report.json folder, for its data section). With --images (PrepareData's images.jsonl folder) it
keeps the photos the model was trained and validated on as OUTPUT/evaluation-images.json and compares them with
the champion's kept list in --champion-data (image_lists.py: evaluation.json's `training_data`). An empty
validation set or a model that detects nothing gives mAP 0 with a warning, exit status 0; exit status 1 with a
one-line reason on stderr when an input is unusable.

Every figure comes with its 95% interval (evaluation.json's `intervals`, the champion's `lead_interval`): a
percentile bootstrap over the validation images, --bootstrap-resamples resamples drawn from --bootstrap-seed
(bootstrap.py), paired for the champion's lead (both models scored on the same drawn images).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

if __package__ in (None, ""):  # run as a script: make `containers` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from containers.common.arguments import fraction, non_negative, positive
from containers.common.program import exit_status
from containers.evaluation.baselines import DataBaseline, Serving, data_baseline, model_baseline
from containers.evaluation.bootstrap import Settings, draw, percentile_interval
from containers.evaluation.coco import MAX_DETECTIONS, Metrics, compute_metrics
from containers.evaluation.errors import EvaluationError
from containers.evaluation.image_lists import IMAGE_LIST, NONE, ChampionData, training_data
from containers.evaluation.intervals import CONFIDENCE, MIN_RESAMPLES, format_interval, intervals_section
from containers.evaluation.model import SAVED_MODEL, Detections, Detector, ModelSource, archive_of, locate_model, read_metadata
from containers.evaluation.model_card import MODEL_CARD, card_text, training_datasets
from containers.evaluation.package_report import PAGE, data_summary, read_data_reports, write_report
from containers.evaluation.pictures import Example, save_pr_curves_picture, save_predictions_picture
from containers.evaluation.report import DIGITS, evaluation_report, evaluation_warnings, unknown_labels
from containers.evaluation.validation import GroundTruth, Record, read_records, validation_files
from containers.monitoring.statistics import DATA_BASELINE, MODEL_BASELINE

PROCESSING = Path("/opt/ml/processing")
REPORT = "evaluation.json"
PR_CURVES = "pr_curves.png"
PREDICTIONS = "predictions.png"
NO_CHAMPION = "none"  # evaluation.json's champion.package_arn and map_text when nothing is served
NOTHING_SERVED = "none (nothing is served)"  # its text and lead_text then
T = TypeVar("T")
DetectFunction = Callable[[Sequence[bytes], Sequence[str]], list[Detections]]


@dataclass(frozen=True)
class ChampionOptions:
    """The package the endpoint serves (the pipeline's FindChampion step found it), scored beside the model."""

    model: Path
    version: int
    package_arn: str = NO_CHAMPION


@dataclass(frozen=True)
class Options:
    """One evaluation: the model, the validation records and the output folder (the job's channels), and how
    it runs and draws (the command line's options, same names)."""

    model: Path
    validation: Path
    output: Path
    batch_size: int = 8
    pictures: int = 6
    picture_score_threshold: float = 0.3
    progress: bool = False
    champion: ChampionOptions | None = None
    statistics: Path | None = None  # PrepareData's statistics/ output: the data baseline's documents
    prepared: Path | None = None  # PrepareData's report.json (one per instance), for report.html
    images: Path | None = None  # PrepareData's images.jsonl (one per instance): the photos the model learnt from
    champion_data: ChampionData = field(default_factory=ChampionData)  # the champion's kept image list (FindChampion)
    # The endpoint's default options (pipeline.yaml's deployment section), under which the model baseline is measured.
    score_threshold: float = Serving().score_threshold
    max_detections: int = Serving().max_detections
    bootstrap: Settings = field(default_factory=Settings)  # the intervals' resamples and seed


@dataclass(frozen=True)
class Run:
    """What the model found on the validation set: per image its ground truth and detections (in record
    order), and the first images kept whole for the predictions picture."""

    truths: list[GroundTruth]
    detections: list[Detections]
    examples: list[Example]


@dataclass(frozen=True)
class Scored:
    """One model's figures on the validation records."""

    source: ModelSource
    classes: dict[int, str]
    metadata: dict
    run: Run
    metrics: Metrics

    @property
    def detections(self) -> int:
        return sum(len(found) for found in self.run.detections)


def score(model_path: Path, files: Sequence[Path], work: Path, options: Options, log: Callable[[str], None], role: str) -> Scored:
    """Run one model on every validation record and compute its COCO metrics. `role`: challenger or champion."""
    model = locate_model(model_path, work)
    classes, metadata = read_metadata(model.folder)
    detector = Detector(model.folder / SAVED_MODEL)
    log(f"evaluate: {role} {model.describe()} ({', '.join(classes.values())}); {len(files)} validation file(s) in {options.validation}")
    records = read_records(files, {name: label for label, name in classes.items()})
    pictures = options.pictures if role == "challenger" else 0
    run = run_detector(detector, _progress(records, f"{role}: detecting", options.progress), options.batch_size, pictures)
    metrics = compute_metrics(run.truths, run.detections, classes)
    if metrics.summary:
        log(f"evaluate: {role}: COCO bbox evaluation:")
        for line in metrics.summary:
            log(f"  {line}")
    return Scored(model, classes, metadata, run, metrics)


def evaluate(options: Options, *, log: Callable[[str], None] = print) -> dict:
    """Evaluate the model (and the champion, when one is given) on the validation set and write the report and
    pictures to `options.output`; returns the report. Raises `EvaluationError` when an input is unusable
    (nothing is written then)."""
    files = validation_files(options.validation)
    data = data_baseline(options.statistics)  # before the model runs: an unreadable document stops the job at once
    with tempfile.TemporaryDirectory(prefix="evaluate-") as work:
        scored = score(options.model, files, Path(work) / "challenger", options, log, "challenger")
        champion = None
        if options.champion is not None and same_model(scored.source.archive, options.champion.model):
            log(f"evaluate: the champion (version {options.champion.version}) is the challenger's very model file: scored once")
            champion = scored
        elif options.champion is not None:
            champion = score(options.champion.model, files, Path(work) / "champion", options, log, "champion")
    metrics, run, classes = scored.metrics, scored.run, scored.classes
    detections = scored.detections
    warnings = _warnings(options, files, scored)
    options.output.mkdir(parents=True, exist_ok=True)
    save_pr_curves_picture(
        metrics.curves,
        options.output / PR_CURVES,
        note=_curves_note(metrics, warnings),
        champion=(champion.metrics.curves, champion_label(options.champion)) if champion and options.champion else None,
    )
    save_predictions_picture(
        run.examples,
        classes,
        options.picture_score_threshold,
        options.output / PREDICTIONS,
        note=_predictions_note(options, run, detections, warnings),
    )
    report = evaluation_report(
        metrics,
        images=len(run.truths),
        detections=detections,
        warnings=warnings,
        model=_model_section(options.model, scored),
        validation={"path": str(options.validation), "files": [path.relative_to(options.validation).as_posix() for path in files]},
        settings=_settings(options),
        pictures={"pr_curves": PR_CURVES, "predictions": PREDICTIONS},
    )
    report["champion"] = champion_section(report, options, files, champion)
    add_intervals(report, options.bootstrap, scored, champion, log)
    report["baselines"] = write_baselines(options, scored, data, log)
    report["training_data"] = _training_data(options, log)
    report["pictures"]["report"] = PAGE
    write_report(
        options.output, report, files=files, truths=run.truths, challenger=run.detections, champion=champion.run.detections if champion else None,
        threshold=options.picture_score_threshold, photos=options.pictures, prepared=options.prepared, log=log,
    )  # fmt: skip
    # Last, when the report is whole: the package's model card (model_card.py), which Register sends with JsonGet.
    report[MODEL_CARD] = card_text(report, training_datasets(options.prepared))
    _write_json(options.output / REPORT, report)
    return report


def write_baselines(options: Options, scored: Scored, data: DataBaseline, log: Callable[[str], None]) -> dict:
    """Write the drift baselines beside evaluation.json; returns evaluation.json's `baselines`: each file written
    with what it holds, or, for the data baseline, null and why (a run still registers without it)."""
    serving = Serving(score_threshold=options.score_threshold, max_detections=options.max_detections)
    model = model_baseline(scored.run.truths, scored.run.detections, serving, scored.classes)
    _write_json(options.output / MODEL_BASELINE, model)
    log(
        f"evaluate: model baseline: the challenger's answers on {model['images']} validation image(s) at score threshold "
        f"{serving.score_threshold} and at most {serving.max_detections} detection(s) -> {MODEL_BASELINE}"
    )
    section = {
        "model": {
            "file": MODEL_BASELINE,
            "images": model["images"],
            "score_threshold": serving.score_threshold,
            "max_detections": serving.max_detections,
        }
    }
    stale = options.output / DATA_BASELINE
    if data.document is None:
        stale.unlink(missing_ok=True)  # an earlier run's in the same folder would pass for this model's
        log(f"evaluate: no data baseline: {data.reason}")
        section["data"] = {"file": None, "reason": data.reason}
        return section
    _write_json(stale, data.document)
    log(f"evaluate: data baseline: {data.document['images']} photo(s) from {len(data.files)} statistics document(s) -> {DATA_BASELINE}")
    section["data"] = {"file": DATA_BASELINE, "images": data.document["images"], "documents": list(data.files)}
    return section


def _training_data(options: Options, log: Callable[[str], None]) -> dict:
    """evaluation.json's `training_data` (image_lists.py), with the snapshot PrepareData's reports name."""
    reports = read_data_reports(options.prepared).reports
    summary = data_summary(reports) if reports else {}
    version = options.champion.version if options.champion else 0
    return training_data(
        options.output,
        options.images,
        options.champion_data,
        version,
        snapshot=summary.get("snapshot"),
        labels_uri=summary.get("labels_uri"),
        log=log,
    )


def _warnings(options: Options, files: Sequence[Path], scored: Scored) -> list[str]:
    unknown_truth, unknown_detections = unknown_labels(scored.run.truths, scored.run.detections, scored.classes)
    return evaluation_warnings(
        validation=str(options.validation),
        files=len(files),
        metrics=scored.metrics,
        images=len(scored.run.truths),
        detections=scored.detections,
        unknown_truth=unknown_truth,
        unknown_detections=unknown_detections,
    )


def _model_section(path: Path, scored: Scored) -> dict:
    """What was scored. `sha256`: the model archive's digest ("" for a model folder), which Register records
    and the deployment function checks, so that only the archive scored here is ever deployed."""
    return {
        "source": str(path),
        "sha256": file_sha256(scored.source.archive) if scored.source.archive else "",
        "packaging": scored.source.packaging,
        "label_map": {str(k): v for k, v in scored.classes.items()},
        "metadata": scored.metadata,
    }


def same_model(challenger_archive: Path | None, champion: Path) -> bool:
    """Whether the champion is the challenger's model archive, byte for byte (a run whose training came from the
    cache is judged against the package made from that very training): the detections would be the same."""
    second = archive_of(champion) if champion.exists() else None
    first = challenger_archive
    if first is None or second is None or first.stat().st_size != second.stat().st_size:
        return False
    if first.resolve() == second.resolve():
        return True
    return file_sha256(first) == file_sha256(second)


def file_sha256(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def champion_label(champion: ChampionOptions) -> str:
    return f"champion (version {champion.version})"


def champion_section(report: dict, options: Options, files: Sequence[Path], champion: Scored | None) -> dict:
    """evaluation.json's `champion`: the served package's figures on the same records, and what the quality
    gate reads of them (`version`, 0 when there is none; `map_lead`, the champion's mAP less the challenger's;
    `map_text`, the champion's mAP as text for the Fail message and the package's metadata)."""
    challenger_map = report["metrics"]["mAP"]["value"]
    if champion is None or options.champion is None:
        return {"version": 0, "package_arn": NO_CHAMPION, "map_lead": 0.0, "map_text": NO_CHAMPION, "text": NOTHING_SERVED}
    section = evaluation_report(
        champion.metrics,
        images=len(champion.run.truths),
        detections=champion.detections,
        warnings=_warnings(options, files, champion) + _class_warnings(report, champion),
        model=_model_section(options.champion.model, champion),
        validation={"path": str(options.validation), "same_as_challenger": True},
        settings={},
        pictures={"pr_curves": PR_CURVES},
    )
    champion_map = section["metrics"]["mAP"]["value"]
    for unused in ("validation", "settings", "pictures", "coco_summary"):
        section.pop(unused)
    return {
        "version": options.champion.version,
        "package_arn": options.champion.package_arn,
        "map_lead": round(champion_map - challenger_map, DIGITS),
        "map_text": f"{champion_map:.6f}",
        "text": f"{champion_map:.6f} (version {options.champion.version}, on the same validation records)",
        **section,
    }


def add_intervals(report: dict, settings: Settings, scored: Scored, champion: Scored | None, log: Callable[[str], None]) -> None:
    """Add the 95% bootstrap intervals to evaluation.json (intervals.py has their shape): the challenger's figures
    (`intervals`, and `map_interval_text` for the Fail message), the champion's on the same resamples (its
    `intervals`) and the champion's lead (`lead_interval`, paired: both models on the same drawn images). The gate
    reads `champion.lead_low`, the lead interval's lower bound (the lead itself when the interval is undefined,
    so that ChampionRule significant is then margin), and the Fail message `champion.lead_text`."""
    started = time.perf_counter()
    counts = draw(len(scored.run.truths), settings)
    figures = scored.metrics.table.figures(counts)
    report["intervals"] = _intervals(figures, settings)
    report["map_interval_text"] = format_interval(report["metrics"]["mAP"]["value"], report["intervals"]["metrics"]["mAP"])
    section = report["champion"]
    if champion is None or not section["version"]:
        section.update(lead_interval=None, lead_low=0.0, lead_text=NOTHING_SERVED)
    else:
        served = figures if champion is scored else champion.metrics.table.figures(counts)
        low, high = (_rounded(bound) for bound in percentile_interval(served["mAP"] - figures["mAP"]))
        section.update(
            intervals=_intervals(served, settings),
            lead_interval=[low, high],
            lead_low=section["map_lead"] if low is None else low,
            lead_text=format_interval(section["map_lead"], (low, high)),
        )
    models = "both models" if champion is not None else "the model"
    took = time.perf_counter() - started
    log(f"evaluate: bootstrap: {settings.resamples} resamples of {len(scored.run.truths)} image(s) for {models} in {took:.1f} s")


def _intervals(figures: dict, settings: Settings) -> dict:
    bounds = {name: percentile_interval(values) for name, values in figures.items()}
    return intervals_section(bounds, resamples=settings.resamples, seed=settings.seed, digits=DIGITS)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, DIGITS)


def _class_warnings(report: dict, champion: Scored) -> list[str]:
    """The two models' mAPs are comparable only over the same classes."""
    challenger = sorted(report["model"]["label_map"].values())
    served = sorted(champion.classes.values())
    if challenger == served:
        return []
    return [f"the champion detects {', '.join(served)} and the challenger {', '.join(challenger)}: their mAPs average different classes"]


def _settings(options: Options) -> dict:
    return {
        "iou_type": "bbox",
        "max_detections": MAX_DETECTIONS,
        "batch_size": options.batch_size,
        "pictures": options.pictures,
        "picture_score_threshold": options.picture_score_threshold,
    }


def run_detector(detect: DetectFunction, records: Iterable[Record], batch_size: int, pictures: int) -> Run:
    """Run `detect` on the records in batches of `batch_size` encoded images, keeping only the boxes (and
    the first `pictures` images, for the predictions picture), so that memory does not grow with images."""
    run = Run([], [], [])
    for batch in batched(records, batch_size):
        found = detect([record.encoded for record in batch], [record.truth.key for record in batch])
        for record, detections in zip(batch, found, strict=True):
            run.truths.append(record.truth)
            run.detections.append(detections)
            if len(run.examples) < pictures:
                run.examples.append(Example(record.truth, record.encoded, detections))
    return run


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of `size` items (the last one shorter)."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _curves_note(metrics: Metrics, warnings: Sequence[str]) -> str:
    if not metrics.curves:
        return warnings[0] if warnings else "no class has ground-truth boxes"
    missing = [name for name, result in metrics.per_class.items() if result.ap_50 is None]
    return f"no ground truth for {', '.join(missing)}" if missing else ""


def _predictions_note(options: Options, run: Run, detections: int, warnings: Sequence[str]) -> str:
    if options.pictures == 0:
        return "no pictures requested (--pictures 0)"
    if not run.examples:
        return warnings[0] if warnings else "no validation images"
    return "the model detected nothing" if detections == 0 else ""


def _write_json(path: Path, data: dict) -> None:
    """Write atomically: the pipeline reads this file as a PropertyFile, so it is whole or absent."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    partial.replace(path)


def _progress(items: Iterable[T], description: str, enabled: bool) -> Iterable[T]:
    """A progress bar (images done, rate) on a terminal; nothing in a job's log."""
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=description, unit="img", file=sys.stderr, leave=False)


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="evaluate.py", description="COCO box metrics and pictures of an exported detector on the validation TFRecords."
    )
    parser.add_argument(
        "--model",
        type=Path,
        default=PROCESSING / "input" / "model",
        help="model.tar.gz, a folder holding it, or a model folder with 1/ and model.json (default: %(default)s)",
    )
    parser.add_argument(
        "--validation", type=Path, default=PROCESSING / "input" / "validation", help="folder of validation *.tfrecord files (default: %(default)s)"
    )
    parser.add_argument("--output", type=Path, default=PROCESSING / "evaluation", help="output folder (default: %(default)s)")
    parser.add_argument("--batch-size", type=positive, default=8, help="images per model call (default: %(default)s)")
    parser.add_argument(
        "--pictures", type=non_negative, default=6, help=f"validation images in predictions.png, and photos in {PAGE} (default: %(default)s)"
    )
    parser.add_argument(
        "--picture-score-threshold", type=fraction(), default=0.3, help="lowest score drawn in predictions.png, in [0, 1] (default: %(default)s)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    baselines = parser.add_argument_group("drift baselines", f"{DATA_BASELINE} and {MODEL_BASELINE}, registered with the package")
    baselines.add_argument(
        "--statistics", type=Path, default=None, help=f"PrepareData's statistics/ folder, merged into {DATA_BASELINE} (default: none)"
    )
    baselines.add_argument(
        "--score-threshold",
        type=fraction(),
        default=Serving().score_threshold,
        help=f"the endpoint's score threshold, in [0, 1], for {MODEL_BASELINE} (default: %(default)s)",
    )
    baselines.add_argument(
        "--max-detections", type=positive, default=Serving().max_detections, help="the endpoint's maximum detections per photo (default: %(default)s)"
    )
    parser.add_argument("--prepared", type=Path, default=None, help=f"PrepareData's report.json folder, shown in {PAGE} (default: none)")
    parser.add_argument(
        "--images", type=Path, default=None, help=f"PrepareData's images.jsonl folder, kept as {IMAGE_LIST} and compared (default: none)"
    )
    intervals = parser.add_argument_group("intervals", f"{CONFIDENCE:.0%} percentile bootstrap intervals over the validation images")
    intervals.add_argument(
        "--bootstrap-resamples", type=_resamples, default=MIN_RESAMPLES, help=f"resamples, at least {MIN_RESAMPLES} (default: %(default)s)"
    )
    intervals.add_argument("--bootstrap-seed", type=non_negative, default=Settings().seed, help="the seed that draws them (default: %(default)s)")
    champion = parser.add_argument_group("champion", "the package the endpoint serves, scored on the same records (the pipeline's FindChampion step)")
    champion.add_argument("--champion", type=Path, help="its model.tar.gz, a folder holding it, or a model folder")
    champion.add_argument("--champion-version", type=non_negative, default=0, help="its package version; 0: there is no champion (default)")
    champion.add_argument("--champion-package", default=NO_CHAMPION, help="its model package ARN, for the report")
    champion.add_argument("--champion-data", type=Path, default=None, help=f"the folder holding its evaluation's {IMAGE_LIST}")
    champion.add_argument(
        "--champion-data-missing", default=NONE, help=f"why its data could not be named ({NONE}: --champion-data holds it) (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    if args.champion_version and args.champion is None:
        parser.error("--champion-version needs --champion, the champion's model")
    champion = ChampionOptions(args.champion, args.champion_version, args.champion_package) if args.champion_version else None
    progress = sys.stderr.isatty() and not args.no_progress
    return Options(
        args.model,
        args.validation,
        args.output,
        args.batch_size,
        args.pictures,
        args.picture_score_threshold,
        progress,
        champion,
        statistics=args.statistics,
        prepared=args.prepared,
        images=args.images,
        champion_data=ChampionData(args.champion_data, args.champion_data_missing),
        score_threshold=args.score_threshold,
        max_detections=args.max_detections,
        bootstrap=Settings(args.bootstrap_resamples, args.bootstrap_seed),
    )


def _resamples(text: str) -> int:
    value = int(text)
    if value < MIN_RESAMPLES:
        raise argparse.ArgumentTypeError(f"{text} is fewer than {MIN_RESAMPLES} resamples")
    return value


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    return exit_status("evaluate", lambda: _print_summary(options, evaluate(options)), EvaluationError, OSError)


def _print_summary(options: Options, report: dict) -> None:
    metrics = report["metrics"]
    per_class = ", ".join(f"{name} {_figure(figures['AP'])} ({figures['ground_truth_boxes']} boxes)" for name, figures in report["per_class"].items())
    print(
        f"evaluate: {report['images']} images, {report['ground_truth_boxes']} ground-truth boxes, {report['detections']} detections: "
        f"mAP {_figure(metrics['mAP']['value'])}, mAP@0.5 {_figure(metrics['mAP_50']['value'])}, "
        f"recall {_figure(metrics['recall']['value'])}; AP per class: {per_class}"
    )
    champion = report["champion"]
    if champion["version"]:
        lead = champion["map_lead"]
        print(
            f"evaluate: champion (version {champion['version']}) on the same records: mAP {_figure(champion['metrics']['mAP']['value'])}, "
            f"{'ahead of' if lead > 0 else 'behind' if lead < 0 else 'level with'} the challenger by {abs(lead):.3f}"
        )
    else:
        print("evaluate: no champion: nothing is served")
    intervals, bounds = report["intervals"], report["intervals"]["metrics"]
    figures = [({"mAP_50": "mAP@0.5"}.get(name, name.replace("AP/", "AP ", 1)), metrics[name]["value"], bounds[name]) for name in bounds]
    lead = f"; the champion's lead {champion['lead_text']}" if champion["version"] else ""
    print(
        f"evaluate: {intervals['confidence']:.0%} intervals ({intervals['resamples']} bootstrap resamples of the validation images, "
        f"seed {intervals['seed']}): {', '.join(f'{label} {format_interval(value, bound)}' for label, value, bound in figures)}{lead}"
    )
    for warning in [*report["warnings"], *(champion.get("warnings") or [])]:
        print(f"evaluate: warning: {warning}", file=sys.stderr)
    baselines = report["baselines"]
    kept = (baselines["data"]["file"], baselines["model"]["file"], report["training_data"]["image_list"])
    written = ", ".join(name for name in kept if name)
    print(f"evaluate: outputs in {options.output} ({REPORT}, {PR_CURVES}, {PREDICTIONS}, {PAGE}, {written})")


def _figure(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    sys.exit(main())
