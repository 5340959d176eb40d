"""IAM: no managed full-access policies, no service-wide wildcards, and each role's statements scoped to the
resources its work needs."""

from __future__ import annotations

import json

import pytest

from containers.deploy.deploy import rollback_alarm_names
from infra.drift import drift_alarm_name
from tests.infra.conftest import with_infrastructure
from tests.infra.test_workflow_stack import logical_id, resources


def statements_of(template: dict, role_fragment: str) -> dict[str, dict]:
    """Sid -> statement of the inline policies attached to the role whose logical id contains `role_fragment`."""
    role = logical_id(template, "AWS::IAM::Role", role_fragment)
    found = {}
    for policy in resources(template, "AWS::IAM::Policy").values():
        if {"Ref": role} in policy["Properties"]["Roles"]:
            for index, statement in enumerate(policy["Properties"]["PolicyDocument"]["Statement"]):
                found[statement.get("Sid", f"#{index}")] = statement
    return found


def actions(statement: dict) -> list[str]:
    return [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]


def test_no_managed_full_access_and_no_service_wide_wildcards(workflow_template, cicd):
    for template in (workflow_template, cicd.template_json(cicd.stack.stage.stack)):
        for role in resources(template, "AWS::IAM::Role").values():
            assert "FullAccess" not in json.dumps(role["Properties"].get("ManagedPolicyArns", []))
        for policy in resources(template, "AWS::IAM::Policy").values():
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                for action in actions(statement):
                    assert action != "*" and not action.endswith(":*"), (statement.get("Sid"), action)


def test_the_execution_role_reads_the_input_prefixes_and_writes_its_pipeline_s_prefix(workflow, workflow_template):
    statements = statements_of(workflow_template, "SageMakerExecution")
    data = logical_id(workflow_template, "AWS::S3::Bucket", "Data")
    artifacts = logical_id(workflow_template, "AWS::S3::Bucket", "Artifacts")
    read = statements["ReadLabelledData"]
    assert actions(read) == ["s3:GetObject"]
    assert [json.dumps(resource) for resource in read["Resource"]] == [
        json.dumps({"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::", {"Ref": data}, f"/{prefix}*"]]})
        for prefix in ("manifests/", "images/", "ground-truth/", "labels/", "snapshots/")
    ]
    assert statements["ListLabelledData0"]["Condition"] == {
        "StringLike": {"s3:prefix": ["ground-truth/*", "images/*", "labels/*", "manifests/*", "snapshots/*"]}
    }
    write = statements["ReadWriteExecutionOutputs"]
    assert write["Resource"] == {"Fn::Join": ["", [{"Fn::GetAtt": [artifacts, "Arn"]}, f"/{workflow.config.pipeline_name}/*"]]}
    assert "s3:DeleteObject" not in json.dumps(statements)
    assert statements["PublishSageMakerMetrics"]["Condition"]["StringLike"]["cloudwatch:namespace"]
    assert statements["EncryptJobVolumes"]["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
    pulls = [s for s in statements.values() if "ecr:BatchGetImage" in actions(s)]
    # Both image assets live in the bootstrap's asset repository; the serving image is AWS's, per region.
    assert sorted("repository/tensorflow-inference" in json.dumps(s["Resource"]) for s in pulls) == [False, True]
    assert any("container-assets" in json.dumps(s["Resource"]) for s in pulls)


def test_the_pipeline_role_passes_only_the_execution_role_to_sagemaker_and_invokes_only_the_projects_functions(workflow, workflow_template):
    statements = statements_of(workflow_template, "RolesPipeline")
    execution = logical_id(workflow_template, "AWS::IAM::Role", "SageMakerExecution")
    passing = statements["PassTheExecutionRoleToSageMakerOnly"]
    assert passing["Resource"] == {"Fn::GetAtt": [execution, "Arn"]}
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    invoke = statements["InvokeLambdaSteps"]
    assert actions(invoke) == ["lambda:InvokeFunction"]
    # No Deploy step where packages are registered PendingManualApproval: the pipeline may not invoke the deployment function.
    assert invoke["Resource"] == {"Fn::GetAtt": [logical_id(workflow_template, "AWS::Lambda::Function", "ChampionFunction"), "Arn"]}
    assert f"model-package/{workflow.config.model_package_group}/*" in json.dumps(statements["RegisterModelsAsConfigured"]["Resource"])
    assert not any(a.startswith(("s3:Put", "s3:Delete")) for s in statements.values() for a in actions(s))


def test_the_trigger_role_starts_this_pipeline_reads_labels_and_writes_only_snapshots(workflow, workflow_template):
    statements = statements_of(workflow_template, "TriggerFunctionRole")
    start = statements["StartThePipeline"]
    assert actions(start) == ["sagemaker:StartPipelineExecution"]
    assert json.dumps(start["Resource"]).endswith(f':pipeline/{workflow.config.pipeline_name}"]]}}')
    read = json.dumps(statements["ReadLabelledInputs"]["Resource"])
    assert all(f"/{prefix}*" in read for prefix in ("labels/", "ground-truth/", "snapshots/")) and "images/" not in read
    assert actions(statements["WriteSnapshots"]) == ["s3:PutObject"]
    assert json.dumps(statements["WriteSnapshots"]["Resource"]).count("/snapshots/*") == 1
    assert set(statements) >= {"StartThePipeline", "WriteOwnLogs", "ListLabelledInputs", "ReadLabelledInputs", "WriteSnapshots"}


def test_the_deploy_role_manages_our_endpoint_and_passes_only_the_execution_role(workflow, workflow_template):
    statements = statements_of(workflow_template, "DeployFunctionRole")
    config = workflow.config
    assert json.dumps(statements["CreateAndUpdateTheEndpoint"]["Resource"]).endswith(f':endpoint/{config.endpoint_name}"]]}}')
    assert f"model-package/{config.model_package_group}/*" in json.dumps(statements["ReadPackagesOfTheGroup"]["Resource"])
    named = json.dumps(statements["CreateModelsAndEndpointConfigs"]["Resource"])
    assert f":model/{config.model_package_group}-v*" in named and f":endpoint-config/{config.model_package_group}-v*" in named
    execution = logical_id(workflow_template, "AWS::IAM::Role", "SageMakerExecution")
    assert statements["PassTheExecutionRoleToSageMakerOnly"]["Resource"] == {"Fn::GetAtt": [execution, "Arn"]}
    assert "sagemaker:DeleteEndpoint" not in json.dumps(statements)


def test_each_function_and_the_pipeline_have_roles_of_their_own(workflow_template):
    roles = resources(workflow_template, "AWS::IAM::Role")
    services = sorted(role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["Service"] for role in roles.values())
    # deploy, champion, trigger, the drift monitor's starter and metrics, and CDK's bucket-notifications handler;
    # execution, pipeline, labelling, the drift monitoring jobs; the drift monitor's schedules
    assert services == ["lambda.amazonaws.com"] * 6 + ["sagemaker.amazonaws.com"] * 4 + ["scheduler.amazonaws.com"]


def test_the_labelling_role_reads_images_and_task_files_and_writes_labels_where_the_trigger_listens(workflow_template):
    statements = statements_of(workflow_template, "RolesLabeling")
    data = logical_id(workflow_template, "AWS::S3::Bucket", "Data")
    assert statements["WriteLabels"]["Action"] == ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"]
    assert statements["WriteLabels"]["Resource"] == {
        "Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::", {"Ref": data}, "/ground-truth/*"]]
    }
    read = json.dumps(statements["ReadImagesAndManifests"]["Resource"])
    assert "/images/*" in read and "/manifests/*" in read and "/labeling/*" in read
    assert "cardamage label --role-arn" in json.dumps(workflow_template["Outputs"]["LabelingRoleArn"])


def tail(resource) -> str:
    """The literal end of an ARN CDK writes as Fn::Join (the part after the last reference)."""
    return resource["Fn::Join"][1][-1] if isinstance(resource, dict) else resource


def test_the_pipeline_role_runs_only_the_jobs_sagemaker_pipelines_names(workflow_template, definition):
    """A step's job is named pipelines-<execution id>-<step>-... unless the definition names it ("IAM Access
    Management", Customize access management for Pipelines jobs): the role's jobs are pipelines-*, and no
    Processing or Training step of the definition names its job."""
    statements = statements_of(workflow_template, "RolesPipeline")
    assert [tail(resource) for resource in statements["RunJobs"]["Resource"]] == [":processing-job/pipelines-*", ":training-job/pipelines-*"]
    creating = [s for s in statements.values() if any(a.endswith(("ProcessingJob", "TrainingJob")) for a in actions(s))]
    assert creating == [statements["RunJobs"]]
    from tests.infra.test_role_calls import pipeline_steps

    jobs = [step for step in pipeline_steps(json.loads(definition)["Steps"]) if step["Type"] in ("Processing", "Training")]
    assert {step["Name"] for step in jobs} == {"PrepareData", "Train", "Evaluate"}
    assert not [step["Name"] for step in jobs if {"ProcessingJobName", "TrainingJobName"} & set(step["Arguments"])]


@pytest.mark.parametrize("status", ["PendingManualApproval", "Approved"])
def test_the_pipeline_role_registers_packages_only_with_the_configured_approval_status(synthesize, status):
    """An execution started with ModelApprovalStatus=Approved cannot register an Approved package unless the
    configuration approves at registration: CreateModelPackage is allowed only with sagemaker:ModelApprovalStatus
    equal to registry.approval_status."""
    from tests.infra.calls import allows

    text = with_infrastructure("", {"  approval_status: PendingManualApproval\n": f"  approval_status: {status}\n"})
    template = synthesize(text).template_json()
    statements = statements_of(template, "RolesPipeline")
    invoked = {logical_id(template, "AWS::Lambda::Function", name): name for name in ("DeployFunction", "ChampionFunction")}
    resources = statements["InvokeLambdaSteps"]["Resource"]
    names = {invoked[arn["Fn::GetAtt"][0]] for arn in (resources if isinstance(resources, list) else [resources])}
    assert names == ({"ChampionFunction", "DeployFunction"} if status == "Approved" else {"ChampionFunction"})  # the Deploy step's
    registering = [s for s in statements.values() if allows(actions(s), "sagemaker:CreateModelPackage")]
    assert registering, "the pipeline role cannot register packages"
    for statement in registering:  # every statement that allows it, each only for that action and status
        assert statement.get("Condition") == {"StringEquals": {"sagemaker:ModelApprovalStatus": status}}, statement
        assert actions(statement) == ["sagemaker:CreateModelPackage"], statement


def test_the_execution_role_writes_only_the_log_groups_of_its_jobs_and_of_the_project_s_endpoint(workflow, workflow_template):
    """Processing, training and batch-predict's transform jobs, and the endpoint's model, run as this role;
    SageMaker writes their logs to these groups ("Log groups and streams that Amazon SageMaker AI sends to
    Amazon CloudWatch Logs")."""
    statements = statements_of(workflow_template, "SageMakerExecution")
    writing = [s for s in statements.values() if any(a.startswith("logs:") for a in actions(s))]
    assert writing == [statements["WriteSageMakerLogs"]]
    groups = [f"/aws/sagemaker/{kind}" for kind in ("ProcessingJobs", "TrainingJobs", "TransformJobs")]
    groups.append(f"/aws/sagemaker/Endpoints/{workflow.config.endpoint_name}")
    expected = [f":log-group:{group}" for group in groups] + [f":log-group:{group}:log-stream:*" for group in groups]
    assert [tail(resource) for resource in statements["WriteSageMakerLogs"]["Resource"]] == expected


def test_only_ground_truth_s_role_may_reencrypt_with_the_key(workflow_template):
    """ReEncrypt* and the GenerateDataKey* variants are what CDK's grant_encrypt_decrypt adds; S3 and SageMaker
    call Decrypt, GenerateDataKey and (a job's output key) Encrypt. Ground Truth's page on encrypting its output
    names them for its role, so the labelling role keeps them."""
    from tests.infra.calls import allowed_actions, allows, role_statements

    for role in resources(workflow_template, "AWS::IAM::Role"):
        allowed = allowed_actions(role_statements(workflow_template, role))
        assert allows(allowed, "kms:ReEncryptFrom") == ("RolesLabeling" in role), role
    execution = statements_of(workflow_template, "SageMakerExecution")["UseTheKeyForData"]
    assert actions(execution) == ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"]
    trigger = statements_of(workflow_template, "TriggerFunctionRole")
    assert actions(trigger["UseTheKeyForData"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert not [s for s in trigger.values() if "kms:GenerateDataKey*" in actions(s)]


def key_statements(template: dict) -> list[dict]:
    (key,) = resources(template, "AWS::KMS::Key").values()
    return key["Properties"]["KeyPolicy"]["Statement"]


def by_service(statements: list[dict], service: str) -> list[dict]:
    return [s for s in statements if s.get("Principal") == {"Service": service} and s["Effect"] == "Allow"]


def test_the_key_serves_the_project_s_alarms_only_and_eventbridge_as_aws_allows(workflow, workflow_template):
    """CloudWatch may use the key for this account's alarms of the project only (aws:SourceAccount,
    aws:SourceArn). EventBridge's statement has neither: "Adding the aws:SourceAccount, aws:SourceArn, and
    aws:SourceOrgID to a AWS KMS policy is not supported for EventBridge-to-encrypted topics" ("Managing Amazon
    SNS encryption keys and costs"); the topic policy limits it to the project's rules instead."""
    statements = key_statements(workflow_template)
    (alarms,) = by_service(statements, "cloudwatch.amazonaws.com")
    assert alarms["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    names = [*rollback_alarm_names(workflow.config.endpoint_name), drift_alarm_name(workflow.config.endpoint_name)]
    assert [tail(alarm) for alarm in alarms["Condition"]["ArnEquals"]["aws:SourceArn"]] == [f":alarm:{name}" for name in names]
    (rules,) = by_service(statements, "events.amazonaws.com")  # one: not also CDK's own grant for an SNS target
    assert "Condition" not in rules
    for statement in (alarms, rules):
        assert sorted(actions(statement)) == ["kms:Decrypt", "kms:GenerateDataKey*"]


def test_only_the_project_s_rules_and_alarms_may_publish_to_the_topic(workflow, workflow_template):
    (policy,) = resources(workflow_template, "AWS::SNS::TopicPolicy").values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert all("Condition" in s for s in statements)
    (rules,) = by_service(statements, "events.amazonaws.com")
    names = ("OnExecutionFailed", "OnPackageWaiting", "OnMonitoringJobFailed")
    rule_arns = [{"Fn::GetAtt": [logical_id(workflow_template, "AWS::Events::Rule", name), "Arn"]} for name in names]
    assert rules["Condition"] == {"ArnEquals": {"aws:SourceArn": rule_arns}}
    (alarms,) = by_service(statements, "cloudwatch.amazonaws.com")
    assert alarms["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    names = [*rollback_alarm_names(workflow.config.endpoint_name), drift_alarm_name(workflow.config.endpoint_name)]
    assert [tail(alarm) for alarm in alarms["Condition"]["ArnEquals"]["aws:SourceArn"]] == [f":alarm:{name}" for name in names]
    assert actions(rules) == actions(alarms) == ["sns:Publish"]


def test_the_trigger_role_lists_only_the_labelled_input_prefixes(workflow_template):
    statements = statements_of(workflow_template, "TriggerFunctionRole")
    listing = [s for s in statements.values() if any(a.startswith("s3:List") for a in actions(s))]
    assert listing == [statements["ListLabelledInputs"]]
    assert listing[0]["Condition"] == {"StringLike": {"s3:prefix": ["ground-truth/*", "labels/*"]}}


def test_the_deploy_role_reads_model_archives_only_under_its_pipeline_s_prefix(workflow, workflow_template):
    """The function checks the archive's sha256 before deploying (deploy.check_archive): GetObject on the
    executions' outputs, and the key to decrypt them."""
    statements = statements_of(workflow_template, "DeployFunctionRole")
    artifacts = logical_id(workflow_template, "AWS::S3::Bucket", "Artifacts")
    reading = [s for s in statements.values() if "s3:GetObject" in actions(s)]
    assert reading == [statements["ReadModelArchives"]] and actions(reading[0]) == ["s3:GetObject"]
    assert reading[0]["Resource"] == {"Fn::Join": ["", [{"Fn::GetAtt": [artifacts, "Arn"]}, f"/{workflow.config.pipeline_name}/*"]]}
    key = next(iter(resources(workflow_template, "AWS::KMS::Key")))
    assert statements["DecryptModelArchives"] == {
        "Action": "kms:Decrypt",
        "Effect": "Allow",
        "Resource": {"Fn::GetAtt": [key, "Arn"]},
        "Sid": "DecryptModelArchives",
    }
