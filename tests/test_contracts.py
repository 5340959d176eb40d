"""One home per rule: each contract is written once and imported; where a file must ship alone (the
deployment and trigger functions are single files, the endpoint's handler is loaded by path), these tests
hold its copy equal to the one home, by behaviour where they can."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from containers.common.s3 import S3_URI_PATTERN, is_s3_uri
from containers.deploy import deploy
from containers.inference.inference import SERVING_ENVIRONMENT, Settings, serving_environment
from containers.training.hyperparameters import HyperparameterError, parse_hyperparameters
from containers.trigger import trigger
from pipelines import aws
from pipelines.config import ConfigError, parse_config
from pipelines.definition import render_definition
from steps.parameters import RULES, check_value, declared_parameters


@pytest.fixture(scope="module")
def declared():
    return declared_parameters(json.loads(render_definition(parse_config(""))))


def test_every_parameter_of_the_pipeline_has_a_rule_and_its_default_keeps_it(declared):
    assert set(declared) == set(RULES)
    for parameter in declared.values():
        if "${" not in str(parameter.default):  # the data bucket's placeholder, filled by the CDK app
            assert check_value(parameter, str(parameter.default)) == parameter.default, parameter.name


def test_the_image_size_rule_is_one_rule_for_the_config_the_parameter_and_the_training_program(declared):
    for size in range(0, 2304, 64):
        by_config = _accepts(lambda s=size: parse_config(f"training:\n  image_size: {s}\n"), ConfigError)
        by_parameter = _accepts(lambda s=size: check_value(declared["ImageSize"], str(s)), ValueError)
        by_program = _accepts(lambda s=size: parse_hyperparameters({"image_size": str(s)}), HyperparameterError)
        assert by_config == by_parameter == by_program == (256 <= size <= 2048 and size % 128 == 0), size


def _accepts(call, error) -> bool:
    try:
        call()
    except error:
        return False
    return True


@pytest.mark.parametrize("uri", ["s3://bucket/key", "s3://my.bucket-1/a/b/", "s3://ab", "s3://Bucket/k", "s3://b/k", "http://bucket/k", "s3://-b/k"])
def test_the_deployment_function_checks_s3_uris_as_the_project_does(uri):
    assert deploy._S3_URI.pattern == S3_URI_PATTERN
    assert bool(deploy._S3_URI.match(uri)) == is_s3_uri(uri)


@pytest.mark.parametrize(("threshold", "detections"), [(0.3, 100), (0.0, 1), (1.0, 50), (0.125, 7)])
def test_the_deployment_function_gives_the_model_the_handler_s_serving_environment(threshold, detections):
    settings = deploy.DeploySettings(
        "e", "arn:aws:iam::123456789012:role/r", "g", score_threshold=threshold, max_detections=detections, data_capture_percent=0
    )
    environment = deploy.model_environment(settings)
    assert environment == serving_environment(threshold, detections)
    assert set(environment) <= set(SERVING_ENVIRONMENT)
    read = Settings.from_env(environment).options  # what the handler makes of it
    assert (read.score_threshold, read.max_detections) == (threshold, detections)
    assert {deploy.ENVIRONMENT["score_threshold"], deploy.ENVIRONMENT["max_detections"]} == set(environment)


@pytest.mark.parametrize(
    ("error", "missing"),
    [
        ({"Code": "ResourceNotFound", "Message": "x"}, True),
        ({"Code": "ResourceNotFoundException", "Message": "x"}, True),
        ({"Code": "ValidationException", "Message": "Could not find model package with name x"}, True),
        ({"Code": "ValidationException", "Message": "Pipeline x does not exist"}, True),
        ({"Code": "ValidationException", "Message": "Endpoint x not found."}, True),
        ({"Code": "ValidationException", "Message": "Invalid value for ModelPackageName"}, False),
        ({"Code": "ThrottlingException", "Message": "Rate exceeded"}, False),
    ],
)
def test_the_control_plane_and_the_deployment_function_agree_on_not_found(error, missing):
    exc = ClientError({"Error": error}, "Describe")
    assert aws.is_not_found(exc) == deploy.is_not_found(exc) == missing


def test_the_trigger_starts_the_pipeline_with_a_parameter_it_declares(declared):
    assert trigger.PARAMETER in declared
