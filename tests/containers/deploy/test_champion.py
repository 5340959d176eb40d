"""FindChampion: the champion function against moto, and the local deployer's lookup, find the same package;
what the function answers is what the pipeline's FindChampion step declares, and it names the champion's data
(its evaluation.json's prefix) or an object that exists with the reason it cannot."""

from __future__ import annotations

import json
import urllib.request
from contextlib import contextmanager

import pytest

from containers.deploy import champion
from containers.deploy.deploy import DeployError, DeploySettings, deploy_package
from pipelines.local.endpoint import LocalDeployer
from pipelines.local.state import State
from pipelines.local.storage import LocalS3
from steps.find_champion import OUTPUTS
from tests.aws_fakes import ROLE, applied_update, client, default_session, deleted_package, isolate_aws, packaged_function, stub_operation
from tests.containers.deploy.test_deploy import ENDPOINT, GROUP, TAGS_OF, account_clients, register
from tests.test_deploy_rule import model_archive

CHALLENGER = "s3://artifacts/pipeline/execution/Train/output/model.tar.gz"


@pytest.fixture
def aws(server, monkeypatch, tmp_path):
    server.reset()
    isolate_aws(monkeypatch, tmp_path)
    sagemaker, autoscaling = client("sagemaker", server.url), client("application-autoscaling", server.url)
    stub_operation(sagemaker.meta.events, "sagemaker", "UpdateEndpoint", applied_update(server.url))
    sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)  # boto3.client() in the handler goes to moto
    return sagemaker, autoscaling


@pytest.fixture(scope="module")
def server():
    from tests.aws_fakes import moto_server

    with moto_server() as running:
        yield running


def deployed_on_aws(aws, maps: list[float], served: list[int]) -> list[str]:
    """Register packages with `maps`, deploy versions `served` in order; their ARNs."""
    sagemaker, autoscaling = aws
    arns = [register(sagemaker, recorded_map=value) for value in maps]
    settings = DeploySettings(endpoint_name=ENDPOINT, role_arn=ROLE, model_package_group=GROUP, data_capture_percent=0)
    for version in served:
        assert deploy_package(sagemaker, autoscaling, settings, arns[version - 1]).status in ("created", "updated")
    return arns


def deployed_here(tmp_path, maps: list[float], served: list[int]) -> LocalDeployer:
    state_dir = tmp_path / "local"
    state, s3 = State(state_dir), LocalS3(state_dir / "s3")
    archive = tmp_path / "model.tar.gz"
    archive.write_bytes(model_archive())
    s3.put_file(archive, "s3://artifacts/model.tar.gz")
    registered = [state.register(GROUP, "PendingManualApproval", "s3://artifacts/model.tar.gz", None, None, value, {}, None) for value in maps]
    packages = [state.set_status(package.arn, "Approved", "by a person") for package in registered]
    deployer = LocalDeployer(state, s3, state_dir / "endpoints", group=GROUP)
    for version in served:
        assert deployer.deploy(packages[version - 1].arn, ENDPOINT).status in ("created", "updated")
    return deployer


@pytest.mark.parametrize(
    ("maps", "served", "version"),
    [([], [], 0), ([0.3], [], 0), ([0.3], [1], 1), ([0.3, 0.4], [1, 2], 2), ([0.3, 0.4, 0.2], [1, 2], 2)],
    ids=["no package", "nothing deployed", "one deployed", "the newer deployed", "a newer one not deployed"],
)
def test_the_function_and_the_local_deployer_find_the_same_champion(aws, tmp_path, maps, served, version):
    arns = deployed_on_aws(aws, maps, served)
    on_aws = champion.find_champion(aws[0], ENDPOINT, CHALLENGER)
    here = deployed_here(tmp_path, maps, served).champion(ENDPOINT, CHALLENGER)
    for found in (on_aws, here):
        assert found.found == bool(version) and found.version == version
        if version:
            assert found.package_arn.endswith(f"/{version}") and found.recorded_map == maps[version - 1]
            assert found.model_data_url == "s3://artifacts/model.tar.gz"
            assert found.reason == f"endpoint {ENDPOINT} serves version {version} of {GROUP}"
        else:
            # Evaluate's champion input must name objects that exist: the challenger's own model.
            assert (found.model_data_url, found.package_arn) == (CHALLENGER, champion.NONE)
            assert found.reason == f"there is no endpoint {ENDPOINT}: nothing is served"
    if version:
        assert on_aws.package_arn == arns[version - 1]
    assert (on_aws.data_uri, on_aws.data_missing) == (here.data_uri, here.data_missing)


def test_a_served_package_that_was_deleted_is_no_champion(aws):
    sagemaker, _ = aws
    (served,) = deployed_on_aws(aws, [0.3], [1])
    stub_operation(sagemaker.meta.events, "sagemaker", "DescribeModelPackage", deleted_package(served))  # moto cannot delete one
    found = champion.find_champion(sagemaker, ENDPOINT, CHALLENGER)
    assert found == champion.Champion(False, f"endpoint {ENDPOINT} serves version 1, whose package was deleted", CHALLENGER)


def test_an_endpoint_config_without_our_tags_is_read_by_the_endpoints_tags(aws):
    """A config without the project's tags (made by hand, or before configs were tagged): the endpoint's own
    tags name the champion."""
    sagemaker, _ = aws
    (served,) = deployed_on_aws(aws, [0.3], [1])
    config_name = sagemaker.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]
    config_arn = sagemaker.describe_endpoint_config(EndpointConfigName=config_name)["EndpointConfigArn"]
    sagemaker.delete_tags(ResourceArn=config_arn, TagKeys=list(TAGS_OF.values()))
    found = champion.find_champion(sagemaker, ENDPOINT, CHALLENGER)
    unnamed = "version 1's package names no evaluation.json (ModelMetrics)"
    assert found == champion.Champion(
        True, f"endpoint {ENDPOINT} serves version 1 of {GROUP}", "s3://artifacts/model.tar.gz", served, 1, GROUP, 0.3, data_missing=unnamed
    )


def test_an_endpoint_this_project_did_not_deploy_has_no_champion(aws):
    sagemaker, _ = aws
    sagemaker.create_model(ModelName="theirs", PrimaryContainer={"Image": "x", "ModelDataUrl": "s3://b/m.tar.gz"}, ExecutionRoleArn=ROLE)
    sagemaker.create_endpoint_config(
        EndpointConfigName="theirs",
        ProductionVariants=[{"VariantName": "A", "ModelName": "theirs", "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}],
    )
    sagemaker.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName="theirs")
    found = champion.find_champion(sagemaker, ENDPOINT, CHALLENGER)
    assert found == champion.Champion(
        False, f"endpoint {ENDPOINT} serves no package of this project (no cardamage:model-package-arn tag)", CHALLENGER
    )


def test_another_groups_package_served_is_no_champion_and_is_not_read(aws, tmp_path):
    """The deployment rule deploys over another group's package, so it is nothing to beat; the function may not
    read that group's packages, so it does not ask (on AWS that would be AccessDenied)."""
    sagemaker, autoscaling = aws
    sagemaker.create_model_package_group(ModelPackageGroupName="other-models")
    theirs = register(sagemaker, group="other-models", recorded_map=0.9)
    other = DeploySettings(endpoint_name=ENDPOINT, role_arn=ROLE, model_package_group="other-models", data_capture_percent=0)
    assert deploy_package(sagemaker, autoscaling, other, theirs).status == "created"
    asked = []
    sagemaker.meta.events.register("before-call.sagemaker.DescribeModelPackage", lambda params, **_: asked.append(params))
    expected = champion.Champion(False, f"endpoint {ENDPOINT} serves version 1 of another group, other-models: no champion of ours", CHALLENGER)
    assert champion.find_champion(sagemaker, ENDPOINT, CHALLENGER, GROUP) == expected
    assert asked == []
    assert champion.find_champion(sagemaker, ENDPOINT, CHALLENGER).group == "other-models"  # without the group (older definitions)

    state_dir = tmp_path / "local"
    state, s3 = State(state_dir), LocalS3(state_dir / "s3")
    archive = tmp_path / "model.tar.gz"
    archive.write_bytes(model_archive())
    s3.put_file(archive, "s3://artifacts/model.tar.gz")
    package = state.register("other-models", "PendingManualApproval", "s3://artifacts/model.tar.gz", None, None, 0.9, {}, None)
    package = state.set_status(package.arn, "Approved", "by a person")
    deployer = LocalDeployer(state, s3, state_dir / "endpoints", group="other-models")
    assert deployer.deploy(package.arn, ENDPOINT).status == "created"
    assert deployer.champion(ENDPOINT, CHALLENGER, GROUP) == expected


def test_the_handler_answers_the_outputs_the_step_declares(aws):
    deployed_on_aws(aws, [0.25], [1])
    answer = champion.handler({"endpoint_name": ENDPOINT, "challenger_model_url": CHALLENGER})
    assert set(answer) == set(OUTPUTS)
    kinds = {"Boolean": bool, "String": str}
    assert all(isinstance(answer[name], kinds[kind]) for name, kind in OUTPUTS.items()), answer
    assert (answer["found"], answer["version"], answer["recorded_map"]) == (True, "1", "0.250000")
    assert json.loads(json.dumps(answer)) == answer


def test_the_function_runs_from_its_packaged_code_alone(aws, tmp_path):
    """As Lambda runs it: champion.handler imported from the code the CDK app packages, without the project's
    tree on sys.path, so champion.py finds deploy.py beside it (its import fallback)."""
    import sys

    from tests.support import ROOT

    (served,) = deployed_on_aws(aws, [0.25], [1])
    function = packaged_function("champion.handler")

    answer, modules = function.invoke({"endpoint_name": ENDPOINT, "challenger_model_url": CHALLENGER}, {}, tmp_path)

    assert answer == {
        "found": True,
        "reason": f"endpoint {ENDPOINT} serves version 1 of {GROUP}",
        "model_data_url": "s3://artifacts/model.tar.gz",
        "package_arn": served,
        "version": "1",
        "recorded_map": "0.250000",
        "data_uri": "s3://artifacts/model.tar.gz",  # registered without ModelMetrics: its model, which exists
        "data_missing": "version 1's package names no evaluation.json (ModelMetrics)",
    }
    packaged = {name: file for name, file in modules.items() if file.startswith(str(function.code))}
    assert packaged == {"champion": str(function.code / "champion.py"), "deploy": str(function.code / "deploy.py")}
    project = [file for file in modules.values() if file.startswith(str(ROOT)) and not file.startswith(sys.prefix)]
    assert project == []


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ([], "the event must be a JSON object, not list"),
        ({"challenger_model_url": CHALLENGER}, "endpoint_name must be an endpoint name (got None)"),
        ({"endpoint_name": "bad name!", "challenger_model_url": CHALLENGER}, "endpoint_name must be an endpoint name (got 'bad name!')"),
        ({"endpoint_name": ENDPOINT}, "challenger_model_url must be the challenger's model.tar.gz S3 URI (got None)"),
        (
            {"endpoint_name": ENDPOINT, "challenger_model_url": CHALLENGER, "model_package_group": 3},
            "model_package_group must be a model package group's name (got 3)",
        ),
    ],
)
def test_a_malformed_event_is_refused_naming_the_field(event, message):
    with pytest.raises(DeployError) as caught:
        champion.parse_event(event)
    assert str(caught.value) == message


# The champion's data: the prefix of its evaluation.json and kept image list, or an object that exists and why

PIPELINE_MODEL = "s3://artifacts/car-damage-pipeline/run-1/model/job-1/output/model.tar.gz"
EVALUATION = "s3://artifacts/car-damage-pipeline/run-2/evaluation/evaluation.json"


def registered_with_metrics(aws, evaluation_uri: str) -> str:
    """A package as Register makes it: its ModelMetrics name its evaluation.json; deployed to the endpoint."""
    sagemaker, autoscaling = aws
    metrics = {"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": evaluation_uri}}}

    def add_metrics(params, **_):
        params["ModelMetrics"] = metrics

    sagemaker.meta.events.register("provide-client-params.sagemaker.CreateModelPackage", add_metrics)
    try:
        arn = register(sagemaker, recorded_map=0.3, model_data_url=PIPELINE_MODEL)
    finally:
        sagemaker.meta.events.unregister("provide-client-params.sagemaker.CreateModelPackage", add_metrics)
    settings = DeploySettings(endpoint_name=ENDPOINT, role_arn=ROLE, model_package_group=GROUP, data_capture_percent=0)
    assert deploy_package(sagemaker, autoscaling, settings, arn).status == "created"
    return arn


def test_the_champions_data_is_the_prefix_of_the_evaluation_its_package_names(aws):
    registered_with_metrics(aws, EVALUATION)
    answer = champion.handler({"endpoint_name": ENDPOINT, "challenger_model_url": CHALLENGER, "model_package_group": GROUP})
    # The prefix holds evaluation.json, which the package names, and the image list beside it (evaluation-images.json).
    assert answer["data_uri"] == "s3://artifacts/car-damage-pipeline/run-2/evaluation/evaluation"
    assert answer["data_missing"] == champion.NONE and answer["model_data_url"] == PIPELINE_MODEL


def test_the_local_deployer_names_the_champions_data_as_the_function_does(aws, tmp_path):
    registered_with_metrics(aws, EVALUATION)
    on_aws = champion.handler({"endpoint_name": ENDPOINT, "challenger_model_url": CHALLENGER, "model_package_group": GROUP})
    state, s3 = State(tmp_path / "state"), LocalS3(tmp_path / "state" / "s3")
    s3.put_file(_archive(tmp_path), PIPELINE_MODEL)
    package = state.register(GROUP, "PendingManualApproval", PIPELINE_MODEL, None, EVALUATION, 0.4, {}, None)
    state.set_status(package.arn, "Approved", "by a person")
    deployer = LocalDeployer(state, s3, tmp_path / "state" / "endpoints", group=GROUP)
    assert deployer.deploy(package.arn, ENDPOINT).status == "created"
    here = deployer.champion(ENDPOINT, CHALLENGER, GROUP).outputs()
    expected = (EVALUATION.removesuffix(".json"), champion.NONE)
    assert (here["data_uri"], here["data_missing"]) == (on_aws["data_uri"], on_aws["data_missing"]) == expected


def _archive(tmp_path):
    archive = tmp_path / "model.tar.gz"
    archive.write_bytes(model_archive())
    return archive


OUTSIDE = "is not under its model's pipeline outputs (s3://artifacts/car-damage-pipeline/)"


@pytest.mark.parametrize(
    ("evaluation_uri", "missing"),
    [
        ("s3://artifacts/car-damage-pipeline/run-2/evaluation/metrics.json", "as its metrics, not an Evaluate evaluation.json"),
        ("s3://elsewhere/car-damage-pipeline/run-2/evaluation/evaluation.json", OUTSIDE),
        ("s3://artifacts/old-pipeline/run-2/evaluation/evaluation.json", OUTSIDE),
    ],
    ids=["not an evaluation.json", "another bucket", "another pipeline's outputs"],
)
def test_data_the_function_cannot_name_falls_back_to_the_champions_model_with_the_reason(aws, evaluation_uri, missing):
    """Evaluate's role reads its own pipeline's outputs: an evaluation elsewhere could fail the job, so it is not named."""
    registered_with_metrics(aws, evaluation_uri)
    answer = champion.find_champion(aws[0], ENDPOINT, CHALLENGER, GROUP).outputs()
    assert answer["data_uri"] == PIPELINE_MODEL
    assert answer["data_missing"].startswith("version 1's ") and evaluation_uri in answer["data_missing"]
    assert answer["data_missing"].endswith(missing)


def test_without_a_champion_the_data_is_the_challengers_model_and_the_reason_is_why():
    answer = champion.nothing_served(ENDPOINT, CHALLENGER).outputs()
    assert (answer["data_uri"], answer["data_missing"]) == (CHALLENGER, f"there is no endpoint {ENDPOINT}: nothing is served")


def test_a_reason_longer_than_a_container_argument_is_cut():
    """data_missing is one of Evaluate's ContainerArguments, at most 256 characters each (botocore's model)."""
    import botocore.session

    limit = botocore.session.get_session().get_service_model("sagemaker").shape_for("ContainerArgument").metadata["max"]
    long = "s3://artifacts/" + "x" * 400 + "/evaluation.json"
    answer = champion.served(ENDPOINT, champion.deploy.Candidate("arn", GROUP, 4), "s3://artifacts/p/m.tar.gz", long).outputs()
    assert len(answer["data_missing"]) == limit == champion.MAX_ARGUMENT and answer["data_missing"].endswith("...")
    assert answer["data_missing"].startswith("version 4's evaluation.json (s3://artifacts/xxx")


# Production in an account of its own: the endpoint is read with production's champion role, the package with the
# function's own credentials (the workflow's account, where the registry is).

PRODUCTION = "222222222222"
CHAMPION_ROLE = f"arn:aws:iam::{PRODUCTION}:role/car-damage-production-reader"  # production's reader role
PRODUCTION_REGION = "eu-central-1"  # production names its own region; the function runs in tests.aws_fakes.REGION
EVENT = {"endpoint_name": ENDPOINT, "challenger_model_url": CHALLENGER, "model_package_group": GROUP}


def served_in_production(aws, server) -> str:
    """A package registered in the workflow's account, served by an endpoint in production's account and region."""
    sagemaker, _ = aws
    arn = register(sagemaker, recorded_map=0.4)
    make = account_clients(server.url, f"arn:aws:iam::{PRODUCTION}:role/car-damage-production-promote", PRODUCTION_REGION)
    image = f"763104351884.dkr.ecr.{PRODUCTION_REGION}.amazonaws.com/tensorflow-inference:2.20-cpu"
    settings = DeploySettings(
        endpoint_name=ENDPOINT, role_arn=f"arn:aws:iam::{PRODUCTION}:role/endpoint", model_package_group=GROUP, inference_image_uri=image
    )
    result = deploy_package(make("sagemaker"), make("application-autoscaling"), settings, arn, registry=sagemaker, s3=client("s3", server.url))
    assert result.status == "created"
    return arn


def test_with_a_champion_role_the_endpoint_is_read_in_productions_account_and_region(aws, server, monkeypatch):
    arn = served_in_production(aws, server)
    assert champion.handler(EVENT)["found"] is False  # the function's own account serves nothing
    assume = stub_operation(default_session(monkeypatch).events, "sts", "AssumeRole", lambda params: None)  # moto answers
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "car-damage-champion")
    monkeypatch.setenv(champion.ROLE_VARIABLE, CHAMPION_ROLE)
    monkeypatch.setenv(champion.REGION_VARIABLE, PRODUCTION_REGION)

    answer = champion.handler(EVENT)

    assert (answer["found"], answer["package_arn"], answer["version"], answer["recorded_map"]) == (True, arn, "1", "0.400000")
    assert answer["model_data_url"] == "s3://artifacts/model.tar.gz"  # the package's own, read in the workflow's account
    assert [(call["RoleArn"], call["RoleSessionName"]) for call in assume.calls] == [(CHAMPION_ROLE, "car-damage-champion")]
    monkeypatch.delenv(champion.REGION_VARIABLE)  # production's account, but the function's region: nothing there
    assert champion.handler(EVENT)["reason"] == f"there is no endpoint {ENDPOINT}: nothing is served"


@contextmanager
def iam_enforced(url: str):
    """moto checks every request's credentials and IAM policies while this lasts (its reset-auth API: the number of
    requests let through unchecked, 0 here), and none afterwards, as before."""

    def let_through(count: str) -> None:
        request = urllib.request.Request(f"{url}/moto-api/reset-auth", data=count.encode(), method="POST", headers={"Content-Type": "text/plain"})
        urllib.request.urlopen(request, timeout=10).close()

    let_through("0")
    try:
        yield
    finally:
        let_through("inf")


def test_a_champion_role_that_cannot_be_assumed_fails_naming_the_role_and_the_fix(aws, server, monkeypatch):
    """moto refuses AssumeRole once it checks IAM policies: the function's own user (standing in for its role) may not."""
    iam = client("iam", server.url)
    iam.create_user(UserName="champion-function")
    key = iam.create_access_key(UserName="champion-function")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    monkeypatch.setenv(champion.ROLE_VARIABLE, CHAMPION_ROLE)
    default_session(monkeypatch)  # one that reads those keys (the default session keeps the first it found)

    with iam_enforced(server.url), pytest.raises(DeployError) as refused:
        champion.handler(EVENT)

    assert str(refused.value) == (
        f"cannot assume {CHAMPION_ROLE} (CHAMPION_ROLE_ARN) to read what production serves: AccessDenied: "
        f"User: arn:aws:iam::123456789012:user/champion-function is not authorized to perform: sts:AssumeRole. "
        "The production stage stack's reader role trusts the workflow account, and this function's role may assume it: "
        "deploy (or update) that stack after the workflow stack, so that the role exists"
    )


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        (
            {"CHAMPION_ROLE_ARN": "production-champion"},
            "environment variable CHAMPION_ROLE_ARN must be an IAM role ARN (arn:aws:iam::<account>:role/<name>), got 'production-champion'",
        ),
        ({"CHAMPION_REGION": "Frankfurt"}, "environment variable CHAMPION_REGION must be an AWS region such as eu-west-1, got 'Frankfurt'"),
    ],
)
def test_a_malformed_champion_variable_is_refused_naming_it(variables, message):
    with pytest.raises(DeployError) as refused:
        champion.endpoint_reader(variables)
    assert str(refused.value) == message
