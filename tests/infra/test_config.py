"""pipeline.yaml's `infrastructure` section: what the CDK app needs, validated like every other section."""

from __future__ import annotations

import pytest

from pipelines.config import ConfigError, parse_config

CONNECTION = "arn:aws:codestar-connections:eu-west-1:123456789012:connection/0a1b2c3d-4e5f-6789-abcd-ef0123456789"


def problems(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="pipeline.yaml")
    return str(info.value)


def test_without_a_source_the_app_is_the_workflow_alone_and_prepared_data_expires():
    """What an empty section means: no CI/CD pipeline, no fixed account, and the prepared data (the photos'
    TFRecord copies) expires after 90 days; the models registered packages point at never do (test_artifact_expiry)."""
    infrastructure = parse_config("").infrastructure
    assert infrastructure.source.repository is None and infrastructure.account is None
    assert infrastructure.artifact_expiration_days == 90


@pytest.mark.parametrize(
    ("text", "repository", "connection"),
    [
        (f"infrastructure:\n  source:\n    repository: acme/car-damage\n    connection_arn: {CONNECTION}\n", "acme/car-damage", CONNECTION),
        (
            "infrastructure:\n  source:\n    repository: acme/car-damage\n"
            "    connection_arn: arn:aws:codeconnections:us-east-1:123456789012:connection/abc\n",
            "acme/car-damage",
            "arn:aws:codeconnections:us-east-1:123456789012:connection/abc",
        ),
        ("infrastructure:\n  source:\n    repository: car-damage\n", "car-damage", None),
    ],
)
def test_a_source_is_a_connection_and_owner_name_or_a_codecommit_name(text, repository, connection):
    source = parse_config(text).infrastructure.source
    assert (source.repository, source.connection_arn, source.branch) == (repository, connection, "main")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f"infrastructure:\n  source:\n    repository: car-damage\n    connection_arn: {CONNECTION}\n",
            "pipeline.yaml:2: infrastructure.source: with connection_arn, repository must be owner/name",
        ),
        ("infrastructure:\n  source:\n    repository: acme/car-damage\n", "repository owner/name needs connection_arn"),
        (
            "infrastructure:\n  source:\n    repository: x\n    connection_arn: arn:aws:iam::123456789012:role/x\n",
            "pipeline.yaml:4: infrastructure.source.connection_arn: must match",
        ),
        ("infrastructure:\n  source:\n    branch: 'a b'\n", "infrastructure.source.branch: must match"),
        ("infrastructure:\n  account: '12345'\n", "pipeline.yaml:2: infrastructure.account: must match"),
        ("infrastructure:\n  account: 123456789012\n", "infrastructure.account: must be text"),
        ("infrastructure:\n  notification_emails: [ops]\n", "infrastructure.notification_emails.0: must match"),
        ("infrastructure:\n  serving_version: latest\n", "infrastructure.serving_version: must match"),
        (
            "infrastructure:\n  data_capture_expiration_days: 0\n",
            "infrastructure.data_capture_expiration_days: must be at least 1",
        ),
        ("infrastructure:\n  alarms:\n    model_latency_ms: 0\n", "pipeline.yaml:3: infrastructure.alarms.model_latency_ms"),
        ("infrastructure:\n  vpc: x\n", "infrastructure.vpc: unknown key (expected one of: account, source, notification_emails"),
        ("deployment:\n  traffic: canary\n", "deployment: traffic: canary shifts a share of the fleet, which one instance cannot give"),
        (
            "deployment:\n  traffic: linear\n  initial_instance_count: 2\n  linear_step_percent: 5\n",
            "deployment.linear_step_percent: must be at least 10",
        ),
    ],
)
def test_an_impossible_value_names_its_key_and_line(text, expected):
    assert expected in problems(text)
