"""Release stages in accounts of their own (issue 24, the stage accounts' side): with a workflow, a staging and a
production account, the app holds one stage stack per stage account, in its account and region; its roles carry
the names the workflow stack's grants admit; the stage's deploy function (deploy.py, named stage_function_name)
has the stage's settings, its endpoint's rules and rollback alarms, and the stage account's own key and bucket;
only the first stage (staging) has the approvals bus, which admits the workflow account only and is the one bus the
workflow stack forwards approvals to; each stage has a promote role the workflow account may assume, and the last
(production) the champion role only the workflow's champion function may assume; each stage's endpoint has its drift
monitor in its stack, in the stage's own bucket with its own key and its own copy of the processing image, its
starter reading the served package's baselines from the workflow account; and without stage accounts there is none
of it."""

from __future__ import annotations

import json

import pytest

from containers.deploy import deploy
from containers.deploy.deploy import PACKAGE_EVENT, DeploySettings, rollback_alarm_names
from infra.cross_account import model_archives
from infra.drift import drift_alarm_name
from pipelines.config import stage_event_bus_arn, stage_event_bus_name, stage_function_name, workflow_key_alias
from tests.infra import test_cross_account
from tests.infra.conftest import with_infrastructure
from tests.infra.test_checks import IGNORED_CFN_LINT
from tests.infra.test_cross_account import ACCOUNTS, PRODUCTION, STAGE_ACCOUNTS, STAGING, WORKFLOW, root
from tests.infra.test_permissions import actions, key_statements
from tests.infra.test_workflow_stack import logical_id, one, resources

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
        names = [role_named(template, suffix)[1]["Properties"]["RoleName"] for suffix in ("-deploy", "-endpoint", "-monitor")]
        assert names == [f"car-damage-{stage}-deploy", f"car-damage-{stage}-endpoint", f"car-damage-{stage}-monitor"]
        deploy_role, endpoint_role, monitor_role = (
            {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, f":iam::{account}:role/{name}"]]} for name in names
        )
        # The group's policy admits the deploy role and the drift monitor's starter (they describe packages), the
        # bucket's and the key's the deploy and endpoint roles for the archives and the starter for the baselines.
        expected = [[deploy_role, monitor_role], [deploy_role, endpoint_role], [deploy_role, endpoint_role], [monitor_role], [monitor_role]]
        assert sorted(map(json.dumps, conditions[account])) == sorted(map(json.dumps, expected))


def function_of(template: dict) -> tuple[str, dict]:
    """The stage's deploy function: the stack's function named for promote (the drift monitor's have no name)."""
    (found,) = [(name, body) for name, body in resources(template, "AWS::Lambda::Function").items() if "FunctionName" in body["Properties"]]
    return found


def test_only_the_first_stage_has_the_approvals_bus_which_admits_the_workflow_account_only_and_invokes_its_function(three_accounts):
    """Approvals reach the first stage only: staging's stack holds the bus and a rule on it (the approval pattern of
    infra.rules.approvals) that invokes its deploy function; production's has neither."""
    stacks = stage_stacks(three_accounts)
    template = three_accounts.template_json(stacks["staging"])
    bus_id, bus = one(template, "AWS::Events::EventBus")
    assert bus["Properties"]["Name"] == stage_event_bus_name("car-damage", "staging")
    _, policy = one(template, "AWS::Events::EventBusPolicy")
    assert policy["Properties"]["EventBusName"] == {"Ref": bus_id}
    assert policy["Properties"]["Statement"] == {
        "Sid": "cdk-WorkflowAccountPutsApprovals",
        "Effect": "Allow",
        "Principal": root(WORKFLOW),
        "Action": "events:PutEvents",
        "Resource": {"Fn::GetAtt": [bus_id, "Arn"]},
    }
    (rule,) = [r["Properties"] for r in resources(template, "AWS::Events::Rule").values() if "EventBusName" in r["Properties"]]
    assert rule["EventBusName"] == {"Ref": bus_id}
    assert rule["EventPattern"] == {
        "source": ["aws.sagemaker"],
        "detail-type": [PACKAGE_EVENT],
        "detail": {"ModelPackageGroupName": ["car-damage-models"], "ModelApprovalStatus": ["Approved"]},
    }
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [function_of(template)[0], "Arn"]}
    production = three_accounts.template_json(stacks["production"])
    assert not resources(production, "AWS::Events::EventBus") and not resources(production, "AWS::Events::EventBusPolicy")
    assert not [r for r in resources(production, "AWS::Events::Rule").values() if "EventBusName" in r["Properties"]]
    assert PACKAGE_EVENT not in json.dumps(production)


def test_the_workflow_forwards_approvals_to_the_first_stage_s_bus_only(three_accounts):
    from aws_cdk import Aws

    workflow = three_accounts.template_json()
    (rule,) = [r["Properties"] for r in resources(workflow, "AWS::Events::Rule").values() if "RoleArn" in r["Properties"].get("Targets", [{}])[0]]
    assert rule["EventPattern"] == {
        "source": ["aws.sagemaker"],
        "detail-type": [PACKAGE_EVENT],
        "detail": {"ModelPackageGroupName": ["car-damage-models"], "ModelApprovalStatus": ["Approved"]},
    }
    staging = three_accounts.stack.resolve(stage_event_bus_arn("car-damage", "staging", STAGING, Aws.REGION, partition=Aws.PARTITION))
    assert [target["Arn"] for target in rule["Targets"]] == [staging]
    (role,) = {json.dumps(target["RoleArn"]) for target in rule["Targets"]}
    statements = policy_statements(workflow, json.loads(role)["Fn::GetAtt"][0])
    assert [(s["Action"], s["Resource"]) for s in statements] == [("events:PutEvents", staging)]
    assert "event-bus/car-damage-production" not in json.dumps(workflow)


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
            packages = by_sid.get("DescribeWorkflowPackages")
            if role == endpoint:  # the model is made from the archive and an image: SageMaker reads no package
                assert packages is None
                continue
            assert packages["Resource"]["Fn::Join"][1][-1] == f":sagemaker:us-east-1:{WORKFLOW}:model-package/car-damage-models/*"
        (passing,) = [s for s in policy_statements(template, deploy) if s["Action"] == "iam:PassRole"]
        assert passing["Resource"] == {"Fn::GetAtt": [endpoint, "Arn"]}
        assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}


def test_each_stage_s_deploy_function_is_deploy_py_named_for_promote_with_the_stage_s_own_settings(three_accounts):
    """deploy.py's handler as the stage's deploy role, named by stage_function_name (promote reads the stage's settings
    by that name), with 300 s to hash the archive. Its settings are the stage's: its endpoint and alarms, its endpoint
    role, captures to its own bucket with its own key, the serving image of its region, the regional copy's prefix
    for production only (eu-west-1, not the workflow's us-east-1), no later stage, and its own topic; the rest is
    pipeline.yaml's, as the workflow's function has it. The function accepts them (DeploySettings)."""
    from aws_cdk.region_info import RegionInfo

    from tests.infra.test_workflow_stack import fake_values

    config = three_accounts.config
    for stage, stack in stage_stacks(three_accounts).items():
        template, endpoint = three_accounts.template_json(stack), config.stage_endpoints[stage]
        properties = function_of(template)[1]["Properties"]
        assert properties["FunctionName"] == stage_function_name("car-damage", stage) == f"car-damage-{stage}-deploy"
        assert (properties["Handler"], properties["Timeout"]) == ("deploy.handler", 300)
        assert properties["Role"] == {"Fn::GetAtt": [role_named(template, "-deploy")[0], "Arn"]}
        bucket, (key, _), (topic, _) = (
            logical_id(template, "AWS::S3::Bucket", "StorageBucket"),
            one(template, "AWS::KMS::Key"),
            one(template, "AWS::SNS::Topic"),
        )
        assert stack.region == REGIONS[stage]  # so the image's AWS::Region is the stage's
        image = [
            f"{RegionInfo.get(REGIONS[stage]).dlc_repository_account}.dkr.ecr.",
            {"Ref": "AWS::Region"},
            ".",
            {"Ref": "AWS::URLSuffix"},
            "/tensorflow-inference:2.20-cpu-py312-amzn2023-sagemaker-v1",
        ]
        from_yaml = deploy.config_values(config, role_arn="-", endpoint_name=endpoint)
        expected = {
            **deploy.as_environment({**from_yaml, "later_stage_endpoints": None}),
            "ENDPOINT_NAME": endpoint,
            "ROLE_ARN": {"Fn::GetAtt": [role_named(template, "-endpoint")[0], "Arn"]},
            "DATA_CAPTURE_S3_URI": {"Fn::Join": ["", ["s3://", {"Ref": bucket}, f"/data-capture/{endpoint}/"]]},
            "KMS_KEY_ID": {"Fn::GetAtt": [key, "Arn"]},
            "ROLLBACK_ALARMS": ",".join(rollback_alarm_names(endpoint)),
            "INFERENCE_IMAGE_URI": {"Fn::Join": ["", image]},
            "NOTIFICATION_TOPIC_ARN": {"Ref": topic},
        }
        if stage == "production":
            expected["MODEL_COPY_S3_URI"] = {"Fn::Join": ["", ["s3://", {"Ref": bucket}, "/models/"]]}
        variables = properties["Environment"]["Variables"]
        assert variables == expected
        assert "LATER_STAGE_ENDPOINTS" not in variables and ("MODEL_COPY_S3_URI" in variables) == (stage == "production")
        faked = {name: fake_values(value, template) for name, value in variables.items()}
        literals = {"AWS::Region": REGIONS[stage], "AWS::URLSuffix": "amazonaws.com"}
        faked["INFERENCE_IMAGE_URI"] = "".join(part if isinstance(part, str) else literals[part["Ref"]] for part in image)
        settings = DeploySettings.from_environment(faked)
        assert (settings.endpoint_name, settings.later_stages(), settings.inference_image_uri is not None) == (endpoint, [], True)


def test_each_stage_s_endpoint_state_changes_invoke_its_function_from_the_account_s_default_bus(three_accounts):
    for stage, stack in stage_stacks(three_accounts).items():
        template = three_accounts.template_json(stack)
        (rule,) = [r["Properties"] for r in resources(template, "AWS::Events::Rule").values() if deploy.ENDPOINT_EVENT in json.dumps(r)]
        assert "EventBusName" not in rule  # SageMaker sends its events to the default bus
        assert rule["EventPattern"] == {
            "source": ["aws.sagemaker"],
            "detail-type": [deploy.ENDPOINT_EVENT],
            "detail": {"EndpointName": [three_accounts.config.stage_endpoints[stage]], "EndpointStatus": ["IN_SERVICE", "FAILED"]},
        }
        (target,) = rule["Targets"]
        assert target["Arn"] == {"Fn::GetAtt": [function_of(template)[0], "Arn"]} and target["RetryPolicy"]["MaximumRetryAttempts"] == 4


def test_each_stage_s_rollback_and_drift_alarms_and_failed_monitoring_jobs_tell_its_encrypted_topic(three_accounts):
    """The function rolls updates back on alarms by name: they are in the stage's stack, on its endpoint, and they
    and the function (a rollback's or failure's notice) reach the stage's own topic, encrypted with its key, which
    only those alarms, the endpoint's drift alarm and the rule on its failed monitoring jobs may publish to."""
    from tests.infra.test_permissions import tail

    for stage, stack in stage_stacks(three_accounts).items():
        template, endpoint = three_accounts.template_json(stack), three_accounts.config.stage_endpoints[stage]
        alarms = [body["Properties"] for body in resources(template, "AWS::CloudWatch::Alarm").values()]
        names = [alarm["AlarmName"] for alarm in alarms]
        rolling_back = function_of(template)[1]["Properties"]["Environment"]["Variables"]["ROLLBACK_ALARMS"].split(",")
        assert names == [*rollback_alarm_names(endpoint), drift_alarm_name(endpoint)] and rolling_back == names[:3]
        (key, _), (topic, body) = one(template, "AWS::KMS::Key"), one(template, "AWS::SNS::Topic")
        assert body["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": [key, "Arn"]}
        for alarm in alarms:
            assert alarm["AlarmActions"] == alarm["OKActions"] == [{"Ref": topic}]
            assert json.dumps({"Name": "EndpointName", "Value": endpoint}) in json.dumps(alarm) or alarm["Dimensions"] == [
                {"Name": "Endpoint", "Value": endpoint}  # the drift alarm: the metrics function's dimension
            ]
        failed = logical_id(template, "AWS::Events::Rule", "OnMonitoringJobFailed")
        (target,) = template["Resources"][failed]["Properties"]["Targets"]
        assert target["Arn"] == {"Ref": topic}
        (policy,) = resources(template, "AWS::SNS::TopicPolicy").values()
        rules, publishing = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
        assert rules["Principal"] == {"Service": "events.amazonaws.com"}
        assert rules["Condition"] == {"ArnEquals": {"aws:SourceArn": [{"Fn::GetAtt": [failed, "Arn"]}]}}
        assert publishing["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
        assert [tail(arn) for arn in publishing["Condition"]["ArnEquals"]["aws:SourceArn"]] == [f":alarm:{name}" for name in names]
        sids = [s["Sid"] for s in key_statements(template) if "Sid" in s]
        assert sids == ["RulesPublishToTheEncryptedTopic", "AlarmsPublishToTheEncryptedTopic"]
        deploy_role, _ = role_named(template, "-deploy")
        assert {"Action": "sns:Publish", "Effect": "Allow", "Resource": {"Ref": topic}} in policy_statements(template, deploy_role)


def test_each_stage_account_s_own_key_and_bucket_hold_its_captures_privately(three_accounts):
    """The captures are the stage account's data: its own rotating key (its account's root administers it), a
    bucket encrypted with that key, public access blocked, plain HTTP refused, access logged, captures expiring."""
    for stage, stack in stage_stacks(three_accounts).items():
        template = three_accounts.template_json(stack)
        key_id, key = one(template, "AWS::KMS::Key")
        assert key["Properties"]["EnableKeyRotation"] is True and key["DeletionPolicy"] == "Retain"
        assert key_statements(template)[0]["Principal"] == root(STAGE_ACCOUNTS[stage])
        bucket_id, logs = logical_id(template, "AWS::S3::Bucket", "StorageBucket"), logical_id(template, "AWS::S3::Bucket", "AccessLogs")
        properties = template["Resources"][bucket_id]["Properties"]
        (encryption,) = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert encryption["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": {"Fn::GetAtt": [key_id, "Arn"]}}
        assert properties["PublicAccessBlockConfiguration"] == dict.fromkeys(
            ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"), True
        )
        assert properties["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": logs}
        assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
        rules = {rule["Id"]: rule for rule in properties["LifecycleConfiguration"]["Rules"]}
        assert rules["ExpireCapturedData"]["Prefix"] == "data-capture/"
        ssl_only = set()
        for policy in resources(template, "AWS::S3::BucketPolicy").values():
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                if statement["Effect"] == "Deny" and statement.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}:
                    ssl_only.add(policy["Properties"]["Bucket"]["Ref"])
        assert ssl_only == {bucket_id, logs}


def test_each_stage_s_endpoint_role_writes_its_captures_and_reads_the_copies_in_its_own_bucket(three_accounts):
    for stage, stack in stage_stacks(three_accounts).items():
        template, endpoint = three_accounts.template_json(stack), three_accounts.config.stage_endpoints[stage]
        bucket, (key, _) = logical_id(template, "AWS::S3::Bucket", "StorageBucket"), one(template, "AWS::KMS::Key")
        by_sid = {s["Sid"]: s for s in policy_statements(template, role_named(template, "-endpoint")[0])}
        objects = {"Fn::GetAtt": [bucket, "Arn"]}
        assert by_sid["WriteCapturedData"]["Resource"] == {"Fn::Join": ["", [objects, f"/data-capture/{endpoint}/*"]]}
        assert by_sid["UseTheStageKeyForData"]["Resource"] == {"Fn::GetAtt": [key, "Arn"]}
        assert ("ReadModelCopies" in by_sid) == (stage == "production")


COPYING = ["CopyModelArchives", "ListModelCopies", "EncryptModelCopies"]  # production's regional copy of each archive
DEPLOYING = [  # infra.deployment.endpoint_statements: deploying in the stage's own account
    "CreateModelsAndEndpointConfigs",
    "ReadTheServedEndpointConfig",
    "CreateAndUpdateTheEndpoint",
    "PassTheExecutionRoleToSageMakerOnly",
    "EncryptEndpointWithTheKey",
    "ScaleTheEndpoint",
    "TargetTrackingAlarms",
    "AutoScalingServiceLinkedRole",
]


def test_each_stage_s_deploy_role_reads_across_and_deploys_to_its_own_endpoint_only(three_accounts):
    """Its statements are the workflow reads, what deploying in its account takes (the workflow deployment's, for
    its endpoint, its endpoint role and its key), the regional copy's for production only, its logs and its topic."""
    for stage, stack in stage_stacks(three_accounts).items():
        template, endpoint = three_accounts.template_json(stack), three_accounts.config.stage_endpoints[stage]
        deploy_role, _ = role_named(template, "-deploy")
        sids = [s.get("Sid") for s in policy_statements(template, deploy_role)]
        reads = ["DescribeWorkflowPackages", "ReadWorkflowModelArchives", "DecryptWorkflowModelArchives"]
        assert sids == [*reads, *DEPLOYING, *(COPYING if stage == "production" else []), "WriteOwnLogs", None, None]  # None: publishing
        by_sid = {s.get("Sid"): s for s in policy_statements(template, deploy_role)}
        assert by_sid["CreateAndUpdateTheEndpoint"]["Resource"]["Fn::Join"][1][-1] == f":endpoint/{endpoint}"
        assert by_sid["EncryptEndpointWithTheKey"]["Resource"] == {"Fn::GetAtt": [one(template, "AWS::KMS::Key")[0], "Arn"]}


def test_each_stage_s_promote_role_is_the_workflow_account_s_and_deploys_as_the_function_does(three_accounts):
    """Trusted by the workflow account (its people's policies say who there: infra.people); it reads the function's
    settings, calls the endpoint for the smoke test, and deploys with the very statements of the deploy role, but
    reads nothing of the workflow account (promote does that with the promoter's own credentials)."""
    for stage, stack in stage_stacks(three_accounts).items():
        template, endpoint = three_accounts.template_json(stack), three_accounts.config.stage_endpoints[stage]
        promote_id, promote = role_named(template, "-promote")
        assert promote["Properties"]["RoleName"] == f"car-damage-{stage}-promote"
        assert promote["Properties"]["AssumeRolePolicyDocument"]["Statement"] == [
            {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": root(WORKFLOW)}
        ]
        statements = policy_statements(template, promote_id)
        by_sid = {s["Sid"]: s for s in statements}
        assert by_sid["ReadTheDeploySettings"] == {
            "Sid": "ReadTheDeploySettings",
            "Action": "lambda:GetFunctionConfiguration",
            "Effect": "Allow",
            "Resource": {"Fn::GetAtt": [function_of(template)[0], "Arn"]},
        }
        assert by_sid["SmokeTestTheEndpoint"]["Action"] == "sagemaker:InvokeEndpoint"
        assert by_sid["SmokeTestTheEndpoint"]["Resource"]["Fn::Join"][1][-1] == f":endpoint/{endpoint}"
        deploying = [*DEPLOYING, *(COPYING if stage == "production" else [])]
        assert [s["Sid"] for s in statements] == ["ReadTheDeploySettings", "SmokeTestTheEndpoint", *deploying]
        deploy_role = {s.get("Sid"): s for s in policy_statements(template, role_named(template, "-deploy")[0])}
        assert [by_sid[sid] for sid in deploying] == [deploy_role[sid] for sid in deploying]
        assert WORKFLOW not in json.dumps(statements)
        assert template["Outputs"]["PromoteRoleArn"]["Value"] == {"Fn::GetAtt": [promote_id, "Arn"]}


def test_each_stage_stack_outputs_its_function_bucket_and_key(three_accounts):
    for stack in stage_stacks(three_accounts).values():
        template = three_accounts.template_json(stack)
        outputs = {name: output["Value"] for name, output in template["Outputs"].items() if name in ("DeployFunctionName", "BucketName", "KeyArn")}
        assert outputs == {
            "DeployFunctionName": {"Ref": function_of(template)[0]},
            "BucketName": {"Ref": logical_id(template, "AWS::S3::Bucket", "StorageBucket")},
            "KeyArn": {"Fn::GetAtt": [one(template, "AWS::KMS::Key")[0], "Arn"]},
        }


@pytest.mark.parametrize("stage", list(STAGE_ACCOUNTS))
def test_each_stage_s_stack_has_a_reader_role_the_workflow_account_may_assume_which_only_reads(three_accounts, stage):
    """The workflow account's people (`cardamage models`, the console) and, for production, its champion function
    (FindChampion) read what the stage serves as this role: trusted by the workflow account, it may only read."""
    from pipelines.config import READER_ROLE, READER_ROLE_OUTPUT, stage_role_name

    template = three_accounts.template_json(stage_stacks(three_accounts)[stage])
    reader_id, reader = role_named(template, "-reader")
    assert reader["Properties"]["RoleName"] == stage_role_name("car-damage", stage, READER_ROLE)
    trust = reader["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust == [{"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": root(WORKFLOW)}]
    statements = policy_statements(template, reader_id)
    assert sorted({action for s in statements for action in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}) == [
        "sagemaker:DescribeEndpoint",
        "sagemaker:DescribeEndpointConfig",
        "sagemaker:ListTags",
    ]
    (reading,) = [s for s in statements if "sagemaker:DescribeEndpoint" in s["Action"]]
    endpoint = "car-damage-endpoint" if stage == "production" else f"car-damage-endpoint-{stage}"
    assert reading["Resource"]["Fn::Join"][1][-1] == f":endpoint/{endpoint}"
    assert template["Outputs"][READER_ROLE_OUTPUT]["Value"] == {"Fn::GetAtt": [reader_id, "Arn"]}


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


def docker_images(synthesized, stack) -> dict[str, dict]:
    """The Docker image assets of `stack` (its assets manifest): digest -> source and destinations."""
    return json.loads((synthesized.outdir / f"{stack.artifact_id}.assets.json").read_text())["dockerImages"]


def statements_by_sid(template: dict, role: str) -> dict[str, dict]:
    return {statement.get("Sid", f"#{index}"): statement for index, statement in enumerate(policy_statements(template, role))}


def names_account(statement: dict, account: str) -> bool:
    return account in json.dumps(statement)


@pytest.mark.parametrize("stage", list(STAGE_ACCOUNTS))
def test_each_stage_s_endpoint_is_monitored_from_its_own_stack_with_its_bucket_key_and_image(three_accounts, stage):
    """A schedule for the stage's endpoint invokes the starter, which the stack configures with the stage's bucket,
    key and copy of the processing image, the job role, and the workflow's account; it has no labels or review
    batches (the workflow account's), and monitor_start accepts the settings."""
    from containers.deploy import monitor_start
    from tests.infra.test_workflow_stack import fake_values

    stack = stage_stacks(three_accounts)[stage]
    template, endpoint = three_accounts.template_json(stack), three_accounts.config.stage_endpoints[stage]
    account, region = STAGE_ACCOUNTS[stage], REGIONS[stage]
    starter = logical_id(template, "AWS::Lambda::Function", "StartFunction")
    (schedule,) = [body["Properties"] for body in resources(template, "AWS::Scheduler::Schedule").values()]
    assert json.loads(schedule["Target"]["Input"]) == {"endpoint_name": endpoint}
    assert schedule["Target"]["Arn"] == {"Fn::GetAtt": [starter, "Arn"]} and schedule["ScheduleExpression"] == "rate(1 hour)"
    properties = template["Resources"][starter]["Properties"]
    assert properties["Role"] == {"Fn::GetAtt": [role_named(template, "-monitor")[0], "Arn"]}
    variables = properties["Environment"]["Variables"]
    bucket, (key, _) = logical_id(template, "AWS::S3::Bucket", "StorageBucket"), one(template, "AWS::KMS::Key")
    (image,) = docker_images(three_accounts, stack).items()
    repository = f"cdk-hnb659fds-container-assets-{account}-{region}"
    assert variables == {
        "ARTIFACT_BUCKET": {"Ref": bucket},
        "ENDPOINTS": json.dumps({endpoint: {"captures": f"data-capture/{endpoint}/", "reports": f"monitoring/{endpoint}/", "stage": stage}}),
        "MODEL_PACKAGE_GROUP": "car-damage-models",
        "ROLE_ARN": {"Fn::GetAtt": [logical_id(template, "AWS::IAM::Role", "DriftMonitoringJobRole"), "Arn"]},
        "IMAGE_URI": {"Fn::Sub": f"{account}.dkr.ecr.{region}.${{AWS::URLSuffix}}/{repository}:{image[0]}"},
        "KMS_KEY_ID": {"Fn::GetAtt": [key, "Arn"]},
        "INSTANCE_TYPE": "ml.m5.large",
        "VOLUME_SIZE_GB": "30",
        "MAX_RUNTIME_SECONDS": "3600",
        "WINDOW_HOURS": "1",
        "ATYPICAL": "20",
        "JOB_PREFIX": "car-damage-monitor",
        "BASELINE_PREFIX": "car-damage-pipeline/",
        "BASELINE_FOLDER": "evaluation",
        "WORKFLOW_ACCOUNT": WORKFLOW,
    }
    literals = {"ARTIFACT_BUCKET": "stage-bucket", "IMAGE_URI": "image"}  # what CloudFormation gives for these references
    faked = {name: literals.get(name) or fake_values(value, template) for name, value in variables.items()}
    settings = monitor_start.Settings.from_environment(faked)
    assert (settings.workflow_account, settings.labels, list(settings.endpoints)) == (WORKFLOW, "", [endpoint])
    # The image is the workflow's processing image (the same source), published into the stage's own account.
    workflow_images = docker_images(three_accounts, three_accounts.stack).items()
    (workflow_image,) = [digest for digest, body in workflow_images if body["source"]["dockerFile"] == "containers/processing/Dockerfile"]
    assert image[0] == workflow_image and image[1]["source"]["dockerFile"] == "containers/processing/Dockerfile"
    (destination,) = image[1]["destinations"].values()
    assert (destination["repositoryName"], destination["region"]) == (repository, region)
    assert destination["assumeRoleArn"] == f"arn:${{AWS::Partition}}:iam::{account}:role/cdk-hnb659fds-image-publishing-role-{account}-{region}"


@pytest.mark.parametrize("stage", list(STAGE_ACCOUNTS))
def test_each_stage_s_monitoring_job_reads_and_writes_its_own_bucket_only_and_pulls_its_own_image(three_accounts, stage):
    """Captures and the starter's copies of the baselines in, reports out, in the stage's bucket with its key; the
    processing image from the stage account's bootstrap repository; nothing of the workflow account."""
    stack = stage_stacks(three_accounts)[stage]
    template, endpoint = three_accounts.template_json(stack), three_accounts.config.stage_endpoints[stage]
    account, region = STAGE_ACCOUNTS[stage], REGIONS[stage]
    job = logical_id(template, "AWS::IAM::Role", "DriftMonitoringJobRole")
    by_sid = statements_by_sid(template, job)
    objects = {"Fn::GetAtt": [logical_id(template, "AWS::S3::Bucket", "StorageBucket"), "Arn"]}
    assert by_sid["ReadCapturesAndBaselines"]["Resource"] == [
        {"Fn::Join": ["", [objects, f"/data-capture/{endpoint}/*"]]},
        {"Fn::Join": ["", [objects, f"/monitoring/{endpoint}/*/baseline/*"]]},
    ]
    assert by_sid["ListCapturesAndBaselines"]["Condition"] == {
        "StringLike": {"s3:prefix": [f"data-capture/{endpoint}/*", f"monitoring/{endpoint}/*/baseline/*"]}
    }
    assert by_sid["WriteReports"]["Resource"] == {"Fn::Join": ["", [objects, f"/monitoring/{endpoint}/*"]]}
    assert by_sid["UseTheKeyForData"]["Resource"] == {"Fn::GetAtt": [one(template, "AWS::KMS::Key")[0], "Arn"]}
    assert "ReadLabelsAndManifests" not in by_sid and "ListLabels" not in by_sid  # no accuracy in service here
    for statement in by_sid.values():  # every S3 statement is on the stage's own bucket
        if any(action.startswith("s3:") for action in actions(statement)):
            assert json.dumps(objects) in json.dumps(statement["Resource"]) and ":s3:::" not in json.dumps(statement["Resource"])
    pull = f":ecr:{region}:{account}:repository/cdk-hnb659fds-container-assets-{account}-{region}"
    assert [s["Resource"]["Fn::Join"][1][-1] for s in by_sid.values() if "ecr:BatchGetImage" in s["Action"]] == [pull]
    assert not [sid for sid, s in by_sid.items() if names_account(s, WORKFLOW)]


@pytest.mark.parametrize("stage", list(STAGE_ACCOUNTS))
def test_each_stage_s_starter_reads_the_served_package_s_baselines_of_the_workflow_account_only(three_accounts, stage):
    """The monitor role (the starter's, named for the workflow's grants) describes packages of the workflow's group and
    reads the two baseline files in a bucket of the workflow account, through its key by alias in its region; in its
    own account it lists the captures, writes the window's reports and copies, and starts jobs as the job role."""
    from pipelines.config import MONITOR_ROLE, stage_role_name

    stack = stage_stacks(three_accounts)[stage]
    template, endpoint = three_accounts.template_json(stack), three_accounts.config.stage_endpoints[stage]
    role_id, role = role_named(template, "-monitor")
    assert role["Properties"]["RoleName"] == stage_role_name("car-damage", stage, MONITOR_ROLE)
    assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "lambda.amazonaws.com"}
    by_sid = statements_by_sid(template, role_id)
    across = {sid for sid, s in by_sid.items() if names_account(s, WORKFLOW)}
    assert across == {"DescribeWorkflowPackages", "ReadWorkflowBaselines", "DecryptWorkflowBaselines"}
    assert by_sid["DescribeWorkflowPackages"]["Resource"]["Fn::Join"][1][-1] == f":sagemaker:us-east-1:{WORKFLOW}:model-package/car-damage-models/*"
    baselines = by_sid["ReadWorkflowBaselines"]
    assert (baselines["Action"], baselines["Condition"]) == ("s3:GetObject", {"StringEquals": {"aws:ResourceAccount": WORKFLOW}})
    assert [resource["Fn::Join"][1][-1] for resource in baselines["Resource"]] == [
        ":s3:::*/car-damage-pipeline/*/evaluation/data-baseline.json",
        ":s3:::*/car-damage-pipeline/*/evaluation/model-baseline.json",
    ]
    key = by_sid["DecryptWorkflowBaselines"]
    assert (key["Action"], key["Resource"]["Fn::Join"][1][-1]) == ("kms:Decrypt", f":kms:us-east-1:{WORKFLOW}:key/*")
    assert key["Condition"]["ForAnyValue:StringEquals"] == {"kms:ResourceAliases": [workflow_key_alias("car-damage")]}
    assert key["Condition"]["StringEquals"] == {"kms:ViaService": {"Fn::Join": ["", ["s3.us-east-1.", {"Ref": "AWS::URLSuffix"}]]}}
    objects = {"Fn::GetAtt": [logical_id(template, "AWS::S3::Bucket", "StorageBucket"), "Arn"]}
    assert by_sid["WriteEmptyReports"]["Resource"] == {"Fn::Join": ["", [objects, f"/monitoring/{endpoint}/*"]]}
    assert by_sid["ReadTheServedPackage"]["Action"] == ["sagemaker:DescribeEndpoint", "sagemaker:ListTags"]  # the package: across
    assert not {"ListLabels", "ListReviewBatches", "ReadReviewBatches"} & set(by_sid)
    job = logical_id(template, "AWS::IAM::Role", "DriftMonitoringJobRole")
    assert by_sid["PassTheJobRoleToSageMakerOnly"]["Resource"] == {"Fn::GetAtt": [job, "Arn"]}


def test_the_stage_s_metrics_are_its_own_account_s_and_its_drift_alarm_watches_its_endpoint(three_accounts):
    for stage, stack in stage_stacks(three_accounts).items():
        template, endpoint = three_accounts.template_json(stack), three_accounts.config.stage_endpoints[stage]
        metrics = logical_id(template, "AWS::Lambda::Function", "MetricsFunction")
        assert template["Resources"][metrics]["Properties"]["Environment"]["Variables"] == {
            "METRIC_NAMESPACE": "car-damage/Monitoring",
            "JOB_PREFIX": "car-damage-monitor",
        }
        completed = template["Resources"][logical_id(template, "AWS::Events::Rule", "OnMonitoringJobCompleted")]["Properties"]
        assert [target["Arn"] for target in completed["Targets"]] == [{"Fn::GetAtt": [metrics, "Arn"]}]
        (alarm,) = [
            body["Properties"]
            for body in resources(template, "AWS::CloudWatch::Alarm").values()
            if body["Properties"]["AlarmName"] == drift_alarm_name(endpoint)
        ]
        assert (alarm["Namespace"], alarm["MetricName"], alarm["Dimensions"]) == (
            "car-damage/Monitoring",
            "Drift",
            [{"Name": "Endpoint", "Value": endpoint}],
        )


def test_without_drift_monitoring_no_stage_stack_monitors_and_the_workflow_grants_nothing_for_it(synthesize):
    """Monitoring off: no schedule, monitor role or alarm in the stage stacks, and the workflow's grants name no
    monitor role and no baseline."""
    text = with_infrastructure(
        "", {"  account: null\n": f'  account: "{WORKFLOW}"\n', ACCOUNTS[0]: ACCOUNTS[1], "  enabled: true\n": "  enabled: false\n"}
    )
    synthesized = synthesize(text, account=WORKFLOW, region="us-east-1")
    for stack in synthesized.stack.stage_stacks:
        template = synthesized.template_json(stack)
        assert stack.drift is None and not resources(template, "AWS::Scheduler::Schedule")
        assert not [role for role in resources(template, "AWS::IAM::Role").values() if role["Properties"].get("RoleName", "").endswith("-monitor")]
        assert [body["Properties"]["AlarmName"] for body in resources(template, "AWS::CloudWatch::Alarm").values()] == list(
            rollback_alarm_names(stack.endpoint_name)
        )
    admitted = []
    for body in synthesized.template_json()["Resources"].values():
        for key in ("PolicyDocument", "KeyPolicy", "ModelPackageGroupPolicy"):
            for statement in body["Properties"].get(key, {}).get("Statement", []):
                admitted += [json.dumps(arn) for arn in statement.get("Condition", {}).get("ArnEquals", {}).get("aws:PrincipalArn", [])]
    assert admitted and not [arn for arn in admitted if "-monitor" in arn]  # the grants to the deploy and endpoint roles only
    assert not [arn for arn in admitted if "-deploy" not in arn and "-endpoint" not in arn]


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


def test_the_app_refuses_a_deploy_step_that_would_deploy_to_a_stage_account(definition):
    """With registry.approval_status Approved the pipeline's Deploy step deploys from the workflow's account, which
    cannot create the first stage's endpoint in another account: the app says which key to change. The file itself
    loads (its local profile registers Approved, and the local engine has no accounts)."""
    from aws_cdk import App

    from infra.app import build
    from pipelines.config import parse_config
    from tests.support import ROOT

    text = with_infrastructure("", {"  account: null\n": f'  account: "{WORKFLOW}"\n', ACCOUNTS[0]: ACCOUNTS[1]})
    text = text.replace("  approval_status: PendingManualApproval\n", "  approval_status: Approved\n", 1)
    config = parse_config(text, source="pipeline.yaml", base_dir=ROOT)
    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    with pytest.raises(
        ValueError,
        match=r"pipeline\.yaml: registry\.approval_status: Approved .* first release stage \(staging\) is served from account 111111111111",
    ):
        build(App(context=context), config, account=WORKFLOW, region="us-east-1", definition=definition)
