"""The model card registered with every package (CreateModelPackage's `ModelCard`), which Studio shows on the
model version's page where approvers look: what the model is for, the data and settings it was trained with,
and its evaluation with intervals beside the champion it was judged against.

The content follows the model package model card schema, a narrower one than a model card's: no
`model_package_details`, and `model_overview` holds only `model_creator` and `model_artifact` (the Amazon
SageMaker AI Developer Guide, "Update the Details of a Model Version", section "Model package model card schema
(Studio)"; botocore's service model, shape ModelPackageModelCard). Its card holds no `model_overview`: this
program knows neither the pipeline that made the model nor where its archive is, and the package records both.

Evaluate builds the card from evaluation.json (this model's metrics, intervals and champion, and the
training settings model.json holds) and PrepareData's reports (the data), and writes it into evaluation.json
as text under MODEL_CARD, which Register sends as ModelCardContent with JsonGet. Why there: ModelCardContent is
a string, and the pipeline definition can fill a request's string from a property file but cannot build JSON
around run-time values safely (a Join would put an S3 key's quotes into the card unescaped).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from .intervals import format_interval

MODEL_CARD = "model_card"  # evaluation.json's key holding the card's content, as text
# ModelCardContent's length limit (botocore's service model: ModelCardContent, max 100000).
MAX_CONTENT = 100_000
# The card's status that goes with each ModelApprovalStatus. The card's statuses are Draft, PendingReview,
# Approved and Archived (the API Reference, ModelPackageModelCard): a package waiting for a person's decision
# has a card pending review; a rejected one an archived card ("no more updates can be made to the model card
# content").
CARD_STATUS = {"PendingManualApproval": "PendingReview", "Approved": "Approved", "Rejected": "Archived"}

PURPOSE = "Find damage on photos of cars: a box, a class ({classes}) and a score for each damaged area it sees."
INTENDED_USES = (
    "Claims triage: the endpoint answers a photo of a car with the damage it finds, and a person reviews the answer "
    "before acting on it. Choosing photos to label next (cardamage review). Not for decisions without a person."
)
FACTORS = (
    "Photos unlike the training data (other cameras, light, weather, paint or kinds of damage) and damage too small "
    "at the model's input size lower its accuracy. The endpoint's score threshold and maximum detections "
    "(SCORE_THRESHOLD, MAX_DETECTIONS) decide which boxes an answer holds."
)
EVALUATION = "validation records"  # the evaluation's name (at most 63 characters)
NOT_MEASURED = "not measured"  # a figure COCO could not give (a class with no validation box)
# Per-class figures for each model; left out (and said so) only if the card would pass MAX_CONTENT with them.
PER_CLASS = ("AP", "AP_50")
HEADLINE = ("mAP", "mAP_50", "mAP_75", "recall")


def card_status(approval_status: str) -> str:
    """The model card status that goes with a package's approval status."""
    try:
        return CARD_STATUS[approval_status]
    except KeyError:
        raise ValueError(f"approval status {approval_status!r} has no model card status: expected one of {', '.join(CARD_STATUS)}") from None


def training_datasets(prepared: Path | None) -> list[str]:
    """What the model was trained on, as PrepareData's reports record it (Evaluate's --prepared): the labels'
    S3 URI (a dataset snapshot's inputs/, the execution's InputManifestUri) and the snapshot's snapshot.json."""
    from .package_report import data_summary, read_data_reports

    found = read_data_reports(prepared).reports
    summary = data_summary(found) if found else {}
    return [uri for uri in (summary.get("labels_uri"), summary.get("snapshot")) if uri]


def card_text(report: Mapping, datasets: Sequence[str] = ()) -> str:
    """The card for the model evaluation.json describes (`report`), trained on `datasets`, as ModelCardContent:
    compact JSON within MAX_CONTENT characters. With very many classes the per-class figures are left out (the
    card says so); without them every field is cut to its schema's length, far below the limit."""
    text = _compact(model_card(report, datasets))
    return text if len(text) <= MAX_CONTENT else _compact(model_card(report, datasets, per_class=False))


def _compact(card: dict) -> str:
    return json.dumps(card, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def model_card(report: Mapping, datasets: Sequence[str] = (), *, per_class: bool = True) -> dict:
    """The card's content: intended uses, training details and the evaluation, from evaluation.json."""
    model = report.get("model") or {}
    metadata = model.get("metadata") or {}
    classes = list((model.get("label_map") or {}).values())
    card = {
        "intended_uses": {
            "purpose_of_model": PURPOSE.format(classes=", ".join(classes) or "the classes it was trained on"),
            "intended_uses": INTENDED_USES,
            "factors_affecting_model_efficiency": FACTORS,
        },
        "training_details": _training(metadata, datasets, (report.get("training_data") or {}).get("text")),
        "evaluation_details": [_evaluation(report, per_class)],
    }
    warnings = [*(report.get("warnings") or []), *((report.get("champion") or {}).get("warnings") or [])]
    if warnings:
        card["additional_information"] = {"caveats_and_recommendations": _cut("Read before trusting the figures: " + "; ".join(warnings), 2048)}
    return card


def _training(metadata: Mapping, datasets: Sequence[str], since: str | None = None) -> dict:
    """The settings model.json records (training wrote them beside the SavedModel), the data it was trained on and
    `since`, how many of its photos are new since the champion's (evaluation.json's `training_data.text`)."""
    details: dict = {}
    hyperparameters = metadata.get("hyperparameters") or {}
    if hyperparameters:
        details["hyper_parameters"] = [{"name": _cut(name, 255), "value": _setting(value)} for name, value in hyperparameters.items()]
    if datasets:
        details["training_datasets"] = [_cut(uri, 1024) for uri in datasets]
    said = []
    if metadata.get("model"):
        said.append(f"EfficientDet {metadata['model']}" + (f" at {metadata['input_size']} px" if metadata.get("input_size") else ""))
    if metadata.get("trained_steps") is not None:
        said.append(f"{metadata['trained_steps']} training steps")
    if metadata.get("tensorflow"):
        said.append(f"TensorFlow {metadata['tensorflow']}")
    said += [since] if since else []
    training: dict = {"training_job_details": details} if details else {}
    if said:
        training["training_observations"] = _cut(", ".join(said) + ".", 1024)
    return training


def _setting(value: object) -> str:
    """A hyperparameter as the card holds it: text of 1 to 255 characters ("default": the variant's own)."""
    text = "default" if value is None else value if isinstance(value, str) else json.dumps(value)
    return _cut(text or "default", 255)


def _evaluation(report: Mapping, per_class: bool) -> dict:
    champion = report.get("champion") or {}
    intervals = _intervals(report)
    groups = [{"name": "this model", "metric_data": _metrics(report, intervals, per_class)}]
    metadata = {"images": str(report.get("images", "")), "ground_truth_boxes": str(report.get("ground_truth_boxes", ""))}
    metadata.update({f"interval_{key}": _cut(str(value), 1024) for key, value in (report.get("intervals") or {}).items() if key != "metrics"})
    if champion.get("version"):
        label = f"champion (version {champion['version']})"
        groups.append({"name": label, "metric_data": _metrics(champion, _intervals(champion), per_class)})
        groups.append({"name": "champion's lead", "metric_data": [_lead(champion)]})
        metadata.update(champion_version=str(champion["version"]), champion_package=_cut(str(champion.get("package_arn", "")), 1024))
    if not per_class:
        metadata["per_class"] = "left out: the card would pass ModelCardContent's length limit; evaluation.json holds them"
    return {"name": EVALUATION, "evaluation_observation": _cut(observation(report), 2096), "metadata": metadata, "metric_groups": groups}


def observation(report: Mapping) -> str:
    """One paragraph for a person: this model's mAP with its interval, and how the champion compares."""
    champion = report.get("champion") or {}
    text = (
        f"mAP {_figure(_value(report, 'mAP'), _intervals(report).get('mAP'))} on {report.get('images', 0)} validation photo(s) "
        f"with {report.get('ground_truth_boxes', 0)} ground-truth box(es)."
    )
    if not champion.get("version"):
        text += " No champion: nothing was served when it was evaluated."
    else:
        interval = _pair(champion.get("lead_interval"))
        text += (
            f" The champion, version {champion['version']}, scored mAP {_figure(_value(champion, 'mAP'), _intervals(champion).get('mAP'))} "
            f"on the same records; its lead (its mAP less this model's) is {_figure(champion.get('map_lead'), interval)}"
        )
        if interval is None:
            text += "."
        elif interval[0] <= 0 <= interval[1]:
            text += ": the interval holds 0, so the two may not differ."
        else:
            text += ": the champion is ahead." if interval[0] > 0 else ": this model is ahead."
    method = report.get("intervals") or {}
    if method.get("confidence") and method.get("method"):
        text += f" Intervals: {float(method['confidence']):.0%}, {method['method']}, {method.get('resamples', '?')} resamples."
    return text


def _metrics(section: Mapping, intervals: Mapping[str, tuple[float, float]], per_class: bool) -> list[dict]:
    names = [name for name in HEADLINE if name in (section.get("metrics") or {})]
    if per_class:
        names += [f"{kind}/{name}" for name in (section.get("per_class") or {}) for kind in PER_CLASS]
    return [_metric(name, _value(section, name), intervals.get(name)) for name in names]


def _metric(name: str, value: float | None, interval: tuple[float, float] | None) -> dict:
    metric = {"name": _cut(name, 255), "type": "number", "value": value}
    if value is None:
        metric.update(type="string", value=NOT_MEASURED)
    elif interval is not None:
        metric["notes"] = f"with its interval: {_figure(value, interval)}"
    return metric


def _lead(champion: Mapping) -> dict:
    metric = _metric("mAP lead", champion.get("map_lead"), _pair(champion.get("lead_interval")))
    metric["notes"] = "the champion's mAP less this model's" + (f"; {metric['notes']}" if "notes" in metric else "")
    return metric


def _value(section: Mapping, name: str) -> float | None:
    value = ((section.get("metrics") or {}).get(name) or {}).get("value")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _intervals(section: Mapping) -> dict[str, tuple[float, float]]:
    """A section's intervals by metric name (evaluation.json's `intervals.metrics`, containers/evaluation/intervals.py),
    those with both bounds (an undefined figure's are null)."""
    given = ((section.get("intervals") or {}).get("metrics")) or {}
    return {name: pair for name, value in given.items() if (pair := _pair(value)) is not None}


def _pair(value: object) -> tuple[float, float] | None:
    if isinstance(value, list | tuple) and len(value) == 2 and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        return float(value[0]), float(value[1])
    return None


def _figure(value: float | None, interval: tuple[float, float] | None) -> str:
    """`0.410 (0.330-0.490)`, as the other pages show figures (intervals.py), to three places."""
    return format_interval(value, interval, digits=3)


def _cut(text: str, limit: int) -> str:
    """`text` within `limit` characters, an ellipsis marking a cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
