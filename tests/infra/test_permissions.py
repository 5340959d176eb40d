"""IAM: no managed full-access policies, no service-wide wildcards, and each role's statements scoped to the
resources its work needs."""

from __future__ import annotations

import json

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
    assert invoke["Resource"] == [
        {"Fn::GetAtt": [logical_id(workflow_template, "AWS::Lambda::Function", name), "Arn"]} for name in ("DeployFunction", "ChampionFunction")
    ]
    assert f"model-package/{workflow.config.model_package_group}/*" in json.dumps(statements["RegisterModels"]["Resource"])
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
    # deploy, champion, trigger, and CDK's bucket-notifications handler; execution, pipeline, labelling
    assert services == ["lambda.amazonaws.com"] * 4 + ["sagemaker.amazonaws.com"] * 3


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
