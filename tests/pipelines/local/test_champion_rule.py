"""ChampionRule, run: the definition the CDK app deploys, in the local engine, with stand-in jobs (no data, no
training, no model) and an Evaluate that writes a chosen evaluation.json. The gate reads only that file and
the parameters, so each case says what Evaluate measured and what the gate decided:

    the champion ahead by 0.05, its lead's interval (-0.04, 0.15), tolerance 0:
        margin       -> the Fail step, naming the rule and both intervals
        significant  -> passes: the interval holds 0, the gap may be chance
    the champion ahead by 0.05, its lead's interval (0.02, 0.09):
        significant  -> the Fail step: the interval says the challenger is worse
    a rule pipeline.yaml's evaluation.champion_rules leaves out, or no rule at all -> the first step's Fail
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.config import load_config
from pipelines.local import engine as engine_module
from pipelines.local import runner
from pipelines.local.engine import ExecutionFailed, Reporter
from steps.parameters import declared_parameters
from tests.support import ROOT

NOT_SIGNIFICANT = {"map_lead": 0.05, "lead_interval": [-0.04, 0.15]}
SIGNIFICANT = {"map_lead": 0.05, "lead_interval": [0.02, 0.09]}


@pytest.fixture(scope="module")
def config():
    return load_config(ROOT / "pipeline.yaml")  # the deployed configuration: tolerance 0, rule margin, both rules allowed


@pytest.fixture(scope="module")
def definition(config):
    return runner.local_definition(config)


def evaluation(lead: dict) -> dict:
    """What Evaluate writes (containers/evaluation/evaluate.py) of a challenger with mAP 0.41 against version 1."""
    low, high = lead["lead_interval"]
    return {
        "metrics": {"mAP": {"value": 0.41}},
        "map_interval_text": "0.41 (0.33-0.49)",
        "model": {"sha256": ""},
        "champion": {
            "version": 1,
            "map_lead": lead["map_lead"],
            "map_text": "0.460000",
            "text": "0.460000 (version 1, on the same validation records)",
            "lead_interval": [low, high],
            "lead_low": low,
            "lead_text": f"0.05 ({low:.2f}{' to ' if low < 0 else '-'}{high:.2f})",
        },
    }


def run(config, definition, tmp_path, report: dict, overrides: dict[str, str]) -> tuple[dict[str, str], str]:
    """Run the real definition with stand-in jobs; the steps' statuses and the failure message, if any."""
    engine = runner.engine(tmp_path / "state", Reporter(say=lambda line: None), config)

    def processing(arguments, name, work, echo):
        outputs = {o["OutputName"]: o["S3Output"]["S3Uri"] for o in arguments["ProcessingOutputConfig"]["Outputs"]}
        if "evaluation" in outputs:  # Evaluate; PrepareData writes nothing the gate reads
            path = engine.s3.path(outputs["evaluation"].rstrip("/") + "/evaluation.json")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(report))
        return {**arguments, "ProcessingJobName": name, "ProcessingJobStatus": "Completed"}

    def training(arguments, name, work, echo):
        artifact = f"{arguments['OutputDataConfig']['S3OutputPath'].rstrip('/')}/{name}/output/model.tar.gz"
        return {**arguments, "TrainingJobName": name, "TrainingJobStatus": "Completed", "ModelArtifacts": {"S3ModelArtifacts": artifact}}

    engine.jobs.update(Processing=processing, Training=training)
    message = ""
    try:
        execution = engine.run(definition, config.pipeline_name, overrides).execution
    except ExecutionFailed as failed:  # the gate's Fail step (or Register on the stand-ins' outputs, after the gate)
        execution, message = failed.execution, str(failed)
    return {step["name"]: step["status"] for step in engine.state.steps(execution)}, message


def test_margin_refuses_a_challenger_behind_by_more_than_the_tolerance_and_says_why(config, definition, tmp_path):
    steps, message = run(config, definition, tmp_path, evaluation(NOT_SIGNIFICANT), {})  # the default rule: margin
    assert steps["CheckQuality"] == "Succeeded" and steps["QualityBelowThreshold"] == "Failed" and steps["Register"] == "NotRun"
    assert message.startswith("Not registered: the challenger's mAP 0.41 must reach the threshold 0.3 (MapThreshold)")
    assert "below the champion's mAP, 0.460000 (version 1, on the same validation records), by the rule margin (ChampionRule:" in message
    assert message.endswith("the challenger's mAP is 0.41 (0.33-0.49) and the champion's lead 0.05 (-0.04 to 0.15).")


def test_significant_lets_a_challenger_through_when_the_lead_interval_holds_zero(config, definition, tmp_path):
    steps, _ = run(config, definition, tmp_path, evaluation(NOT_SIGNIFICANT), {"ChampionRule": "significant"})
    assert steps["CheckQuality"] == "Succeeded" and steps["QualityBelowThreshold"] == "NotRun" and steps["Register"] != "NotRun"
    # It compares the interval's lower bound with ChampionTolerance: a run demanding an improvement of 0.1 refuses it.
    stricter = {"ChampionRule": "significant", "ChampionTolerance": "-0.1"}
    steps, _ = run(config, definition, tmp_path / "stricter", evaluation(NOT_SIGNIFICANT), stricter)
    assert steps["QualityBelowThreshold"] == "Failed" and steps["Register"] == "NotRun"


def test_significant_refuses_a_challenger_the_interval_says_is_worse(config, definition, tmp_path):
    steps, message = run(config, definition, tmp_path, evaluation(SIGNIFICANT), {"ChampionRule": "significant"})
    assert steps["QualityBelowThreshold"] == "Failed" and steps["Register"] == "NotRun"
    assert "by the rule significant (ChampionRule:" in message and "the champion's lead 0.05 (0.02-0.09)" in message


def test_a_rule_pipeline_yaml_does_not_allow_ends_at_the_first_step(config, tmp_path):
    margin_only = config.model_copy(update={"evaluation": config.evaluation.model_copy(update={"champion_rules": ["margin"]})})
    definition = runner.local_definition(margin_only)
    steps, message = run(margin_only, definition, tmp_path, evaluation(NOT_SIGNIFICANT), {"ChampionRule": "significant"})
    ran = {name: status for name, status in steps.items() if status != "NotRun"}
    assert ran == {"CheckGateSettings": "Succeeded", "GateLooserThanAllowed": "Failed"}
    assert message.endswith("and ChampionRule significant one of margin (evaluation.champion_rules).")


def test_a_value_that_is_no_rule_is_refused_by_the_definition_itself(config, definition, tmp_path, monkeypatch):
    """Anyone who may start an execution can pass any string through the API, where nothing checks it as
    `cardamage` does: the definition's first step refuses it."""
    unchecked = lambda definition, overrides: {name: overrides.get(name, p.default) for name, p in declared_parameters(definition).items()}  # noqa: E731
    monkeypatch.setattr(engine_module, "parameter_values", unchecked)
    steps, message = run(config, definition, tmp_path, evaluation(NOT_SIGNIFICANT), {"ChampionRule": "strict"})
    assert steps["GateLooserThanAllowed"] == "Failed" and steps["PrepareData"] == "NotRun"
    assert message.endswith("and ChampionRule strict one of margin, significant (evaluation.champion_rules).")


def test_the_command_line_refuses_a_value_that_is_no_rule_naming_the_rules(definition, tmp_path):
    (tmp_path / "definition.json").write_text(json.dumps(definition))
    arguments = ["run", "--local", "--state-dir", str(tmp_path / "state"), "--definition", str(tmp_path / "definition.json")]
    result = CliRunner().invoke(app, [*arguments, "--param", "ChampionRule=strict"])
    assert result.exit_code == 2
    assert "ChampionRule='strict' must be one of 'margin' or 'significant'" in result.output
