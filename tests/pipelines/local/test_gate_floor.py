"""The gate's floor, run: an execution asking for a looser quality gate than pipeline.yaml allows ends at the
definition's first step, before any job, whoever started it. The local engine runs the very definition the
CDK app deploys, so this is what SageMaker runs too."""

from __future__ import annotations

import pytest

from pipelines.config import load_config
from pipelines.local import runner
from pipelines.local.engine import ExecutionFailed, Reporter
from tests.support import ROOT


@pytest.fixture(scope="module")
def config():
    return load_config(ROOT / "pipeline.yaml")  # the deployed configuration: MapThreshold 0.3, ChampionTolerance 0.0


@pytest.fixture(scope="module")
def definition(config):
    return runner.local_definition(config)


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"MapThreshold": "0.0"}, "MapThreshold 0.0 must be at least 0.3 (evaluation.min_map_threshold)"),
        ({"ChampionTolerance": "1.0"}, "ChampionTolerance 1.0 at most 0.0 (evaluation.max_champion_tolerance)"),
    ],
)
def test_a_looser_gate_ends_the_execution_before_any_job(config, definition, tmp_path, overrides, fragment):
    engine = runner.engine(tmp_path / "state", Reporter(say=lambda line: None), config)
    with pytest.raises(ExecutionFailed) as failed:
        engine.run(definition, config.pipeline_name, overrides)

    message = str(failed.value)
    assert message.startswith("Refused: the execution's quality gate is looser than pipeline.yaml allows.") and fragment in message
    ran = {step["name"]: step["status"] for step in engine.state.steps(failed.value.execution) if step["status"] != "NotRun"}
    assert ran == {"CheckGateSettings": "Succeeded", "GateLooserThanAllowed": "Failed"}


def test_a_stricter_gate_passes_the_first_step(config, definition, tmp_path):
    engine = runner.engine(tmp_path / "state", Reporter(say=lambda line: None), config)
    engine.jobs["Processing"] = lambda *args, **kwargs: (_ for _ in ()).throw(RuntimeError("PrepareData reached"))
    with pytest.raises(RuntimeError, match="PrepareData reached"):
        engine.run(definition, config.pipeline_name, {"MapThreshold": "0.5", "ChampionTolerance": "-0.1"})
