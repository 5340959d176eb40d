"""`cardamage promote` to and from release stages in AWS accounts of their own (deployment.accounts, issue 24),
against moto in server mode.

moto keeps resources per account and tells a request's account from its access key; STS AssumeRole answers with
keys of the role ARN's account (moto 5.2.5, sts/models.py `_create_access_key`). So a stage's resources are made
here with keys of its account, and what the command finds or makes there shows which account it asked.
What moto checks across accounts, and what it does not:
- it does not check that an assumed role exists, nor its trust policy, nor the caller's sts:AssumeRole right
  (STSBackend.assume_role: "the role does not need to exist"); a refused AssumeRole is therefore stubbed (the STS
  answer replaced by AccessDenied for one role ARN, botocore still validating the request);
- it keeps SageMaker models, endpoint configs, endpoints and packages per account and region: DescribeModelPackage
  with a stage account's keys does not find a package of the workflow account;
- Lambda functions are per account and region, and CreateFunction wants the function's role in its own account;
- InvokeEndpoint answers from a queue of results per account and region (the moto API's endpoint-results), and
  does not check that the endpoint exists;
- S3 buckets are one namespace; with MOTO_S3_ALLOW_CROSSACCOUNT_ACCESS=false (set here) a bucket of another account
  is AccessDenied, with no bucket policy read: the archive must be read with the workflow's keys, the copy
  written with the stage's.
"""

from __future__ import annotations

import hashlib
import io
import json
import urllib.request
import zipfile
from pathlib import Path

import boto3
import pytest
from typer.testing import CliRunner

from containers.deploy import deploy
from pipelines.cli import app
from pipelines.config import PROMOTE_ROLE, READER_ROLE, load_config, stage_function_name, stage_role_arn
from tests.aws_fakes import ACCOUNT, REGION, client
from tests.pipelines.test_control_plane import ARTIFACTS, CONFIG, ENDPOINT, GROUP, assert_one_line_error, cli, env, register, s3_bucket, server, stubs  # noqa: F401 (fixtures)

STAGING, PRODUCTION = "111111111111", "222222222222"
PRODUCTION_REGION = "us-east-1"  # production in a region of its own; staging in the workflow's (REGION)
PROJECT = "car-damage"
ACCOUNTS = f"""infrastructure:
  account: "{ACCOUNT}"
deployment:
  stages: [staging, production]
  accounts:
    staging: "{STAGING}"
"""
BOTH_ACCOUNTS = ACCOUNTS + f"""    production: {{account: "{PRODUCTION}", region: {PRODUCTION_REGION}}}\n"""
STAGE_BUCKET = f"{PROJECT}-production-{PRODUCTION}"
STAGE_KEY = f"arn:aws:kms:{PRODUCTION_REGION}:{PRODUCTION}:key/00000000-0000-0000-0000-000000000002"
STAGE_IMAGE = f"763104351884.dkr.ecr.{PRODUCTION_REGION}.amazonaws.com/tensorflow-inference:2.20-cpu"
ARCHIVE = b"a model archive"
ARCHIVE_KEY = "model.tar.gz"
DETECTION = {"class": "dent", "score": 0.8, "box": {"xmin": 1, "ymin": 1, "xmax": 30, "ymax": 20}}
ANSWER = {"predictions": [{"image": {"width": 64, "height": 48}, "detections": [DETECTION]}]}


def trusting(principal: dict[str, str]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}]})


LAMBDA_TRUST = trusting({"Service": "lambda.amazonaws.com"})
WORKFLOW_TRUST = trusting({"AWS": f"arn:aws:iam::{ACCOUNT}:root"})  # the promote roles trust the workflow account


def keys_of(url: str, account: str) -> dict[str, str]:
    """Keys of `account` in moto: an AssumeRole there (moto needs no such role)."""
    answer = client("sts", url).assume_role(RoleArn=f"arn:aws:iam::{account}:role/test-setup", RoleSessionName="test-setup")
    keys = answer["Credentials"]
    return {"aws_access_key_id": keys["AccessKeyId"], "aws_secret_access_key": keys["SecretAccessKey"], "aws_session_token": keys["SessionToken"]}


def in_account(url: str, account: str, service: str, region: str = REGION):
    return boto3.client(service, endpoint_url=url, region_name=region, **keys_of(url, account))


def staging_endpoint(url: str, package_arn: str) -> None:
    """The staging endpoint in the staging account, tagged with the package it serves as the deploy function tags it."""
    sagemaker = in_account(url, STAGING, "sagemaker")
    role = f"arn:aws:iam::{STAGING}:role/{PROJECT}-staging-endpoint"
    container = {"Image": STAGE_IMAGE.replace(PRODUCTION_REGION, REGION), "ModelDataUrl": f"s3://{ARTIFACTS}/{ARCHIVE_KEY}"}
    sagemaker.create_model(ModelName="staging-model", PrimaryContainer=container, ExecutionRoleArn=role)
    tags = deploy.package_tags(package_arn, 1, GROUP)
    variant = {"VariantName": "AllTraffic", "ModelName": "staging-model", "InstanceType": "ml.m5.xlarge", "InitialInstanceCount": 1}
    sagemaker.create_endpoint_config(EndpointConfigName="staging-config", ProductionVariants=[variant], Tags=tags)
    sagemaker.create_endpoint(EndpointName=f"{ENDPOINT}-staging", EndpointConfigName="staging-config", Tags=tags)


def stage_function(url: str, account: str, stage: str, region: str, values: dict) -> dict[str, str]:
    """A stage stack's deploy function (never invoked: promote and deploy read its environment) and its role."""
    iam = in_account(url, account, "iam")
    role = iam.create_role(RoleName=f"{PROJECT}-{stage}-deploy", AssumeRolePolicyDocument=LAMBDA_TRUST)["Role"]["Arn"]
    environment = deploy.as_environment(values)
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("deploy.py", "def handler(event, context):\n    return {}\n")
    in_account(url, account, "lambda", region).create_function(
        FunctionName=stage_function_name(PROJECT, stage),
        Runtime="python3.12",
        Role=role,
        Handler="deploy.handler",
        Code={"ZipFile": code.getvalue()},
        Environment={"Variables": environment},
    )
    return environment


def production_function(url: str, config_path: Path) -> dict[str, str]:
    """Production's, in its own account and region, copying archives into its bucket."""
    values = deploy.config_values(
        load_config(config_path),
        role_arn=f"arn:aws:iam::{PRODUCTION}:role/{PROJECT}-production-endpoint",
        data_capture_s3_uri=f"s3://{STAGE_BUCKET}/data-capture/{ENDPOINT}/",
        kms_key_id=STAGE_KEY,
        endpoint_name=ENDPOINT,
        inference_image_uri=STAGE_IMAGE,
        model_copy_s3_uri=f"s3://{STAGE_BUCKET}/models/",
    )
    return stage_function(url, PRODUCTION, "production", PRODUCTION_REGION, values)


def smoke_answers(url: str, account: str, count: int) -> None:
    """What moto's InvokeEndpoint answers in `account` (its queue of results is per account and region)."""
    results = [{"Body": json.dumps(ANSWER), "ContentType": "application/json"}] * count
    request = urllib.request.Request(
        f"{url}/moto-api/static/sagemaker/endpoint-results",
        data=json.dumps({"account_id": account, "region": REGION, "results": results}).encode(),
        method="POST",
    )
    urllib.request.urlopen(request, timeout=10).close()


@pytest.fixture
def accounts(env, tmp_path, monkeypatch):  # noqa: F811 (the fixtures imported above)
    """The workflow account's Approved package (its archive and sha256), staging serving it in 111111111111 with
    sound smoke answers there, and production's stage bucket, promote role and deploy function in 222222222222."""
    monkeypatch.setenv("MOTO_S3_ALLOW_CROSSACCOUNT_ACCESS", "false")  # read by moto's S3 at each request
    s3_bucket(env, ARTIFACTS)
    client("s3", env.url).put_object(Bucket=ARTIFACTS, Key=ARCHIVE_KEY, Body=ARCHIVE)  # where register() says the archive is
    client("sagemaker", env.url).create_model_package_group(ModelPackageGroupName=GROUP)
    arn = register(env, "Approved", metadata_map="0.42", metadata={deploy.METADATA_SHA256: hashlib.sha256(ARCHIVE).hexdigest()})

    in_account(env.url, STAGING, "iam").create_role(RoleName=f"{PROJECT}-staging-promote", AssumeRolePolicyDocument=WORKFLOW_TRUST)
    in_account(env.url, PRODUCTION, "iam").create_role(RoleName=f"{PROJECT}-production-promote", AssumeRolePolicyDocument=WORKFLOW_TRUST)
    staging_endpoint(env.url, arn)
    in_account(env.url, PRODUCTION, "s3", PRODUCTION_REGION).create_bucket(Bucket=STAGE_BUCKET)
    config = tmp_path / "accounts.yaml"
    config.write_text(CONFIG + BOTH_ACCOUNTS)
    environment = production_function(env.url, config)
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a.jpg", "b.jpg"):
        (photos / name).write_bytes(f"jpeg bytes of {name}".encode())
    smoke_answers(env.url, STAGING, 2)
    return {"config": config, "photos": photos, "package": arn, "environment": environment}


def deployed(sagemaker) -> dict[str, list[str]]:
    return {
        "models": [m["ModelName"] for m in sagemaker.list_models()["Models"]],
        "endpoint configs": [c["EndpointConfigName"] for c in sagemaker.list_endpoint_configs()["EndpointConfigs"]],
        "endpoints": [e["EndpointName"] for e in sagemaker.list_endpoints()["Endpoints"]],
    }


NOTHING = {"models": [], "endpoint configs": [], "endpoints": []}


def test_promote_smoke_tests_staging_in_its_account_and_deploys_production_in_its_own(env, accounts, stubs):  # noqa: F811 (the fixtures imported above)
    assumed = stubs("sts", "AssumeRole", lambda params: None)  # moto answers; the requests are kept
    promoted = cli(env, accounts["config"], "promote", "--images", str(accounts["photos"]))
    assert promoted.exit_code == 0, promoted.output
    assert f"smoke test of version 1 on staging ({ENDPOINT}-staging, account {STAGING}): 2 photo(s)" in promoted.stdout
    assert "ok  a.jpg: 1 detection(s)" in promoted.stdout and "ok  b.jpg: 1 detection(s)" in promoted.stdout
    assert f"created endpoint {ENDPOINT} with version 1 ({accounts['package']})" in promoted.stdout
    # Each stage through its promote role, named by the caller (moto's default identity is user/moto).
    assert [call["RoleArn"] for call in assumed.calls] == [
        stage_role_arn(PROJECT, "staging", STAGING, PROMOTE_ROLE),
        stage_role_arn(PROJECT, "production", PRODUCTION, PROMOTE_ROLE),
    ]
    assert {call["RoleSessionName"] for call in assumed.calls} == {"cardamage-promote-moto"}

    production = in_account(env.url, PRODUCTION, "sagemaker", PRODUCTION_REGION)
    made = deployed(production)
    assert made["endpoints"] == [ENDPOINT] and len(made["models"]) == 1 and len(made["endpoint configs"]) == 1
    endpoint_config = production.describe_endpoint_config(EndpointConfigName=made["endpoint configs"][0])
    assert endpoint_config["DataCaptureConfig"]["DestinationS3Uri"] == accounts["environment"]["DATA_CAPTURE_S3_URI"]
    assert endpoint_config["KmsKeyId"] == STAGE_KEY
    model = production.describe_model(ModelName=made["models"][0])
    assert model["ExecutionRoleArn"] == accounts["environment"]["ROLE_ARN"]
    assert model["PrimaryContainer"]["Image"] == STAGE_IMAGE
    copy = model["PrimaryContainer"]["ModelDataUrl"]
    assert copy.startswith(f"s3://{STAGE_BUCKET}/models/")  # the archive copied into production's own region and bucket
    stage_s3 = in_account(env.url, PRODUCTION, "s3", PRODUCTION_REGION)
    assert stage_s3.get_object(Bucket=STAGE_BUCKET, Key=copy.split("/", 3)[3])["Body"].read() == ARCHIVE
    # Nothing in the workflow's account, nor in production's account in the workflow's region.
    assert deployed(client("sagemaker", env.url)) == NOTHING
    assert deployed(in_account(env.url, PRODUCTION, "sagemaker")) == NOTHING


@pytest.mark.parametrize("how", ["--endpoint-url", "AWS_ENDPOINT_URL"])
def test_a_source_stage_in_its_account_promotes_to_a_target_in_the_workflows(env, accounts, tmp_path, monkeypatch, how):  # noqa: F811 (the fixtures imported above)
    """Staging in its own account, production in the workflow's: the smoke test goes to staging's account and
    production is deployed in the workflow account with pipeline.yaml's settings, as before. Through
    AWS_ENDPOINT_URL too: keys that moto gave are sent back to moto, so that it knows their account."""
    config = tmp_path / "staging-account.yaml"
    config.write_text(CONFIG + ACCOUNTS)
    arguments = ["promote", "--images", str(accounts["photos"]), "--config", str(config)]
    if how == "AWS_ENDPOINT_URL":
        monkeypatch.setenv("AWS_ENDPOINT_URL", env.url)
        promoted = CliRunner().invoke(app, arguments)
    else:
        promoted = cli(env, config, *arguments[:3])
    assert promoted.exit_code == 0, promoted.output
    assert f"on staging ({ENDPOINT}-staging, account {STAGING}): 2 photo(s)" in promoted.stdout
    assert f"created endpoint {ENDPOINT} with version 1" in promoted.stdout
    workflow = client("sagemaker", env.url)
    assert deployed(workflow)["endpoints"] == [ENDPOINT]
    capture = workflow.describe_endpoint_config(EndpointConfigName=deployed(workflow)["endpoint configs"][0])["DataCaptureConfig"]
    assert capture["DestinationS3Uri"] == f"s3://{ARTIFACTS}/data-capture/{ENDPOINT}/"

    refused = cli(env, config, "promote", "--images", str(accounts["photos"]), "--role-arn", f"arn:aws:iam::{ACCOUNT}:role/any")
    assert_one_line_error(refused, 2, "--role-arn: production is served from the workflow's account", "drop --role-arn")


def test_a_refused_role_is_one_line_naming_it_and_nothing_is_deployed(env, accounts, stubs):  # noqa: F811 (the fixtures imported above)
    """moto lets any role be assumed: the refusal is STS's answer for this one role ARN, stubbed."""
    other = f"arn:aws:iam::{PRODUCTION}:role/ops/not-trusting-the-workflow"
    denied = f"User: arn:aws:sts::{ACCOUNT}:assumed-role/operator/alice is not authorized to perform: sts:AssumeRole on resource: {other}"
    stubs("sts", "AssumeRole", lambda params: {"Error": {"Code": "AccessDenied", "Message": denied}} if params["RoleArn"] == other else None)
    refused = cli(env, accounts["config"], "promote", "--images", str(accounts["photos"]), "--role-arn", other)
    assert_one_line_error(
        refused, 1, f"cannot assume {other} for stage production (account {PRODUCTION})", f"AccessDenied: {denied}",
        "the stage's stack car-damage-production outputs its promote role as PromoteRoleArn", "--role-arn",
        "allow sts:AssumeRole on that role",
    )  # fmt: skip
    assert deployed(in_account(env.url, PRODUCTION, "sagemaker", PRODUCTION_REGION)) == NOTHING


def test_the_target_needs_its_stage_stacks_deploy_function(env, accounts):  # noqa: F811 (the fixtures imported above)
    in_account(env.url, PRODUCTION, "lambda", PRODUCTION_REGION).delete_function(FunctionName=stage_function_name(PROJECT, "production"))
    missing = cli(env, accounts["config"], "promote", "--images", str(accounts["photos"]))
    assert_one_line_error(
        missing, 1, f"there is no deploy function car-damage-production-deploy of stage production (account {PRODUCTION}, {PRODUCTION_REGION})",
        "deploy the stage's stack car-damage-production (cdk deploy car-damage-production)",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("production-promote", "--role-arn 'production-promote' is not an IAM role ARN"),
        (f"arn:aws:iam::{PRODUCTION}:user/alice", "is not an IAM role ARN"),
        (
            f"arn:aws:iam::{STAGING}:role/{PROJECT}-production-promote",
            f"is a role of account {STAGING}, but production is served from account {PRODUCTION}",
        ),
    ],
)
def test_role_arn_must_be_a_role_of_the_targets_account(env, accounts, value, message):  # noqa: F811 (the fixtures imported above)
    assert_one_line_error(cli(env, accounts["config"], "promote", "--role-arn", value), 2, message)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"ENDPOINT_NAME": "someone-elses-endpoint"},
            f"deploys to endpoint someone-elses-endpoint, but pipeline.yaml names production's endpoint {ENDPOINT}",
        ),
        (
            {"ROLE_ARN": ""},
            "environment variable ROLE_ARN is not set (the role the endpoint's model runs as): deploy the stage's stack car-damage-production again",
        ),
    ],
)
def test_the_targets_settings_are_its_deploy_functions_and_must_be_sound(env, accounts, change, message):  # noqa: F811 (the fixtures imported above)
    functions = in_account(env.url, PRODUCTION, "lambda", PRODUCTION_REGION)
    environment = {key: value for key, value in {**accounts["environment"], **change}.items() if value}
    functions.update_function_configuration(FunctionName=stage_function_name(PROJECT, "production"), Environment={"Variables": environment})
    refused = cli(env, accounts["config"], "promote", "--images", str(accounts["photos"]))
    assert_one_line_error(refused, 1, f"the deploy function car-damage-production-deploy of stage production (account {PRODUCTION}", message)
    assert deployed(in_account(env.url, PRODUCTION, "sagemaker", PRODUCTION_REGION)) == NOTHING


def staging_function(url: str, config_path: Path) -> None:
    """Staging's, in its own account and the workflow's region (no copy)."""
    values = deploy.config_values(
        load_config(config_path),
        role_arn=f"arn:aws:iam::{STAGING}:role/{PROJECT}-staging-endpoint",
        data_capture_s3_uri=f"s3://{PROJECT}-staging-{STAGING}/data-capture/{ENDPOINT}-staging/",
        endpoint_name=f"{ENDPOINT}-staging",
        inference_image_uri=STAGE_IMAGE.replace(PRODUCTION_REGION, REGION),
    )
    stage_function(url, STAGING, "staging", REGION, {**values, "later_stage_endpoints": None})


def test_deploy_goes_to_the_first_stage_in_its_own_account(env, accounts, stubs):  # noqa: F811 (the fixtures imported above)
    """`cardamage deploy` (and `approve --force`) deploy where approvals deploy: the first stage, here staging in its
    account, through its promote role and with its deploy function's settings; nothing is made in the workflow's."""
    staging = in_account(env.url, STAGING, "sagemaker")
    staging.delete_endpoint(EndpointName=f"{ENDPOINT}-staging")
    staging_function(env.url, accounts["config"])
    assumed = stubs("sts", "AssumeRole", lambda params: None)
    done = cli(env, accounts["config"], "deploy", "--package", "1")
    assert done.exit_code == 0, done.output
    assert f"created endpoint {ENDPOINT}-staging with version 1" in done.stdout
    assert [call["RoleArn"] for call in assumed.calls] == [stage_role_arn(PROJECT, "staging", STAGING, PROMOTE_ROLE)]
    assert deployed(staging)["endpoints"] == [f"{ENDPOINT}-staging"]
    model = staging.describe_model(ModelName=next(m for m in deployed(staging)["models"] if m != "staging-model"))
    assert model["ExecutionRoleArn"] == f"arn:aws:iam::{STAGING}:role/{PROJECT}-staging-endpoint"
    assert deployed(client("sagemaker", env.url)) == NOTHING


def test_models_reads_what_a_stage_account_serves_through_its_reader_role(env, accounts, stubs):  # noqa: F811 (the fixtures imported above)
    """What staging serves (in 111111111111) is read with its reader role; production's reader refused is a warning,
    and the listing still comes."""
    reader = stage_role_arn(PROJECT, "production", PRODUCTION, READER_ROLE)
    denied = f"not authorized to perform: sts:AssumeRole on resource: {reader}"
    refusal = {"Error": {"Code": "AccessDenied", "Message": denied}}
    assumed = stubs("sts", "AssumeRole", lambda params: refusal if params["RoleArn"] == reader else None)
    listed = cli(env, accounts["config"], "models")
    assert listed.exit_code == 0, listed.output
    assert [call["RoleArn"] for call in assumed.calls] == [stage_role_arn(PROJECT, "staging", STAGING, READER_ROLE), reader]
    assert {call["RoleSessionName"] for call in assumed.calls} == {"cardamage-reader-moto"}
    (row,) = [line.split() for line in listed.stdout.splitlines() if line.startswith("1 ")]
    assert row[:2] == ["1", "Approved"] and "staging" in row  # version 1 is what staging serves, in its account
    assert f"what production serves is not shown: cannot assume {reader} for stage production (account {PRODUCTION})" in listed.stderr
