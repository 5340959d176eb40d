"""Every role and people's policy the stacks create allows what runs under it calls, and what AWS documents it
does with the role's credentials; an allowed action that nothing needs is an UnusedGrant warning in pytest's
warnings summary, so least privilege is checked by reading the output. The checker is tests/infra/calls.py.

What runs under each: the jobs' and endpoint's programs (the execution role), the pipeline definition's steps
(the pipeline role), Ground Truth (the labelling role), each function's handler in its own folder, the CLI
commands of approvers and operators, and the CI/CD projects' buildspec commands. With release stages in accounts of
their own (STAGE_ACCOUNT_CALLS): each stage's deploy function, the champion function with production's reader role,
promote with the stages' promote roles, the approvers' and operators' reads with the stages' reader roles, and each
stage's drift monitor (its starter as the monitor role, its metrics function, its job role and its schedules' role)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.infra import test_cross_account
from tests.infra.calls import (
    Call,
    Need,
    Program,
    allowed_actions,
    allows,
    check_role,
    implied,
    logical_id,
    policy_statements,
    python_files,
    resources_of,
    role_statements,
)
from tests.support import ROOT

three_accounts = test_cross_account.three_accounts  # the same synthesized app (the synthesize fixture caches it)

# Where AWS documents what it does with a role's credentials, or what a caller needs besides the call itself.
SAGEMAKER_ROLES = "How to use SageMaker AI execution roles, https://docs.aws.amazon.com/sagemaker/latest/dg/sagemaker-roles.html"
PIPELINES_ACCESS = "SageMaker Pipelines Access Management, https://docs.aws.amazon.com/sagemaker/latest/dg/build-and-manage-access.html"
PIPELINES_MANAGED = (
    "AWS Managed Policies for SageMaker Pipelines (Lambda steps invoke their functions), "
    "https://docs.aws.amazon.com/sagemaker/latest/dg/security-iam-awsmanpol-pipelines.html"
)
GROUND_TRUTH_ROLE = (
    "Create a SageMaker Execution Role for a Ground Truth Labeling Job, "
    "https://docs.aws.amazon.com/sagemaker/latest/dg/sms-security-permission-execution-role.html"
)
GROUND_TRUTH_POLICIES = (
    "Use IAM Managed Policies with Ground Truth (AmazonSageMakerGroundTruthExecution), "
    "https://docs.aws.amazon.com/sagemaker/latest/dg/sms-security-permissions-get-started.html"
)
LAMBDA_LOGS = (
    "AWS managed policy AWSLambdaBasicExecutionRole (a function writes its logs), "
    "https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AWSLambdaBasicExecutionRole.html"
)
S3_KMS = (
    "Using server-side encryption with AWS KMS keys (SSE-KMS): uploading needs kms:GenerateDataKey, reading kms:Decrypt, "
    "https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html"
)
SNS_KMS = "Amazon SNS key management: publishers to an encrypted topic, https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html"
AUTOSCALING = "Auto scaling prerequisites: Permissions, https://docs.aws.amazon.com/sagemaker/latest/dg/endpoint-auto-scaling-prerequisites.html"
CODEBUILD_ROLE = (
    "Allow CodeBuild to interact with other AWS services (the service role), "
    "https://docs.aws.amazon.com/codebuild/latest/userguide/setting-up-service-role.html"
)
CODEPIPELINE_ROLE = "Manage the CodePipeline service role, https://docs.aws.amazon.com/codepipeline/latest/userguide/how-to-custom-role.html"
CODESTAR_ACTION = (
    "CodeStarSourceConnection action reference: service role permissions, "
    "https://docs.aws.amazon.com/codepipeline/latest/userguide/action-reference-CodestarConnectionSource.html"
)
CDK_BOOTSTRAP = (
    "AWS CDK bootstrapping: the CLI and cdk-assets assume the bootstrap's deploy and publishing roles, "
    "https://docs.aws.amazon.com/cdk/v2/guide/bootstrapping-env.html"
)
CDK_PIPELINES = "aws-cdk-lib pipelines CodePipeline.selfMutateAction: the statements CDK Pipelines gives `cdk deploy` (not AWS documentation)"
HEAD_OBJECT = (
    "HeadObject, Permissions: without s3:ListBucket a missing object is 403, not 404 (Amazon S3 API Reference), "
    "https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html"
)
SCHEDULER_ROLE = (
    "Set up the execution role (EventBridge Scheduler invokes a schedule's target with it), "
    "https://docs.aws.amazon.com/scheduler/latest/UserGuide/setting-up.html#setting-up-execution-role"
)


def needs(source: str, why: str, *actions: str) -> tuple[Need, ...]:
    return tuple(Need(action, source, why) for action in actions)


# What a call or a need brings with it: pattern of the action -> further needs.
IMPLIED = {
    "s3:GetObject*": needs(S3_KMS, "reading objects the project's key encrypts", "kms:Decrypt"),
    "s3:PutObject": needs(S3_KMS, "writing objects the project's key encrypts", "kms:GenerateDataKey"),
    "sns:Publish": needs(SNS_KMS, "publishing to the topic the project's key encrypts", "kms:GenerateDataKey", "kms:Decrypt"),
    "application-autoscaling:RegisterScalableTarget": needs(
        AUTOSCALING,
        "scaling a SageMaker endpoint variant",
        "sagemaker:DescribeEndpoint",
        "sagemaker:DescribeEndpointConfig",
        "sagemaker:UpdateEndpointWeightsAndCapacities",
        "iam:CreateServiceLinkedRole",
        "cloudwatch:PutMetricAlarm",
        "cloudwatch:DescribeAlarms",
        "cloudwatch:DeleteAlarms",
    ),
    **{
        f"sagemaker:{api}": needs(SAGEMAKER_ROLES, f"passing a role in {api} (Passing Roles)", "iam:PassRole")
        for api in ("CreateModel", "CreateLabelingJob", "CreateProcessingJob", "CreateTrainingJob")
    },
}

# The execution role: what SageMaker does with it for Processing and Training jobs and for models (the endpoint,
# Batch Transform), with the project's key on the inputs, outputs and volumes (the same page, each API's section).
EXECUTION = (
    *needs(
        SAGEMAKER_ROLES,
        "jobs and models (CreateProcessingJob, CreateTrainingJob, CreateModel: Execution Role Permissions)",
        "cloudwatch:PutMetricData",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "logs:CreateLogGroup",
        "logs:DescribeLogStreams",
        "s3:GetObject",
        "s3:PutObject",
        "s3:ListBucket",
        "ecr:GetAuthorizationToken",
        "ecr:BatchCheckLayerAvailability",
        "ecr:GetDownloadUrlForLayer",
        "ecr:BatchGetImage",
    ),
    *needs(SAGEMAKER_ROLES, "SSE-KMS inputs, a KMS key for outputs and for volumes", "kms:Decrypt", "kms:Encrypt", "kms:CreateGrant"),
    *needs(SAGEMAKER_ROLES, "uploading outputs (Add Additional Amazon S3 Permissions)", "s3:AbortMultipartUpload"),
)
GROUND_TRUTH_KMS = (
    "Encrypt Output Data and Storage Volume with AWS KMS (the labelling job's role and a customer key), "
    "https://docs.aws.amazon.com/sagemaker/latest/dg/sms-security-kms-permissions.html"
)
GROUND_TRUTH = (
    *needs(GROUND_TRUTH_ROLE, "reading the input data and writing the labels", "s3:GetObject", "s3:PutObject"),
    # The page lists kms:DescribeKey too, which the role has never been given.
    *needs(GROUND_TRUTH_KMS, "output encrypted with the project's key", "kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*"),
    *needs(GROUND_TRUTH_POLICIES, "the labelling job's uploads", "s3:AbortMultipartUpload"),
    *needs(
        GROUND_TRUTH_ROLE,
        "worker metrics and job status in CloudWatch (the actions AmazonSageMakerGroundTruthExecution grants for it)",
        "cloudwatch:PutMetricData",
        "logs:CreateLogGroup",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "logs:DescribeLogStreams",
    ),
)
FUNCTION = needs(LAMBDA_LOGS, "the function's log lines", "logs:CreateLogStream", "logs:PutLogEvents")
SCHEDULING = needs(SCHEDULER_ROLE, "invoking the starter function on the schedule", "lambda:InvokeFunction")
# A pipeline step type -> what SageMaker Pipelines calls with the pipeline's role to run it. Condition steps need
# nothing themselves (their JsonGet reads, below); a Fail step only ends the execution.
STEP_NEEDS = {
    "Processing": needs(PIPELINES_ACCESS, "a Processing step (Create, Describe)", "sagemaker:CreateProcessingJob", "sagemaker:DescribeProcessingJob"),
    "Training": needs(PIPELINES_ACCESS, "a Training step (Create, Describe)", "sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob"),
    "RegisterModel": needs(PIPELINES_ACCESS, "a Register step (Create, Describe)", "sagemaker:CreateModelPackage", "sagemaker:DescribeModelPackage"),
    "Lambda": needs(PIPELINES_MANAGED, "a Lambda step", "lambda:InvokeFunction"),
    "Condition": (),
    "Fail": (),
}

# The programs in the jobs and the endpoint (they run as the execution role), the functions' folders, the CLI.
JOB_PROGRAMS = ("containers/processing", "containers/training", "containers/evaluation", "containers/inference", "containers/common")
CLI_FILES = (
    "pipelines/aws.py",
    "pipelines/backends/__init__.py",
    "pipelines/backends/aws.py",
    "pipelines/review.py",
    "pipelines/promote.py",
    "pipelines/batch.py",
    "pipelines/cli/app.py",
    "pipelines/cli/commands.py",
    "pipelines/approvals.py",
    "pipelines/console/app.py",
    "pipelines/cli/console_commands.py",
    "pipelines/cli/aws_commands.py",
    "pipelines/cli/review_commands.py",
    "pipelines/cli/batch_commands.py",
    "pipelines/cli/local_commands.py",
    "pipelines/cli/monitor_commands.py",
    "pipelines/cli/report_commands.py",
)
CLI = "pipelines/cli/"
# Approvers: `approve` without --force and `reject` (both _set_approval), `models`, `executions`, `console` and `report`.
APPROVER = (
    f"{CLI}commands.py:_set_approval",
    f"{CLI}commands.py:models",
    f"{CLI}commands.py:executions",
    f"{CLI}console_commands.py:console_command",
    f"{CLI}report_commands.py:report",
)
# Operators: the other commands on AWS, and the reads they need to choose what to deploy (not `upsert`: the stack
# owns the pipeline). `approve --force` deploys, so it needs both policies.
OPERATOR = (
    f"{CLI}aws_commands.py:start",
    f"{CLI}aws_commands.py:wait",
    f"{CLI}aws_commands.py:label",
    f"{CLI}commands.py:executions",
    f"{CLI}commands.py:models",
    f"{CLI}report_commands.py:report",
    f"{CLI}commands.py:deploy",
    f"{CLI}commands.py:promote",
    f"{CLI}review_commands.py:review_command",
    f"{CLI}batch_commands.py:batch_predict",
    f"{CLI}local_commands.py:predict",
    f"{CLI}monitor_commands.py:monitor_command",
)

# Each role or policy of the workflow stack (a fragment of its logical id) and who works as it.
WORKFLOW_ROLES = {
    "RolesSageMakerExecution": "SageMaker, for the jobs and the endpoint",
    "RolesPipeline": "SageMaker Pipelines, for the steps",
    "RolesLabeling": "Ground Truth",
    "DeploymentDeployFunctionRole": "the deployment function",
    "DeploymentChampionFunctionRole": "the champion function",
    "TriggerTriggerFunctionRole": "the trigger function",
    "DriftMonitoringJobRole": "SageMaker, for the drift monitoring jobs",
    "DriftMonitoringStartFunctionRole": "the drift monitor's starter function",
    "DriftMonitoringMetricsFunctionRole": "the drift monitor's metrics function",
    "DriftMonitoringSchedulerRole": "EventBridge Scheduler, for the drift monitor's schedules",
    "BucketNotificationsHandler": "CDK's own handler that turns on the data bucket's EventBridge notifications",
}
PEOPLE = {"PeopleApprover": APPROVER, "PeopleOperator": OPERATOR}


# Calls that run only where a release stage is served from an account of its own (deployment.accounts): the
# default configuration's roles never make them. (file, client method) -> when it runs; each is held to the role it
# runs as in the three-account app's tests below.
STAGE_ACCOUNT_CALLS = {
    ("containers/deploy/champion.py", "assume_role"): "the champion function assumes production's reader role (CHAMPION_ROLE_ARN)",
    ("containers/deploy/deploy.py", "upload_fileobj"): "a stage in another region copies the archive into its own bucket (MODEL_COPY_S3_URI)",
    ("pipelines/aws.py", "assume_role"): "cardamage promote and deploy assume a stage account's promote role, models its reader role",
    ("pipelines/aws.py", "get_function_configuration"): "cardamage promote reads a stage's deploy settings as its promote role",
}


def in_the_workflow_account_alone(calls: list[Call]) -> list[Call]:
    """`calls` without STAGE_ACCOUNT_CALLS."""
    return [call for call in calls if (call.where.rsplit(":", 1)[0], call.method) not in STAGE_ACCOUNT_CALLS]


def _check(role: str, template: dict, calls: list[Call], own: tuple[Need, ...] = (), rules: dict = IMPLIED) -> list[str]:
    allowed = allowed_actions(role_statements(template, logical_id(template, "AWS::IAM::Role", role)))
    required = [*(a for call in calls for a in call.actions), *(need.action for need in own)]
    return check_role(role, allowed, calls, [*own, *implied(required, rules)])


def test_every_role_and_people_policy_of_the_workflow_stack_has_a_role_test(workflow_template):
    """A new role or policy fails here until it has a test below."""
    for kind, known in (("AWS::IAM::Role", WORKFLOW_ROLES), ("AWS::IAM::ManagedPolicy", PEOPLE)):
        for name in resources_of(workflow_template, kind):
            covering = [fragment for fragment in known if fragment in name]
            assert len(covering) == 1, f"{kind} {name} has {len(covering)} role tests: add it to this module"
        for fragment in known:
            logical_id(workflow_template, kind, fragment)  # each test's role exists


def test_the_stage_ci_cd_deploys_has_the_workflow_stack_s_roles_and_policies(workflow_template, cicd):
    """The CI/CD stage deploys the same workflow stack, so the workflow stack's role tests hold for it."""
    stage = cicd.template_json(cicd.stack.stage.stack)
    for kind in ("AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        assert sorted(resources_of(stage, kind)) == sorted(resources_of(workflow_template, kind)), kind


def test_the_execution_role_allows_what_sagemaker_does_for_the_jobs_and_models_and_what_their_programs_call(workflow_template):
    """No job or endpoint program calls AWS today: SageMaker moves their data. Should one start (a boto3 client
    in any of their files), its calls are held to the role like a function's."""
    program = Program(python_files(*JOB_PROGRAMS))
    calls = program.calls(*(module.relative for module in program.modules.values()))
    _check("RolesSageMakerExecution", workflow_template, calls, EXECUTION)


def pipeline_steps(steps: list[dict]) -> Iterator[dict]:
    for step in steps:
        yield step
        arguments = step.get("Arguments") or {}
        if step["Type"] == "Condition":
            yield from pipeline_steps([*arguments.get("IfSteps", []), *arguments.get("ElseSteps", [])])


def pipeline_needs(definition: str) -> tuple[Need, ...]:
    """What SageMaker Pipelines does with the pipeline's role for this definition's steps."""
    document = json.loads(definition)
    found: list[Need] = []
    for step in pipeline_steps(document["Steps"]):
        if step["Type"] not in STEP_NEEDS:
            raise AssertionError(f"step {step['Name']} is a {step['Type']} step: add what it needs to STEP_NEEDS, with its source")
        found += STEP_NEEDS[step["Type"]]
        if "RoleArn" in (step.get("Arguments") or {}):
            found += needs(PIPELINES_ACCESS, f"passing its role to step {step['Name']}'s job", "iam:PassRole")
    if '"Std:JsonGet"' in definition:
        found += needs(PIPELINES_ACCESS, "JsonGet reading a property file (the quality gate's evaluation.json)", "s3:GetObject")
    return tuple(found)


def test_the_pipeline_role_allows_what_sagemaker_pipelines_does_for_each_step_of_the_definition(workflow_template, definition):
    own = pipeline_needs(definition)
    assert {need.action for need in own} >= {"sagemaker:CreateTrainingJob", "lambda:InvokeFunction", "s3:GetObject", "iam:PassRole"}
    _check("RolesPipeline", workflow_template, [], own)


def test_the_labelling_role_allows_what_ground_truth_does_with_it(workflow_template):
    _check("RolesLabeling", workflow_template, [], GROUND_TRUTH)


FUNCTION_FOLDERS = {
    "DeploymentDeployFunctionRole": "deploy",
    "DeploymentChampionFunctionRole": "deploy",
    "TriggerTriggerFunctionRole": "trigger",
    "DriftMonitoringStartFunctionRole": "deploy",
    "DriftMonitoringMetricsFunctionRole": "deploy",
}


@pytest.mark.parametrize("role", sorted(FUNCTION_FOLDERS))
def test_each_function_s_role_allows_every_call_its_handler_makes(workflow_template, role):
    """The handler is the template's (Handler "deploy.handler": deploy.py's `handler`), followed through the
    function's own folder (its code asset), helpers of sibling modules included."""
    template = workflow_template
    role_id = logical_id(template, "AWS::IAM::Role", role)
    (function,) = [f for f in resources_of(template, "AWS::Lambda::Function").values() if f["Properties"]["Role"] == {"Fn::GetAtt": [role_id, "Arn"]}]
    module, handler = function["Properties"]["Handler"].rsplit(".", 1)
    folder = FUNCTION_FOLDERS[role]
    calls = in_the_workflow_account_alone(Program(python_files(f"containers/{folder}")).calls(f"containers/{folder}/{module}.py:{handler}"))
    assert calls, f"{function['Properties']['Handler']} makes no AWS call?"
    _check(role, template, calls, FUNCTION)
    if role == "DeploymentChampionFunctionRole":  # it only reads what is served
        assert {call.method.split("_")[0] for call in calls} <= {"describe", "list"}


def test_the_monitoring_job_role_allows_what_sagemaker_does_for_a_processing_job_and_what_the_monitor_calls(workflow_template):
    """The monitor calls nothing (it runs network-isolated); should it start to, its calls are held to the role."""
    program = Program(python_files("containers/monitoring", "containers/common"))
    calls = program.calls(*(module.relative for module in program.modules.values()))
    assert calls == []
    _check("DriftMonitoringJobRole", workflow_template, calls, EXECUTION)


def test_the_schedules_role_only_invokes_the_starter(workflow_template):
    role = "DriftMonitoringSchedulerRole"
    _check(role, workflow_template, [], SCHEDULING)
    (statement,) = role_statements(workflow_template, logical_id(workflow_template, "AWS::IAM::Role", role))
    starter = logical_id(workflow_template, "AWS::Lambda::Function", "StartFunction")
    assert json.dumps(statement["Resource"]).count(starter) == 2  # the function, and (CDK's grant) its versions


def test_cdk_s_bucket_notifications_handler_is_cdk_s_and_only_sets_the_data_bucket_s_notifications(workflow_template):
    """CDK's own function (turning on EventBridge notifications at deploy time): not our code, so only its grants are checked."""
    role = logical_id(workflow_template, "AWS::IAM::Role", "BucketNotificationsHandler")
    assert allowed_actions(role_statements(workflow_template, role)) == {
        "s3:PutBucketNotification",
        "logs:CreateLogGroup",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    }


@pytest.mark.parametrize("policy", sorted(PEOPLE))
def test_each_people_policy_allows_every_call_of_its_commands(workflow_template, policy):
    program = Program([ROOT / path for path in CLI_FILES] + python_files("containers/deploy", "containers/trigger"))
    calls = in_the_workflow_account_alone(program.calls(*PEOPLE[policy]))
    allowed = allowed_actions(policy_statements(workflow_template, logical_id(workflow_template, "AWS::IAM::ManagedPolicy", policy)))
    required = [a for call in calls for a in call.actions]
    check_role(policy, allowed, calls, implied(required, IMPLIED))
    if policy == "PeopleApprover":  # approvers change nothing but approval statuses
        changes = {a for a in allowed if re.match(r"sagemaker:(Create|Update|Delete|Start|Stop|Add)", a)}
        assert changes == {"sagemaker:UpdateModelPackage"}, changes


def test_the_calls_made_only_with_stage_accounts_are_still_in_the_code():
    """Each entry of STAGE_ACCOUNT_CALLS names a call the code makes, so that none hides another call of that name."""
    program = Program([ROOT / "pipelines/aws.py", *python_files("containers/deploy")])
    made = {(call.where.rsplit(":", 1)[0], call.method) for call in program.calls(*(path for path, _ in STAGE_ACCOUNT_CALLS))}
    assert set(STAGE_ACCOUNT_CALLS) <= made


def stage_templates(synthesized) -> dict[str, dict]:
    return {stack.stage: synthesized.template_json(stack) for stack in synthesized.stack.stage_stacks}


@pytest.mark.parametrize("stage", ["staging", "production"])
def test_each_stage_s_deploy_role_allows_every_call_its_handler_makes(three_accounts, stage):
    """The stage's function runs deploy.py's handler as its deploy role (the stage stack's), reading the package and
    its archive across accounts and deploying in its own. Only production, in another region than the workflow's,
    copies the archive: staging's role may not write there."""
    template = stage_templates(three_accounts)[stage]
    role = logical_id(template, "AWS::IAM::Role", "DeployRole")
    (function,) = [f for f in resources_of(template, "AWS::Lambda::Function").values() if f["Properties"]["Role"] == {"Fn::GetAtt": [role, "Arn"]}]
    assert function["Properties"]["Handler"] == "deploy.handler"
    calls = Program(python_files("containers/deploy")).calls("containers/deploy/deploy.py:handler")
    copying = [call for call in calls if call not in in_the_workflow_account_alone(calls)]
    assert [call.method for call in copying] == ["upload_fileobj"]
    if stage == "production":  # the copy is made unless HeadObject finds it: 404, not 403, needs s3:ListBucket
        _check("DeployRole", template, calls, (*FUNCTION, *needs(HEAD_OBJECT, "telling a missing copy from a refused read", "s3:ListBucket")))
    else:
        _check("DeployRole", template, in_the_workflow_account_alone(calls), FUNCTION)
    assert allows(allowed_actions(role_statements(template, role)), "s3:PutObject") == (stage == "production")


# Each role of a stage stack's drift monitor (a fragment of its logical id) and the handler that runs as it.
STAGE_DRIFT_FUNCTIONS = {"MonitorRole": "monitor_start.handler", "DriftMonitoringMetricsFunctionRole": "monitor_metrics.handler"}


@pytest.mark.parametrize("stage", ["staging", "production"])
def test_each_stage_s_drift_monitoring_roles_allow_what_their_code_and_aws_do_with_them(three_accounts, stage):
    """The stage's starter runs as the monitor role (the name the workflow's grants admit), its metrics function as
    its own role, its jobs as the job role and its schedules as the scheduler role, all in the stage's stack: each
    allows the calls of its handler (followed through containers/deploy/) or what AWS does with it."""
    template = stage_templates(three_accounts)[stage]
    functions = resources_of(template, "AWS::Lambda::Function").values()
    for fragment, handler in STAGE_DRIFT_FUNCTIONS.items():
        role = logical_id(template, "AWS::IAM::Role", fragment)
        (function,) = [f for f in functions if f["Properties"]["Role"] == {"Fn::GetAtt": [role, "Arn"]}]
        assert function["Properties"]["Handler"] == handler
        module, name = handler.rsplit(".", 1)
        calls = in_the_workflow_account_alone(Program(python_files("containers/deploy")).calls(f"containers/deploy/{module}.py:{name}"))
        _check(fragment, template, calls, FUNCTION)
    _check("DriftMonitoringJobRole", template, [], EXECUTION)
    _check("DriftMonitoringSchedulerRole", template, [], SCHEDULING)


def test_the_champion_function_and_production_s_reader_role_allow_every_call_of_its_handler(three_accounts):
    """Production is in an account of its own: the function reads the packages as its own role, and production's
    endpoint as the reader role it assumes there, which may only read."""
    workflow, production = three_accounts.template_json(), stage_templates(three_accounts)["production"]
    own = allowed_actions(role_statements(workflow, logical_id(workflow, "AWS::IAM::Role", "ChampionFunctionRole")))
    assumed = allowed_actions(role_statements(production, logical_id(production, "AWS::IAM::Role", "ReaderRole")))
    calls = Program(python_files("containers/deploy")).calls("containers/deploy/champion.py:handler")
    check_role("ChampionFunctionRole with ReaderRole", own | assumed, calls, FUNCTION)
    assert own - {"logs:CreateLogStream", "logs:PutLogEvents"} == {"sts:AssumeRole", "sagemaker:DescribeModelPackage"}
    assert {action.split(":")[1].split("*")[0][:4] for action in assumed} <= {"Desc", "List"}


def test_approvers_with_the_stages_reader_roles_allow_every_call_of_their_commands(three_accounts):
    """What a stage account serves is read as its reader role (`cardamage models`, the console): the approvers' own
    policy in the workflow account and the stages' reader roles together allow every call of their commands."""
    workflow = three_accounts.template_json()
    allowed = allowed_actions(policy_statements(workflow, logical_id(workflow, "AWS::IAM::ManagedPolicy", "PeopleApprover")))
    for template in stage_templates(three_accounts).values():
        allowed |= allowed_actions(role_statements(template, logical_id(template, "AWS::IAM::Role", "ReaderRole")))
    program = Program([ROOT / path for path in CLI_FILES] + python_files("containers/deploy", "containers/trigger"))
    for entry in APPROVER:
        calls = program.calls(entry)
        check_role(f"PeopleApprover with the reader roles ({entry})", allowed, calls, implied([a for call in calls for a in call.actions], IMPLIED))


def test_operators_with_the_stages_promote_roles_allow_every_call_of_promote(three_accounts):
    """`cardamage promote` between stage accounts: the operator's own policy in the workflow account (the package,
    its archive, assuming the promote roles) and each stage's promote role (its function's settings, the smoke
    test, deploying) together allow every call it makes."""
    workflow = three_accounts.template_json()
    allowed = allowed_actions(policy_statements(workflow, logical_id(workflow, "AWS::IAM::ManagedPolicy", "PeopleOperator")))
    for template in stage_templates(three_accounts).values():
        allowed |= allowed_actions(role_statements(template, logical_id(template, "AWS::IAM::Role", "PromoteRole")))
        allowed |= allowed_actions(role_statements(template, logical_id(template, "AWS::IAM::Role", "ReaderRole")))
    program = Program([ROOT / path for path in CLI_FILES] + python_files("containers/deploy", "containers/trigger"))
    calls = program.calls(f"{CLI}commands.py:promote") + program.calls(f"{CLI}commands.py:deploy")
    check_role("PeopleOperator with the promote roles", allowed, calls, implied([a for call in calls for a in call.actions], IMPLIED))


UPDATE_PACKAGE = "sagemaker:UpdateModelPackage"


def approval_changers(template: dict) -> list[str]:
    """The roles and people's policies (logical ids) that allow sagemaker:UpdateModelPackage, wildcards included."""
    found = [role for role in resources_of(template, "AWS::IAM::Role") if allows(allowed_actions(role_statements(template, role)), UPDATE_PACKAGE)]
    return found + [
        policy
        for policy in resources_of(template, "AWS::IAM::ManagedPolicy")
        if allows(allowed_actions(policy_statements(template, policy)), UPDATE_PACKAGE)
    ]


def test_only_approvers_may_change_a_package_after_its_registration(workflow_template):
    """The deploy function tells a package an execution registered Approved from one a person approved by
    whether UpdateModelPackage changed it since (deploy._changed_since_created): no role of the stack (the
    execution and pipeline roles above all) may call it, and of the people's policies only the approvers'."""
    assert approval_changers(workflow_template) == [logical_id(workflow_template, "AWS::IAM::ManagedPolicy", "PeopleApprover")]


def test_the_stack_outputs_the_people_policies(workflow_template):
    outputs = workflow_template["Outputs"]
    for output, policy in (("ApproverPolicyArn", "PeopleApprover"), ("OperatorPolicyArn", "PeopleOperator")):
        assert outputs[output]["Value"] == {"Ref": logical_id(workflow_template, "AWS::IAM::ManagedPolicy", policy)}


# The CI/CD stack: CDK Pipelines makes its roles. What its buildspecs run, and the AWS actions each command needs.
COMMANDS = {
    r"python3\.11 --version|node --version": (),
    r"make test|make synth": (),  # offline: the tests use moto, the synth needs no credentials (README, make synth)
    r"npm install -g (aws-cdk|cdk-assets)@\S+": (),  # the npm registry, not AWS
    r"cdk -a \S+ deploy \S+ .*": (
        *needs(CDK_BOOTSTRAP, "`cdk deploy` of the pipeline's own stack (self-mutation)", "sts:AssumeRole"),
        *needs(CDK_PIPELINES, "`cdk deploy` reading stacks and the bootstrap bucket", "cloudformation:DescribeStacks", "s3:ListBucket"),
    ),
    r"cdk-assets --path .* publish .*": needs(CDK_BOOTSTRAP, "publishing an asset through the bootstrap's publishing role", "sts:AssumeRole"),
}
BUILD = needs(
    CODEBUILD_ROLE,
    "a CodeBuild project's logs and its input artifact",
    "logs:CreateLogGroup",
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:GetBucketAcl",
    "s3:GetBucketLocation",
)
BUILD_OUTPUT = needs(CODEBUILD_ROLE, "a CodeBuild project's output artifact (Synth's cdk.out)", "s3:PutObject")
# Each role of the CI/CD stack: (what works as it, its needs besides its project's commands, the project whose
# buildspec runs as it, if any).
CICD_ROLES = {
    "PipelineRole": (
        "CodePipeline",
        needs(CODEPIPELINE_ROLE, "the artifact store and each action's own role", "s3:GetObject", "s3:PutObject", "sts:AssumeRole"),
        None,
    ),
    "CodePipelineActionRole": (
        "the source action",
        (
            *needs(CODESTAR_ACTION, "the connection and the source artifact", "codestar-connections:UseConnection", "s3:PutObject"),
            *needs("aws-cdk-lib CodeStarConnectionsSourceAction (not AWS documentation)", "the artifact's ACL", "s3:PutObjectAcl"),
        ),
        None,
    ),
    "CodeBuildActionRole": (
        "CodePipeline's CodeBuild actions",
        needs(CODEPIPELINE_ROLE, "CodeBuild actions", "codebuild:BatchGetBuilds", "codebuild:StartBuild"),
        None,
    ),
    "SynthCdkBuildProjectRole": ("the Synth project: make test, make synth", (*BUILD, *BUILD_OUTPUT), "SynthCdkBuildProject"),
    "SelfMutationRole": ("the self-mutation project: cdk deploy of the pipeline", BUILD, "SelfMutation"),
    "AssetsDockerRole": ("the Docker image assets' project: cdk-assets publish", BUILD, "AssetsDockerAsset"),
    "AssetsFileRole": ("the file assets' project: cdk-assets publish", BUILD, "AssetsFileAsset"),
}
# What a CodeBuild role may touch at all: its logs and reports, the pipeline's artifacts, the bootstrap roles,
# and CloudFormation's stack descriptions.
BUILD_SERVICES = {"logs", "codebuild", "s3", "sts", "cloudformation"}


def buildspec_commands(cicd, project: dict) -> list[str]:
    spec = project["Properties"]["Source"]["BuildSpec"]
    text = spec if spec.lstrip().startswith("{") else (Path(cicd.outdir) / spec).read_text()
    import yaml

    document = yaml.safe_load(text)
    return [command for phase in document["phases"].values() for command in phase.get("commands", [])]


def command_needs(command: str) -> tuple[Need, ...]:
    for pattern, found in COMMANDS.items():
        if re.fullmatch(pattern, command):
            return found
    raise AssertionError(f"the buildspec command {command!r} is not in COMMANDS: say what AWS calls it makes")


def test_every_role_of_the_ci_cd_stack_has_a_role_test(cicd):
    template = cicd.template_json()
    for name in resources_of(template, "AWS::IAM::Role"):
        covering = [fragment for fragment in CICD_ROLES if fragment in name]
        assert len(covering) == 1, f"{name} has {len(covering)} role tests: add it to CICD_ROLES"
    assert not resources_of(template, "AWS::IAM::ManagedPolicy")


@pytest.mark.parametrize("role", sorted(CICD_ROLES))
def test_each_ci_cd_role_allows_what_its_service_and_its_project_s_commands_need(cicd, role):
    template = cicd.template_json()
    _, own, project = CICD_ROLES[role]
    if project:
        body = template["Resources"][logical_id(template, "AWS::CodeBuild::Project", project)]
        assert body["Properties"]["ServiceRole"] == {"Fn::GetAtt": [logical_id(template, "AWS::IAM::Role", role), "Arn"]}
        own = (*own, *(need for command in buildspec_commands(cicd, body) for need in command_needs(command)))
    _check(role, template, [], own, rules={})  # the pipeline's artifact bucket is SSE-S3 (cross_account_keys=False): no KMS


def test_the_ci_cd_build_roles_reach_no_further_than_their_logs_artifacts_and_the_cdk_bootstrap_roles(cicd):
    """What the warnings cannot show: a CodeBuild role touches no service beyond BUILD_SERVICES, and assumes only
    the CDK bootstrap's roles (by name, or by the bootstrap's aws-cdk:bootstrap-role tag)."""
    template = cicd.template_json()
    account, region = cicd.stack.account, cicd.stack.region
    for role, (_, _, project) in CICD_ROLES.items():
        if not project:
            continue
        statements = role_statements(template, logical_id(template, "AWS::IAM::Role", role))
        assert {action.split(":")[0] for action in allowed_actions(statements)} <= BUILD_SERVICES, role
        for statement in statements:
            if "sts:AssumeRole" not in json.dumps(statement["Action"]):
                continue
            resource = json.dumps(statement["Resource"])
            by_name = re.search(rf"role/cdk-[a-z0-9]+-(deploy|file-publishing|image-publishing)-role-{account}-{region}", resource)
            by_tag = statement.get("Condition", {}).get("ForAnyValue:StringEquals", {}).get("iam:ResourceTag/aws-cdk:bootstrap-role")
            assert by_name or (by_tag and set(by_tag) <= {"deploy", "file-publishing", "image-publishing"}), (role, statement)
