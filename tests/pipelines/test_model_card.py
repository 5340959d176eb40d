"""The model card on AWS: the Register request the definition renders carries it (checked against botocore's
service model), and `cardamage approve`/`reject` keep its status with the package's in one UpdateModelPackage.

moto drops ModelCard from CreateModelPackage and UpdateModelPackage (moto 5.2.5, sagemaker/models.py), so the
card a package was registered with is added to moto's DescribeModelPackage answer, and the approval's request
is asserted as botocore sends it.
"""

from __future__ import annotations

import json

import botocore.session
import pytest
from botocore.validate import validate_parameters

from containers.evaluation.model_card import MODEL_CARD, card_text
from pipelines.config import load_config, parse_config
from pipelines.definition import render_definition
from pipelines.local.expressions import Resolver, is_expression
from tests.aws_fakes import client
from tests.containers.evaluation.test_model_card import EVALUATION
from tests.pipelines.test_control_plane import cli, config, env, register, s3_bucket, server, stubs  # noqa: F401 (fixtures)
from tests.support import ROOT, step_named

GROUP = "car-damage-models"
SAGEMAKER = botocore.session.get_session().get_service_model("sagemaker")
CONTENT = card_text(EVALUATION, ["s3://cardamage-data/snapshots/20261130T101500Z-0123456789ab/inputs/"])


def register_request(text: str, evaluation: dict) -> dict:
    """The Register step's CreateModelPackage request: its ModelCard resolved as the engines resolve JsonGet (from
    the evaluation.json Evaluate wrote), every other run-time value stood in by text."""
    arguments = step_named(json.loads(text), "Register")["Arguments"]
    card = Resolver({}, {}, lambda step, name: evaluation).resolve(arguments.pop("ModelCard"))

    def stand_in(value):
        if is_expression(value):
            return "s3://cardamage-artifacts/stand-in"
        if isinstance(value, dict):
            return {key: stand_in(item) for key, item in value.items()}
        return [stand_in(item) for item in value] if isinstance(value, list) else value

    return {**stand_in(arguments), "ModelCard": card}


def test_the_register_request_carries_evaluates_card_and_passes_botocores_validation():
    text = render_definition(load_config(ROOT / "pipeline.yaml"))
    card = step_named(json.loads(text), "Register")["Arguments"]["ModelCard"]
    assert card == {
        "ModelCardContent": {"Std:JsonGet": {"PropertyFile": {"Get": "Steps.Evaluate.PropertyFiles.EvaluationReport"}, "Path": MODEL_CARD}},
        "ModelCardStatus": "PendingReview",  # pipeline.yaml registers packages for a person's approval
    }
    request = register_request(text, {**EVALUATION, MODEL_CARD: CONTENT})
    assert request["ModelCard"] == {"ModelCardContent": CONTENT, "ModelCardStatus": "PendingReview"}
    shape = SAGEMAKER.operation_model("CreateModelPackage").input_shape
    validate_parameters(request, shape)  # raises ParamValidationError when it is not
    # botocore's validator checks neither enums nor maximum lengths: the service model's are checked here.
    members = shape.members["ModelCard"].members
    assert request["ModelCard"]["ModelCardStatus"] in members["ModelCardStatus"].enum
    assert len(CONTENT) <= members["ModelCardContent"].metadata["max"]


def test_a_configuration_that_approves_at_registration_registers_an_approved_card():
    text = render_definition(parse_config("registry:\n  approval_status: Approved\n"))
    assert step_named(json.loads(text), "Register")["Arguments"]["ModelCard"]["ModelCardStatus"] == "Approved"


@pytest.fixture
def carded(env, stubs):  # noqa: F811 (the fixtures imported above)
    """Version 1 registered before packages had cards, version 2 with one (PendingReview); every UpdateModelPackage
    recorded on its way to moto."""
    s3_bucket(env, "cardamage-artifacts")
    client("sagemaker", env.url).create_model_package_group(ModelPackageGroupName=GROUP)
    arns = [register(env), register(env)]
    cards = {arns[1]: {"ModelCardContent": CONTENT, "ModelCardStatus": "PendingReview"}}

    def describe(params):
        described = client("sagemaker", env.url).describe_model_package(ModelPackageName=params["ModelPackageName"])
        described.pop("ResponseMetadata", None)
        card = cards.get(described["ModelPackageArn"])
        return {**described, "ModelCard": card} if card else described

    stubs("sagemaker", "DescribeModelPackage", describe)
    return arns, stubs("sagemaker", "UpdateModelPackage", lambda params: None)  # None: on to moto


def test_approve_and_reject_set_the_cards_status_in_the_same_request(env, config, carded):  # noqa: F811 (the fixtures imported above)
    arns, updates = carded
    assert cli(env, config, "approve", "2", "-m", "lead within the interval").exit_code == 0
    (approval,) = updates.calls
    assert approval["ModelPackageArn"] == arns[1] and approval["ModelApprovalStatus"] == "Approved"
    assert approval["ModelCard"] == {"ModelCardStatus": "Approved"}  # the status only: the content stays Evaluate's
    assert client("sagemaker", env.url).describe_model_package(ModelPackageName=arns[1])["ModelApprovalStatus"] == "Approved"

    assert cli(env, config, "reject", "2", "-m", "misses scratches").exit_code == 0
    assert updates.calls[1]["ModelApprovalStatus"] == "Rejected" and updates.calls[1]["ModelCard"] == {"ModelCardStatus": "Archived"}
    validate_parameters(updates.calls[1], SAGEMAKER.operation_model("UpdateModelPackage").input_shape)


def test_a_package_registered_without_a_card_is_approved_without_one(env, config, carded):  # noqa: F811 (the fixtures imported above)
    _, updates = carded
    assert cli(env, config, "approve", "1").exit_code == 0
    (approval,) = updates.calls
    assert approval["ModelApprovalStatus"] == "Approved" and "ModelCard" not in approval
