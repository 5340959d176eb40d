"""The workflow stack as CloudFormation will receive it: storage and keys, the pipeline's definition with its
account values filled, the rules and their targets, the functions' settings, and the notifications."""

from __future__ import annotations

import json
import re

from containers.deploy.deploy import ENVIRONMENT, DeploySettings, rollback_alarm_names
from infra.drift import drift_alarm_name
from steps.context import PLACEHOLDERS


def resources(template: dict, kind: str) -> dict[str, dict]:
    return {name: body for name, body in template["Resources"].items() if body["Type"] == kind}


def one(template: dict, kind: str) -> tuple[str, dict]:
    (item,) = resources(template, kind).items()
    return item


def logical_id(template: dict, kind: str, fragment: str) -> str:
    (name,) = [name for name in resources(template, kind) if fragment in name]
    return name


def test_the_key_rotates_and_encrypts_the_data_and_artifact_buckets(workflow_template):
    key_id, key = one(workflow_template, "AWS::KMS::Key")
    assert key["Properties"]["EnableKeyRotation"] is True
    assert key["DeletionPolicy"] == "Retain"
    buckets = resources(workflow_template, "AWS::S3::Bucket")
    assert len(buckets) == 3
    logs = logical_id(workflow_template, "AWS::S3::Bucket", "AccessLogs")
    for name, bucket in buckets.items():
        properties = bucket["Properties"]
        assert bucket["DeletionPolicy"] == "Retain"
        assert properties["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
        (encryption,) = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        if name == logs:  # S3 delivers access logs only to SSE-S3 buckets
            assert encryption["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
        else:
            assert encryption["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": {"Fn::GetAtt": [key_id, "Arn"]}}
            assert encryption["BucketKeyEnabled"] is True
            assert properties["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": logs}


def test_every_bucket_refuses_plain_http(workflow_template):
    policies = resources(workflow_template, "AWS::S3::BucketPolicy")
    covered = set()
    for policy in policies.values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if statement["Effect"] == "Deny" and statement.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}:
                assert statement["Action"] == "s3:*" and statement["Principal"] == {"AWS": "*"}
                covered.add(policy["Properties"]["Bucket"]["Ref"])
    assert covered == set(resources(workflow_template, "AWS::S3::Bucket"))


def test_lifecycle_rules_expire_captures_logs_and_old_versions_and_keep_models(workflow, workflow_template):
    infra = workflow.config.infrastructure
    buckets = resources(workflow_template, "AWS::S3::Bucket")
    rules = {rule["Id"]: rule for bucket in buckets.values() for rule in bucket["Properties"].get("LifecycleConfiguration", {}).get("Rules", [])}
    assert rules["ExpireCapturedData"]["ExpirationInDays"] == infra.data_capture_expiration_days
    assert rules["ExpireCapturedData"]["Prefix"] == "data-capture/"
    assert rules["ExpireLogs"]["ExpirationInDays"] == infra.access_log_expiration_days
    assert rules["ExpireReplacedVersions"]["NoncurrentVersionExpiration"] == {"NoncurrentDays": infra.noncurrent_version_expiration_days}
    outputs = rules["ExecutionOutputs"]
    assert outputs["Prefix"] == f"{workflow.config.pipeline_name}/" and "ExpirationInDays" not in outputs
    assert outputs["Transitions"] == [{"StorageClass": "INTELLIGENT_TIERING", "TransitionInDays": 0}]


def test_the_pipeline_body_is_the_rendered_definition_with_every_placeholder_filled(workflow, workflow_template, definition):
    _, pipeline = one(workflow_template, "AWS::SageMaker::Pipeline")
    properties = pipeline["Properties"]
    assert properties["PipelineName"] == workflow.config.pipeline_name
    body, variables = properties["PipelineDefinition"]["PipelineDefinitionBody"]["Fn::Sub"]
    assert body == definition  # the very text pipelines/ renders
    assert set(variables) == set(PLACEHOLDERS) - {"DeployFunctionArn"}  # only what the body names: no Deploy step here
    assert set(re.findall(r"\$\{([^}]*)\}", body)) <= set(PLACEHOLDERS) | {"AWS::Region"}
    execution = logical_id(workflow_template, "AWS::IAM::Role", "SageMakerExecution")
    pipeline_role = logical_id(workflow_template, "AWS::IAM::Role", "RolesPipeline")
    assert variables["SageMakerRoleArn"] == {"Fn::GetAtt": [execution, "Arn"]}
    assert properties["RoleArn"] == {"Fn::GetAtt": [pipeline_role, "Arn"]}  # the pipeline's own role, not the jobs'
    assert variables["DataBucket"] == {"Ref": logical_id(workflow_template, "AWS::S3::Bucket", "Data")}
    assert variables["ArtifactBucket"] == {"Ref": logical_id(workflow_template, "AWS::S3::Bucket", "Artifacts")}
    assert variables["KmsKeyId"] == {"Fn::GetAtt": [one(workflow_template, "AWS::KMS::Key")[0], "Arn"]}
    assert variables["ChampionFunctionArn"] == {"Fn::GetAtt": [logical_id(workflow_template, "AWS::Lambda::Function", "ChampionFunction"), "Arn"]}
    for name in ("ProcessingImageUri", "TrainingImageUri"):
        assert "container-assets" in json.dumps(variables[name])
    assert "/tensorflow-inference:2.20-cpu-py312-amzn2023-sagemaker-v1" in json.dumps(variables["InferenceImageUri"])
    group_id, group = one(workflow_template, "AWS::SageMaker::ModelPackageGroup")
    assert group["Properties"]["ModelPackageGroupName"] == workflow.config.model_package_group
    assert group_id in pipeline.get("DependsOn", [])


def test_jobs_encrypt_with_the_key_and_training_runs_network_isolated(definition):
    (first,) = json.loads(definition)["Steps"]  # the gate's floor; every job is in its if-branch
    steps = {step["Name"]: step for step in first["Arguments"]["IfSteps"]}
    train = steps["Train"]["Arguments"]
    assert train["EnableNetworkIsolation"] is True
    assert train["ResourceConfig"]["VolumeKmsKeyId"] == "${KmsKeyId}" and train["OutputDataConfig"]["KmsKeyId"] == "${KmsKeyId}"
    for name in ("PrepareData", "Evaluate"):
        arguments = steps[name]["Arguments"]
        assert arguments["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == "${KmsKeyId}"
        assert arguments["ProcessingOutputConfig"]["KmsKeyId"] == "${KmsKeyId}"
        assert arguments["AppSpecification"]["ImageUri"] == "${ProcessingImageUri}"


def fake_values(value, template):
    """A template value with its references replaced by plausible literals (what CloudFormation would give)."""
    if isinstance(value, str):
        return value
    text = json.dumps(value)
    if '"Arn"' in text and "Role" in text:
        return "arn:aws:iam::123456789012:role/car-damage-SageMakerExecution"
    if '"Arn"' in text and "Key" in text:
        return "arn:aws:kms:eu-west-1:123456789012:key/0a1b2c3d-4e5f-6789-abcd-ef0123456789"
    if "Notifications" in text:  # an SNS topic's Ref is its ARN
        return "arn:aws:sns:eu-west-1:123456789012:car-damage-notifications"
    if "Fn::Join" in value:
        parts = value["Fn::Join"][1]
        return "".join(p if isinstance(p, str) else "artifacts-bucket" for p in parts)
    raise AssertionError(f"unexpected value {value}")


def test_the_deploy_function_is_the_containers_code_with_settings_it_accepts(workflow, workflow_template):
    function_id = logical_id(workflow_template, "AWS::Lambda::Function", "DeployFunction")
    function = workflow_template["Resources"][function_id]["Properties"]
    assert function["Handler"] == "deploy.handler" and function["Runtime"].startswith("python3.")
    variables = function["Environment"]["Variables"]
    assert set(variables) <= set(ENVIRONMENT.values())
    assert variables["ROLE_ARN"] == {"Fn::GetAtt": [logical_id(workflow_template, "AWS::IAM::Role", "SageMakerExecution"), "Arn"]}
    settings = DeploySettings.from_environment({name: fake_values(value, workflow_template) for name, value in variables.items()})
    config = workflow.config
    assert (settings.endpoint_name, settings.model_package_group, settings.instance_type) == (
        config.endpoint_name,
        config.model_package_group,
        config.deployment.instance_type,
    )
    assert settings.data_capture_percent == config.deployment.data_capture_percent
    assert settings.data_capture_s3_uri == f"s3://artifacts-bucket/data-capture/{config.endpoint_name}/"
    # It deploys a package its execution registered Approved only where the configuration registers Approved.
    assert settings.registry_approval_status == config.registry.approval_status == "PendingManualApproval"
    assert function["Timeout"] == 300  # time to read and hash the model archive
    asset = workflow.outdir / function["Code"]["S3Key"].removesuffix(".zip")
    staged = {path.name for path in (workflow.outdir / f"asset.{asset.name}").iterdir()}
    assert "deploy.py" in staged and "__pycache__" not in staged


def test_an_approval_in_our_group_and_the_endpoint_in_service_invoke_the_deploy_function(workflow, workflow_template):
    config = workflow.config
    function = {"Fn::GetAtt": [logical_id(workflow_template, "AWS::Lambda::Function", "DeployFunction"), "Arn"]}
    approval = workflow_template["Resources"][logical_id(workflow_template, "AWS::Events::Rule", "OnApproval")]["Properties"]
    assert approval["EventPattern"] == {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Model Package State Change"],
        "detail": {"ModelPackageGroupName": [config.model_package_group], "ModelApprovalStatus": ["Approved"]},
    }
    in_service = workflow_template["Resources"][logical_id(workflow_template, "AWS::Events::Rule", "OnEndpointInService")]["Properties"]
    assert in_service["EventPattern"]["detail"] == {"EndpointName": [config.endpoint_name], "EndpointStatus": ["IN_SERVICE", "FAILED"]}
    for rule in (approval, in_service):
        (target,) = rule["Targets"]
        assert target["Arn"] == function and target["RetryPolicy"]["MaximumRetryAttempts"] == 4


def test_new_ground_truth_manifests_and_label_exports_start_the_pipeline_through_the_trigger_function(workflow, workflow_template):
    data = logical_id(workflow_template, "AWS::S3::Bucket", "Data")
    rule = workflow_template["Resources"][logical_id(workflow_template, "AWS::Events::Rule", "OnNewLabels")]["Properties"]
    assert rule["EventPattern"] == {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {
            "bucket": {"name": [{"Ref": data}]},
            "object": {"key": [{"wildcard": "ground-truth/*/manifests/output/output.manifest"}, {"prefix": "labels/"}]},
        },
    }
    trigger = logical_id(workflow_template, "AWS::Lambda::Function", "TriggerFunction")
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [trigger, "Arn"]}
    function = workflow_template["Resources"][trigger]["Properties"]
    assert function["Handler"] == "trigger.handler"
    assert function["Environment"]["Variables"] == {
        "PIPELINE_NAME": workflow.config.pipeline_name,
        "DATA_BUCKET": {"Ref": data},
        "LABELS_PREFIX": "labels/",
        "LABELING_BUCKET": {"Ref": data},
        "LABELING_PREFIX": "ground-truth/",
        "SNAPSHOTS_PREFIX": "snapshots/",
    }
    from containers.trigger.trigger import ENVIRONMENT

    assert tuple(function["Environment"]["Variables"]) == ENVIRONMENT  # what the function reads
    # The data bucket sends its events to EventBridge (CDK's notifications resource).
    (notifications,) = resources(workflow_template, "Custom::S3BucketNotifications").values()
    assert notifications["Properties"]["NotificationConfiguration"] == {"EventBridgeConfiguration": {}}


def test_failures_waiting_packages_and_endpoint_alarms_reach_the_encrypted_topic(workflow, workflow_template):
    topic_id, topic = one(workflow_template, "AWS::SNS::Topic")
    assert topic["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": [one(workflow_template, "AWS::KMS::Key")[0], "Arn"]}
    failed = workflow_template["Resources"][logical_id(workflow_template, "AWS::Events::Rule", "OnExecutionFailed")]["Properties"]
    assert failed["EventPattern"]["detail-type"] == ["SageMaker Model Building Pipeline Execution Status Change"]
    assert failed["EventPattern"]["detail"]["currentPipelineExecutionStatus"] == ["Failed"]
    assert f":pipeline/{workflow.config.pipeline_name}" in json.dumps(failed["EventPattern"]["detail"]["pipelineArn"])
    waiting = workflow_template["Resources"][logical_id(workflow_template, "AWS::Events::Rule", "OnPackageWaiting")]["Properties"]
    assert waiting["EventPattern"]["detail"]["ModelApprovalStatus"] == ["PendingManualApproval"]
    for rule in (failed, waiting):
        (target,) = rule["Targets"]
        assert target["Arn"] == {"Ref": topic_id} and "InputTransformer" in target
    everything = [body["Properties"] for body in resources(workflow_template, "AWS::CloudWatch::Alarm").values()]
    alarms = {body["MetricName"]: body for body in everything if body.get("Namespace") == "AWS/SageMaker"}  # the drift alarm: test_drift.py
    assert set(alarms) == {"Invocation5XXErrors", "ModelLatency"}
    assert alarms["ModelLatency"]["Threshold"] == workflow.config.infrastructure.alarms.model_latency_ms * 1000  # microseconds
    for alarm in alarms.values():
        assert alarm["Namespace"] == "AWS/SageMaker"
        assert {"Name": "EndpointName", "Value": workflow.config.endpoint_name} in alarm["Dimensions"]
    (share,) = [body for body in everything if "Metrics" in body]  # the 4XX share: metric math over two sums
    (expression,) = [m for m in share["Metrics"] if "Expression" in m]
    assert expression["Expression"] == "IF(invocations > 0, 100 * refused / invocations, 0)" and expression["ReturnData"] is True
    used = {m["Id"]: m["MetricStat"]["Metric"]["MetricName"] for m in share["Metrics"] if "MetricStat" in m}
    assert used == {"refused": "Invocation4XXErrors", "invocations": "Invocations"}
    assert share["Threshold"] == workflow.config.infrastructure.alarms.client_error_percent
    for alarm in everything:
        assert alarm["AlarmActions"] == [{"Ref": topic_id}]
    # A rolled-back or failed update: the deploy function publishes it to the same topic.
    deploy_id = logical_id(workflow_template, "AWS::Lambda::Function", "DeployFunction")
    assert workflow_template["Resources"][deploy_id]["Properties"]["Environment"]["Variables"]["NOTIFICATION_TOPIC_ARN"] == {"Ref": topic_id}
    policies = resources(workflow_template, "AWS::IAM::Policy").values()
    statements = json.dumps([p["Properties"]["PolicyDocument"] for p in policies if "DeployFunctionRole" in json.dumps(p["Properties"]["Roles"])])
    assert '"sns:Publish"' in statements and topic_id in statements


def test_the_alarms_that_roll_an_update_back_are_the_stack_s(workflow, workflow_template):
    """AutoRollbackConfiguration names alarms by name: the deploy function's ROLLBACK_ALARMS must be exactly
    the names the stack gives its endpoint alarms."""
    names = {body["Properties"]["AlarmName"] for body in resources(workflow_template, "AWS::CloudWatch::Alarm").values()}
    names -= {drift_alarm_name(endpoint) for endpoint in workflow.config.stage_endpoints.values()}  # drift rolls nothing back
    function_id = logical_id(workflow_template, "AWS::Lambda::Function", "DeployFunction")
    variables = workflow_template["Resources"][function_id]["Properties"]["Environment"]["Variables"]
    assert set(variables["ROLLBACK_ALARMS"].split(",")) == names == set(rollback_alarm_names(workflow.config.endpoint_name))
    assert (variables["TRAFFIC"], variables["BAKE_SECONDS"]) == ("all_at_once", "600")


def test_the_stack_outputs_what_pipeline_yaml_s_aws_section_takes(workflow_template):
    outputs = workflow_template["Outputs"]
    for name, (field, _) in PLACEHOLDERS.items():
        assert outputs[name]["Description"] == f"pipeline.yaml aws.{field}"
