"""A release stage in an account of its own (deployment.accounts), the deployment's side: a model made from the
package's container with the stage region's serving image, the archive's copy in the stage's bucket, and the
package read through the workflow account's client while the endpoint is made in the stage's.

Against moto in server mode (the `aws` and `server` fixtures of test_deploy.py, through conftest.py): moto keeps
resources per account, and AssumeRole of a role in another account id gives credentials that act there
(`account_clients`). The package is registered with the default credentials, in the workflow's account.
"""

from __future__ import annotations

import hashlib
import json

import boto3
import pytest

from containers.deploy import deploy
from containers.deploy.deploy import DeployError, DeploySettings, SettingsError, deploy_package, handler
from tests.aws_fakes import ACCOUNT, REGION, ROLE, client, stub_operation
from tests.containers.deploy.test_deploy import ARCHIVE, ENDPOINT, GROUP, account_clients, lambda_environment, register, settings  # noqa: F401

STAGE = "111111111111"
STAGE_ROLE = f"arn:aws:iam::{STAGE}:role/car-damage-staging-endpoint"  # the stage's endpoint role
IMAGE = f"763104351884.dkr.ecr.{REGION}.amazonaws.com/tensorflow-inference:2.20-cpu"
BUCKET = "car-damage-staging"  # the stage's own bucket
COPIES = f"s3://{BUCKET}/models/"
SOURCE = "s3://artifacts/model.tar.gz"  # where `register` puts the archive, in the workflow's account
SERVING = {"SCORE_THRESHOLD": "0.3", "MAX_DETECTIONS": "100"}  # model_environment of `settings()`


def staged(**changes) -> DeploySettings:
    """The stage's settings: its serving image, its own role, the copy prefix in its bucket."""
    return settings(role_arn=STAGE_ROLE, inference_image_uri=IMAGE, model_copy_s3_uri=COPIES, **changes)


@pytest.fixture
def stage(aws, server):
    """Clients in the stage's account (111111111111), whose bucket holds the copies."""
    make = account_clients(server.url, f"arn:aws:iam::{STAGE}:role/car-damage-staging-promote")
    make("s3").create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    return make


def deploy_to_stage(aws, stage, chosen: DeploySettings, arn: str, copy_s3=None):
    """As `cardamage promote` into the stage deploys: packages and archives read with the workflow's clients, the
    rest with the stage's (`copy_s3`: a stage client of the caller's, to watch its requests)."""
    sagemaker, _ = aws
    return deploy_package(
        stage("sagemaker"),
        stage("application-autoscaling"),
        chosen,
        arn,
        registry=sagemaker,
        s3=client("s3", sagemaker.meta.endpoint_url),
        copy_s3=copy_s3 or stage("s3"),
    )


def sent(events, operation: str, service: str = "sagemaker") -> list[dict]:
    """The requests of `operation` a client sends (after botocore validated them), as their parameters."""
    requests: list[dict] = []
    events.register(f"provide-client-params.{service}.{operation}", lambda params, **_: requests.append(dict(params)))
    return requests


def copies(stage) -> list[str]:
    return [item["Key"] for item in stage("s3").list_objects_v2(Bucket=BUCKET).get("Contents", [])]


DIGEST = hashlib.sha256(ARCHIVE).hexdigest()
COPY = f"{COPIES}{GROUP}/v1/{DIGEST}/model.tar.gz"


# The model.


def test_without_a_serving_image_the_model_is_asked_for_and_named_as_before(aws):
    """Same-account deployments do not change: the package names the model, and the name's hash covers what it did."""
    sagemaker, autoscaling = aws
    arn = register(sagemaker)
    requests = sent(sagemaker.meta.events, "CreateModel")
    result = deploy_package(sagemaker, autoscaling, settings(), arn)
    (request,) = requests
    assert request["PrimaryContainer"] == {"ModelPackageName": arn, "Environment": SERVING}
    assert result.model_name == deploy.resource_name(GROUP, 1, arn, ROLE, json.dumps(SERVING, sort_keys=True), "isolated")


def test_with_a_serving_image_the_model_is_the_packages_container_with_that_image(aws):
    """CreateModel names no image of the workflow's account: the stage region's image, the package's archive, and
    the package's environment with the deployment's over it (botocore validated the request; moto keeps it)."""
    sagemaker, autoscaling = aws
    arn = register(sagemaker, environment={"SAGEMAKER_PROGRAM": "inference.py", "SCORE_THRESHOLD": "0.9"})
    requests = sent(sagemaker.meta.events, "CreateModel")

    result = deploy_package(sagemaker, autoscaling, settings(inference_image_uri=IMAGE), arn)

    container = {"Image": IMAGE, "ModelDataUrl": SOURCE, "Environment": {"SAGEMAKER_PROGRAM": "inference.py", **SERVING}}
    (request,) = requests
    assert request["PrimaryContainer"] == container
    model = sagemaker.describe_model(ModelName=result.model_name)
    assert {key: model["PrimaryContainer"][key] for key in container} == container
    assert "ModelPackageName" not in model["PrimaryContainer"]


def test_the_models_name_covers_the_image_and_the_archive(aws):
    sagemaker, _ = aws
    package = sagemaker.describe_model_package(ModelPackageName=register(sagemaker))
    other_image = IMAGE.replace(":2.20-cpu", ":2.19-cpu")
    names = [
        deploy.create_model(sagemaker, settings(), package, []),
        deploy.create_model(sagemaker, settings(inference_image_uri=IMAGE), package, []),
        deploy.create_model(sagemaker, settings(inference_image_uri=other_image), package, []),
        deploy.create_model(sagemaker, settings(inference_image_uri=IMAGE), package, [], model_data_url=COPY),
    ]
    assert len(set(names)) == 4
    assert deploy.create_model(sagemaker, settings(inference_image_uri=IMAGE), package, [], model_data_url=COPY) == names[3]  # a retry reuses it


def test_a_package_without_an_archive_url_has_nothing_to_serve_from_an_image():
    package = {"ModelPackageVersion": 3, "InferenceSpecification": {"Containers": [{"Image": IMAGE}]}}
    with pytest.raises(DeployError, match=r"^version 3's package names no ModelDataUrl: nothing to serve$"):
        deploy.image_container(settings(inference_image_uri=IMAGE), package)


# The package read in the workflow's account, the endpoint made in the stage's.


def test_the_registry_client_reads_the_packages_and_the_stages_clients_make_the_endpoint(aws, stage):
    sagemaker, _ = aws
    first, worse = register(sagemaker, recorded_map=0.5), register(sagemaker, recorded_map=0.3)
    with pytest.raises(DeployError, match=f"^no model package {first}$"):  # the stage's own client cannot see it (moto)
        deploy_package(stage("sagemaker"), stage("application-autoscaling"), staged(), first, copy_s3=stage("s3"))

    result = deploy_to_stage(aws, stage, staged(), first)

    assert result.status == "created"
    assert [model["ModelName"] for model in stage("sagemaker").list_models()["Models"]] == [result.model_name]
    assert sagemaker.list_models()["Models"] == [] and sagemaker.list_endpoints()["Endpoints"] == []
    assert stage("sagemaker").describe_endpoint(EndpointName=ENDPOINT)["EndpointArn"].split(":")[4] == STAGE
    # The served package is described through the registry client too: its recorded mAP is known, so a worse one is refused.
    refused = deploy_to_stage(aws, stage, staged(), worse)
    assert refused.reason == "version 2's mAP 0.3000 is below the served version 1's 0.5000 (force it with a reason to roll back)"


# The archive's copy in the stage's bucket.


def test_the_copy_holds_the_archive_encrypted_with_the_stages_key_and_the_model_serves_it(aws, stage):
    sagemaker, _ = aws
    result = deploy_to_stage(aws, stage, staged(), register(sagemaker))

    assert copies(stage) == [f"models/{GROUP}/v1/{DIGEST}/model.tar.gz"]
    copied = stage("s3").get_object(Bucket=BUCKET, Key=f"models/{GROUP}/v1/{DIGEST}/model.tar.gz")
    assert hashlib.sha256(copied["Body"].read()).hexdigest() == DIGEST
    assert (copied["ServerSideEncryption"], copied["SSEKMSKeyId"]) == ("aws:kms", "alias/cardamage")
    assert stage("sagemaker").describe_model(ModelName=result.model_name)["PrimaryContainer"]["ModelDataUrl"] == COPY
    assert result.reason == f"nothing is served yet: version 1 is deployed; the archive was copied to {COPY}; version 1 of {GROUP} is in service"


def test_without_a_key_the_copy_asks_for_no_encryption_of_its_own(aws, stage):
    """The bucket's default encryption applies then (the stage stack's bucket has one)."""
    sagemaker, _ = aws
    copy_s3 = stage("s3")
    requests = sent(copy_s3.meta.events, "PutObject", "s3")
    deploy_to_stage(aws, stage, staged(kms_key_id=None), register(sagemaker), copy_s3)
    (request,) = requests
    assert "ServerSideEncryption" not in request and "SSEKMSKeyId" not in request


LARGE = 9 << 20  # above boto3's multipart threshold (8 MiB): the copy is a multipart upload


@pytest.mark.parametrize("size", [len(ARCHIVE), LARGE], ids=["one request", "multipart"])
def test_a_changed_archive_creates_no_model_and_leaves_no_copy(aws, stage, size):
    sagemaker, _ = aws
    archive = ARCHIVE.ljust(size, b".")
    arn = register(sagemaker, archive=archive)
    changed = b"another model".ljust(size, b".")
    client("s3", sagemaker.meta.endpoint_url).put_object(Bucket="artifacts", Key="model.tar.gz", Body=changed)
    copy_s3 = stage("s3")
    calls = {
        name: sent(copy_s3.meta.events, name, "s3")
        for name in ("PutObject", "CreateMultipartUpload", "CompleteMultipartUpload", "AbortMultipartUpload")
    }

    with pytest.raises(DeployError) as refused:
        deploy_to_stage(aws, stage, staged(), arn, copy_s3)

    found, recorded = hashlib.sha256(changed).hexdigest(), hashlib.sha256(archive).hexdigest()
    assert str(refused.value) == (
        f"model archive {SOURCE} has sha256 {found}, but version 1 was registered with {recorded}: "
        "the archive changed after it was evaluated; not deployed"
    )
    assert copies(stage) == [] and stage("s3").list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    assert stage("sagemaker").list_models()["Models"] == []
    started = {name: len(requests) for name, requests in calls.items()}
    if size == LARGE:  # the upload began and was aborted, never completed
        assert started == {"PutObject": 0, "CreateMultipartUpload": 1, "CompleteMultipartUpload": 0, "AbortMultipartUpload": 1}
    else:  # the one PutObject was never sent
        assert started == {"PutObject": 0, "CreateMultipartUpload": 0, "CompleteMultipartUpload": 0, "AbortMultipartUpload": 0}


def test_a_large_archive_is_copied_whole(aws, stage):
    sagemaker, _ = aws
    archive = bytes(range(256)) * (LARGE // 256) + b"end"
    result = deploy_to_stage(aws, stage, staged(), register(sagemaker, archive=archive))
    digest = hashlib.sha256(archive).hexdigest()
    copied = stage("s3").get_object(Bucket=BUCKET, Key=f"models/{GROUP}/v1/{digest}/model.tar.gz")["Body"].read()
    assert copied == archive and result.status == "created"


def test_a_second_deployment_reuses_the_copy_after_checking_it(aws, stage):
    """Another endpoint (or a retry) finds the copy by its key: it is checked, not made again. A copy changed
    since is refused, naming it, and left as it is for someone to look at."""
    sagemaker, _ = aws
    arn = register(sagemaker)
    deploy_to_stage(aws, stage, staged(), arn)
    copy_s3 = stage("s3")
    writes = [sent(copy_s3.meta.events, name, "s3") for name in ("PutObject", "CreateMultipartUpload")]
    heads = sent(copy_s3.meta.events, "HeadObject", "s3")

    again = deploy_to_stage(aws, stage, staged(endpoint_name="car-damage-endpoint-2"), arn, copy_s3)

    assert again.status == "created" and writes == [[], []] and len(heads) == 1
    assert f"the archive's copy {COPY} was there already (its sha256 checked)" in again.reason
    assert stage("sagemaker").describe_model(ModelName=again.model_name)["PrimaryContainer"]["ModelDataUrl"] == COPY

    key, changed = f"models/{GROUP}/v1/{DIGEST}/model.tar.gz", b"changed in the stage's bucket"
    stage("s3").put_object(Bucket=BUCKET, Key=key, Body=changed)
    with pytest.raises(DeployError) as refused:
        deploy_to_stage(aws, stage, staged(endpoint_name="car-damage-endpoint-3"), arn, copy_s3)
    assert str(refused.value) == (
        f"model archive {COPY} has sha256 {hashlib.sha256(changed).hexdigest()}, but version 1 was registered with {DIGEST}: "
        "the archive changed after it was evaluated; not deployed"
    )
    assert stage("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read() == changed


def test_a_package_that_recorded_no_digest_is_copied_unchecked_and_the_answer_says_so(aws, stage):
    sagemaker, _ = aws
    arn = register(sagemaker, archive=None)
    client("s3", sagemaker.meta.endpoint_url).create_bucket(Bucket="artifacts", CreateBucketConfiguration={"LocationConstraint": REGION})
    client("s3", sagemaker.meta.endpoint_url).put_object(Bucket="artifacts", Key="model.tar.gz", Body=ARCHIVE)

    result = deploy_to_stage(aws, stage, staged(), arn)

    unchecked = f"{COPIES}{GROUP}/v1/unchecked/model.tar.gz"
    note = f"version 1 recorded no archive digest (registered before digests were): not checked; copied unchecked to {unchecked} (sha256 {DIGEST})"
    assert result.reason == f"nothing is served yet: version 1 is deployed; {note}; version 1 of {GROUP} is in service"
    assert stage("s3").get_object(Bucket=BUCKET, Key=f"models/{GROUP}/v1/unchecked/model.tar.gz")["Body"].read() == ARCHIVE
    copy_s3 = stage("s3")  # nothing says what an unchecked copy holds: the next deployment copies again
    puts = sent(copy_s3.meta.events, "PutObject", "s3")
    assert deploy_to_stage(aws, stage, staged(endpoint_name="car-damage-endpoint-2"), arn, copy_s3).status == "created"
    assert len(puts) == 1


def test_a_copy_that_cannot_be_looked_for_is_refused_naming_list_bucket(aws, stage):
    """S3 answers HeadObject on a missing object with 403 when the caller may not list the bucket (an example answer)."""
    sagemaker, _ = aws
    copy_s3 = stage("s3")
    stub_operation(copy_s3.meta.events, "s3", "HeadObject", {"Error": {"Code": "403", "Message": "Forbidden"}})
    with pytest.raises(DeployError) as refused:
        deploy_to_stage(aws, stage, staged(), register(sagemaker), copy_s3)
    assert str(refused.value) == (
        f"cannot tell whether the archive's copy {COPY} exists: HeadObject answered 403 (Forbidden); "
        "S3 answers 403 for a missing object when the caller may not s3:ListBucket the bucket"
    )


def test_the_function_in_a_stage_account_copies_with_its_own_clients(lambda_environment, monkeypatch):  # noqa: F811
    """The stage's deploy function: its settings from its environment, every client its own (its account)."""
    sagemaker, _ = lambda_environment
    s3 = client("s3", sagemaker.meta.endpoint_url)
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    monkeypatch.setenv("INFERENCE_IMAGE_URI", IMAGE)
    monkeypatch.setenv("MODEL_COPY_S3_URI", COPIES)

    answer = handler({"model_package_arn": register(sagemaker)}, None)

    assert answer["status"] == "created"
    container = sagemaker.describe_model(ModelName=answer["model_name"])["PrimaryContainer"]
    assert (container["Image"], container["ModelDataUrl"]) == (IMAGE, COPY)
    assert s3.get_object(Bucket=BUCKET, Key=f"models/{GROUP}/v1/{DIGEST}/model.tar.gz")["Body"].read() == ARCHIVE


# The settings.


@pytest.mark.parametrize(
    "image",
    [
        IMAGE,
        f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/car-damage/inference",
        f"{ACCOUNT}.dkr.ecr.cn-north-1.amazonaws.com.cn/inference@sha256:{'a' * 64}",
        f"{ACCOUNT}.dkr.ecr.us-gov-west-1.amazonaws.com/tf_serving__x:v1.2-gpu",
    ],
)
def test_an_ecr_image_uri_is_a_serving_image(image):
    assert settings(inference_image_uri=image).inference_image_uri == image


IMAGE_RULE = "must be an ECR image URI such as 123456789012.dkr.ecr.eu-west-1.amazonaws.com/repository:tag (or @sha256:<digest>)"
COPY_RULE = "must be an S3 prefix URI ending in / such as s3://bucket/models/"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"inference_image_uri": "tensorflow/serving:2.20"}, f"inference_image_uri: {IMAGE_RULE} (got 'tensorflow/serving:2.20')"),
        ({"inference_image_uri": f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/Inference:1"}, f"inference_image_uri: {IMAGE_RULE}"),
        ({"inference_image_uri": f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/inference@sha256:abc"}, f"inference_image_uri: {IMAGE_RULE}"),
        (
            {"inference_image_uri": IMAGE, "model_copy_s3_uri": f"s3://{BUCKET}/models"},
            f"model_copy_s3_uri: {COPY_RULE} (got 's3://{BUCKET}/models')",
        ),
        ({"inference_image_uri": IMAGE, "model_copy_s3_uri": "https://bucket/models/"}, f"model_copy_s3_uri: {COPY_RULE}"),
        (
            {"model_copy_s3_uri": COPIES},
            f"model_copy_s3_uri: only a model made from inference_image_uri serves the copy: set inference_image_uri too (got '{COPIES}')",
        ),
    ],
)
def test_a_bad_serving_image_or_copy_prefix_is_refused_naming_the_setting(changes, message):
    with pytest.raises(SettingsError) as caught:
        settings(**changes)
    assert str(caught.value).startswith(message)


def test_the_functions_environment_names_the_variable_of_a_bad_value():
    environ = {"ENDPOINT_NAME": ENDPOINT, "ROLE_ARN": ROLE, "MODEL_PACKAGE_GROUP": GROUP, "INFERENCE_IMAGE_URI": IMAGE, "MODEL_COPY_S3_URI": COPIES}
    loaded = DeploySettings.from_environment(environ)
    assert (loaded.inference_image_uri, loaded.model_copy_s3_uri) == (IMAGE, COPIES)
    with pytest.raises(SettingsError, match=r"^environment variable MODEL_COPY_S3_URI: must be an S3 prefix URI ending in /"):
        DeploySettings.from_environment({**environ, "MODEL_COPY_S3_URI": "s3://bucket/models"})
    with pytest.raises(SettingsError, match=r"^environment variable INFERENCE_IMAGE_URI: must be an ECR image URI"):
        DeploySettings.from_environment({**environ, "INFERENCE_IMAGE_URI": "inference:1"})


def test_a_function_in_another_region_describes_the_package_in_the_package_s_region(lambda_environment, monkeypatch):  # noqa: F811
    """A first stage in a region of its own gets approvals of packages registered in the workflow's region: the
    function describes each with a client of the region its ARN names (SageMaker's API is regional), and makes the
    model, endpoint and copy in its own."""
    sagemaker, _ = lambda_environment
    own_region = "eu-central-1"
    stage_image = IMAGE.replace(REGION, own_region)
    s3 = boto3.client("s3", endpoint_url=sagemaker.meta.endpoint_url, region_name=own_region)
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": own_region})
    for name, value in {"INFERENCE_IMAGE_URI": stage_image, "MODEL_COPY_S3_URI": COPIES, "AWS_DEFAULT_REGION": own_region}.items():
        monkeypatch.setenv(name, value)
    arn = register(sagemaker)
    assert f":sagemaker:{REGION}:" in arn and own_region != REGION

    answer = handler({"model_package_arn": arn}, None)

    assert answer["status"] == "created", answer
    there = boto3.client("sagemaker", endpoint_url=sagemaker.meta.endpoint_url, region_name=own_region)
    assert there.describe_model(ModelName=answer["model_name"])["PrimaryContainer"]["Image"] == stage_image
    assert [e["EndpointName"] for e in sagemaker.list_endpoints()["Endpoints"]] == []  # nothing in the package's region
