"""Release stages here: with deployment.stages [staging, production], an approval deploys to staging only, and
`cardamage promote` smoke-tests staging with the package's validation photos before deploying the same package
to production by the deployment rule. The model is the fake detector (tests/fake_model.py)."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import yaml
from typer.testing import CliRunner

from pipelines.cli.app import app
from pipelines.config import load_config
from pipelines.local.endpoint import LocalDeployer
from pipelines.local.state import State
from pipelines.local.storage import LocalS3
from pipelines.promote import PromotionError, check_answer, next_stage, record_images
from steps.register import METADATA_VALIDATION
from tests.containers.evaluation.helpers import DENT, box, write_validation
from tests.fake_model import write_model_archive
from tests.support import ROOT

DETECTIONS = [(1, 0.9, 0.1, 0.1, 0.5, 0.5), (2, 0.6, 0.5, 0.5, 0.9, 0.8)]
VALIDATION = "s3://local-artifacts/run-1/prepared/validation"


@pytest.fixture(scope="module")
def model_archive(tmp_path_factory):
    return write_model_archive(tmp_path_factory.mktemp("fake"), DETECTIONS)


@pytest.fixture
def staged(tmp_path, model_archive):
    """pipeline.yaml with two stages, and two pending packages whose first records its validation photos."""
    document = yaml.safe_load((ROOT / "pipeline.yaml").read_text())
    document["deployment"]["stages"] = ["staging", "production"]
    config_file = tmp_path / "pipeline.yaml"
    config_file.write_text(yaml.safe_dump(document))
    config = load_config(config_file, profile="local")
    state_dir = tmp_path / "state"
    state, s3 = State(state_dir), LocalS3(state_dir / "s3")
    write_validation(s3.path(VALIDATION), [[box(1, "dent", DENT)]] * 3)
    for version, map_value in ((1, 0.21), (2, 0.34)):
        uri = f"s3://local-artifacts/run-{version}/model.tar.gz"
        s3.put_file(model_archive, uri)
        state.register(config.model_package_group, "PendingManualApproval", uri, "i", None, map_value, {METADATA_VALIDATION: VALIDATION}, None)
    return config, config_file, state_dir


def cli(config_file, state_dir, *arguments):
    return CliRunner().invoke(app, [*arguments, "--local", "--state-dir", str(state_dir), "--config", str(config_file)])


def served(config, state_dir) -> dict[str, int | None]:
    deployer = LocalDeployer(State(state_dir), LocalS3(state_dir / "s3"), state_dir / "endpoints")
    return {stage: (record.version if (record := deployer.record(endpoint)) else None) for stage, endpoint in config.stage_endpoints.items()}


def test_an_approval_deploys_to_staging_and_promote_smoke_tests_it_before_production(staged):
    config, config_file, state_dir = staged
    assert config.stage_endpoints == {"staging": "car-damage-endpoint-staging", "production": "car-damage-endpoint"}
    assert cli(config_file, state_dir, "approve", "1").exit_code == 0
    assert served(config, state_dir) == {"staging": 1, "production": None}

    promoted = cli(config_file, state_dir, "promote")
    assert promoted.exit_code == 0, promoted.output
    assert "smoke test of version 1 on staging (car-damage-endpoint-staging): 3 photo(s)" in promoted.output
    answers = [line for line in promoted.output.splitlines() if line.startswith("  ok  ")]
    assert len(answers) == 3 and all(re.fullmatch(r"  ok  car-\S+: 2 detection\(s\)", line) for line in answers), answers
    assert "created endpoint car-damage-endpoint with version 1" in promoted.output
    assert served(config, state_dir) == {"staging": 1, "production": 1}
    models = cli(config_file, state_dir, "models").output
    assert re.search(r"^1\s+Approved.*staging, production", models, re.M), models

    # Version 2 reaches staging by approval; production keeps version 1 until it is promoted.
    assert cli(config_file, state_dir, "approve", "2").exit_code == 0
    assert served(config, state_dir) == {"staging": 2, "production": 1}
    mismatch = cli(config_file, state_dir, "promote", "--package", "1")
    assert mismatch.exit_code == 2 and "staging serves version 2, not version 1" in mismatch.output
    assert cli(config_file, state_dir, "promote").exit_code == 0
    assert served(config, state_dir) == {"staging": 2, "production": 2}
    last = cli(config_file, state_dir, "promote", "--from", "production")
    assert last.exit_code == 2 and "production is the last stage" in last.output


def test_a_wrong_answer_in_the_smoke_test_stops_the_promotion(staged, tmp_path):
    config, config_file, state_dir = staged
    assert cli(config_file, state_dir, "approve", "1").exit_code == 0
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(next((ROOT / "data" / "sample" / "images").rglob("*.jpg")), photos / "a-car.jpg")
    (photos / "b-not-a-photo.jpg").write_bytes(b"not an image at all")
    refused = cli(config_file, state_dir, "promote", "--images", str(photos))
    assert refused.exit_code == 1, refused.output
    assert "  ok  a-car.jpg: 2 detection(s)" in refused.output.splitlines()
    unreadable = {"error": "the image is not an image that can be read (no image format recognised); send JPEG or PNG bytes", "status": 400}
    assert f"  BAD b-not-a-photo.jpg: HTTP 400: {json.dumps(unreadable)}" in refused.output.splitlines(), refused.output
    assert "not promoted to production (car-damage-endpoint): 1 answer(s) failed the smoke test" in refused.output
    assert served(config, state_dir) == {"staging": 1, "production": None}


def test_promote_says_so_when_the_packages_validation_records_expired(staged, tmp_path):
    """Prepared data expires (infrastructure.artifact_expiration_days); the package that was evaluated on it stays."""
    config, config_file, state_dir = staged
    assert cli(config_file, state_dir, "approve", "1").exit_code == 0
    shutil.rmtree(LocalS3(state_dir / "s3").path(VALIDATION))  # what the lifecycle rule does to the prepared data
    refused = cli(config_file, state_dir, "promote")
    assert refused.exit_code == 2, refused.output
    message = " ".join(refused.output.split())
    assert "they expired with their execution's prepared data" in message and "infrastructure.artifact_expiration_days" in message
    assert "pass --images DIR" in message and served(config, state_dir) == {"staging": 1, "production": None}
    # On AWS the records are copied from S3 first: an expired prefix copies nothing, and the message names it.
    with pytest.raises(PromotionError, match=r"no validation records at s3://artifacts/p/prepared-data/e1/validation: they expired"):
        record_images(tmp_path, 5, source="s3://artifacts/p/prepared-data/e1/validation")


def test_the_rule_still_holds_between_stages(staged):
    config, config_file, state_dir = staged
    for version in ("1", "2"):
        assert cli(config_file, state_dir, "approve", version).exit_code == 0
    assert cli(config_file, state_dir, "promote").exit_code == 0  # version 2 to production
    forced = cli(config_file, state_dir, "deploy", "--package", "1", "--force", "-m", "staging check of v1")
    assert forced.exit_code == 0 and served(config, state_dir) == {"staging": 1, "production": 2}
    older = cli(config_file, state_dir, "promote")  # version 1 is older than production's 2: nothing changes
    assert older.exit_code == 0 and "nothing to do: version 1 is older than the served version 2" in older.output
    forced_up = cli(config_file, state_dir, "promote", "--force", "--reason", "v2 misses scratches")
    assert forced_up.exit_code == 0 and served(config, state_dir) == {"staging": 1, "production": 1}


def test_without_stages_promote_says_what_to_set(tmp_path, model_archive):
    state_dir = tmp_path / "state"
    State(state_dir)
    result = CliRunner().invoke(app, ["promote", "--local", "--state-dir", str(state_dir), "--config", str(ROOT / "pipeline.yaml")])
    assert result.exit_code == 2 and "set deployment.stages in pipeline.yaml" in result.output


def test_stage_order_and_answer_checks():
    stages = {"staging": "e-staging", "canary": "e-canary", "production": "e"}
    assert next_stage(stages, None) == ("staging", "canary") and next_stage(stages, "canary") == ("canary", "production")
    found = {"class": "dent", "score": 0.5, "box": {"xmin": 1, "ymin": 2, "xmax": 50, "ymax": 40}}
    good = json.dumps({"predictions": [{"image": {"width": 100, "height": 50}, "detections": [found]}]}).encode()
    assert check_answer(200, good, ["dent", "scratch"]) == (None, 1)
    assert check_answer(200, good.replace(b'"dent"', b'"rust"'), ["dent"])[0] == "detection 1: class 'rust' is none of dent"
    assert "outside the 100x50 image" in check_answer(200, good.replace(b'"ymax": 40', b'"ymax": 80'), None)[0]
    assert "score 1.5" in check_answer(200, good.replace(b'"score": 0.5', b'"score": 1.5'), None)[0]
    assert check_answer(200, b"[]", None)[0].startswith("not the endpoint's answer format")
    assert check_answer(503, b'{"error": "no model"}', None) == ('HTTP 503: {"error": "no model"}', 0)
