"""Release stages in accounts of their own (issue 24, the workflow stack's side): with a workflow, a staging and a
production account, the model package group, the artifacts bucket and the key admit each stage account's
endpoint and deploy-function roles, by the ARNs pipelines.config.stage_role_arn builds, to read packages, model archives
only, and decrypt through S3 only; no other account is admitted; and without stage accounts nothing changes.
The workflow's own deployment keeps to the stages served from its account: no approval rule when the first stage is
elsewhere, no rule, statement or alarm for another account's endpoint; the champion function reads production
through production's champion role, and operators may assume each stage's promote role."""

from __future__ import annotations

import json
import re
from fnmatch import fnmatchcase

import pytest
from aws_cdk import Aws

from containers.deploy.deploy import rollback_alarm_names
from infra.cross_account import baseline_files, model_archives
from infra.drift import drift_alarm_name
from pipelines.config import DEPLOY_ROLE, ENDPOINT_ROLE, MONITOR_ROLE, stage_role_arn
from tests.infra.calls import policy_statements
from tests.infra.conftest import with_infrastructure
from tests.infra.test_artifact_expiry import key_prefix
from tests.infra.test_checks import IGNORED_CFN_LINT
from tests.infra.test_permissions import key_statements
from tests.infra.test_workflow_stack import logical_id, one, resources
from tests.pipelines.test_definition import step

WORKFLOW, STAGING, PRODUCTION = "123456789012", "111111111111", "222222222222"
STAGE_ACCOUNTS = {"staging": STAGING, "production": PRODUCTION}
ACCOUNTS = (
    "  accounts: {}\n",
    f'  stages: [staging, production]\n  accounts:\n    staging: "{STAGING}"\n    production: {{account: "{PRODUCTION}", region: eu-west-1}}\n',
)


@pytest.fixture(scope="module")
def three_accounts(synthesize):
    """Bound to the workflow's account and region, as app.py binds it when infrastructure.account is set."""
    text = with_infrastructure("", {"  account: null\n": f'  account: "{WORKFLOW}"\n', ACCOUNTS[0]: ACCOUNTS[1]})
    return synthesize(text, account=WORKFLOW, region="us-east-1")  # cdk-nag raises here on an unacknowledged finding


@pytest.fixture(scope="module")
def staging_here(synthesize):
    """Staging in the workflow's account, production in an account and region of its own."""
    production = f'  stages: [staging, production]\n  accounts:\n    production: {{account: "{PRODUCTION}", region: eu-west-1}}\n'
    text = with_infrastructure("", {"  account: null\n": f'  account: "{WORKFLOW}"\n', ACCOUNTS[0]: production})
    return synthesize(text, account=WORKFLOW, region="us-east-1")


def root(account: str) -> dict:
    return {"AWS": {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, f":iam::{account}:root"]]}}


def only_the_stage_roles(synthesized, stage: str, roles: tuple[str, ...] = (DEPLOY_ROLE, ENDPOINT_ROLE)) -> dict:
    """The condition every grant to a stage carries: the principal is one of its `roles` (the deploy function's, and
    for the archives the endpoint's), by the names function."""
    from aws_cdk import Aws

    account, project = STAGE_ACCOUNTS[stage], synthesized.config.project.name
    built = [stage_role_arn(project, stage, account, role, partition=Aws.PARTITION) for role in roles]
    arns = [synthesized.stack.resolve(arn) for arn in built]
    assert arns[0] == {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, f":iam::{account}:role/car-damage-{stage}-deploy"]]}
    return {"ArnEquals": {"aws:PrincipalArn": arns}}


def granted(statements: list[dict], account: str) -> list[dict]:
    return [s for s in statements if s.get("Principal") == root(account)]


def test_the_group_lets_each_stage_account_s_deploy_and_monitor_roles_describe_and_list_its_packages(three_accounts):
    """Only the deploy function and the drift monitor's starter describe packages; SageMaker, as the endpoint role,
    makes the model from the archive and the stage's image and reads no package."""
    template = three_accounts.template_json()
    _, group = one(template, "AWS::SageMaker::ModelPackageGroup")
    statements = group["Properties"]["ModelPackageGroupPolicy"]["Statement"]
    assert [s["Sid"] for s in statements] == ["StagingReadsPackages", "ProductionReadsPackages"]
    for stage, account in STAGE_ACCOUNTS.items():
        (statement,) = granted(statements, account)
        assert statement["Effect"] == "Allow"
        assert statement["Action"] == ["sagemaker:DescribeModelPackage", "sagemaker:ListModelPackages"]
        assert statement["Condition"] == only_the_stage_roles(three_accounts, stage, (DEPLOY_ROLE, MONITOR_ROLE))
        assert json.dumps(statement["Resource"]).endswith(':model-package/car-damage-models/*"]]}')


def test_the_bucket_lets_them_get_the_model_archives_and_the_baselines_and_nothing_else(three_accounts, definition):
    """The deploy and endpoint roles the archives, the drift monitor's starter the two baseline files."""
    template = three_accounts.template_json()
    artifacts = logical_id(template, "AWS::S3::Bucket", "Artifacts")
    (policy,) = [p for p in resources(template, "AWS::S3::BucketPolicy").values() if p["Properties"]["Bucket"] == {"Ref": artifacts}]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    archives, baselines = model_archives(three_accounts.config), baseline_files(three_accounts.config)
    for stage, account in STAGE_ACCOUNTS.items():
        statement, reading_baselines = granted(statements, account)
        assert (statement["Sid"], statement["Action"]) == (f"{stage.capitalize()}ReadsModelArchives", "s3:GetObject")
        assert statement["Condition"] == only_the_stage_roles(three_accounts, stage)
        assert statement["Resource"] == {"Fn::Join": ["", [{"Fn::GetAtt": [artifacts, "Arn"]}, f"/{archives}"]]}
        assert (reading_baselines["Sid"], reading_baselines["Action"]) == (f"{stage.capitalize()}ReadsBaselines", "s3:GetObject")
        monitor = three_accounts.stack.resolve(stage_role_arn("car-damage", stage, account, MONITOR_ROLE, partition=Aws.PARTITION))
        assert reading_baselines["Condition"] == {"ArnEquals": {"aws:PrincipalArn": [monitor]}}
        assert reading_baselines["Resource"] == [{"Fn::Join": ["", [{"Fn::GetAtt": [artifacts, "Arn"]}, f"/{key}"]]} for key in baselines]
    # The pattern reaches the archive of the definition's Train step and no other output the bucket holds; the
    # baselines' reach the two files in the Evaluate step's output and nothing else there.
    rendered = json.loads(definition)
    models = key_prefix(step(rendered, "Train")["Arguments"]["OutputDataConfig"]["S3OutputPath"])
    (prepared,) = step(rendered, "PrepareData")["Arguments"]["ProcessingOutputConfig"]["Outputs"]
    assert fnmatchcase(f"{models}pipelines-a1-Train-b2/output/model.tar.gz", archives)
    evaluation = models.replace("/model/", "/evaluation/")
    assert [
        fnmatchcase(f"{evaluation}{name}", pattern) for name, pattern in zip(("data-baseline.json", "model-baseline.json"), baselines, strict=True)
    ] == [True, True]
    assert not [pattern for pattern in baselines if fnmatchcase(f"{evaluation}evaluation.json", pattern)]
    for key in (
        f"{key_prefix(prepared['S3Output']['S3Uri'])}train-00000-of-00004.tfrecord",
        f"{key_prefix(prepared['S3Output']['S3Uri'])}checkpoints/efficientdet-d0/512/8/2000/ckpt-5.index",
        f"{models.replace('/model/', '/evaluation/')}evaluation.json",
        f"{models.replace('/model/', '/tensorboard/')}pipelines-a1-Train-b2/events.out.tfevents.1",
        "data-capture/car-damage-endpoint/AllTraffic/2026/01/02/03/capture.jsonl",
        "monitoring/car-damage-endpoint/2026-01-02T03/report.html",
    ):
        assert not fnmatchcase(key, archives), key


def test_the_key_lets_them_decrypt_through_s3_only(three_accounts):
    statements = key_statements(three_accounts.template_json())
    through_s3 = {"kms:ViaService": {"Fn::Join": ["", ["s3.", {"Ref": "AWS::Region"}, ".", {"Ref": "AWS::URLSuffix"}]]}}
    for stage, account in STAGE_ACCOUNTS.items():
        statement, baselines = granted(statements, account)
        assert statement["Sid"] == f"{stage.capitalize()}DecryptsModelArchivesThroughS3"
        assert (statement["Action"], statement["Resource"]) == (["kms:Decrypt", "kms:DescribeKey"], "*")
        assert statement["Condition"] == {**only_the_stage_roles(three_accounts, stage), "StringEquals": through_s3}
        assert (baselines["Sid"], baselines["Action"], baselines["Resource"]) == (
            f"{stage.capitalize()}DecryptsBaselinesThroughS3",
            "kms:Decrypt",
            "*",
        )
        monitor = three_accounts.stack.resolve(stage_role_arn("car-damage", stage, account, MONITOR_ROLE, partition=Aws.PARTITION))
        assert baselines["Condition"] == {"ArnEquals": {"aws:PrincipalArn": [monitor]}, "StringEquals": through_s3}


def test_no_account_but_the_configured_ones_is_named(three_accounts):
    """Every principal and condition of the template names only the workflow's and the stages' accounts; the
    stage accounts appear in the three grants only. The one other account id is where AWS publishes the
    serving image (CDK's region facts), which the execution role pulls from and which no policy admits."""
    from aws_cdk.region_info import RegionInfo

    template = three_accounts.template_json()
    accounts = re.compile(r"(?<![0-9a-f])\d{12}(?![0-9a-f])")  # not digits inside an asset's hash
    admitted: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            for field in ("Principal", "Condition"):
                if field in node:
                    admitted.update(accounts.findall(json.dumps(node[field])))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(template)
    assert admitted == {WORKFLOW, STAGING, PRODUCTION}
    serving = RegionInfo.get("us-east-1").dlc_repository_account
    assert set(accounts.findall(json.dumps(template))) == {WORKFLOW, STAGING, PRODUCTION, serving}
    naming = {name for name, body in template["Resources"].items() if STAGING in json.dumps(body) or PRODUCTION in json.dumps(body)}
    assert naming == {
        logical_id(template, "AWS::SageMaker::ModelPackageGroup", "ModelPackageGroup"),
        logical_id(template, "AWS::S3::BucketPolicy", "ArtifactsPolicy"),
        next(iter(resources(template, "AWS::KMS::Key"))),
        logical_id(template, "AWS::Events::Rule", "OnApprovalToStageAccounts"),  # staging's bus
        logical_id(template, "AWS::IAM::Policy", "ForwardApprovalsDefaultPolicy"),
        logical_id(template, "AWS::Lambda::Function", "ChampionFunction"),  # production's reader role, assumed
        logical_id(template, "AWS::IAM::Policy", "ChampionFunctionRoleDefaultPolicy"),
        logical_id(template, "AWS::IAM::ManagedPolicy", "PeopleOperator"),  # the promote and reader roles, assumed
        logical_id(template, "AWS::IAM::ManagedPolicy", "PeopleApprover"),  # the reader roles, assumed
    }


def test_the_three_account_template_passes_cfn_lint(three_accounts):
    from cfnlint.api import ManualArgs, lint_file

    path = three_accounts.outdir / f"{three_accounts.stack.artifact_id}.template.json"  # the stage stacks': test_stage_stacks.py
    matches = lint_file(path, config=ManualArgs(regions=["us-east-1", "eu-west-1"]))
    assert not [f"{m.rule.id} {m.message}" for m in matches if m.rule.id not in IGNORED_CFN_LINT and not m.rule.id.startswith("I")]


def test_without_stage_accounts_the_template_is_the_one_made_without_the_grants(workflow, definition, tmp_path, monkeypatch):
    """The repository's pipeline.yaml names no stage account: the stack synthesized with the grants' construct is
    the very stack synthesized without calling it, and the group has no policy."""
    from aws_cdk import App

    import infra.stack
    from infra.app import build
    from tests.support import ROOT

    template = workflow.template_json()
    assert "ModelPackageGroupPolicy" not in one(template, "AWS::SageMaker::ModelPackageGroup")[1]["Properties"]
    assert not workflow.config.stage_accounts
    monkeypatch.setattr(infra.stack, "StageAccountGrants", lambda *args, **kwargs: None)
    app = App(outdir=str(tmp_path), context=json.loads((ROOT / "cdk.json").read_text())["context"])
    without = build(app, workflow.config, definition=definition)
    app.synth()
    assert json.dumps(workflow.template_json(without), sort_keys=True) == json.dumps(template, sort_keys=True)


def rules_invoking(template: dict, function_fragment: str) -> dict[str, dict]:
    function = logical_id(template, "AWS::Lambda::Function", function_fragment)
    return {
        name: rule["Properties"]
        for name, rule in resources(template, "AWS::Events::Rule").items()
        if {"Fn::GetAtt": [function, "Arn"]} in [target["Arn"] for target in rule["Properties"]["Targets"]]
    }


def test_with_no_stage_in_its_account_the_workflow_s_deploy_function_has_no_rule_no_deploying_and_no_alarm(three_accounts):
    """Both stages are elsewhere: the function stays (its code is the champion function's too) but nothing invokes
    it, its role deploys nothing, and this stack has no endpoint alarm and no drift monitoring."""
    template = three_accounts.template_json()
    assert rules_invoking(template, "DeploymentDeployFunction") == {}
    statements = policy_statements(template, logical_id(template, "AWS::IAM::Policy", "DeployFunctionRoleDefaultPolicy"))
    assert [s.get("Sid") for s in statements] == ["WriteOwnLogs", None, None]  # its logs, and the topic (sns:Publish, its key)
    assert not resources(template, "AWS::CloudWatch::Alarm") and not resources(template, "AWS::Scheduler::Schedule")
    assert not [name for name in template["Resources"] if "DriftMonitoring" in name or "OnMonitoringJob" in name]
    variables = template["Resources"][logical_id(template, "AWS::Lambda::Function", "DeployFunction")]["Properties"]["Environment"]["Variables"]
    assert "LATER_STAGE_ENDPOINTS" not in variables


def test_with_staging_here_the_workflow_deploys_approvals_to_staging_and_names_no_endpoint_of_production_s_account(staging_here):
    """The first stage is the workflow's: approvals deploy here (no forwarding), and the state rule, the function's
    later stages, its CreateAndUpdateTheEndpoint statement and the operators' name staging's endpoint only."""
    template, config = staging_here.template_json(), staging_here.config
    staging, production = config.stage_endpoints["staging"], config.stage_endpoints["production"]
    rules = rules_invoking(template, "DeploymentDeployFunction")
    (approval,) = [rule for rule in rules.values() if rule["EventPattern"]["detail-type"] == ["SageMaker Model Package State Change"]]
    assert "EventBusName" not in approval
    (in_service,) = [rule for rule in rules.values() if rule["EventPattern"]["detail-type"] == ["SageMaker Endpoint State Change"]]
    assert in_service["EventPattern"]["detail"]["EndpointName"] == [staging]
    assert not [name for name in template["Resources"] if "ForwardApprovals" in name or "OnApprovalToStageAccounts" in name]
    function = template["Resources"][logical_id(template, "AWS::Lambda::Function", "DeployFunction")]["Properties"]
    assert function["Environment"]["Variables"]["ENDPOINT_NAME"] == staging
    assert "LATER_STAGE_ENDPOINTS" not in function["Environment"]["Variables"]  # production is promoted to in its account
    for policy in (
        logical_id(template, "AWS::IAM::Policy", "DeployFunctionRoleDefaultPolicy"),
        logical_id(template, "AWS::IAM::ManagedPolicy", "PeopleOperator"),
    ):
        (endpoint,) = [s for s in policy_statements(template, policy) if s.get("Sid") == "CreateAndUpdateTheEndpoint"]
        assert endpoint["Resource"]["Fn::Join"][1][-1] == f":endpoint/{staging}"
    deploying = json.dumps(policy_statements(template, logical_id(template, "AWS::IAM::Policy", "DeployFunctionRoleDefaultPolicy")))
    assert f':endpoint/{production}"' not in deploying  # the ARN's end: staging's endpoint name starts with production's
    alarms = {body["Properties"]["AlarmName"] for body in resources(template, "AWS::CloudWatch::Alarm").values()}
    assert alarms == {*rollback_alarm_names(staging), drift_alarm_name(staging)}


@pytest.mark.parametrize("app", ["three_accounts", "staging_here"])
def test_the_champion_function_reads_production_through_its_reader_role(app, request):
    """Production is in an account (and region) of its own in both apps: the function's role may assume production's
    reader role only, and reads the packages itself; its environment names the role and production's region
    (containers/deploy/champion.py)."""
    from aws_cdk import Aws

    from containers.deploy import champion
    from pipelines.config import READER_ROLE

    synthesized = request.getfixturevalue(app)
    template = synthesized.template_json()
    reader = synthesized.stack.resolve(stage_role_arn("car-damage", "production", PRODUCTION, READER_ROLE, partition=Aws.PARTITION))
    statements = {s["Sid"]: s for s in policy_statements(template, logical_id(template, "AWS::IAM::Policy", "ChampionFunctionRoleDefaultPolicy"))}
    assert statements["AssumeTheReaderRole"] == {"Sid": "AssumeTheReaderRole", "Action": "sts:AssumeRole", "Effect": "Allow", "Resource": reader}
    assert statements["ReadThePackages"]["Action"] == "sagemaker:DescribeModelPackage"
    assert set(statements) == {"WriteOwnLogs", "ReadThePackages", "AssumeTheReaderRole"}  # no endpoint of its own account
    function = template["Resources"][logical_id(template, "AWS::Lambda::Function", "ChampionFunction")]["Properties"]
    assert function["Environment"]["Variables"] == {champion.ROLE_VARIABLE: reader, champion.REGION_VARIABLE: "eu-west-1"}


def test_without_stage_accounts_the_champion_function_reads_the_endpoint_itself(workflow_template):
    role = workflow_template["Resources"][logical_id(workflow_template, "AWS::IAM::Role", "ChampionFunctionRole")]
    assert "RoleName" not in role["Properties"]
    assert "sts:AssumeRole" not in json.dumps(resources(workflow_template, "AWS::IAM::Policy"))
    function = workflow_template["Resources"][logical_id(workflow_template, "AWS::Lambda::Function", "ChampionFunction")]["Properties"]
    assert "Variables" not in function.get("Environment", {})


@pytest.mark.parametrize("app", ["three_accounts", "staging_here"])
def test_operators_may_assume_each_stage_account_s_promote_and_reader_roles_and_approvers_its_reader_roles(app, request):
    from aws_cdk import Aws

    from pipelines.config import PROMOTE_ROLE, READER_ROLE

    synthesized = request.getfixturevalue(app)
    template = synthesized.template_json()
    accounts = {stage: place.account for stage, place in synthesized.config.stage_accounts.items()}
    assert list(accounts) == (["staging", "production"] if app == "three_accounts" else ["production"])

    def assuming(policy: str) -> dict[str, object]:
        statements = policy_statements(template, logical_id(template, "AWS::IAM::ManagedPolicy", policy))
        return {s["Sid"]: s["Resource"] for s in statements if "sts:AssumeRole" in json.dumps(s["Action"])}

    def roles(kind: str):
        resolve = synthesized.stack.resolve
        arns = [resolve(stage_role_arn("car-damage", stage, account, kind, partition=Aws.PARTITION)) for stage, account in accounts.items()]
        return arns if len(arns) > 1 else arns[0]

    assert assuming("PeopleOperator") == {"AssumeStagePromoteRoles": roles(PROMOTE_ROLE), "AssumeStageReaderRoles": roles(READER_ROLE)}
    assert assuming("PeopleApprover") == {"AssumeStageReaderRoles": roles(READER_ROLE)}  # approvers read, never deploy
