"""The model card Evaluate writes for Register (containers/evaluation/model_card.py), checked against AWS's schema.

model_package_model_card.schema.json beside this file is the model package model card schema as the Amazon
SageMaker AI Developer Guide prints it ("Update the Details of a Model Version", section "Model package model
card schema (Studio)", https://docs.aws.amazon.com/sagemaker/latest/dg/model-registry-details.html#model-card-schema),
copied verbatim. It uses maxContains and minContains, so it is read as JSON Schema 2020-12.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from containers.evaluation.evaluate import ChampionOptions, Options, evaluate
from containers.evaluation.model_card import MAX_CONTENT, MODEL_CARD, card_status, card_text, model_card, training_datasets
from tests.containers.evaluation.helpers import DENT, ELSEWHERE, box, detection, write_validation
from tests.fake_model import write_model_dir

SCHEMA = json.loads((Path(__file__).with_name("model_package_model_card.schema.json")).read_text(encoding="utf-8"))
ARN = "arn:aws:sagemaker:eu-west-1:123456789012:model-package/car-damage-models/1"
SNAPSHOT = "s3://cardamage-data/snapshots/20261130T101500Z-0123456789ab/"
DATASETS = [f"{SNAPSHOT}inputs/", f"{SNAPSHOT}snapshot.json"]
# An evaluation.json as Evaluate writes it (the parts the card reads), with intervals and a champion.
EVALUATION = {
    "metrics": {
        "mAP": {"value": 0.4083},
        "mAP_50": {"value": 0.71},
        "mAP_75": {"value": 0.39},
        "mAP_small": {"value": None},
        "recall": {"value": 0.52},
        "AP/dent": {"value": 0.5},
        "AP_50/dent": {"value": 0.8},
        "AP/scratch": {"value": None},
        "AP_50/scratch": {"value": None},
    },
    "per_class": {"dent": {"AP": 0.5, "AP_50": 0.8, "ground_truth_boxes": 9}, "scratch": {"AP": None, "AP_50": None, "ground_truth_boxes": 0}},
    "images": 7,
    "ground_truth_boxes": 9,
    "warnings": ["validation holds no box of class 'scratch': it cannot be measured, its AP is null and left out of mAP"],
    "model": {
        "label_map": {"1": "dent", "2": "scratch"},
        "metadata": {
            "model": "efficientdet-d0",
            "input_size": 512,
            "trained_steps": 2000,
            "tensorflow": "2.20.0",
            "hyperparameters": {"model": "efficientdet-d0", "image_size": None, "batch_size": 8, "learning_rate": 0.005, "horizontal_flip": True},
        },
    },
    "intervals": {
        "method": "percentile bootstrap over validation images",
        "resamples": 1000,
        "confidence": 0.95,
        "seed": 23,
        "metrics": {"mAP": [0.33, 0.49], "mAP_50": [0.6, 0.8], "AP/dent": [0.41, 0.6], "AP/scratch": [None, None]},
    },
    "champion": {
        "version": 1,
        "package_arn": ARN,
        "map_lead": 0.0524,
        "lead_interval": [-0.04, 0.15],
        "metrics": {"mAP": {"value": 0.4607}, "recall": {"value": 0.55}, "AP/dent": {"value": 0.52}, "AP_50/dent": {"value": 0.83}},
        "per_class": {"dent": {"AP": 0.52, "AP_50": 0.83, "ground_truth_boxes": 9}},
        "intervals": {"metrics": {"mAP": [0.38, 0.54]}},
        "warnings": [],
    },
}
INTENDED_USES = {
    "purpose_of_model": "Find damage on photos of cars: a box, a class (dent, scratch) and a score for each damaged area it sees.",
    "intended_uses": (
        "Claims triage: the endpoint answers a photo of a car with the damage it finds, and a person reviews the answer before acting on it. "
        "Choosing photos to label next (cardamage review). Not for decisions without a person."
    ),
    "factors_affecting_model_efficiency": (
        "Photos unlike the training data (other cameras, light, weather, paint or kinds of damage) and damage too small at the model's input "
        "size lower its accuracy. The endpoint's score threshold and maximum detections (SCORE_THRESHOLD, MAX_DETECTIONS) decide which boxes "
        "an answer holds."
    ),
}


def valid(card: dict) -> dict:
    errors = [f"{list(error.absolute_path)}: {error.message}" for error in Draft202012Validator(SCHEMA).iter_errors(card)]
    assert errors == []
    return card


def test_the_card_of_a_known_evaluation_is_the_expected_content_and_follows_aws_schema():
    card = json.loads(card_text(EVALUATION, DATASETS))
    assert card == {
        "intended_uses": INTENDED_USES,
        "training_details": {
            "training_job_details": {
                "hyper_parameters": [
                    {"name": "model", "value": "efficientdet-d0"},
                    {"name": "image_size", "value": "default"},
                    {"name": "batch_size", "value": "8"},
                    {"name": "learning_rate", "value": "0.005"},
                    {"name": "horizontal_flip", "value": "true"},
                ],
                "training_datasets": DATASETS,
            },
            "training_observations": "EfficientDet efficientdet-d0 at 512 px, 2000 training steps, TensorFlow 2.20.0.",
        },
        "evaluation_details": [
            {
                "name": "validation records",
                "evaluation_observation": (
                    "mAP 0.408 (0.330-0.490) on 7 validation photo(s) with 9 ground-truth box(es). The champion, version 1, scored mAP "
                    "0.461 (0.380-0.540) on the same records; its lead (its mAP less this model's) is 0.052 (-0.040 to 0.150): the interval "
                    "holds 0, so the two may not differ. Intervals: 95%, percentile bootstrap over validation images, 1000 resamples."
                ),
                "metadata": {
                    "images": "7",
                    "ground_truth_boxes": "9",
                    "interval_method": "percentile bootstrap over validation images",
                    "interval_resamples": "1000",
                    "interval_confidence": "0.95",
                    "interval_seed": "23",
                    "champion_version": "1",
                    "champion_package": ARN,
                },
                "metric_groups": [
                    {
                        "name": "this model",
                        "metric_data": [
                            {"name": "mAP", "type": "number", "value": 0.4083, "notes": "with its interval: 0.408 (0.330-0.490)"},
                            {"name": "mAP_50", "type": "number", "value": 0.71, "notes": "with its interval: 0.710 (0.600-0.800)"},
                            {"name": "mAP_75", "type": "number", "value": 0.39},
                            {"name": "recall", "type": "number", "value": 0.52},
                            {"name": "AP/dent", "type": "number", "value": 0.5, "notes": "with its interval: 0.500 (0.410-0.600)"},
                            {"name": "AP_50/dent", "type": "number", "value": 0.8},
                            {"name": "AP/scratch", "type": "string", "value": "not measured"},
                            {"name": "AP_50/scratch", "type": "string", "value": "not measured"},
                        ],
                    },
                    {
                        "name": "champion (version 1)",
                        "metric_data": [
                            {"name": "mAP", "type": "number", "value": 0.4607, "notes": "with its interval: 0.461 (0.380-0.540)"},
                            {"name": "recall", "type": "number", "value": 0.55},
                            {"name": "AP/dent", "type": "number", "value": 0.52},
                            {"name": "AP_50/dent", "type": "number", "value": 0.83},
                        ],
                    },
                    {
                        "name": "champion's lead",
                        "metric_data": [
                            {
                                "name": "mAP lead",
                                "type": "number",
                                "value": 0.0524,
                                "notes": "the champion's mAP less this model's; with its interval: 0.052 (-0.040 to 0.150)",
                            }
                        ],
                    },
                ],
            }
        ],
        "additional_information": {
            "caveats_and_recommendations": (
                "Read before trusting the figures: validation holds no box of class 'scratch': it cannot be measured, its AP is null and "
                "left out of mAP"
            )
        },
    }
    valid(card)
    assert "model_package_details" not in card and "model_overview" not in card  # what a package's card may not hold, or need not


def test_aws_schema_refuses_what_a_package_card_may_not_hold():
    """The schema check can fail: a full model card's parts are not a package card's (the API Reference,
    ModelPackageModelCard: no model_package_details; model_overview only model_creator and model_artifact)."""
    card = model_card(EVALUATION, DATASETS)
    validator = Draft202012Validator(SCHEMA)
    assert validator.is_valid(card)
    assert not validator.is_valid({**card, "model_package_details": {"model_package_arn": ARN}})
    assert not validator.is_valid({**card, "model_overview": {"model_description": "EfficientDet"}})
    broken = json.loads(json.dumps(card))
    broken["evaluation_details"][0]["metric_groups"][0]["metric_data"][0]["value"] = None  # a figure must be a number, text or yes/no
    assert not validator.is_valid(broken)


@pytest.mark.parametrize("lead_interval", [[0.01, 0.15], [-0.2, -0.01], None])
def test_the_observation_says_who_is_ahead_only_when_the_interval_excludes_zero(lead_interval):
    evaluation = {**EVALUATION, "champion": {**EVALUATION["champion"], "lead_interval": lead_interval}}
    text = model_card(evaluation)["evaluation_details"][0]["evaluation_observation"]
    ending = {0.01: "0.052 (0.010-0.150): the champion is ahead.", -0.2: "0.052 (-0.200 to -0.010): this model is ahead."}
    assert (ending[lead_interval[0]] if lead_interval else "is 0.052.") in text


def test_a_card_without_champion_intervals_or_training_details_is_still_valid():
    """An evaluation written before intervals, with nothing served and a model.json naming only its classes."""
    evaluation = {
        "metrics": {"mAP": {"value": 0.0}, "AP/dent": {"value": 0.0}},
        "per_class": {"dent": {"AP": 0.0}},
        "images": 0,
        "ground_truth_boxes": 0,
        "warnings": [],
        "model": {"label_map": {"1": "dent"}, "metadata": {"classes": {"1": "dent"}}},
        "champion": {"version": 0, "package_arn": "none", "map_lead": 0.0, "map_text": "none", "text": "none (nothing is served)"},
    }
    card = valid(model_card(evaluation))
    assert card["training_details"] == {} and "additional_information" not in card
    (details,) = card["evaluation_details"]
    assert (
        details["evaluation_observation"]
        == "mAP 0.000 on 0 validation photo(s) with 0 ground-truth box(es). No champion: nothing was served when it was evaluated."
    )
    assert [group["name"] for group in details["metric_groups"]] == ["this model"]
    assert all("notes" not in metric for metric in details["metric_groups"][0]["metric_data"])


def test_with_very_many_classes_the_card_leaves_the_per_class_figures_out_to_fit():
    names = [f"damage-kind-{index:04d}-{'x' * 40}" for index in range(600)]
    metrics = {"mAP": {"value": 0.3}, **{f"{kind}/{name}": {"value": 0.3} for name in names for kind in ("AP", "AP_50")}}
    evaluation = {**EVALUATION, "metrics": metrics, "per_class": {name: {} for name in names}, "champion": {"version": 0}}
    assert len(json.dumps(model_card(evaluation))) > MAX_CONTENT  # with them it would not fit
    text = card_text(evaluation)
    card = valid(json.loads(text))
    assert len(text) <= MAX_CONTENT
    (details,) = card["evaluation_details"]
    assert [metric["name"] for metric in details["metric_groups"][0]["metric_data"]] == ["mAP"]
    assert details["metadata"]["per_class"].startswith("left out: the card would pass ModelCardContent's length limit")


def test_the_card_status_follows_the_approval_status():
    assert [card_status(status) for status in ("PendingManualApproval", "Approved", "Rejected")] == ["PendingReview", "Approved", "Archived"]
    with pytest.raises(ValueError, match="approval status 'Maybe' has no model card status"):
        card_status("Maybe")


def test_the_training_observations_say_how_many_photos_are_new_since_the_champions_data():
    since = "12 image(s) new since the champion's data (version 1), 1 no longer present"
    card = valid(model_card(EVALUATION | {"training_data": {"images": 38, "text": since}}, DATASETS))
    assert (
        card["training_details"]["training_observations"]
        == f"EfficientDet efficientdet-d0 at 512 px, 2000 training steps, TensorFlow 2.20.0, {since}."
    )


def test_the_training_data_is_what_prepare_data_read(tmp_path):
    """PrepareData's report (Evaluate's --prepared) names the labels it read and their dataset snapshot."""
    assert training_datasets(None) == [] and training_datasets(tmp_path / "absent") == []
    report = {"splits": {}, "inputs": [], "quarantined": [], "dropped_boxes": {}, "labels_uri": DATASETS[0], "snapshot": DATASETS[1]}
    (tmp_path / "report.json").write_text(json.dumps(report))
    assert training_datasets(tmp_path) == DATASETS
    (tmp_path / "report.json").write_text(json.dumps({**report, "labels_uri": "s3://cardamage-data/labels/", "snapshot": None}))
    assert training_datasets(tmp_path) == ["s3://cardamage-data/labels/"]  # labels read as they were: no snapshot


def test_evaluate_writes_the_card_into_evaluation_json_for_register(tmp_path):
    """Register reads evaluation.json's model_card with JsonGet (steps/register.py): the card of that very report."""
    validation = write_validation(tmp_path / "validation", [[box(1, "dent", DENT)]] * 3)
    perfect = write_model_dir(tmp_path / "perfect", [detection(1, 0.9, DENT)])
    elsewhere = write_model_dir(tmp_path / "elsewhere", [detection(1, 0.9, ELSEWHERE)])
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    prepare_report = {"splits": {}, "inputs": [], "quarantined": [], "dropped_boxes": {}, "labels_uri": DATASETS[0], "snapshot": DATASETS[1]}
    (prepared / "report.json").write_text(json.dumps(prepare_report))
    options = Options(perfect, validation, tmp_path / "out", pictures=1, champion=ChampionOptions(elsewhere, 4, ARN), prepared=prepared)
    report = evaluate(options, log=lambda line: None)
    written = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    content = written[MODEL_CARD]
    assert isinstance(content, str) and content == report[MODEL_CARD]
    assert content == card_text({key: value for key, value in written.items() if key != MODEL_CARD}, DATASETS)
    card = valid(json.loads(content))
    assert card["training_details"]["training_job_details"]["training_datasets"] == DATASETS
    groups = {group["name"]: group for group in card["evaluation_details"][0]["metric_groups"]}
    assert list(groups) == ["this model", "champion (version 4)", "champion's lead"]
    assert groups["champion's lead"]["metric_data"][0]["value"] == written["champion"]["map_lead"] == -1.0
