"""Release stages in accounts of their own (issue 24, the stage accounts' side): with a workflow, a staging and a
production account, the app holds one stage stack per stage account, in its account and region; its roles carry
the names the workflow stack's grants admit; its bus admits the workflow account only; the workflow stack forwards
approvals to exactly those buses; and without stage accounts there is none of it."""

from __future__ import annotations

import json

import pytest

from containers.deploy.deploy import PACKAGE_EVENT
from infra.cross_account import model_archives
from pipelines.config import stage_event_bus_arn, stage_event_bus_name, workflow_key_alias
from tests.infra import test_cross_account
from tests.infra.conftest import with_infrastructure
from tests.infra.test_checks import IGNORED_CFN_LINT
from tests.infra.test_cross_account import ACCOUNTS, PRODUCTION, STAGE_ACCOUNTS, STAGING, WORKFLOW, root
from tests.infra.test_workflow_stack import one, resources

three_accounts = test_cross_account.three_accounts  # the same synthesized app (the synthesize fixture caches it)
REGIONS = {"staging": "us-east-1", "production": "eu-west-1"}  # production names its own; staging is the workflow's


def stage_stacks(synthesized) -> dict:
    return {stack.stack_name.removeprefix("car-damage-"): stack for stack in synthesized.stack.stage_stacks}


def policy_statements(template: dict, role: str) -> list[dict]:
    """The statements of the policies attached to the role whose logical id is `role`."""
    policies = [p["Properties"] for p in resources(template, "AWS::IAM::Policy").values() if {"Ref": role} in p["Properties"]["Roles"]]
    return [statement for policy in policies for statement in policy["PolicyDocument"]["Statement"]]


def role_named(template: dict, suffix: str) -> tuple[str, dict]:
    (found,) = [
        (name, role) for name, role in resources(template, "AWS::IAM::Role").items() if role["Properties"].get("RoleName", "").endswith(suffix)
    ]
    return found


def test_the_app_has_the_workflow_stack_and_one_stack_per_stage_account(three_accounts):
    from aws_cdk import Stack

    workflow = three_accounts.stack
    app_stacks = [child for child in workflow.node.scope.node.children if isinstance(child, Stack)]
    assert [(s.stack_name, s.account, s.region) for s in app_stacks] == [
        ("car-damage", WORKFLOW, "us-east-1"),
        ("car-damage-staging", STAGING, "us-east-1"),
        ("car-damage-production", PRODUCTION, "eu-west-1"),
    ]
    assert list(stage_stacks(three_accounts)) == list(STAGE_ACCOUNTS)


def test_the_stage_roles_are_the_ones_the_workflow_grants_admit(three_accounts):
    """The ARNs of the roles each stage template creates are, exactly and in order, the aws:PrincipalArn values
    of every grant the workflow template makes to that stage's account."""
    workflow = three_accounts.template_json()
    conditions: dict[str, list] = {}

    def walk(node):
        if isinstance(node, dict):
            arns = node.get("Condition", {}).get("ArnEquals", {}).get("aws:PrincipalArn")
            if arns is not None:
                (account,) = [account for account in STAGE_ACCOUNTS.values() if node["Principal"] == root(account)]
                conditions.setdefault(account, []).append(arns)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(workflow["Resources"])
    for stage, stack in stage_stacks(three_accounts).items():
        account, template = STAGE_ACCOUNTS[stage], three_accounts.template_json(stack)
        names = [role_named(template, suffix)[1]["Properties"]["RoleName"] for suffix in ("-deploy", "-endpoint")]
        assert names == [f"car-damage-{stage}-deploy", f"car-damage-{stage}-endpoint"]
        created = [{"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, f":iam::{account}:role/{name}"]]} for name in names]
        assert conditions[account] == [created] * 3  # the group's, the bucket's and the key's policies


def test_each_bus_admits_the_workflow_account_only(three_accounts):
    for stage, stack in stage_stacks(three_accounts).items():
        template = three_accounts.template_json(stack)
        bus_id, bus = one(template, "AWS::Events::EventBus")
        assert bus["Properties"]["Name"] == stage_event_bus_name("car-damage", stage)
        _, policy = one(template, "AWS::Events::EventBusPolicy")
        assert policy["Properties"]["EventBusName"] == {"Ref": bus_id}
        assert policy["Properties"]["Statement"] == {
            "Sid": "cdk-WorkflowAccountPutsApprovals",
            "Effect": "Allow",
            "Principal": root(WORKFLOW),
            "Action": "events:PutEvents",
            "Resource": {"Fn::GetAtt": [bus_id, "Arn"]},
        }


def test_the_workflow_forwards_approvals_to_exactly_the_stage_buses(three_accounts):
    from aws_cdk import Aws

    workflow = three_accounts.template_json()
    (rule,) = [r["Properties"] for r in resources(workflow, "AWS::Events::Rule").values() if "RoleArn" in r["Properties"].get("Targets", [{}])[0]]
    assert rule["EventPattern"] == {
        "source": ["aws.sagemaker"],
        "detail-type": [PACKAGE_EVENT],
        "detail": {"ModelPackageGroupName": ["car-damage-models"], "ModelApprovalStatus": ["Approved"]},
    }
    buses = [
        three_accounts.stack.resolve(
            stage_event_bus_arn("car-damage", stage, account, "eu-west-1" if stage == "production" else Aws.REGION, partition=Aws.PARTITION)
        )
        for stage, account in STAGE_ACCOUNTS.items()
    ]
    assert [target["Arn"] for target in rule["Targets"]] == buses
    (role,) = {json.dumps(target["RoleArn"]) for target in rule["Targets"]}
    statements = policy_statements(workflow, json.loads(role)["Fn::GetAtt"][0])
    assert {s["Action"] for s in statements} == {"events:PutEvents"}
    assert sorted(json.dumps(s["Resource"]) for s in statements) == sorted(json.dumps(bus) for bus in buses)


def test_the_stage_roles_read_the_workflow_s_archives_key_and_packages_only(three_accounts):
    """The archives by the workflow side's one pattern, the key by the alias the workflow stack gives it, and the
    deploy role passes the endpoint role to SageMaker only."""
    _, alias = one(three_accounts.template_json(), "AWS::KMS::Alias")
    assert alias["Properties"]["AliasName"] == workflow_key_alias("car-damage")
    for stack in stage_stacks(three_accounts).values():
        template = three_accounts.template_json(stack)
        endpoint, _ = role_named(template, "-endpoint")
        deploy, _ = role_named(template, "-deploy")
        for role in (endpoint, deploy):
            by_sid = {s.get("Sid"): s for s in policy_statements(template, role)}
            archives = by_sid["ReadWorkflowModelArchives"]
            assert archives["Resource"]["Fn::Join"][1][-1] == f":s3:::*/{model_archives(three_accounts.config)}"
            assert archives["Condition"] == {"StringEquals": {"aws:ResourceAccount": WORKFLOW}}
            key = by_sid["DecryptWorkflowModelArchives"]
            assert key["Resource"]["Fn::Join"][1][-1] == f":kms:us-east-1:{WORKFLOW}:key/*"  # the workflow's region, also for production
            assert key["Condition"]["ForAnyValue:StringEquals"] == {"kms:ResourceAliases": [alias["Properties"]["AliasName"]]}
            packages = by_sid["DescribeWorkflowPackages"]
            assert packages["Resource"]["Fn::Join"][1][-1] == f":sagemaker:us-east-1:{WORKFLOW}:model-package/car-damage-models/*"
        (passing,) = [s for s in policy_statements(template, deploy) if s["Action"] == "iam:PassRole"]
        assert passing["Resource"] == {"Fn::GetAtt": [endpoint, "Arn"]}
        assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}


def test_the_stage_templates_pass_cfn_lint_and_cdk_nag(three_accounts):
    """cdk-nag: the fixture's synth raises on any unacknowledged finding, and each stage's acknowledgments are
    recorded in its own metadata."""
    from cfnlint.api import ManualArgs, lint_file

    for stage, stack in stage_stacks(three_accounts).items():
        path = three_accounts.outdir / f"{stack.artifact_id}.template.json"
        matches = lint_file(path, config=ManualArgs(regions=[REGIONS[stage]]))
        assert not [f"{m.rule.id} {m.message}" for m in matches if m.rule.id not in IGNORED_CFN_LINT and not m.rule.id.startswith("I")]
        metadata = json.loads((three_accounts.outdir / f"{stack.artifact_id}.metadata.json").read_text())
        assert "AwsSolutions-IAM5[Resource::*]" in json.dumps(metadata)


def test_a_stage_region_needs_the_workflow_s_region(definition):
    from aws_cdk import App

    from infra.app import build
    from pipelines.config import parse_config
    from tests.support import ROOT

    text = with_infrastructure("", {"  account: null\n": f'  account: "{WORKFLOW}"\n', ACCOUNTS[0]: ACCOUNTS[1]})
    config = parse_config(text, source="pipeline.yaml", base_dir=ROOT)
    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    with pytest.raises(ValueError, match=r"deployment\.accounts\.production\.region is set, but the workflow's region is unknown"):
        build(App(context=context), config, account=WORKFLOW, definition=definition)


def test_without_stage_accounts_there_is_no_stage_stack_nor_forwarding(workflow):
    from aws_cdk import Stack

    assert workflow.stack.stage_stacks == []
    assert [child for child in workflow.stack.node.scope.node.children if isinstance(child, Stack)] == [workflow.stack]
    template = workflow.template_json()
    assert not [r for r in resources(template, "AWS::Events::Rule").values() if "RoleArn" in r["Properties"].get("Targets", [{}])[0]]
    assert "event-bus/" not in json.dumps(template)
    assert not [name for name in template["Resources"] if "ForwardApprovals" in name]
