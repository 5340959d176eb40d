"""Drift monitoring as CloudFormation receives it (infra/drift.py, infra/monitoring.py): a schedule per stage's
endpoint with pipeline.yaml's expression, the starter's settings, the three roles each narrowed to its work (the
accuracy in service's reads included: label files, review batches, the job's manifests), the completed-job rule,
and the drift alarm and failed-job rule that reach the topic. The workflow stack monitors only the endpoints of stages
served from its own account (none at all when every stage is in an account of its own); a stage account's endpoint is
monitored from its own stack (tests/infra/test_stage_stacks.py)."""

from __future__ import annotations

import json

import pytest

from containers.deploy import monitor_metrics, monitor_start
from infra.drift import MANIFESTS, drift_alarm_name
from tests.infra import test_cross_account
from tests.infra.conftest import with_infrastructure
from tests.infra.test_permissions import actions, statements_of
from tests.infra.test_workflow_stack import logical_id, one, resources

three_accounts, staging_here = test_cross_account.three_accounts, test_cross_account.staging_here  # the same apps (cached)
STAGES = {
    "  linear_step_percent: 25\n": "  linear_step_percent: 25\n  stages: [staging, production]\n",
    "  schedule: rate(1 hour)\n": "  schedule: cron(15 * * * ? *)\n",
    "  window_hours: 1 ": "  window_hours: 3 ",
    "  drift_alarm: true ": "  drift_alarm: false ",
    "  label_attribute: null\n": "  label_attribute: review\n",
}


@pytest.fixture(scope="module")
def staged(synthesize):
    """Two release stages, a cron schedule, three-hour windows, no drift alarm and a Ground Truth label attribute."""
    return synthesize(with_infrastructure("", STAGES))


def ends(resource, tail: str) -> bool:
    """Whether a policy resource (a Fn::Join of an ARN) ends with `tail`."""
    return json.dumps(resource).endswith(json.dumps(tail)[1:-1] + '"]]}')


def schedules(template: dict) -> dict[str, dict]:
    """Endpoint -> the schedule's properties."""
    found = {}
    for body in resources(template, "AWS::Scheduler::Schedule").values():
        found[json.loads(body["Properties"]["Target"]["Input"])["endpoint_name"]] = body["Properties"]
    return found


def test_each_stage_s_endpoint_has_a_schedule_with_the_configured_expression_that_invokes_the_starter(workflow, workflow_template, staged):
    for synthesized, expression in ((workflow, "rate(1 hour)"), (staged, "cron(15 * * * ? *)")):
        template = synthesized.template_json()
        found = schedules(template)
        assert set(found) == set(synthesized.config.stage_endpoints.values())
        starter = logical_id(template, "AWS::Lambda::Function", "StartFunction")
        role = logical_id(template, "AWS::IAM::Role", "DriftMonitoringSchedulerRole")
        for schedule in found.values():
            assert schedule["ScheduleExpression"] == expression == synthesized.config.monitoring.schedule
            assert schedule["ScheduleExpressionTimezone"] == "Etc/UTC" and schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
            assert schedule["Target"]["Arn"] == {"Fn::GetAtt": [starter, "Arn"]}
            assert schedule["Target"]["RoleArn"] == {"Fn::GetAtt": [role, "Arn"]}
    trust = workflow_template["Resources"][logical_id(workflow_template, "AWS::IAM::Role", "DriftMonitoringSchedulerRole")]
    (statement,) = trust["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
    assert ":schedule-group/default" in json.dumps(statement["Condition"]["StringEquals"]["aws:SourceArn"])


def test_both_functions_ship_the_deployment_function_s_folder_and_name_their_own_modules(workflow_template):
    """Their modules import deploy.py beside them (containers/deploy/): the code is that function's asset. The
    packaged-function tests (tests/containers/deploy/test_monitor_*.py) run these handlers from that asset."""
    functions = {
        name: workflow_template["Resources"][logical_id(workflow_template, "AWS::Lambda::Function", name)]["Properties"]
        for name in ("DeployFunction", "StartFunction", "MetricsFunction")
    }
    assert functions["StartFunction"]["Code"] == functions["MetricsFunction"]["Code"] == functions["DeployFunction"]["Code"]
    assert (functions["StartFunction"]["Handler"], functions["MetricsFunction"]["Handler"]) == ("monitor_start.handler", "monitor_metrics.handler")


def test_the_starter_is_configured_from_pipeline_yaml_in_the_variables_it_reads(staged):
    template, config = staged.template_json(), staged.config
    function = template["Resources"][logical_id(template, "AWS::Lambda::Function", "StartFunction")]["Properties"]
    assert function["Handler"] == "monitor_start.handler"
    variables = function["Environment"]["Variables"]
    assert set(variables) == {*monitor_start.ENVIRONMENT.values(), "LABEL_ATTRIBUTE"}  # not WORKFLOW_ACCOUNT: its own account's
    assert (variables["LABEL_ATTRIBUTE"], variables["REVIEW_PREFIX"]) == ("review", "review/")
    data = logical_id(template, "AWS::S3::Bucket", "StorageData")
    assert variables["LABELS_PREFIX"] == {"Fn::Join": ["", ["s3://", {"Ref": data}, "/labels/"]]}
    places = json.loads(variables["ENDPOINTS"])
    assert places == {
        endpoint: {"stage": stage, "captures": f"data-capture/{endpoint}/", "reports": f"monitoring/{endpoint}/"}
        for stage, endpoint in config.stage_endpoints.items()
    }
    assert (variables["WINDOW_HOURS"], variables["INSTANCE_TYPE"], variables["ATYPICAL"]) == ("3", "ml.m5.large", "20")
    assert (variables["MAX_RUNTIME_SECONDS"], variables["VOLUME_SIZE_GB"]) == ("3600", "30")
    assert (variables["JOB_PREFIX"], variables["MODEL_PACKAGE_GROUP"]) == ("car-damage-monitor", "car-damage-models")
    assert (variables["BASELINE_PREFIX"], variables["BASELINE_FOLDER"]) == ("car-damage-pipeline/", "evaluation")
    assert variables["ROLE_ARN"] == {"Fn::GetAtt": [logical_id(template, "AWS::IAM::Role", "DriftMonitoringJobRole"), "Arn"]}
    metrics_function = template["Resources"][logical_id(template, "AWS::Lambda::Function", "MetricsFunction")]["Properties"]
    assert metrics_function["Environment"]["Variables"] == {"METRIC_NAMESPACE": "car-damage/Monitoring", "JOB_PREFIX": "car-damage-monitor"}


def test_the_job_role_reads_captures_and_baselines_and_writes_only_the_reports(workflow, workflow_template):
    template, endpoint, pipeline = workflow_template, workflow.config.endpoint_name, workflow.config.pipeline_name
    role = statements_of(template, "DriftMonitoringJobRole")
    trust = template["Resources"][logical_id(template, "AWS::IAM::Role", "DriftMonitoringJobRole")]["Properties"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    reads = json.dumps(role["ReadCapturesAndBaselines"]["Resource"])
    assert f"/data-capture/{endpoint}/*" in reads and f"/{pipeline}/*/evaluation/*" in reads
    assert actions(role["ReadCapturesAndBaselines"]) == ["s3:GetObject"]
    listed = [f"{pipeline}/*/evaluation/*", f"data-capture/{endpoint}/*"]
    assert role["ListCapturesAndBaselines"]["Condition"] == {"StringLike": {"s3:prefix": listed}}
    writes = [s for s in role.values() if any(a.startswith("s3:Put") for a in actions(s))]
    assert writes == [role["WriteReports"]] and ends(role["WriteReports"]["Resource"], f"/monitoring/{endpoint}/*")
    assert role["PublishJobMetrics"]["Condition"] == {"StringEquals": {"cloudwatch:namespace": "/aws/sagemaker/ProcessingJobs"}}
    assert ":log-group:/aws/sagemaker/ProcessingJobs" in json.dumps(role["WriteJobLogs"]["Resource"])


def test_without_a_label_attribute_the_starter_gets_no_variable_for_it(workflow_template):
    function = workflow_template["Resources"][logical_id(workflow_template, "AWS::Lambda::Function", "StartFunction")]["Properties"]
    assert set(function["Environment"]["Variables"]) == set(monitor_start.ENVIRONMENT.values())


def test_for_the_accuracy_in_service_the_job_reads_label_files_and_its_manifests_and_the_starter_reads_review_batches(workflow, workflow_template):
    template, endpoint = workflow_template, workflow.config.endpoint_name
    data = logical_id(template, "AWS::S3::Bucket", "StorageData")
    job = statements_of(template, "DriftMonitoringJobRole")
    assert actions(job["ReadLabelsAndManifests"]) == ["s3:GetObject"]
    label_files, *manifests = job["ReadLabelsAndManifests"]["Resource"]
    assert label_files == {"Fn::Join": ["", [{"Fn::GetAtt": [data, "Arn"]}, "/labels/*"]]}
    assert [ends(resource, f"/monitoring/{endpoint}/*/{name}") for resource, name in zip(manifests, MANIFESTS, strict=True)] == [True, True]
    assert job["ListLabels"]["Resource"] == {"Fn::GetAtt": [data, "Arn"]} and job["ListLabels"]["Condition"] == {
        "StringLike": {"s3:prefix": ["labels/*"]}
    }
    starter = statements_of(template, "StartFunctionRole")
    assert starter["ListLabels"]["Condition"] == {"StringLike": {"s3:prefix": ["labels/*"]}}
    assert starter["ListReviewBatches"]["Condition"] == {"StringLike": {"s3:prefix": ["review/*"]}}
    assert actions(starter["ReadReviewBatches"]) == ["s3:GetObject"] and ends(starter["ReadReviewBatches"]["Resource"], "/review/*review.json")
    assert actions(starter["DecryptReviewBatches"]) == ["kms:Decrypt"]
    reads = [s for s in starter.values() if "s3:GetObject" in actions(s)]
    assert reads == [starter["ReadReviewBatches"]]  # review batches' documents only: not their photos, nor the captures


def test_the_starter_lists_captures_starts_only_monitoring_jobs_and_passes_only_the_job_role(workflow, workflow_template):
    template, endpoint = workflow_template, workflow.config.endpoint_name
    role = statements_of(template, "StartFunctionRole")
    assert role["ListCaptures"]["Condition"] == {"StringLike": {"s3:prefix": [f"data-capture/{endpoint}/*"]}}
    assert actions(role["StartMonitoringJobs"]) == ["sagemaker:CreateProcessingJob"]
    assert ends(role["StartMonitoringJobs"]["Resource"], ":processing-job/car-damage-monitor-*")
    job_role = logical_id(template, "AWS::IAM::Role", "DriftMonitoringJobRole")
    assert role["PassTheJobRoleToSageMakerOnly"]["Resource"] == {"Fn::GetAtt": [job_role, "Arn"]}
    assert role["PassTheJobRoleToSageMakerOnly"]["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    creating = [s for s in role.values() if any(a.startswith("sagemaker:Create") for a in actions(s))]
    assert creating == [role["StartMonitoringJobs"]]
    assert ends(role["WriteEmptyReports"]["Resource"], f"/monitoring/{endpoint}/*")


def test_the_metrics_function_puts_metrics_in_the_project_s_namespace_only(workflow_template):
    role = statements_of(workflow_template, "MetricsFunctionRole")
    assert role["PutMonitoringMetrics"]["Condition"] == {"StringEquals": {"cloudwatch:namespace": monitor_metrics.namespace("car-damage")}}
    assert actions(role["DescribeMonitoringJobs"]) == ["sagemaker:DescribeProcessingJob"]
    assert ends(role["ReadReports"]["Resource"], "/monitoring/car-damage-endpoint/*")
    rule = workflow_template["Resources"][logical_id(workflow_template, "AWS::Events::Rule", "OnMonitoringJobCompleted")]["Properties"]
    assert rule["EventPattern"] == {
        "source": ["aws.sagemaker"],
        "detail-type": [monitor_metrics.PROCESSING_EVENT],
        "detail": {"ProcessingJobName": [{"prefix": "car-damage-monitor-"}], "ProcessingJobStatus": ["Completed"]},
    }
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [logical_id(workflow_template, "AWS::Lambda::Function", "MetricsFunction"), "Arn"]}


def test_the_drift_alarm_watches_the_endpoint_s_drift_and_tells_the_topic(workflow, workflow_template):
    endpoint = workflow.config.endpoint_name
    alarms = [body["Properties"] for body in resources(workflow_template, "AWS::CloudWatch::Alarm").values()]
    (alarm,) = [body for body in alarms if body["AlarmName"] == drift_alarm_name(endpoint)]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("car-damage/Monitoring", "Drift")
    assert alarm["Dimensions"] == [{"Name": "Endpoint", "Value": endpoint}]  # whatever package is served
    assert (alarm["Statistic"], alarm["Threshold"], alarm["ComparisonOperator"]) == ("Maximum", 1, "GreaterThanOrEqualToThreshold")
    assert alarm["TreatMissingData"] == "ignore"  # a window is published once per schedule: the state holds between
    topic, _ = one(workflow_template, "AWS::SNS::Topic")
    assert alarm["AlarmActions"] == alarm["OKActions"] == [{"Ref": topic}]
    failed = workflow_template["Resources"][logical_id(workflow_template, "AWS::Events::Rule", "OnMonitoringJobFailed")]["Properties"]
    assert failed["EventPattern"]["detail"]["ProcessingJobName"] == [{"prefix": "car-damage-monitor-"}]
    assert failed["EventPattern"]["detail"]["ProcessingJobStatus"] == ["Failed", "Stopped"]
    (target,) = failed["Targets"]
    assert target["Arn"] == {"Ref": topic} and "$.detail.ProcessingJobName" in json.dumps(target["InputTransformer"])


def test_without_the_alarm_setting_no_drift_alarm_but_failed_jobs_are_still_told(staged):
    template = staged.template_json()
    names = {body["Properties"]["AlarmName"] for body in resources(template, "AWS::CloudWatch::Alarm").values()}
    assert not {drift_alarm_name(endpoint) for endpoint in staged.config.stage_endpoints.values()} & names
    logical_id(template, "AWS::Events::Rule", "OnMonitoringJobFailed")


def test_without_captured_data_there_is_nothing_to_monitor_and_the_stack_has_no_monitoring(synthesize):
    template = synthesize(with_infrastructure("", {"  data_capture_percent: 100 ": "  data_capture_percent: 0 "})).template_json()
    assert not resources(template, "AWS::Scheduler::Schedule")
    assert not [name for name in template["Resources"] if "DriftMonitoring" in name or "OnMonitoringJob" in name]
    assert not [body for body in resources(template, "AWS::CloudWatch::Alarm").values() if body["Properties"].get("MetricName") == "Drift"]


def test_operators_read_review_batches_review_json_as_the_starter_does(workflow_template):
    """`cardamage monitor --since` on AWS finds the capture files review batches took photos from as the starter
    does: through each batch's review.json, and nothing else under review/."""
    template = workflow_template
    policy = template["Resources"][logical_id(template, "AWS::IAM::ManagedPolicy", "PeopleOperator")]
    operator = {statement.get("Sid"): statement for statement in policy["Properties"]["PolicyDocument"]["Statement"]}
    starter = statements_of(template, "StartFunctionRole")
    assert operator["ReadReviewBatches"]["Action"] == "s3:GetObject"
    assert operator["ReadReviewBatches"]["Resource"] == starter["ReadReviewBatches"]["Resource"]


def test_only_the_endpoints_of_stages_in_the_workflow_s_account_are_monitored(staging_here, three_accounts):
    """Production is in an account of its own: it gets no schedule, no place in the starter's settings, no capture
    or report the job may touch and no drift alarm here, but its own stack has them; staging, served here, keeps all of
    them. With no stage here there is no drift monitoring at all in the workflow stack."""
    template, config = staging_here.template_json(), staging_here.config
    staging, production = config.stage_endpoints["staging"], config.stage_endpoints["production"]
    assert set(schedules(template)) == {staging}
    starter = template["Resources"][logical_id(template, "AWS::Lambda::Function", "StartFunction")]["Properties"]
    assert list(json.loads(starter["Environment"]["Variables"]["ENDPOINTS"])) == [staging]
    names = {body["Properties"]["AlarmName"] for body in resources(template, "AWS::CloudWatch::Alarm").values()}
    assert drift_alarm_name(staging) in names and drift_alarm_name(production) not in names
    for role in ("DriftMonitoringJobRole", "StartFunctionRole"):
        policy = json.dumps(statements_of(template, role))
        assert f"/{production}/" not in policy and f"/{staging}/" in policy, role
    logical_id(template, "AWS::Events::Rule", "OnMonitoringJobFailed")
    (production_stack,) = staging_here.stack.stage_stacks
    production_template = staging_here.template_json(production_stack)
    assert set(schedules(production_template)) == {production}
    assert drift_alarm_name(production) in {
        body["Properties"]["AlarmName"] for body in resources(production_template, "AWS::CloudWatch::Alarm").values()
    }
    nothing = three_accounts.template_json()
    assert not resources(nothing, "AWS::Scheduler::Schedule")
    assert not [name for name in nothing["Resources"] if "DriftMonitoring" in name or "OnMonitoringJob" in name]
