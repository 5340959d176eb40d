"""The grants across accounts, as a table (issue 24): for each action that code or AWS takes across the workflow's
and a stage's accounts, the policy that allows it on each side. Access across accounts needs both: the caller's
account allows it in the caller's policy, the resource's account in the resource's policy or the role's trust
("Cross-account policy evaluation logic", IAM User Guide).

Each row names who acts and the code that makes the call (followed through the code as tests/infra/calls.py
follows it, so a row whose call is gone fails), the IAM action, and each side's policy by its statement id. The
test then reads both statements in the synthesized templates (workflow 123456789012 in us-east-1; staging
111111111111 in the same region; production 222222222222 in eu-west-1) and checks that each allows the action,
that the resource's side admits exactly that caller, and that the caller's side names the resource in the other
account.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from pipelines.config import DEPLOY_ROLE, ENDPOINT_ROLE, MONITOR_ROLE, stage_role_name
from tests.infra.calls import Program, allows, python_files, resources_of, role_statements
from tests.infra.test_cross_account import STAGE_ACCOUNTS, WORKFLOW, three_accounts  # noqa: F401 (the fixture)
from tests.support import ROOT

PARTITION, SUFFIX = "aws", "amazonaws.com"
CLI_CODE = [ROOT / "pipelines" / "aws.py", ROOT / "pipelines" / "backends" / "aws.py", ROOT / "pipelines" / "cli" / "commands.py"]


@dataclass(frozen=True)
class Side:
    """A policy by where it is: `resource` a fragment of its resource's logical id, `sid` its statement's id ("trust":
    the role's trust policy), `stack` "workflow" or "stage"."""

    stack: str
    resource: str
    sid: str


@dataclass(frozen=True)
class Row:
    who: str  # the caller: a stage role (by kind) or a workflow-side caller
    code: str  # entry point, then the method it calls; "" for what AWS itself does (with the role it is given)
    method: str
    action: str
    caller: Side  # the caller's own policy
    resource: Side  # the policy of the resource in the other account
    stages: tuple[str, ...] = tuple(STAGE_ACCOUNTS)


DEPLOY = "containers/deploy/deploy.py:handler"
MONITOR = "containers/deploy/monitor_start.py:handler"


def reads_across(who: str, code: str, role: str, what: str) -> list[Row]:
    """A stage role's three reads of the workflow account (infra.stage_stack.workflow_reads, `what` naming the objects
    in the statement ids): the package, the objects, and their key as S3 reads them for it."""

    def stage(sid: str) -> Side:
        return Side("stage", role, sid)

    def workflow(resource: str, sid: str) -> Side:
        return Side("workflow", resource, sid)

    return [
        Row(who, code, "describe_model_package", "sagemaker:DescribeModelPackage",
            stage("DescribeWorkflowPackages"), workflow("ModelPackageGroup", "{Stage}ReadsPackages")),
        Row(who, code, "get_object", "s3:GetObject", stage(f"ReadWorkflow{what}"), workflow("ArtifactsPolicy", f"{{Stage}}Reads{what}")),
        Row(who, code, "get_object", "kms:Decrypt", stage(f"DecryptWorkflow{what}"), workflow("StorageKey", f"{{Stage}}Decrypts{what}ThroughS3")),
    ]  # fmt: skip


ROWS = [
    # The stage's deploy function reads the workflow's package, its archive and the archive's key (the sha256 check
    # and, for a stage in another region, the copy).
    *reads_across(DEPLOY_ROLE, DEPLOY, "DeployRole", "ModelArchives"),
    # SageMaker, as the stage's endpoint role, downloads the archive the model names (CreateModel's ModelDataUrl),
    # in the workflow's bucket for a stage in the workflow's region.
    Row(ENDPOINT_ROLE, "", "", "s3:GetObject",
        Side("stage", "EndpointRole", "ReadWorkflowModelArchives"), Side("workflow", "ArtifactsPolicy", "{Stage}ReadsModelArchives")),
    Row(ENDPOINT_ROLE, "", "", "kms:Decrypt",
        Side("stage", "EndpointRole", "DecryptWorkflowModelArchives"), Side("workflow", "StorageKey", "{Stage}DecryptsModelArchivesThroughS3")),
    # The stage's drift monitor's starter describes the served package and copies its two baseline files into the
    # stage's bucket (containers/deploy/monitor_start.py copy_baselines), decrypting them as S3 reads them for it.
    *reads_across(MONITOR_ROLE, MONITOR, "MonitorRole", "Baselines"),
    # The workflow account's people and functions in a stage account: assuming its roles.
    Row("operator", "pipelines/cli/commands.py:promote", "assume_role", "sts:AssumeRole",
        Side("workflow", "PeopleOperator", "AssumeStagePromoteRoles"), Side("stage", "PromoteRole", "trust")),
    Row("operator", "pipelines/cli/commands.py:deploy", "assume_role", "sts:AssumeRole",
        Side("workflow", "PeopleOperator", "AssumeStagePromoteRoles"), Side("stage", "PromoteRole", "trust"), ("staging",)),
    Row("approver", "pipelines/cli/commands.py:models", "assume_role", "sts:AssumeRole",
        Side("workflow", "PeopleApprover", "AssumeStageReaderRoles"), Side("stage", "ReaderRole", "trust")),
    Row("champion function", "containers/deploy/champion.py:handler", "assume_role", "sts:AssumeRole",
        Side("workflow", "ChampionFunctionRoleDefaultPolicy", "AssumeTheReaderRole"), Side("stage", "ReaderRole", "trust"), ("production",)),
    # EventBridge forwards approvals to the first stage's bus, as the workflow's forwarding role.
    Row("forwarding", "", "", "events:PutEvents",
        Side("workflow", "ForwardApprovalsDefaultPolicy", ""), Side("stage", "Approvals", "cdk-WorkflowAccountPutsApprovals"), ("staging",)),
]  # fmt: skip


def flat(value) -> str:
    """A CloudFormation value as text, with the pseudo parameters the policies use filled in."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return json.dumps([flat(item) for item in value])
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(flat(part) for part in parts)
    if "Ref" in value:
        return {"AWS::Partition": PARTITION, "AWS::URLSuffix": SUFFIX}.get(value["Ref"], f"<{value['Ref']}>")
    return json.dumps(value)


def statements_of(template: dict, name: str) -> list[tuple[str, dict]]:
    """The statements a resource holds, each with its statement id ("trust" for a role's trust policy, "" where CDK
    writes none): a role's trust, a policy's, a bucket or bus policy's, a key's, a model package group's."""
    body = template["Resources"][name]
    properties = body["Properties"]
    documents = [("trust", properties["AssumeRolePolicyDocument"])] if body["Type"] == "AWS::IAM::Role" else []
    documents += [(None, properties[field]) for field in ("PolicyDocument", "KeyPolicy", "ModelPackageGroupPolicy") if field in properties]
    if body["Type"] == "AWS::Events::EventBusPolicy":
        documents.append((None, {"Statement": [properties["Statement"]]}))
    found = []
    for kind, document in documents:
        listed = document["Statement"]
        for item in [listed] if isinstance(listed, dict) else listed:
            found.append((kind or item.get("Sid", ""), item))
    return found


def resource_named(template: dict, fragment: str, kinds: tuple[str, ...]) -> str:
    (name,) = [name for name, body in template["Resources"].items() if fragment in name and body["Type"] in kinds]
    return name


POLICIES = (
    "AWS::IAM::ManagedPolicy",
    "AWS::IAM::Policy",
    "AWS::S3::BucketPolicy",
    "AWS::KMS::Key",
    "AWS::SageMaker::ModelPackageGroup",
    "AWS::Events::EventBusPolicy",
)


def statement(template: dict, side: Side, stage: str) -> dict:
    """The statement `side` names: in a role's trust, its (identity) policies, or a resource's policy."""
    if side.sid == "trust":
        name = resource_named(template, side.resource, ("AWS::IAM::Role",))
        (found,) = [item for kind, item in statements_of(template, name) if kind == "trust"]
        return found
    sid = side.sid.format(Stage=stage.capitalize())
    role = [name for name, body in resources_of(template, "AWS::IAM::Role").items() if side.resource in name]
    if role:
        statements = [(item.get("Sid", ""), item) for item in role_statements(template, role[0])]
    else:
        statements = statements_of(template, resource_named(template, side.resource, POLICIES))
    (found,) = [item for kind, item in statements if kind == sid]
    return found


def actions(found: dict) -> list[str]:
    action = found["Action"]
    return [action] if isinstance(action, str) else action


def caller_arn(row: Row, stage: str) -> str:
    if row.who in (DEPLOY_ROLE, ENDPOINT_ROLE, MONITOR_ROLE):
        return f"arn:{PARTITION}:iam::{STAGE_ACCOUNTS[stage]}:role/{stage_role_name('car-damage', stage, row.who)}"
    return f"arn:{PARTITION}:iam::{WORKFLOW}:root"  # the workflow account's principals, whom its own policies narrow


CASES = [(row, stage) for row in ROWS for stage in row.stages]


@pytest.mark.parametrize(("row", "stage"), CASES, ids=[f"{row.who}-{row.action}-{stage}" for row, stage in CASES])
def test_each_action_across_accounts_is_allowed_on_both_sides_and_only_to_its_caller(three_accounts, row, stage):  # noqa: F811
    templates = {"workflow": three_accounts.template_json()}
    (stack,) = [s for s in three_accounts.stack.stage_stacks if s.stage == stage]
    templates["stage"] = three_accounts.template_json(stack)
    other = STAGE_ACCOUNTS[stage] if row.caller.stack == "workflow" else WORKFLOW

    # The call is code's (followed from its entry point) or AWS's own, with the role it is given.
    if row.code:
        files = python_files("containers/deploy") + CLI_CODE + [ROOT / "pipelines" / "backends" / "__init__.py"]
        assert row.method in {call.method for call in Program(files).calls(row.code)}, f"{row.code} no longer calls {row.method}"

    # The caller's side: its policy allows the action on a resource of the other account.
    mine = statement(templates[row.caller.stack], row.caller, stage)
    assert allows(actions(mine), row.action), f"{row.caller} does not allow {row.action}"
    # (an S3 ARN holds no account: the condition aws:ResourceAccount names it)
    where = flat(mine["Resource"]) + json.dumps(mine.get("Condition", {}).get("StringEquals", {}).get("aws:ResourceAccount", ""))
    assert other in where, f"{row.caller} names no resource of account {other}: {where}"

    # The resource's side: its policy (or the role's trust) allows the action to that caller's account, and where the
    # caller is a stage role, to that role alone.
    theirs = statement(templates[row.resource.stack], row.resource, stage)
    assert allows(actions(theirs), row.action), f"{row.resource} does not allow {row.action}"
    principal = flat(theirs["Principal"]["AWS"])
    caller_account = STAGE_ACCOUNTS[stage] if row.caller.stack == "stage" else WORKFLOW
    assert principal == f"arn:{PARTITION}:iam::{caller_account}:root", principal
    narrowed = theirs.get("Condition", {}).get("ArnEquals", {}).get("aws:PrincipalArn")
    if row.caller.stack == "stage":
        assert caller_arn(row, stage) in [flat(arn) for arn in narrowed], f"{row.resource} does not admit {caller_arn(row, stage)}"
        # The stage's deploy role, and for the archives its endpoint role, for the packages its monitor role; for the
        # baselines the monitor role alone: no other.
        assert len(narrowed) <= 2


def test_the_table_covers_every_statement_that_names_another_account(three_accounts):  # noqa: F811
    """Every statement of either side that names the other side's account (a grant, or a use of a grant) is some
    row's: one across accounts that no row explains fails here, and so does a row that names none."""
    named = {(row.caller.stack, row.caller.sid) for row in ROWS} | {(row.resource.stack, row.resource.sid) for row in ROWS}
    workflow = three_accounts.template_json()
    found = set()
    for stack in three_accounts.stack.stage_stacks:
        template = three_accounts.template_json(stack)
        for side, body, other in (("stage", template, WORKFLOW), ("workflow", workflow, STAGE_ACCOUNTS[stack.stage])):
            for name in body["Resources"]:
                for sid, item in statements_of(body, name):
                    if other not in json.dumps(item):
                        continue
                    generic = sid.replace(stack.stage.capitalize(), "{Stage}", 1) if sid.startswith(stack.stage.capitalize()) else sid
                    assert (side, generic) in named, f"{side} {name} statement {sid or '(no id)'} names account {other}; no row explains it"
                    found.add((side, generic))
    assert found == named
