"""The deployment code (containers/deploy/deploy.py) against moto in server mode.

moto does not implement UpdateEndpoint: the update tests stub that one operation (tests/aws_fakes.py) and
check the request SageMaker would have received; every other call goes to moto. Where moto keeps less than
SageMaker (an endpoint's FailureReason, a deleted package) the test adds it to moto's answer.
"""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from containers.deploy import deploy
from containers.deploy.deploy import DeployError, DeploySettings, SettingsError, deploy_package, handler
from pipelines.config import load_config
from tests.aws_fakes import (
    ACCOUNT,
    REGION,
    ROLE,
    applied_update,
    client,
    default_session,
    deleted_package,
    described_endpoint,
    isolate_aws,
    moto_server,
    packaged_function,
    stub_operation,
)
from tests.support import ROOT

GROUP = "car-damage-models"
ENDPOINT = "car-damage-endpoint"
CAPTURE = f"s3://artifacts-{ACCOUNT}/data-capture/{ENDPOINT}/"
RESOURCE_ID = f"endpoint/{ENDPOINT}/variant/AllTraffic"


@pytest.fixture(scope="module")
def server():
    with moto_server() as running:
        yield running


@pytest.fixture
def aws(server, monkeypatch, tmp_path):
    """Fresh moto state, fake credentials, and the clients the code under test is given."""
    server.reset()
    isolate_aws(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)  # the S3 client deploy_package makes itself reads from moto
    sagemaker, autoscaling = client("sagemaker", server.url), client("application-autoscaling", server.url)
    sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
    return sagemaker, autoscaling


def settings(**changes) -> DeploySettings:
    values = dict(
        endpoint_name=ENDPOINT,
        role_arn=ROLE,
        model_package_group=GROUP,
        data_capture_percent=100,
        data_capture_s3_uri=CAPTURE,
        kms_key_id="alias/cardamage",
        rollback_alarms=",".join(deploy.rollback_alarm_names(ENDPOINT)),
    )
    return DeploySettings(**{**values, **changes})


ARCHIVE = b"the model.tar.gz Evaluate scored"


def register(
    sagemaker,
    status="Approved",
    group=GROUP,
    recorded_map: float | None = None,
    *,
    at_registration: bool = False,
    model_data_url: str = "s3://artifacts/model.tar.gz",
    archive: bytes | None = ARCHIVE,
    metadata: dict[str, str] | None = None,
    environment: dict[str, str] | None = None,
) -> str:
    """A package as the pipeline's Register step makes it (with its mAP in the metadata, when given), then
    given `status` by a person (UpdateModelPackage), or registered with it when `at_registration`. Its
    `archive` is written to `model_data_url` and its sha256 recorded; None: a package from before digests.
    `environment`: its container's (Register records the serving environment there)."""
    if archive is not None:
        bucket, key = model_data_url.removeprefix("s3://").split("/", 1)
        s3 = client("s3", sagemaker.meta.endpoint_url)
        if bucket not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_object(Bucket=bucket, Key=key, Body=archive)
        metadata = {deploy.METADATA_SHA256: hashlib.sha256(archive).hexdigest(), **(metadata or {})}
    metadata = ({} if recorded_map is None else {"mAP": str(recorded_map)}) | (metadata or {})
    arn = sagemaker.create_model_package(
        ModelPackageGroupName=group,
        ModelApprovalStatus=status if at_registration else "PendingManualApproval",
        InferenceSpecification={
            "Containers": [
                {"Image": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/inference:1", "ModelDataUrl": model_data_url}
                | ({"Environment": environment} if environment else {})
            ],
            "SupportedContentTypes": ["image/jpeg"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        CustomerMetadataProperties=metadata,
    )["ModelPackageArn"]
    if not at_registration and status != "PendingManualApproval":
        # The metadata again: moto's UpdateModelPackage drops what it is not given (SageMaker keeps it).
        sagemaker.update_model_package(
            ModelPackageArn=arn, ModelApprovalStatus=status, ApprovalDescription=f"{status} by a person", CustomerMetadataProperties=metadata
        )
    return arn


def account_clients(url: str, role_arn: str, region: str = REGION):
    """`make(service)`: clients acting in the account of `role_arn`, through moto's AssumeRole, which gives a role
    ARN of another account id credentials that act in that account (moto keeps resources per account)."""
    import boto3

    credentials = client("sts", url).assume_role(RoleArn=role_arn, RoleSessionName="cardamage-tests")["Credentials"]

    def make(service: str):
        return boto3.client(
            service,
            endpoint_url=url,
            region_name=region,
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
        )

    return make


def endpoint_tags(sagemaker) -> dict[str, str]:
    arn = sagemaker.describe_endpoint(EndpointName=ENDPOINT)["EndpointArn"]
    return {tag["Key"]: tag["Value"] for tag in sagemaker.list_tags(ResourceArn=arn)["Tags"]}


TAGS_OF = {"arn": "cardamage:model-package-arn", "version": "cardamage:model-package-version", "group": "cardamage:model-package-group"}


def served_tags(arn: str, version: int, forced_because: str | None = None) -> dict[str, str]:
    """The tags naming a package of GROUP as served (and why it was forced in, when it was)."""
    tags = {TAGS_OF["arn"]: arn, TAGS_OF["version"]: str(version), TAGS_OF["group"]: GROUP}
    return tags | ({"cardamage:forced-because": forced_because} if forced_because else {})


def stub_update(sagemaker):
    """moto has no UpdateEndpoint: answer it here and keep the request."""
    return stub_operation(
        sagemaker.meta.events, "sagemaker", "UpdateEndpoint", lambda params: {"EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/x"}
    )


def test_the_first_approved_package_creates_model_config_and_endpoint(aws):
    sagemaker, autoscaling = aws
    arn = register(sagemaker)
    sent = []  # moto keeps no EnableNetworkIsolation: the request is checked as botocore validated and sent it
    sagemaker.meta.events.register("before-call.sagemaker.CreateModel", lambda params, **_: sent.append(json.loads(params["body"])))
    result = deploy_package(sagemaker, autoscaling, settings(), arn)
    assert [request["EnableNetworkIsolation"] for request in sent] == [True]  # the container fetches and installs nothing

    assert (result.status, result.endpoint_status, result.model_package_version) == ("created", "InService", 1)
    model = sagemaker.describe_model(ModelName=result.model_name)
    assert model["PrimaryContainer"]["ModelPackageName"] == arn
    assert model["PrimaryContainer"]["Environment"] == {"SCORE_THRESHOLD": "0.3", "MAX_DETECTIONS": "100"}
    assert model["ExecutionRoleArn"] == ROLE
    config = sagemaker.describe_endpoint_config(EndpointConfigName=result.endpoint_config_name)
    variant = config["ProductionVariants"][0]
    assert (variant["VariantName"], variant["ModelName"], variant["InstanceType"], variant["InitialInstanceCount"]) == (
        "AllTraffic",
        result.model_name,
        "ml.m5.xlarge",
        1,
    )
    assert config["KmsKeyId"] == "alias/cardamage"
    capture = config["DataCaptureConfig"]
    assert capture["EnableCapture"] is True and capture["InitialSamplingPercentage"] == 100
    assert capture["DestinationS3Uri"] == CAPTURE and capture["KmsKeyId"] == "alias/cardamage"
    assert sorted(option["CaptureMode"] for option in capture["CaptureOptions"]) == ["Input", "Output"]
    assert capture["CaptureContentTypeHeader"] == {"JsonContentTypes": ["application/json"]}
    endpoint = sagemaker.describe_endpoint(EndpointName=ENDPOINT)
    assert endpoint["EndpointConfigName"] == result.endpoint_config_name
    assert endpoint_tags(sagemaker) == {
        "cardamage:model-package-arn": arn,
        "cardamage:model-package-version": "1",
        "cardamage:model-package-group": GROUP,
    }


def test_autoscaling_tracks_invocations_per_instance(aws):
    sagemaker, autoscaling = aws
    result = deploy_package(
        sagemaker, autoscaling, settings(initial_instance_count=2, max_instance_count=5, invocations_per_instance=70), register(sagemaker)
    )

    assert result.autoscaling == "2 to 5 instances, target 70 invocations per instance per minute"
    (target,) = autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    assert (target["ResourceId"], target["ScalableDimension"], target["MinCapacity"], target["MaxCapacity"]) == (
        RESOURCE_ID,
        "sagemaker:variant:DesiredInstanceCount",
        2,
        5,
    )
    (policy,) = autoscaling.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert policy["PolicyType"] == "TargetTrackingScaling" and policy["ResourceId"] == RESOURCE_ID
    assert tracking["TargetValue"] == 70.0
    assert tracking["PredefinedMetricSpecification"] == {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}


def test_a_newer_approved_version_updates_the_endpoint(aws):
    sagemaker, autoscaling = aws
    first = deploy_package(sagemaker, autoscaling, settings(), register(sagemaker))
    second_arn = register(sagemaker)
    update = stub_update(sagemaker)

    result = deploy_package(sagemaker, autoscaling, settings(), second_arn)

    assert (result.status, result.model_package_version) == ("updated", 2)
    assert result.reason == f"version 2 replaces the served version 1; version 2 of {GROUP} is in service"  # moto: in service at once
    assert result.model_name != first.model_name and result.endpoint_config_name != first.endpoint_config_name
    assert sagemaker.describe_model(ModelName=result.model_name)["PrimaryContainer"]["ModelPackageName"] == second_arn
    (call,) = update.calls
    assert call["EndpointName"] == ENDPOINT and call["EndpointConfigName"] == result.endpoint_config_name
    # A model swap keeps the (autoscaled) instance count, but takes the new data capture settings.
    assert call["RetainAllVariantProperties"] is True
    assert call["ExcludeRetainedVariantProperties"] == [{"VariantPropertyType": "DataCaptureConfig"}]
    # Blue/green, rolled back by the stack's alarms (the settings name them).
    assert call["DeploymentConfig"] == {
        "BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 600}},
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": name} for name in deploy.rollback_alarm_names(ENDPOINT)]},
    }
    assert endpoint_tags(sagemaker)["cardamage:model-package-version"] == "2"
    assert endpoint_tags(sagemaker)["cardamage:model-package-arn"] == second_arn


@pytest.mark.parametrize(
    ("traffic", "routing"),
    [
        ("all_at_once", {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 300}),
        ("canary", {"Type": "CANARY", "WaitIntervalInSeconds": 300, "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 25}}),
        ("linear", {"Type": "LINEAR", "WaitIntervalInSeconds": 300, "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 25}}),
    ],
)
def test_each_traffic_shift_is_a_valid_update_endpoint_request(traffic, routing):
    import botocore.session
    from botocore.validate import validate_parameters

    chosen = settings(traffic=traffic, bake_seconds=300, initial_instance_count=2, max_instance_count=4)
    config = deploy.deployment_config(chosen)
    assert config["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"] == routing
    shape = botocore.session.get_session().get_service_model("sagemaker").operation_model("UpdateEndpoint").input_shape
    validate_parameters({"EndpointName": ENDPOINT, "EndpointConfigName": "c", "RetainAllVariantProperties": True, "DeploymentConfig": config}, shape)
    without_alarms = deploy.deployment_config(settings(rollback_alarms=""))
    assert "AutoRollbackConfiguration" not in without_alarms


def test_a_canary_or_linear_shift_needs_two_instances():
    with pytest.raises(SettingsError, match=r"traffic: canary shifts a share of the fleet, so it needs initial_instance_count of 2 or more"):
        settings(traffic="canary")
    with pytest.raises(SettingsError, match=r"traffic: must be one of all_at_once, canary, linear"):
        settings(traffic="gradual")


def test_a_new_instance_type_removes_autoscaling_before_the_update(aws):
    sagemaker, autoscaling = aws
    deploy_package(sagemaker, autoscaling, settings(), register(sagemaker))
    targets_during_update = []

    def update(params):
        targets_during_update.extend(autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"])
        return {"EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{ENDPOINT}"}

    stub = stub_operation(sagemaker.meta.events, "sagemaker", "UpdateEndpoint", update)
    result = deploy_package(sagemaker, autoscaling, settings(instance_type="ml.c5.xlarge"), register(sagemaker))

    assert result.status == "updated"
    assert targets_during_update == []  # SageMaker refuses an instance type change on a scalable target
    assert "RetainAllVariantProperties" not in stub.calls[0]
    assert len(autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]) == 1  # registered again


@pytest.mark.parametrize("force", [False, True])
def test_an_older_approved_version_never_replaces_a_newer_one_unless_forced(aws, force):
    sagemaker, autoscaling = aws
    old, new = register(sagemaker), register(sagemaker)
    deploy_package(sagemaker, autoscaling, settings(), new)
    models_before = sagemaker.list_models()["Models"]
    update = stub_update(sagemaker)

    result = deploy_package(sagemaker, autoscaling, settings(), old, force=force, reason="v2 misses scratches" if force else "")

    if force:
        assert result.status == "updated" and len(update.calls) == 1
        forced_in = "forced: version 1 is older than the served version 2; reason: v2 misses scratches"
        assert result.reason == f"{forced_in}; version 1 of {GROUP} is in service"
        assert endpoint_tags(sagemaker)["cardamage:model-package-version"] == "1"
        assert endpoint_tags(sagemaker)["cardamage:forced-because"] == "v2 misses scratches"
        newest = register(sagemaker)
        assert deploy_package(sagemaker, autoscaling, settings(), newest).status == "updated"  # forward again
        assert "cardamage:forced-because" not in endpoint_tags(sagemaker)  # the reason no longer holds
    else:
        assert result.status == "skipped" and result.up_to_date
        assert result.reason == "version 1 is older than the served version 2 (force it with a reason to roll back)"
        assert update.calls == [] and sagemaker.list_models()["Models"] == models_before
        assert endpoint_tags(sagemaker)["cardamage:model-package-version"] == "2"


def test_the_same_version_again_changes_nothing(aws):
    sagemaker, autoscaling = aws
    arn = register(sagemaker)
    deploy_package(sagemaker, autoscaling, settings(), arn)
    update = stub_update(sagemaker)

    result = deploy_package(sagemaker, autoscaling, settings(), arn)
    assert (result.status, result.up_to_date, result.reason) == ("skipped", True, "the endpoint already serves version 1")
    forced = deploy_package(sagemaker, autoscaling, settings(), arn, force=True, reason="again")  # nothing would change
    assert (forced.status, forced.up_to_date, forced.reason) == ("skipped", True, "the endpoint already serves version 1")
    assert update.calls == []


@pytest.mark.parametrize("status", ["PendingManualApproval", "Rejected"])
def test_a_package_that_is_not_approved_is_skipped_and_nothing_is_created(aws, status):
    sagemaker, autoscaling = aws
    result = deploy_package(sagemaker, autoscaling, settings(), register(sagemaker, status=status), force=True)

    assert result.status == "skipped" and not result.up_to_date
    assert result.reason == f"version 1 is {status}, not Approved"
    assert sagemaker.list_models()["Models"] == [] and sagemaker.list_endpoints()["Endpoints"] == []


def test_a_package_of_another_group_is_skipped(aws):
    sagemaker, autoscaling = aws
    sagemaker.create_model_package_group(ModelPackageGroupName="other-models")
    result = deploy_package(sagemaker, autoscaling, settings(), register(sagemaker, group="other-models"))
    assert result.status == "skipped"
    assert result.reason == f"the package belongs to group 'other-models'; this endpoint serves group '{GROUP}'"
    assert sagemaker.list_endpoints()["Endpoints"] == []


def test_an_endpoint_serving_another_groups_package_gets_ours_without_reading_that_package(aws):
    """The rule compares nothing across groups, and the function's role may describe only its own group's
    packages (infra/deployment.py, ReadPackagesOfTheGroup): the served package of another group is not read."""
    sagemaker, autoscaling = aws
    sagemaker.create_model_package_group(ModelPackageGroupName="other-models")
    theirs = register(sagemaker, group="other-models", recorded_map=0.9)
    assert deploy_package(sagemaker, autoscaling, settings(model_package_group="other-models"), theirs).status == "created"
    ours = register(sagemaker, recorded_map=0.3)
    described = stub_operation(sagemaker.meta.events, "sagemaker", "DescribeModelPackage", lambda params: None)  # moto answers
    update = stub_update(sagemaker)

    result = deploy_package(sagemaker, autoscaling, settings(), ours)

    assert (result.status, result.reason) == (
        "updated",
        f"the endpoint serves a package of group 'other-models': version 1 of '{GROUP}' replaces it; version 1 of {GROUP} is in service",
    )
    assert [call["ModelPackageName"] for call in described.calls] == [ours]
    assert len(update.calls) == 1
    assert endpoint_tags(sagemaker) == served_tags(ours, 1)


def test_a_served_package_deleted_since_is_judged_by_its_version_alone(aws):
    """Its recorded mAP went with it: a newer package replaces it even with a lower mAP."""
    sagemaker, autoscaling = aws
    served = register(sagemaker, recorded_map=0.5)
    deploy_package(sagemaker, autoscaling, settings(), served)
    newer_but_worse = register(sagemaker, recorded_map=0.3)
    update = stub_update(sagemaker)
    refused = deploy_package(sagemaker, autoscaling, settings(), newer_but_worse)
    assert refused.reason == "version 2's mAP 0.3000 is below the served version 1's 0.5000 (force it with a reason to roll back)"

    stub_operation(sagemaker.meta.events, "sagemaker", "DescribeModelPackage", deleted_package(served))
    result = deploy_package(sagemaker, autoscaling, settings(), newer_but_worse)

    assert (result.status, result.reason) == ("updated", f"version 2 replaces the served version 1; version 2 of {GROUP} is in service")
    assert len(update.calls) == 1


def test_an_unknown_package_is_an_error(aws):
    sagemaker, autoscaling = aws
    unknown = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{GROUP}/9"
    with pytest.raises(DeployError, match=f"^no model package {re.escape(unknown)}$"):
        deploy_package(sagemaker, autoscaling, settings(), unknown)


# A FailureReason as SageMaker words them (an example; moto keeps none).
HEALTH_CHECK = "The primary container for production variant AllTraffic did not pass the ping health check. Please check CloudWatch logs."


@pytest.mark.parametrize(
    ("described", "message"),
    [
        ({"EndpointStatus": "Updating"}, f"endpoint {ENDPOINT} is Updating: nothing changed; deploy again when it is InService"),
        (
            {"EndpointStatus": "Failed"},
            f"endpoint {ENDPOINT} is Failed (no reason given): SageMaker only allows deleting it; delete it and deploy again",
        ),
        (
            {"EndpointStatus": "Failed", "FailureReason": HEALTH_CHECK},
            f"endpoint {ENDPOINT} is Failed ({HEALTH_CHECK}): SageMaker only allows deleting it; delete it and deploy again",
        ),
    ],
    ids=["updating", "failed", "failed with a reason"],
)
def test_a_busy_or_failed_endpoint_is_left_alone(aws, server, described, message):
    sagemaker, autoscaling = aws
    deploy_package(sagemaker, autoscaling, settings(), register(sagemaker))
    stub_operation(sagemaker.meta.events, "sagemaker", "DescribeEndpoint", described_endpoint(server.url, **described))
    update = stub_update(sagemaker)

    with pytest.raises(DeployError) as caught:
        deploy_package(sagemaker, autoscaling, settings(), register(sagemaker))
    assert str(caught.value) == message
    assert update.calls == []


def test_an_endpoint_created_meanwhile_by_another_invocation_is_checked_again(aws):
    """The EventBridge rule and the pipeline's Deploy step can both deploy the same package at once."""
    sagemaker, autoscaling = aws
    arn = register(sagemaker)
    deploy_package(sagemaker, autoscaling, settings(), arn)  # the other invocation, done first
    seen = []
    # Our first look finds no endpoint; our CreateEndpoint then finds it (moto accepts a duplicate: stubbed).
    stub_operation(
        sagemaker.meta.events,
        "sagemaker",
        "DescribeEndpoint",
        lambda params: None if seen else seen.append(1) or {"Error": {"Code": "ValidationException", "Message": "Could not find endpoint"}},
    )
    stub_operation(
        sagemaker.meta.events,
        "sagemaker",
        "CreateEndpoint",
        {"Error": {"Code": "ValidationException", "Message": f'Cannot create already existing endpoint "{ENDPOINT}".'}},
    )
    result = deploy_package(sagemaker, autoscaling, settings(), arn)
    assert (result.status, result.up_to_date, result.reason) == ("skipped", True, "the endpoint already serves version 1")


def test_autoscaling_refused_while_the_endpoint_is_created_is_reported_not_raised(aws):
    sagemaker, autoscaling = aws
    stub_operation(
        autoscaling.meta.events,
        "application-auto-scaling",
        "RegisterScalableTarget",
        {"Error": {"Code": "ValidationException", "Message": "Endpoint is not in service"}},
    )
    result = deploy_package(sagemaker, autoscaling, settings(), register(sagemaker))
    assert result.status == "created"
    assert result.autoscaling == (
        "not configured now (ValidationException: Endpoint is not in service); the endpoint's IN_SERVICE event configures it"
    )


def test_endpoint_config_without_data_capture_and_without_kms_on_instance_storage():
    request = deploy.endpoint_config_request(settings(data_capture_percent=0, data_capture_s3_uri=None, instance_type="ml.g4dn.xlarge"), "m")
    assert "DataCaptureConfig" not in request and "KmsKeyId" not in request
    with_capture = deploy.endpoint_config_request(settings(instance_type="ml.g4dn.xlarge"), "m")
    assert "KmsKeyId" not in with_capture and with_capture["DataCaptureConfig"]["KmsKeyId"] == "alias/cardamage"


@pytest.mark.parametrize(
    ("instance_type", "local"),
    [
        ("ml.m5.xlarge", False),
        ("ml.c5.2xlarge", False),
        ("ml.g4dn.xlarge", True),
        ("ml.m5d.large", True),
        ("ml.p4d.24xlarge", True),
        ("ml.g5.xlarge", True),
    ],
)
def test_instance_storage_detection(instance_type, local):
    assert deploy.has_instance_storage(instance_type) is local


def test_names_are_deterministic_valid_and_distinct_per_package():
    arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{GROUP}/3"
    name = deploy.resource_name(GROUP, 3, arn)
    assert name == deploy.resource_name(GROUP, 3, arn)
    assert re.fullmatch(rf"{GROUP}-v3-[0-9a-f]{{8}}", name)
    assert deploy.resource_name(GROUP, 3, arn + "x") != name
    long = deploy.resource_name("g" * 62 + "-x", 12345, arn)
    assert len(long) <= 63 and re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*", long) and long.endswith("-v12345-" + long[-8:])


# The Lambda handler.

ENVIRONMENT = {
    "ENDPOINT_NAME": ENDPOINT,
    "ROLE_ARN": ROLE,
    "MODEL_PACKAGE_GROUP": GROUP,
    "INSTANCE_TYPE": "ml.m5.large",
    "INITIAL_INSTANCE_COUNT": "1",
    "MAX_INSTANCE_COUNT": "3",
    "INVOCATIONS_PER_INSTANCE": "50",
    "DATA_CAPTURE_PERCENT": "20",
    "DATA_CAPTURE_S3_URI": CAPTURE,
    "KMS_KEY_ID": "",
    "SCORE_THRESHOLD": "0.5",
    "MAX_DETECTIONS": "20",
}


@pytest.fixture
def lambda_environment(aws, server, monkeypatch):
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)  # boto3.client() in the handler goes to moto
    return aws


def package_event(arn: str, status: str = "Approved", group: str = GROUP) -> dict:
    return {
        "version": "0",
        "detail-type": "SageMaker Model Package State Change",
        "source": "aws.sagemaker",
        "region": REGION,
        "resources": [arn],
        "detail": {"ModelPackageGroupName": group, "ModelPackageVersion": 1, "ModelPackageArn": arn, "ModelApprovalStatus": status},
    }


def test_a_package_its_execution_registered_approved_deploys_only_once_a_person_approves_it(lambda_environment):
    """Anyone allowed to start an execution could once register a package Approved (ModelApprovalStatus was a
    parameter); the approval rule then deployed it with no person involved. Now the function refuses it, naming
    the rule, unless the configuration itself approves at registration."""
    sagemaker, _ = lambda_environment
    arn = register(sagemaker, at_registration=True)

    answer = handler(package_event(arn), None)

    assert answer["status"] == "skipped"
    assert answer["reason"] == (
        "version 1 was registered Approved by its pipeline execution, but registry.approval_status is PendingManualApproval: "
        "only a person's approval deploys it (cardamage approve, or the Model Registry)"
    )
    assert sagemaker.list_endpoints()["Endpoints"] == [] and sagemaker.list_models()["Models"] == []
    metadata = sagemaker.describe_model_package(ModelPackageName=arn)["CustomerMetadataProperties"]
    sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved", CustomerMetadataProperties=metadata)  # a person
    assert handler(package_event(arn), None)["status"] == "created"


def test_a_configuration_that_approves_at_registration_deploys_what_its_executions_register(lambda_environment, monkeypatch):
    sagemaker, _ = lambda_environment
    monkeypatch.setenv("REGISTRY_APPROVAL_STATUS", "Approved")  # registry.approval_status: Approved (a development pipeline)
    assert handler(package_event(register(sagemaker, at_registration=True)), None)["status"] == "created"
    monkeypatch.setenv("REGISTRY_APPROVAL_STATUS", "Maybe")
    with pytest.raises(
        SettingsError, match="environment variable REGISTRY_APPROVAL_STATUS: must be one of PendingManualApproval, Approved, Rejected"
    ):
        handler(package_event(register(sagemaker)), None)


def test_an_archive_changed_since_evaluation_is_refused_naming_both_digests(aws):
    """Register records the sha256 of the archive Evaluate scored; whoever can write the execution outputs
    could replace the archive after that. Nothing is created for a changed one."""
    sagemaker, autoscaling = aws
    arn = register(sagemaker)
    client("s3", sagemaker.meta.endpoint_url).put_object(Bucket="artifacts", Key="model.tar.gz", Body=b"another model")

    with pytest.raises(DeployError) as refused:
        deploy_package(sagemaker, autoscaling, settings(), arn)

    recorded, found = hashlib.sha256(ARCHIVE).hexdigest(), hashlib.sha256(b"another model").hexdigest()
    assert str(refused.value) == (
        f"model archive s3://artifacts/model.tar.gz has sha256 {found}, but version 1 was registered with {recorded}: "
        "the archive changed after it was evaluated; not deployed"
    )
    assert sagemaker.list_models()["Models"] == [] and sagemaker.list_endpoints()["Endpoints"] == []


def test_a_package_from_before_digests_is_deployed_and_the_answer_says_it_was_not_checked(aws):
    sagemaker, autoscaling = aws
    result = deploy_package(sagemaker, autoscaling, settings(), register(sagemaker, archive=None))
    assert result.status == "created"
    assert "version 1 recorded no archive digest (registered before digests were): not checked" in result.reason


def test_the_handler_deploys_on_an_approval_event(lambda_environment):
    sagemaker, _ = lambda_environment
    arn = register(sagemaker)
    answer = handler(package_event(arn), None)

    assert json.loads(json.dumps(answer)) == answer and all(isinstance(v, str) for v in answer.values())
    assert answer == {
        "status": "created",
        "endpoint_name": ENDPOINT,
        "model_package_arn": arn,
        "reason": f"nothing is served yet: version 1 is deployed; version 1 of {GROUP} is in service",
        "model_package_version": "1",
        "model_name": answer["model_name"],  # deterministic, but a hash: checked below through SageMaker
        "endpoint_config_name": answer["endpoint_config_name"],
        "endpoint_status": "InService",
        "autoscaling": "1 to 3 instances, target 50 invocations per instance per minute",
        "up_to_date": "False",
    }
    assert sagemaker.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"] == answer["endpoint_config_name"]
    config = sagemaker.describe_endpoint_config(EndpointConfigName=answer["endpoint_config_name"])
    assert config["ProductionVariants"][0]["InstanceType"] == "ml.m5.large" and "KmsKeyId" not in config
    assert config["DataCaptureConfig"]["InitialSamplingPercentage"] == 20
    model = sagemaker.describe_model(ModelName=answer["model_name"])
    assert model["PrimaryContainer"]["Environment"] == {"SCORE_THRESHOLD": "0.5", "MAX_DETECTIONS": "20"}


def test_the_handler_takes_the_deploy_steps_direct_input(lambda_environment):
    sagemaker, _ = lambda_environment
    arn = register(sagemaker)
    assert handler({"model_package_arn": arn, "endpoint_name": ENDPOINT}, None)["status"] == "created"
    with pytest.raises(DeployError) as caught:
        handler({"model_package_arn": arn, "endpoint_name": "another-endpoint"}, None)
    assert str(caught.value) == f"this function deploys to endpoint '{ENDPOINT}', the request names 'another-endpoint': check ENDPOINT_NAME"


@pytest.mark.parametrize(
    ("status", "group", "reason"),
    [
        ("Rejected", GROUP, "the package is Rejected, not Approved"),
        ("PendingManualApproval", GROUP, "the package is PendingManualApproval, not Approved"),
        ("", GROUP, "the package is without an approval status, not Approved"),
        ("Approved", "other-models", f"the package belongs to group 'other-models'; this endpoint serves group '{GROUP}'"),
    ],
)
def test_the_handler_ignores_other_events_without_changing_anything(lambda_environment, status, group, reason):
    sagemaker, _ = lambda_environment
    arn = register(sagemaker)
    answer = handler(package_event(arn, status=status, group=group), None)
    assert (answer["status"], answer["reason"], answer["model_package_arn"]) == ("skipped", reason, arn)
    assert sagemaker.list_endpoints()["Endpoints"] == [] and sagemaker.list_models()["Models"] == []


def test_the_handler_skips_an_approved_event_for_an_older_version(lambda_environment):
    sagemaker, _ = lambda_environment
    old, new = register(sagemaker), register(sagemaker)
    assert handler(package_event(new), None)["status"] == "created"
    answer = handler(package_event(old), None)
    assert (answer["status"], answer["reason"]) == ("skipped", "version 1 is older than the served version 2 (force it with a reason to roll back)")
    assert endpoint_tags(sagemaker)["cardamage:model-package-version"] == "2"


def test_the_endpoint_in_service_event_configures_autoscaling(lambda_environment):
    sagemaker, autoscaling = lambda_environment
    arn = register(sagemaker)
    handler(package_event(arn), None)
    autoscaling.deregister_scalable_target(
        ServiceNamespace="sagemaker", ResourceId=RESOURCE_ID, ScalableDimension="sagemaker:variant:DesiredInstanceCount"
    )  # as if SageMaker had refused it while the endpoint was being created
    endpoint_event = endpoint_state(ENDPOINT, "IN_SERVICE")
    other = handler(endpoint_state("other", "IN_SERVICE"), None)
    assert (other["status"], other["reason"]) == ("skipped", f"the event is about endpoint 'other', not '{ENDPOINT}'")
    creating = handler(endpoint_state(ENDPOINT, "CREATING"), None)
    assert (creating["status"], creating["reason"]) == (
        "skipped",
        f"endpoint {ENDPOINT} is CREATING; autoscaling is configured when it is in service",
    )
    answer = handler(endpoint_event, None)
    assert (answer["status"], answer["model_package_arn"], answer["model_package_version"]) == ("autoscaled", arn, "1")
    assert answer["reason"] == "the endpoint is in service: autoscaling configured"
    (target,) = autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 3)


def endpoint_state(name: str, status: str) -> dict:
    """A "SageMaker Endpoint State Change" event (its detail as the rule matches it: EndpointName, EndpointStatus)."""
    return {"detail-type": "SageMaker Endpoint State Change", "source": "aws.sagemaker", "detail": {"EndpointName": name, "EndpointStatus": status}}


def topic_messages(server, monkeypatch) -> tuple[str, callable]:
    """An SNS topic in moto that the function reports to, and a reader of what reached it (through SQS)."""
    sns, sqs = client("sns", server.url), client("sqs", server.url)
    topic = sns.create_topic(Name="notifications")["TopicArn"]
    queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
    monkeypatch.setenv("NOTIFICATION_TOPIC_ARN", topic)

    def read() -> list[str]:
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        for message in messages:
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
        return [message["Body"] for message in messages]

    return topic, read


def test_a_rolled_back_update_is_reported_once_and_the_tags_say_what_is_served(lambda_environment, server, monkeypatch):
    sagemaker, autoscaling = lambda_environment
    _, read = topic_messages(server, monkeypatch)
    first = register(sagemaker)
    handler(package_event(first), None)
    # The update to version 2 is accepted, then rolled back by SageMaker: the endpoint stays on version 1's config.
    stub_update(sagemaker)
    second = register(sagemaker)
    assert deploy_package(sagemaker, autoscaling, settings(), second, force=False).status == "updated"
    assert endpoint_tags(sagemaker)["cardamage:model-package-version"] == "2"
    in_service = endpoint_state(ENDPOINT, "IN_SERVICE")
    answer = handler(in_service, None)
    assert answer["status"] == "autoscaled" and answer["model_package_version"] == "1"
    notice = (
        f"Endpoint {ENDPOINT} rolled back the update to version 2 ({second}): it serves version 1 ({first}) again. "
        "The update did not complete; `cardamage models` shows what is served."
    )
    assert answer["reason"] == f"the endpoint is in service: autoscaling configured; {notice}"
    assert read() == [notice]
    assert endpoint_tags(sagemaker)["cardamage:model-package-arn"] == first  # the tags say what is served again
    assert handler(in_service, None)["reason"] == "the endpoint is in service: autoscaling configured"  # SageMaker may repeat an event
    assert read() == []


def test_a_failed_endpoint_is_reported_with_its_reason(lambda_environment, server, monkeypatch):
    sagemaker, _ = lambda_environment
    _, read = topic_messages(server, monkeypatch)
    arn = register(sagemaker)
    handler(package_event(arn), None)
    answer = handler(endpoint_state(ENDPOINT, "FAILED"), None)
    notice = (
        f"Endpoint {ENDPOINT} failed with version 1 ({arn}): no reason given. Deploy a package again (`cardamage deploy`) once the cause is fixed."
    )
    assert (answer["status"], answer["reason"], answer["endpoint_status"]) == ("reported", notice, "InService")  # moto keeps no Failed state
    assert read() == [notice]


def updates(url: str, *applied: bool):
    """UpdateEndpoint answers in turn: True applies the update in moto (it lands), False leaves the endpoint
    on its config (SageMaker rolled it back)."""
    landed, turns = applied_update(url), iter(applied)
    return lambda params: landed(params) if next(turns) else {"EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{ENDPOINT}"}


@pytest.mark.parametrize("forced", ["served", "rolled back"])
def test_a_rollback_restores_the_forced_reason_of_what_is_served_and_only_that(lambda_environment, server, monkeypatch, forced):
    """The endpoint's tags are set back to the served config's: a reason forced in with the served package
    comes back, one given for the update that was rolled back goes."""
    sagemaker, autoscaling = lambda_environment
    _, read = topic_messages(server, monkeypatch)
    v1, v2 = register(sagemaker), register(sagemaker)
    deploy_package(sagemaker, autoscaling, settings(), v2)
    if forced == "served":  # v1 forced in (it lands), then an update to v3 is rolled back
        stub_operation(sagemaker.meta.events, "sagemaker", "UpdateEndpoint", updates(server.url, True, False))
        assert deploy_package(sagemaker, autoscaling, settings(), v1, force=True, reason="v2 misses scratches").status == "updated"
        asked, back = (register(sagemaker), 3), (v1, 1)
        assert deploy_package(sagemaker, autoscaling, settings(), asked[0]).status == "updated"
        expected = served_tags(v1, 1, "v2 misses scratches")
    else:  # v1 forced in, and that update is rolled back
        stub_operation(sagemaker.meta.events, "sagemaker", "UpdateEndpoint", updates(server.url, False))
        assert deploy_package(sagemaker, autoscaling, settings(), v1, force=True, reason="v2 misses scratches").status == "updated"
        asked, back = (v1, 1), (v2, 2)
        expected = served_tags(v2, 2)

    answer = handler(endpoint_state(ENDPOINT, "IN_SERVICE"), None)

    notice = (
        f"Endpoint {ENDPOINT} rolled back the update to version {asked[1]} ({asked[0]}): it serves version {back[1]} ({back[0]}) again. "
        "The update did not complete; `cardamage models` shows what is served."
    )
    assert (answer["model_package_arn"], answer["reason"]) == (back[0], f"the endpoint is in service: autoscaling configured; {notice}")
    assert read() == [notice]
    assert endpoint_tags(sagemaker) == expected


def test_an_endpoint_config_without_our_tags_is_read_by_the_endpoints_tags(lambda_environment):
    """A config without the project's tags (made by hand, or before configs were tagged): the endpoint's
    tags say what it serves, and no rollback can be told, so none is reported."""
    sagemaker, _ = lambda_environment
    arn = register(sagemaker)
    config_name = handler(package_event(arn), None)["endpoint_config_name"]
    config_arn = sagemaker.describe_endpoint_config(EndpointConfigName=config_name)["EndpointConfigArn"]
    sagemaker.delete_tags(ResourceArn=config_arn, TagKeys=list(TAGS_OF.values()))
    assert sagemaker.list_tags(ResourceArn=config_arn)["Tags"] == []

    answer = handler(endpoint_state(ENDPOINT, "IN_SERVICE"), None)
    assert (answer["model_package_arn"], answer["model_package_version"], answer["reason"]) == (
        arn,
        "1",
        "the endpoint is in service: autoscaling configured",
    )
    again = handler(package_event(arn), None)
    assert (again["status"], again["reason"]) == ("skipped", "the endpoint already serves version 1")


def test_a_failed_event_for_an_endpoint_deleted_since_is_reported(lambda_environment, server, monkeypatch):
    sagemaker, _ = lambda_environment
    _, read = topic_messages(server, monkeypatch)
    handler(package_event(register(sagemaker)), None)
    sagemaker.delete_endpoint(EndpointName=ENDPOINT)

    answer = handler(endpoint_state(ENDPOINT, "FAILED"), None)

    notice = (
        f"Endpoint {ENDPOINT} failed and has been deleted since, so SageMaker's reason cannot be read. "
        "Deploy a package again (`cardamage deploy`) once the cause is fixed."
    )
    assert answer == {
        "status": "reported",
        "endpoint_name": ENDPOINT,
        "model_package_arn": "",
        "reason": notice,
        "model_package_version": "",
        "model_name": "",
        "endpoint_config_name": "",
        "endpoint_status": "",
        "autoscaling": "",
        "up_to_date": "False",
    }
    assert read() == [notice]


def test_sagemakers_failure_reason_is_passed_to_the_failure_notice(lambda_environment, server, monkeypatch):
    sagemaker, _ = lambda_environment
    _, read = topic_messages(server, monkeypatch)
    arn = register(sagemaker)
    handler(package_event(arn), None)
    # moto keeps no FailureReason: the function's own DescribeEndpoint answer gets one.
    failed = described_endpoint(server.url, EndpointStatus="Failed", FailureReason=HEALTH_CHECK)
    stub_operation(default_session(monkeypatch).events, "sagemaker", "DescribeEndpoint", failed)

    answer = handler(endpoint_state(ENDPOINT, "FAILED"), None)

    notice = (
        f"Endpoint {ENDPOINT} failed with version 1 ({arn}): The primary container for production variant AllTraffic did not pass "
        "the ping health check. Please check CloudWatch logs. Deploy a package again (`cardamage deploy`) once the cause is fixed."
    )
    assert (answer["status"], answer["reason"], answer["endpoint_status"]) == ("reported", notice, "Failed")
    assert read() == [notice]


def test_sagemakers_failure_reason_is_passed_to_the_rollback_notice(lambda_environment, server, monkeypatch):
    sagemaker, autoscaling = lambda_environment
    _, read = topic_messages(server, monkeypatch)
    monkeypatch.setenv("ROLLBACK_ALARMS", ",".join(deploy.rollback_alarm_names(ENDPOINT)))
    first = register(sagemaker)
    handler(package_event(first), None)
    stub_update(sagemaker)  # accepted, then rolled back: the endpoint stays on version 1's config
    second = register(sagemaker)
    deploy_package(sagemaker, autoscaling, settings(), second)
    why = f"Alarm {ENDPOINT}-5xx-errors went into ALARM during the deployment"  # an example; moto keeps no FailureReason
    stub_operation(default_session(monkeypatch).events, "sagemaker", "DescribeEndpoint", described_endpoint(server.url, FailureReason=why))

    answer = handler(endpoint_state(ENDPOINT, "IN_SERVICE"), None)

    notice = (
        f"Endpoint {ENDPOINT} rolled back the update to version 2 ({second}) ({why}): it serves version 1 ({first}) again. "
        f"An alarm watching the update went off ({ENDPOINT}-5xx-errors,{ENDPOINT}-model-latency,{ENDPOINT}-4xx-share); "
        "`cardamage models` shows what is served."
    )
    assert answer["reason"] == f"the endpoint is in service: autoscaling configured; {notice}"
    assert read() == [notice]


def test_the_function_runs_from_its_packaged_code_alone(lambda_environment, tmp_path):
    """As Lambda runs it: deploy.handler imported from the code the CDK app packages, without the project's
    tree on sys.path (tests/aws_fakes.py, PackagedFunction), deploying through moto."""
    import sys

    sagemaker, _ = lambda_environment
    arn = register(sagemaker)
    function = packaged_function("deploy.handler")

    answer, modules = function.invoke(package_event(arn), {}, tmp_path)

    assert (answer["status"], answer["model_package_arn"], answer["model_package_version"]) == ("created", arn, "1")
    assert sagemaker.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"] == answer["endpoint_config_name"]
    packaged = {name: file for name, file in modules.items() if file.startswith(str(function.code))}
    assert packaged == {"deploy": str(function.code / "deploy.py")}
    project = [file for file in modules.values() if file.startswith(str(ROOT)) and not file.startswith(sys.prefix)]
    assert project == []


def test_a_later_stages_endpoint_events_are_handled_with_its_own_settings(lambda_environment, monkeypatch):
    """With release stages the function deploys approvals to the first stage; `cardamage promote` deploys to the
    later ones, and their state events come to the function, which configures their autoscaling."""
    sagemaker, autoscaling = lambda_environment
    production = "car-damage-endpoint-production"
    monkeypatch.setenv("LATER_STAGE_ENDPOINTS", production)
    arn = register(sagemaker)
    assert deploy_package(sagemaker, autoscaling, settings(endpoint_name=production), arn).status == "created"
    resource = f"endpoint/{production}/variant/AllTraffic"
    autoscaling.deregister_scalable_target(ServiceNamespace="sagemaker", ResourceId=resource, ScalableDimension=deploy.SCALABLE_DIMENSION)
    event = {"detail-type": "SageMaker Endpoint State Change", "detail": {"EndpointName": production, "EndpointStatus": "IN_SERVICE"}}
    answer = handler(event, None)
    assert (answer["status"], answer["endpoint_name"], answer["model_package_arn"]) == ("autoscaled", production, arn)
    (target,) = autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    assert target["ResourceId"] == resource
    other = handler({**event, "detail": {"EndpointName": "someone-elses", "EndpointStatus": "IN_SERVICE"}}, None)
    assert (other["status"], other["reason"]) == ("skipped", f"the event is about endpoint 'someone-elses', not '{ENDPOINT}' or '{production}'")


def test_settings_for_another_stage_take_its_alarms_and_capture_prefix():
    staging = settings(rollback_alarms=",".join(deploy.rollback_alarm_names(ENDPOINT)), later_stage_endpoints="prod-endpoint")
    production = staging.for_endpoint("prod-endpoint")
    assert production.endpoint_name == "prod-endpoint" and production.later_stage_endpoints == ""
    assert production.rollback_alarms == ",".join(deploy.rollback_alarm_names("prod-endpoint"))
    assert production.data_capture_s3_uri == f"s3://artifacts-{ACCOUNT}/data-capture/prod-endpoint/"
    assert staging.for_endpoint(ENDPOINT) is staging
    with pytest.raises(deploy.SettingsError) as caught:
        settings(later_stage_endpoints="ok-name,bad name!")
    assert str(caught.value) == (
        "later_stage_endpoints: must be endpoint names (1-63 letters, digits and hyphens), comma-separated (got 'ok-name,bad name!')"
    )


UNRECOGNISED = (
    "unrecognised event: expected a 'SageMaker Model Package State Change' or 'SageMaker Endpoint State Change' event, or {'model_package_arn': ...}"
)


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({}, UNRECOGNISED),
        ({"detail-type": "Something Else", "detail": {}}, UNRECOGNISED),
        ({"model_package_arn": "not-an-arn"}, "model_package_arn must be a model package ARN (got 'not-an-arn')"),
        ({"model_package_arn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{GROUP}/1", "reason": 3}, "reason must be text (got int)"),
        (["a list"], "the event must be a JSON object, not list"),
    ],
)
def test_the_handler_refuses_an_unrecognised_event(lambda_environment, event, message):
    with pytest.raises(DeployError) as caught:
        handler(event, None)
    assert str(caught.value) == message


# Settings.


def test_settings_from_the_environment():
    loaded = DeploySettings.from_environment(ENVIRONMENT)
    assert (loaded.instance_type, loaded.max_instance_count, loaded.score_threshold, loaded.kms_key_id) == ("ml.m5.large", 3, 0.5, None)
    minimal = DeploySettings.from_environment({"ENDPOINT_NAME": ENDPOINT, "ROLE_ARN": ROLE, "MODEL_PACKAGE_GROUP": GROUP})
    assert (minimal.initial_instance_count, minimal.data_capture_percent, minimal.max_detections) == (1, 0, 100)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"ENDPOINT_NAME": ""}, "environment variable ENDPOINT_NAME is not set (the endpoint to create or update)"),
        ({"ROLE_ARN": None}, "environment variable ROLE_ARN is not set (the role the endpoint's model runs as)"),
        ({"ROLE_ARN": "my-role"}, "environment variable ROLE_ARN: must be an IAM role ARN (arn:aws:iam::<account>:role/<name>) (got 'my-role')"),
        ({"INITIAL_INSTANCE_COUNT": "two"}, "environment variable INITIAL_INSTANCE_COUNT must be an integer (got 'two')"),
        ({"MAX_INSTANCE_COUNT": "0"}, "environment variable MAX_INSTANCE_COUNT: must be an integer of at least 1 (got 0)"),
        ({"INITIAL_INSTANCE_COUNT": "4"}, "environment variable MAX_INSTANCE_COUNT: must be at least initial_instance_count (4) (got 3)"),
        (
            {"DATA_CAPTURE_S3_URI": ""},
            "environment variable DATA_CAPTURE_S3_URI: must be an S3 URI such as s3://bucket/data-capture/ "
            "when data_capture_percent is above 0 (got None)",
        ),
        ({"DATA_CAPTURE_PERCENT": "150"}, "environment variable DATA_CAPTURE_PERCENT: must be an integer from 0 to 100 (got 150)"),
        ({"SCORE_THRESHOLD": "high"}, "environment variable SCORE_THRESHOLD must be a number (got 'high')"),
        (
            {"INSTANCE_TYPE": "m5.xlarge"},
            "environment variable INSTANCE_TYPE: must be a SageMaker instance type such as ml.m5.xlarge (got 'm5.xlarge')",
        ),
        ({"ENDPOINT_NAME": "bad_name"}, "environment variable ENDPOINT_NAME: must be 1-63 letters, digits and hyphens (got 'bad_name')"),
    ],
)
def test_settings_errors_name_the_variable(changes, message):
    environ = {k: v for k, v in {**ENVIRONMENT, **changes}.items() if v is not None}
    with pytest.raises(SettingsError) as caught:
        DeploySettings.from_environment(environ)
    assert str(caught.value) == message


def test_settings_from_pipeline_yaml():
    config = load_config(ROOT / "pipeline.yaml")
    loaded = DeploySettings.from_config(config, role_arn=ROLE, data_capture_s3_uri=CAPTURE, kms_key_id=None)
    assert (loaded.endpoint_name, loaded.model_package_group) == (config.endpoint_name, config.model_package_group)
    assert (loaded.instance_type, loaded.max_instance_count, loaded.data_capture_percent) == ("ml.m5.xlarge", 2, 100)
    with pytest.raises(SettingsError) as caught:
        DeploySettings.from_config(config, role_arn=ROLE)
    assert str(caught.value) == (
        "data_capture_s3_uri: must be an S3 URI such as s3://bucket/data-capture/ when data_capture_percent is above 0 (got None)"
    )


def test_the_lambda_module_imports_only_the_standard_library_and_boto3():
    """The Lambda is packaged from containers/deploy alone, with the runtime's boto3."""
    import ast
    import sys

    tree = ast.parse((ROOT / "containers" / "deploy" / "deploy.py").read_text())
    modules = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    modules |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 0}
    assert modules - set(sys.stdlib_module_names) <= {"boto3", "botocore"}
