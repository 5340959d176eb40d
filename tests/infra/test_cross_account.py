"""Release stages in accounts of their own (issue 24, the workflow stack's side): with a workflow, a staging and a
production account, the model package group, the artifacts bucket and the key admit each stage account's
endpoint and deploy-function roles, by the ARNs pipelines.config.stage_role_arn builds, to read packages, model archives
only, and decrypt through S3 only; no other account is admitted; and without stage accounts nothing changes."""

from __future__ import annotations

import json
import re
from fnmatch import fnmatchcase

import pytest

from infra.cross_account import model_archives
from pipelines.config import DEPLOY_ROLE, ENDPOINT_ROLE, stage_role_arn
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


def root(account: str) -> dict:
    return {"AWS": {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, f":iam::{account}:root"]]}}


def only_the_stage_roles(synthesized, stage: str) -> dict:
    """The condition every grant to a stage carries: the principal is one of its two roles, by the names function."""
    from aws_cdk import Aws

    account, project = STAGE_ACCOUNTS[stage], synthesized.config.project.name
    built = [stage_role_arn(project, stage, account, role, partition=Aws.PARTITION) for role in (DEPLOY_ROLE, ENDPOINT_ROLE)]
    arns = [synthesized.stack.resolve(arn) for arn in built]
    assert arns[0] == {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, f":iam::{account}:role/car-damage-{stage}-deploy"]]}
    return {"ArnEquals": {"aws:PrincipalArn": arns}}


def granted(statements: list[dict], account: str) -> list[dict]:
    return [s for s in statements if s.get("Principal") == root(account)]


def test_the_group_lets_each_stage_account_s_roles_describe_and_list_its_packages(three_accounts):
    template = three_accounts.template_json()
    _, group = one(template, "AWS::SageMaker::ModelPackageGroup")
    statements = group["Properties"]["ModelPackageGroupPolicy"]["Statement"]
    assert [s["Sid"] for s in statements] == ["StagingReadsPackages", "ProductionReadsPackages"]
    for stage, account in STAGE_ACCOUNTS.items():
        (statement,) = granted(statements, account)
        assert statement["Effect"] == "Allow"
        assert statement["Action"] == ["sagemaker:DescribeModelPackage", "sagemaker:ListModelPackages"]
        assert statement["Condition"] == only_the_stage_roles(three_accounts, stage)
        assert json.dumps(statement["Resource"]).endswith(':model-package/car-damage-models/*"]]}')


def test_the_bucket_lets_them_get_the_model_archives_and_nothing_else(three_accounts, definition):
    template = three_accounts.template_json()
    artifacts = logical_id(template, "AWS::S3::Bucket", "Artifacts")
    (policy,) = [p for p in resources(template, "AWS::S3::BucketPolicy").values() if p["Properties"]["Bucket"] == {"Ref": artifacts}]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    archives = model_archives(three_accounts.config)
    for stage, account in STAGE_ACCOUNTS.items():
        (statement,) = granted(statements, account)
        assert (statement["Sid"], statement["Action"]) == (f"{stage.capitalize()}ReadsModelArchives", "s3:GetObject")
        assert statement["Condition"] == only_the_stage_roles(three_accounts, stage)
        assert statement["Resource"] == {"Fn::Join": ["", [{"Fn::GetAtt": [artifacts, "Arn"]}, f"/{archives}"]]}
    # The pattern reaches the archive of the definition's Train step and no other output the bucket holds.
    rendered = json.loads(definition)
    models = key_prefix(step(rendered, "Train")["Arguments"]["OutputDataConfig"]["S3OutputPath"])
    (prepared,) = step(rendered, "PrepareData")["Arguments"]["ProcessingOutputConfig"]["Outputs"]
    assert fnmatchcase(f"{models}pipelines-a1-Train-b2/output/model.tar.gz", archives)
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
    for stage, account in STAGE_ACCOUNTS.items():
        (statement,) = granted(statements, account)
        assert statement["Sid"] == f"{stage.capitalize()}DecryptsModelArchivesThroughS3"
        assert (statement["Action"], statement["Resource"]) == (["kms:Decrypt", "kms:DescribeKey"], "*")
        assert statement["Condition"] == {
            **only_the_stage_roles(three_accounts, stage),
            "StringEquals": {"kms:ViaService": {"Fn::Join": ["", ["s3.", {"Ref": "AWS::Region"}, ".", {"Ref": "AWS::URLSuffix"}]]}},
        }


def test_no_account_but_the_configured_ones_is_named(three_accounts):
    """Every principal and condition of the template names only the workflow's and the stages' accounts; the
    stage accounts appear in the three grants only. The one other account id is where AWS publishes the
    serving image (CDK's region facts), which the execution role pulls from and which no policy admits."""
    from aws_cdk.region_info import RegionInfo

    template = three_accounts.template_json()
    accounts = re.compile(r"(?<!\d)\d{12}(?!\d)")
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
        logical_id(template, "AWS::Events::Rule", "OnApprovalToStageAccounts"),
        logical_id(template, "AWS::IAM::Policy", "ForwardApprovalsDefaultPolicy"),
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
