"""Safe release, end to end in the local engine: the definition the CDK app deploys, with the real PrepareData,
FindChampion, Evaluate, quality gate, registry and deployer, and a fast fake detector in place of training
(ten real training steps from random weights make no models that can be told apart).

The fake "training" reads the validation records it is given and answers every image with the ground-truth
boxes of all of them (TrainingSteps 13: the better model) or of every other image (TrainingSteps 11: a worse
one); its mAP is measured by the real Evaluate, not assumed.

    run 1, steps 11: nothing is served                      -> registered, deployed (version 1)
    run 2, steps 13: better than the champion, version 1    -> registered, deployed over it (version 2)
    run 3, steps 11 (CLI): worse than version 2             -> the Fail step, exit 1, both mAPs named
    run 4, as run 3 with MapThreshold 1.0, tolerance 1      -> the Fail step on the threshold alone
    `deploy --package 1 --force` without, then with, a reason -> refused, then deployed
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from containers.deploy.champion import METADATA_MAP, METADATA_VERSION
from containers.evaluation.validation import read_records, validation_files
from pipelines.config import load_config
from pipelines.local import runner
from pipelines.local.engine import Reporter
from pipelines.local.state import State
from tests.fake_model import write_model_archive
from tests.support import ROOT
from tests.trained_pipeline import cardamage, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("champion-release")]

WORSE, BETTER = 11, 13  # TrainingSteps that choose the fake model


def fake_training(engine, classes: list[str]):
    """A Training job that writes the fake detector as model.tar.gz where SageMaker would put it."""

    def train(arguments, name, work, echo):
        channel = next(c for c in arguments["InputDataConfig"] if c["ChannelName"] == "validation")
        folder = work / "validation"
        engine.s3.download(channel["DataSource"]["S3DataSource"]["S3Uri"], folder)
        records = list(read_records(validation_files(folder), {name: i for i, name in enumerate(classes, 1)}))
        every = 1 if int(arguments["HyperParameters"]["num_steps"]) == BETTER else 2
        detections = [
            (label, 0.9, ymin, xmin, ymax, xmax)
            for record in records[::every]
            for (xmin, ymin, xmax, ymax), label in zip(record.truth.boxes, record.truth.labels, strict=True)
        ]
        archive = write_model_archive(work, detections, classes)
        artifact = f"{arguments['OutputDataConfig']['S3OutputPath'].rstrip('/')}/{name}/output/model.tar.gz"
        engine.s3.put_file(archive, artifact)
        echo(f"fake training: {len(detections)} boxes from {len(records)} validation record(s)")
        return {**arguments, "TrainingJobName": name, "TrainingJobStatus": "Completed", "ModelArtifacts": {"S3ModelArtifacts": artifact}}

    return train


def run_with_fake(config, state: Path, steps: int, inputs: runner.Inputs | None = None):
    """A local run of the real definition with the fake detector in place of training (on the sample by default)."""
    lines: list[str] = []
    engine = runner.engine(state, Reporter(say=lines.append), config)
    engine.jobs["Training"] = fake_training(engine, list(config.data.classes))
    definition = runner.local_definition(config)
    staged = runner.stage(inputs or runner.sample_inputs(config), engine.s3, config)
    result = engine.run(definition, config.pipeline_name, {**staged, "TrainingSteps": str(steps), "ChampionTolerance": "0.0"})
    return result, lines


def evaluation(state: Path, execution: str) -> dict:
    (report,) = (state / "s3").glob(f"local-artifacts/*/{execution}/evaluation/evaluation.json")
    return json.loads(report.read_text())


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    config = load_config(ROOT / "pipeline.yaml", profile="local")
    state = tmp_path_factory.mktemp("release") / ".cardamage"
    first, first_lines = run_with_fake(config, state, WORSE)
    second, second_lines = run_with_fake(config, state, BETTER)
    return config, state, (first, first_lines), (second, second_lines)


def test_a_first_run_deploys_and_a_better_challenger_deploys_over_it(release):
    config, state, (first, first_lines), (second, _) = release
    assert first.status == second.status == "Succeeded"
    statuses = {s["name"]: s["status"] for s in first.steps}
    assert statuses["FindChampion"] == statuses["Deploy"] == "Succeeded" and statuses["QualityBelowThreshold"] == "NotRun"
    worse, better = evaluation(state, first.execution), evaluation(state, second.execution)
    assert worse["champion"]["version"] == 0 and worse["champion"]["text"] == "none (nothing is served)"
    # The second run's challenger and champion, measured on the same records in the same job.
    assert better["champion"]["version"] == 1
    assert better["champion"]["metrics"]["mAP"]["value"] == pytest.approx(worse["metrics"]["mAP"]["value"], abs=1e-6)
    assert better["metrics"]["mAP"]["value"] > better["champion"]["metrics"]["mAP"]["value"] > 0  # the fakes differ as intended
    assert better["champion"]["map_lead"] < 0
    record = json.loads((state / "endpoints" / f"{config.endpoint_name}.json").read_text())
    assert record["version"] == 2 and record["forced_because"] is None
    packages = {p.version: p for p in State(state).packages(config.model_package_group)}
    assert packages[1].metadata[METADATA_VERSION] == "0" and packages[1].metadata[METADATA_MAP] == "none"
    assert packages[2].metadata[METADATA_VERSION] == "1"
    assert float(packages[2].metadata[METADATA_MAP]) == pytest.approx(better["champion"]["metrics"]["mAP"]["value"], abs=1e-6)
    assert any("FindChampion" in line for line in first_lines)


def test_a_worse_challenger_fails_the_gate_naming_both_maps(release):
    config, state, _, (second, _) = release
    better = evaluation(state, second.execution)
    # The CLI, as a person runs it; training is cached from the first run (same data and hyperparameters).
    result = run_cli(state, "--param", f"TrainingSteps={WORSE}", "--param", "ChampionTolerance=0")
    assert result.returncode == 1, result.output[-3000:]
    statuses = {s["name"]: s["status"] for s in result.steps}
    assert statuses["Train"] == "Succeeded" and statuses["QualityBelowThreshold"] == "Failed" and statuses["Register"] == "NotRun"
    failed = evaluation(state, result.execution)
    challenger, champion = failed["metrics"]["mAP"]["value"], failed["champion"]["metrics"]["mAP"]["value"]
    assert failed["champion"]["version"] == 2 and champion == pytest.approx(better["metrics"]["mAP"]["value"], abs=1e-6)
    assert champion > challenger
    message = next(s["failure"] for s in result.steps if s["name"] == "QualityBelowThreshold")
    assert f"the challenger's mAP {challenger}" in message and f"{champion:.6f} (version 2" in message
    assert "(MapThreshold)" in message and "(ChampionTolerance)" in message
    assert message in result.output
    assert json.loads((state / "endpoints" / f"{config.endpoint_name}.json").read_text())["version"] == 2


def test_a_threshold_no_model_reaches_ends_in_the_fail_step(release):
    """The other half of the gate: the champion is waved through (ChampionTolerance 1) but MapThreshold 1.0 is
    out of reach. Neither parameter is an input of Evaluate, so after the test above its job comes from cache."""
    _, state, _, _ = release
    failed = run_cli(state, "--param", f"TrainingSteps={WORSE}", "--param", "ChampionTolerance=1.0", "--param", "MapThreshold=1.0")
    assert failed.returncode == 1 and failed.status == "Failed", failed.output[-3000:]
    message = next(s["failure"] for s in failed.steps if s["name"] == "QualityBelowThreshold")
    assert "must reach the threshold 1.0 (MapThreshold)" in message and "the challenger's mAP" in message
    steps = {s["name"]: s["status"] for s in failed.steps}
    assert steps["QualityBelowThreshold"] == "Failed" and steps["Register"] == "NotRun"


def test_models_shows_each_packages_map_and_its_champions(release):
    _, state, _, (second, _) = release
    report = evaluation(state, second.execution)
    champion = report["champion"]["metrics"]["mAP"]["value"]  # version 1, as Evaluate measured it
    listing = cardamage("models", "--local", "--state-dir", str(state))
    assert listing.returncode == 0, listing.stderr
    rows = {int(m.group(1)): line for line in listing.stdout.splitlines() if (m := re.match(r"\s*│?\s*(\d+)\s", line))}
    # With their intervals from evaluation.json: the champion's mAP and its lead over version 2 (negative: behind).
    assert "none served" in rows[1] and f"v1: {champion:.2f} (" in rows[2] and f"lead {report['champion']['lead_text']}" in rows[2], listing.stdout
    assert "champion mAP" in listing.stdout


def test_forcing_the_older_package_back_needs_a_reason(release):
    config, state, _, _ = release
    refused = cardamage("deploy", "--local", "--state-dir", str(state), "--package", "1", "--force")
    assert refused.returncode == 2 and "--force needs --reason" in refused.stderr
    unforced = cardamage("deploy", "--local", "--state-dir", str(state), "--package", "1")
    assert unforced.returncode == 0 and "nothing to do: version 1 is older than the served version 2" in unforced.stdout
    forced = cardamage("deploy", "--local", "--state-dir", str(state), "--package", "1", "--force", "--reason", "v2 misses scratches")
    assert forced.returncode == 0, forced.stderr
    record = json.loads((state / "endpoints" / f"{config.endpoint_name}.json").read_text())
    assert record["version"] == 1 and record["forced_because"] == "v2 misses scratches"
