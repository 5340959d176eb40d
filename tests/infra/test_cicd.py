"""CI/CD with release stages in accounts of their own (issue 24): the CDK Pipelines CodePipeline deploys the
workflow stack, then each stage account's stack in stage order, each through that account's CDK bootstrap roles,
with the artifacts encrypted by keys those roles may use; and without stage accounts the pipeline is what it was.

The three-account CI/CD app is synthesized once (the session's `synthesize` caches it by its pipeline.yaml), and again
only where a test changes how it is built."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.infra import test_cross_account
from tests.infra.conftest import CONNECTION, with_infrastructure
from tests.infra.test_checks import IGNORED_CFN_LINT, acknowledgments
from tests.infra.test_cross_account import ACCOUNTS, PRODUCTION, STAGING, WORKFLOW
from tests.infra.test_workflow_stack import one, resources
from tests.support import ROOT

three_accounts = test_cross_account.three_accounts  # the same stage accounts without CI/CD (`cdk deploy`)
SOURCE = {"    repository: null\n": "    repository: acme/car-damage\n", "    connection_arn: null\n": f"    connection_arn: {CONNECTION}\n"}
WITH_ACCOUNTS = {"  account: null\n": f'  account: "{WORKFLOW}"\n', ACCOUNTS[0]: ACCOUNTS[1]}
# Each pipeline stage that deploys: the account, region and stack it deploys to.
DEPLOYS = {
    "Deploy": (WORKFLOW, "us-east-1", "car-damage"),
    "Deploy-staging": (STAGING, "us-east-1", "car-damage-staging"),
    "Deploy-production": (PRODUCTION, "eu-west-1", "car-damage-production"),
}


@pytest.fixture(scope="module")
def cicd_accounts(synthesize):
    """The workflow in us-east-1, as app.py binds it when infrastructure.account and aws.region are set."""
    return synthesize(with_infrastructure("", {**WITH_ACCOUNTS, **SOURCE}), account=WORKFLOW, region="us-east-1")


def pipeline_of(template: dict) -> dict:
    return one(template, "AWS::CodePipeline::Pipeline")[1]["Properties"]


def role_arn(account: str, name: str) -> dict:
    return {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, f":iam::{account}:role/{name}"]]}


def bootstrap_role(account: str, region: str, role: str) -> dict:
    """A CDK bootstrap role (`cdk bootstrap`'s default qualifier), which CDK Pipelines deploys through."""
    return role_arn(account, f"cdk-hnb659fds-{role}-role-{account}-{region}")


def test_the_pipeline_deploys_the_workflow_then_each_stage_account_in_stage_order(cicd_accounts):
    stages = pipeline_of(cicd_accounts.template_json())["Stages"]
    assert [stage["Name"] for stage in stages] == ["Source", "Build", "UpdatePipeline", "Assets", *DEPLOYS]
    for stage in stages[4:]:
        account, region, stack = DEPLOYS[stage["Name"]]
        actions = stage["Actions"]
        assert [(a["Name"], a["ActionTypeId"]["Provider"], a["RunOrder"]) for a in actions] == [
            ("Prepare", "CloudFormation", 1),
            ("Deploy", "CloudFormation", 2),
        ]
        for action in actions:
            assert action["Configuration"]["StackName"] == stack
            assert action["RoleArn"] == bootstrap_role(account, region, "deploy"), stage["Name"]
            # An action names its region only when it is not the pipeline's.
            assert action.get("Region") == (None if region == "us-east-1" else region)
        assert actions[0]["Configuration"]["RoleArn"] == bootstrap_role(account, region, "cfn-exec")


def by_content(template: dict) -> dict:
    """A template with its Lambda permissions keyed by their content: CDK names an event rule's permission after the
    function's construct path, which the CI/CD stage adds to."""
    permissions = {name for name, body in template["Resources"].items() if body["Type"] == "AWS::Lambda::Permission"}
    kept = {name: body for name, body in template["Resources"].items() if name not in permissions}
    return {**template, "Resources": kept, "Permissions": sorted(json.dumps(template["Resources"][name], sort_keys=True) for name in permissions)}


def test_it_deploys_the_stage_stacks_cdk_deploy_deploys(cicd_accounts, three_accounts):
    """The stacks of the stage accounts' pipeline stages are the ones the app without CI/CD makes."""
    staged = {release.stack.stack_name: release.stack for release in cicd_accounts.stack.release_stages}
    plain = {stack.stack_name: stack for stack in three_accounts.stack.stage_stacks}
    assert list(staged) == list(plain) == ["car-damage-staging", "car-damage-production"]
    for name, stack in staged.items():
        assert (stack.account, stack.region) == (plain[name].account, plain[name].region)
        assert by_content(cicd_accounts.template_json(stack)) == by_content(three_accounts.template_json(plain[name])), name


def pipeline_projects_keys(template: dict) -> set[str]:
    return {json.dumps(project["Properties"]["EncryptionKey"]) for project in resources(template, "AWS::CodeBuild::Project").values()}


def decrypting_principals(key: dict) -> list:
    return [s["Principal"]["AWS"] for s in key["Properties"]["KeyPolicy"]["Statement"] if "kms:Decrypt" in s["Action"]]


def test_the_artifacts_are_encrypted_with_keys_the_target_accounts_deploy_roles_may_use(cicd_accounts):
    """CDK Pipelines' cross-account keys: the artifact bucket's key (and, for production's region, the replication
    bucket's key in CDK Pipelines' support stack there) lets each target's deploy role decrypt what it deploys."""
    template = cicd_accounts.template_json()
    stores = {store["Region"]: store["ArtifactStore"] for store in pipeline_of(template)["ArtifactStores"]}
    assert set(stores) == {"us-east-1", "eu-west-1"}
    key_id, key = one(template, "AWS::KMS::Key")
    assert key["Properties"]["EnableKeyRotation"] is True
    assert stores["us-east-1"]["EncryptionKey"] == {"Id": {"Fn::GetAtt": [key_id, "Arn"]}, "Type": "KMS"}
    # The build projects encrypt their outputs with it too (so cdk-nag's CB4, a project on the AWS managed key, is gone).
    assert pipeline_projects_keys(template) == {json.dumps({"Fn::GetAtt": [key_id, "Arn"]})}
    assert cicd_accounts.stack.pipeline.pipeline.artifact_bucket.encryption_key is not None
    principals = decrypting_principals(key)
    for account in (WORKFLOW, STAGING):
        assert bootstrap_role(account, "us-east-1", "deploy") in principals
    assert not any(PRODUCTION in json.dumps(principal) for principal in principals)

    support = cicd_accounts.stack.pipeline.pipeline.cross_region_support["eu-west-1"].stack
    assert (support.account, support.region) == (WORKFLOW, "eu-west-1")
    _, replication_key = one(cicd_accounts.template_json(support), "AWS::KMS::Key")
    assert replication_key["Properties"]["EnableKeyRotation"] is True
    assert bootstrap_role(PRODUCTION, "eu-west-1", "deploy") in decrypting_principals(replication_key)
    assert stores["eu-west-1"]["EncryptionKey"]["Type"] == "KMS"


def test_the_ci_templates_pass_cfn_lint_and_every_acknowledgment_has_a_reason(cicd_accounts):
    """The CI/CD stack and CDK Pipelines' support stack (the stages' own templates are linted where the app without
    CI/CD makes them, and are the same: above)."""
    from cfnlint.api import ManualArgs, lint_file

    paths = sorted(cicd_accounts.outdir.glob("*.template.json"))
    assert [path.name for path in paths] == ["car-damage-cicd.template.json", "cross-region-stack-123456789012_eu-west-1.template.json"]
    for path in paths:
        matches = lint_file(path, config=ManualArgs(regions=["us-east-1", "eu-west-1"]))
        problems = [f"{m.rule.id} {m.message} ({m.path})" for m in matches if m.rule.id not in IGNORED_CFN_LINT and not m.rule.id.startswith("I")]
        assert not problems, f"{path.name}:\n" + "\n".join(problems)
    for rule, reason in acknowledgments(cicd_accounts.outdir).items():
        assert len(reason) > 40, f"{rule}: give a specific reason"


def nag_findings(outdir: Path) -> set[tuple[str, str]]:
    """(rule, construct path) of every finding in cdk-nag's report of a failed synth."""
    report = json.loads((outdir / "validation-report.json").read_text())
    violations = [violation for plugin in report["pluginReports"] for violation in plugin["violations"]]
    return {(violation["ruleName"], where["constructPath"]) for violation in violations for where in violation["violatingConstructs"]}


def test_the_cross_account_acknowledgments_are_exactly_the_findings_cross_account_keys_add(definition, tmp_path, monkeypatch):
    """Synthesized with infra.cicd.acknowledge_cross_account's acknowledgments withheld (every other one made),
    cdk-nag reports exactly their findings: none is missing, none is left over to hide a later finding."""
    from aws_cdk import App

    from infra import cicd, nag
    from infra.app import build
    from pipelines.config import parse_config

    withheld: list[tuple[str, str]] = []
    real = cicd.acknowledge_cross_account

    def withholding(pipeline):
        with monkeypatch.context() as patch:
            patch.setattr(nag, "acknowledge", lambda construct, *findings: withheld.extend((construct.node.path, rule) for rule, _ in findings))
            real(pipeline)

    monkeypatch.setattr(cicd, "acknowledge_cross_account", withholding)
    app = App(outdir=str(tmp_path), context=json.loads((ROOT / "cdk.json").read_text())["context"])
    config = parse_config(with_infrastructure("", {**WITH_ACCOUNTS, **SOURCE}), base_dir=ROOT)
    stack = build(app, config, account=WORKFLOW, region="us-east-1", definition=definition)
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    found = nag_findings(tmp_path)

    def answers(acknowledgment: tuple[str, str], finding: tuple[str, str]) -> bool:
        (path, rule), (name, at) = acknowledgment, finding
        return name == rule and at.startswith(f"{path}/")

    assert not [finding for finding in found if not any(answers(ack, finding) for ack in withheld)], "findings left unanswered"
    assert not [ack for ack in withheld if not any(answers(ack, finding) for finding in found)], "acknowledgments with no finding"
    support = stack.pipeline.pipeline.cross_region_support["eu-west-1"].stack.node.path
    assert ("AwsSolutions-S1", f"{support}/Default/CrossRegionCodePipelineReplicationBucket/Resource") in found


def test_without_stage_accounts_the_pipeline_is_the_one_made_before_them(cicd, definition, tmp_path, monkeypatch):
    """The repository's CI/CD app (no stage accounts) is the very app made with the pipeline's arguments as they were
    before stage accounts (no cross-account keys): no KMS key, no stage after the workflow's."""
    from aws_cdk import App
    from aws_cdk import pipelines as cdk_pipelines

    from infra.app import build

    template = cicd.template_json()
    assert not cicd.config.stage_accounts
    assert not resources(template, "AWS::KMS::Key") and cicd.stack.pipeline.pipeline.artifact_bucket.encryption_key is None
    assert pipeline_projects_keys(template) == {'"alias/aws/s3"'}
    assert [stage["Name"] for stage in pipeline_of(template)["Stages"]][-1] == "Deploy"
    real = cdk_pipelines.CodePipeline

    def as_before(*args, **kwargs):
        kwargs.pop("enable_key_rotation", None)
        return real(*args, **{**kwargs, "cross_account_keys": False})

    monkeypatch.setattr(cdk_pipelines, "CodePipeline", as_before)
    app = App(outdir=str(tmp_path), context=json.loads((ROOT / "cdk.json").read_text())["context"])
    before = build(app, cicd.config, account="123456789012", region="eu-west-1", definition=definition)
    app.synth()
    assert json.dumps(cicd.template_json(before), sort_keys=True) == json.dumps(template, sort_keys=True)


def test_a_stage_region_needs_the_workflow_s_region(definition):
    from aws_cdk import App

    from infra.app import build
    from pipelines.config import parse_config

    config = parse_config(with_infrastructure("", {**WITH_ACCOUNTS, **SOURCE}), base_dir=ROOT)
    with pytest.raises(ValueError, match=r"deployment\.accounts\.production\.region is set, but the workflow's region is unknown"):
        build(App(context=json.loads((ROOT / "cdk.json").read_text())["context"]), config, account=WORKFLOW, region=None, definition=definition)
