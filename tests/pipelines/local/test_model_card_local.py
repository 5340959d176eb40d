"""The model card in the local registry: RegisterModel keeps it as CreateModelPackage takes it, and `cardamage
approve --local`/`reject --local` move its status as they do on AWS (tests/pipelines/test_model_card.py)."""

from __future__ import annotations

import sqlite3

import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.config import load_config
from pipelines.local.state import State
from pipelines.local.storage import LocalS3
from tests.fake_model import write_model_archive
from tests.pipelines.local.test_engine import definition, make_engine
from tests.support import ROOT

CONFIG = ROOT / "pipeline.yaml"
CARD = {"ModelCardContent": '{"intended_uses":{"intended_uses":"claims triage"}}', "ModelCardStatus": "PendingReview"}


def test_the_registry_keeps_the_card_a_package_is_registered_with(tmp_path):
    engine, _, _ = make_engine(tmp_path)
    carded = definition(approve="PendingManualApproval")
    register = carded["Steps"][2]["Arguments"]["IfSteps"][0]
    # As steps/register.py renders it: the content read from Evaluate's property file with JsonGet.
    content = {"Std:JsonGet": {"PropertyFile": {"Get": "Steps.Evaluate.PropertyFiles.Report"}, "Path": "items[0].name"}}
    register["Arguments"]["ModelCard"] = {"ModelCardContent": content, "ModelCardStatus": "PendingReview"}
    engine.run(carded, "demo")
    engine.run(definition(approve="PendingManualApproval"), "demo")
    newer, older = engine.state.packages("group")
    assert (older.card_content, older.card_status) == ("first", "PendingReview")  # the value FakeJobs' evaluation.json holds there
    assert (newer.card_content, newer.card_status) == (None, None)


@pytest.fixture
def state_dir(tmp_path):
    """Version 1 registered without a card, version 2 with one; both pending, their model the fake detector."""
    group = load_config(CONFIG, profile="local").model_package_group
    state_dir = tmp_path / "state"
    state, s3 = State(state_dir), LocalS3(state_dir / "s3")
    uri = "s3://local-artifacts/run/model.tar.gz"
    s3.put_file(write_model_archive(tmp_path / "fake", [(1, 0.9, 0.1, 0.1, 0.5, 0.5)]), uri)
    state.register(group, "PendingManualApproval", uri, "i", None, 0.3, {}, "run-1")
    state.register(group, "PendingManualApproval", uri, "i", None, 0.4, {}, "run-2", card=CARD)
    return state_dir


def card_of(state_dir, version: str) -> tuple[str | None, str | None]:
    package = State(state_dir).package(version, load_config(CONFIG, profile="local").model_package_group)
    return package.card_content, package.card_status


def cardamage(*arguments: str):
    return CliRunner().invoke(app, [*arguments, "--local", "--config", str(CONFIG)])


def test_approve_and_reject_move_the_cards_status_with_the_package(state_dir):
    assert cardamage("approve", "2", "--state-dir", str(state_dir), "-m", "ahead of the champion").exit_code == 0
    assert card_of(state_dir, "2") == (CARD["ModelCardContent"], "Approved")
    assert cardamage("reject", "2", "--state-dir", str(state_dir), "-m", "misses scratches").exit_code == 0
    assert card_of(state_dir, "2") == (CARD["ModelCardContent"], "Archived")  # the content stays what Evaluate wrote
    assert cardamage("reject", "1", "--state-dir", str(state_dir)).exit_code == 0
    assert card_of(state_dir, "1") == (None, None)  # no card to move: as on AWS, none is made


def test_a_state_folder_made_before_cards_gains_their_columns(tmp_path):
    folder = tmp_path / "state"
    folder.mkdir()
    with sqlite3.connect(folder / "state.sqlite") as db:  # the packages table as it was before cards (and before `modified`)
        db.execute(
            "CREATE TABLE packages (arn TEXT PRIMARY KEY, grp TEXT NOT NULL, version INTEGER NOT NULL, status TEXT NOT NULL,"
            " approval_description TEXT, model_data_url TEXT NOT NULL, image TEXT, metrics_uri TEXT, map REAL, metadata TEXT NOT NULL,"
            " created REAL NOT NULL, execution TEXT, UNIQUE (grp, version))"
        )
        db.execute("INSERT INTO packages VALUES ('arn:old', 'g', 1, 'Approved', NULL, 's3://a/m.tar.gz', 'i', NULL, 0.4, '{}', 1.0, 'run')")
    state = State(folder)
    old = state.package("arn:old")
    assert (old.status, old.card_content, old.card_status) == ("Approved", None, None)
    new = state.register("g", "PendingManualApproval", "s3://a/m.tar.gz", "i", None, 0.5, {}, "run-2", card=CARD)
    assert (new.version, new.card_status) == (2, "PendingReview")
