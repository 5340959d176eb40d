"""pipeline.yaml's `infrastructure` section: what the CDK app needs, validated like every other section."""

from __future__ import annotations

import pytest

from pipelines.config import parse_config
from tests.pipelines.test_config import problems

CONNECTION = "arn:aws:codestar-connections:eu-west-1:123456789012:connection/0a1b2c3d-4e5f-6789-abcd-ef0123456789"


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
        ("monitoring:\n  window_hours: 10\n", "pipeline.yaml:2: monitoring.window_hours: must be at most 9"),
        ("monitoring:\n  instance_type: m5.large\n", "monitoring.instance_type: must be a SageMaker instance type"),
        ("monitoring:\n  atypical: 0\n", "monitoring.atypical: must be at least 1"),
        ("monitoring:\n  max_runtime_minutes: 20000\n", "monitoring.max_runtime_minutes: must be at most 12960"),
        ("monitoring:\n  alarm: true\n", "monitoring.alarm: unknown key (expected one of: enabled, schedule, window_hours"),
        ("deployment:\n  traffic: canary\n", "deployment: traffic: canary shifts a share of the fleet, which one instance cannot give"),
        (
            "deployment:\n  traffic: linear\n  initial_instance_count: 2\n  linear_step_percent: 5\n",
            "deployment.linear_step_percent: must be at least 10",
        ),
    ],
)
def test_an_impossible_value_names_its_key_and_line(text, expected):
    assert expected in problems(text)


def test_monitoring_defaults_to_an_hourly_window_on_a_small_processing_instance_with_an_alarm():
    monitoring = parse_config("").monitoring
    assert (monitoring.enabled, monitoring.schedule, monitoring.window_hours, monitoring.instance_type) == (True, "rate(1 hour)", 1, "ml.m5.large")
    assert (monitoring.atypical, monitoring.drift_alarm, monitoring.max_runtime_minutes, monitoring.volume_size_gb) == (20, True, 60, 30)


@pytest.mark.parametrize(
    "schedule",
    ["rate(1 minute)", "rate(15 minutes)", "rate(6 hours)", "rate(1 day)", "cron(15 * * * ? *)", "cron(0 8 ? * MON-FRI *)",
     "cron(0/20 6-18 * * ? *)", "cron(0 10 L * ? 2026)", "cron(0 10 ? * 6L *)", "cron(0 10 ? * 3#2 *)", "cron(0 10 15W JAN,JUL ? *)",
     "at(2026-01-02T03:00:00)"],
)  # fmt: skip
def test_the_schedule_takes_eventbridge_scheduler_s_rate_cron_and_at_forms(schedule):
    assert parse_config(f"monitoring:\n  schedule: '{schedule}'\n").monitoring.schedule == schedule


@pytest.mark.parametrize(
    ("schedule", "why"),
    [
        ("hourly", "use rate(1 hour), rate(30 minutes), cron(15 * * * ? *) or at(2026-01-02T03:00:00)"),
        ("rate(1 hours)", "a rate of 1 takes the singular unit"),
        ("rate(2 hour)", "a rate of 2 takes the plural unit"),
        ("rate(0 minutes)", "a rate's value must be a positive whole number"),
        ("rate(1 week)", "use rate("),
        ("cron(15 * * * *)", "a cron expression has six fields"),
        ("cron(15 * * * * *)", "takes ? in exactly one of day-of-month and day-of-week"),
        ("cron(60 * * * ? *)", "the cron field minutes (60) must be 0-59"),
        ("cron(0 0 ? * 8 *)", "the cron field day-of-week (8) must be 1-7 or SUN-SAT"),
        ("cron(0 0 1 13 ? *)", "the cron field month (13) must be 1-12 or JAN-DEC"),
        ("cron(0 0 1 * ? 1969)", "the cron field year (1969) must be 1970-2199"),
        ("at(2026-02-30T03:00:00)", "2026-02-30T03:00:00 is not a date and time"),
    ],
)
def test_an_invalid_schedule_names_the_key_its_line_and_the_forms(schedule, why):
    found = problems(f"project:\n  name: x\nmonitoring:\n  schedule: '{schedule}'\n")
    assert why in found and "pipeline.yaml:4: monitoring.schedule: " in found and f"(got '{schedule}')" in found


def test_stages_whose_monitoring_jobs_would_share_names_are_refused():
    """With a project name of 41 characters only two hex digits of the endpoint's hash fit in a job's name: find two
    stages whose digits agree, and the configuration is refused, naming the stages."""
    import hashlib

    project = "p" * 41
    endpoint = f"{project}-endpoint"
    digits = hashlib.sha256(endpoint.encode()).hexdigest()[:2]
    stage = next(f"st{n}" for n in range(10_000) if hashlib.sha256(f"{endpoint}-st{n}".encode()).hexdigest()[:2] == digits)
    text = f"project:\n  name: {project}\ndeployment:\n  stages: [{stage}, production]\n"
    assert "deployment.stages: with project.name" in problems(text) and "would share names" in problems(text)
    other = next(f"st{n}" for n in range(10_000) if hashlib.sha256(f"{endpoint}-st{n}".encode()).hexdigest()[:2] != digits)
    assert parse_config(f"project:\n  name: {project}\ndeployment:\n  stages: [{other}, production]\n").stage_endpoints
