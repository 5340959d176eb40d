"""The pipeline definition: its shape, its settings, its determinism, offline rendering, and AWS's schema."""

from __future__ import annotations

import copy
import json
import re
import socket

import botocore.session
import pytest
from jsonschema import Draft7Validator

from containers.training.metrics import METRIC_DEFINITIONS
from pipelines.config import load_config, parse_config
from pipelines.definition import DefinitionError, render_definition
from pipelines.local.engine import CACHE_KEY
from steps.context import PLACEHOLDERS
from tests.support import ROOT, all_steps, step_named

SCHEMA = ROOT.parent / "shared" / "reference" / "sagemaker-pipeline-definition.schema.json"
PARAMETERS = {
    "InputManifestUri": "s3://${DataBucket}/manifests/",
    "ImagesS3Prefix": "s3://${DataBucket}/images/",
    "ProcessingInstanceCount": 1,
    "ProcessingInstanceType": "ml.m5.xlarge",
    "TrainingInstanceType": "ml.p3.2xlarge",
    "TrainingInstanceCount": 1,
    "ModelVariant": "efficientdet-d0",
    "TrainingSteps": 2000,
    "BatchSize": 8,
    "ImageSize": 512,
    "EvaluationInstanceType": "ml.m5.xlarge",
    "MapThreshold": 0.3,
    "ChampionTolerance": 0.0,
    "ChampionRule": "margin",
}
CACHED = {"PrepareData", "Train", "Evaluate"}
FIND_CHAMPION_OUTPUTS = {
    "found": "Boolean",
    "reason": "String",
    "model_data_url": "String",
    "package_arn": "String",
    "version": "String",
    "recorded_map": "String",
    "data_uri": "String",
    "data_missing": "String",
}


@pytest.fixture(scope="module")
def config():
    return load_config(ROOT / "pipeline.yaml")


@pytest.fixture(scope="module")
def text(config):
    return render_definition(config)


@pytest.fixture(scope="module")
def definition(text):
    return json.loads(text)


step = step_named


def references(value) -> set[str]:
    """Every step or execution a value reads (Get expressions), to check dependencies."""
    found = set()
    if isinstance(value, dict):
        if "Get" in value and isinstance(value["Get"], str):
            found.add(value["Get"].split(".")[0] + "." + value["Get"].split(".")[1].split("[")[0])
        for item in value.values():
            found |= references(item)
    elif isinstance(value, list):
        for item in value:
            found |= references(item)
    return found


def test_the_steps_their_types_and_the_condition_wiring(definition):
    assert [(s["Name"], s["Type"]) for s in definition["Steps"]] == [("CheckGateSettings", "Condition")]
    first = definition["Steps"][0]["Arguments"]
    assert [(s["Name"], s["Type"]) for s in first["IfSteps"]] == [
        ("PrepareData", "Processing"),
        ("Train", "Training"),
        ("FindChampion", "Lambda"),
        ("Evaluate", "Processing"),
        ("CheckQuality", "Condition"),
    ]
    assert [(s["Name"], s["Type"]) for s in first["ElseSteps"]] == [("GateLooserThanAllowed", "Fail")]
    gate = step(definition, "CheckQuality")["Arguments"]
    # pipeline.yaml registers PendingManualApproval: no Deploy step, only a person's approval deploys.
    assert [(s["Name"], s["Type"]) for s in gate["IfSteps"]] == [("Register", "RegisterModel")]
    assert [(s["Name"], s["Type"]) for s in gate["ElseSteps"]] == [("QualityBelowThreshold", "Fail")]
    threshold, margin, significant = gate["Conditions"]
    assert threshold["Type"] == "GreaterThanOrEqualTo"
    assert threshold["LeftValue"] == evaluation("metrics.mAP.value")
    assert threshold["RightValue"] == {"Get": "Parameters.MapThreshold"}

    # Nothing served, or by ChampionRule margin the champion's mAP less the challenger's (both measured by Evaluate)
    # within the tolerance; by significant, the lower bound of that lead's bootstrap interval within it. Each of the
    # two holds when nothing is served, or the other rule was chosen, or its own figure is within the tolerance.
    def rule(other: str, figure: str) -> dict:
        return {
            "Type": "Or",
            "Conditions": [
                {"Type": "Equals", "LeftValue": evaluation("champion.version"), "RightValue": 0},
                {"Type": "Equals", "LeftValue": {"Get": "Parameters.ChampionRule"}, "RightValue": other},
                {"Type": "LessThanOrEqualTo", "LeftValue": evaluation(figure), "RightValue": {"Get": "Parameters.ChampionTolerance"}},
            ],
        }

    assert margin == rule("significant", "champion.map_lead") and significant == rule("margin", "champion.lead_low")


@pytest.fixture(scope="module")
def approving():
    """The definition of a configuration that registers Approved (a development pipeline, the local profile)."""
    return json.loads(render_definition(parse_config("registry:\n  approval_status: Approved\n")))


def test_only_a_configuration_that_approves_at_registration_deploys_in_the_pipeline(definition, approving):
    assert "Deploy" not in {s["Name"] for s in all_steps(definition["Steps"])}
    assert step(definition, "Register")["Arguments"]["ModelApprovalStatus"] == "PendingManualApproval"
    # No run chooses the status: it is pipeline.yaml's, and no parameter sets it.
    assert "ModelApprovalStatus" not in {p["Name"] for p in approving["Parameters"]}
    assert step(approving, "Register")["Arguments"]["ModelApprovalStatus"] == "Approved"
    gate = step(approving, "CheckQuality")["Arguments"]
    assert [(s["Name"], s["Type"]) for s in gate["IfSteps"]] == [("Register", "RegisterModel"), ("Deploy", "Lambda")]
    deploy = step(approving, "Deploy")
    assert deploy["Arguments"]["model_package_arn"] == {"Get": "Steps.Register.ModelPackageArn"}
    assert deploy["FunctionArn"] == "${DeployFunctionArn}"
    assert "RetryPolicies" not in deploy  # a Lambda step takes none


def test_an_execution_looser_than_the_configured_floor_ends_at_a_fail_step(definition):
    """MapThreshold, ChampionTolerance and ChampionRule are parameters anyone who may start an execution can set:
    the first step compares them with pipeline.yaml's floor (by default the configured values, and both rules)
    before any job runs. A ChampionRule that is no rule at all fails there too."""
    first = definition["Steps"][0]["Arguments"]
    rule = {"Get": "Parameters.ChampionRule"}
    assert first["Conditions"] == [
        {"Type": "GreaterThanOrEqualTo", "LeftValue": {"Get": "Parameters.MapThreshold"}, "RightValue": 0.3},
        {"Type": "LessThanOrEqualTo", "LeftValue": {"Get": "Parameters.ChampionTolerance"}, "RightValue": 0.0},
        {
            "Type": "Or",
            "Conditions": [
                {"Type": "Equals", "LeftValue": rule, "RightValue": "margin"},
                {"Type": "Equals", "LeftValue": rule, "RightValue": "significant"},
            ],
        },
    ]
    message = step(definition, "GateLooserThanAllowed")["Arguments"]["ErrorMessage"]["Std:Join"]["Values"]
    assert {"Get": "Parameters.MapThreshold"} in message and {"Get": "Parameters.ChampionTolerance"} in message and rule in message
    text = "".join(part for part in message if isinstance(part, str))
    assert "at least 0.3 (evaluation.min_map_threshold)" in text and "at most 0.0 (evaluation.max_champion_tolerance)" in text
    assert "one of margin, significant (evaluation.champion_rules)" in text
    floors = json.loads(
        render_definition(
            parse_config("evaluation:\n  map_threshold: 0.4\n  min_map_threshold: 0.25\n  max_champion_tolerance: 0.02\n  champion_rules: [margin]\n")
        )
    )
    assert [c.get("RightValue") for c in floors["Steps"][0]["Arguments"]["Conditions"]] == [0.25, 0.02, None]
    assert floors["Steps"][0]["Arguments"]["Conditions"][2]["Conditions"] == [{"Type": "Equals", "LeftValue": rule, "RightValue": "margin"}]
    message = step(floors, "GateLooserThanAllowed")["Arguments"]["ErrorMessage"]["Std:Join"]["Values"]
    assert "one of margin (evaluation.champion_rules)" in "".join(part for part in message if isinstance(part, str))


def test_jobs_that_parse_uploaded_files_are_network_isolated(definition):
    for name in ("PrepareData", "Evaluate"):
        assert step(definition, name)["Arguments"]["NetworkConfig"]["EnableNetworkIsolation"] is True, name


def test_the_package_records_the_digest_of_the_archive_evaluate_scored(definition):
    metadata = step(definition, "Register")["Arguments"]["CustomerMetadataProperties"]
    assert metadata["ModelSha256"] == evaluation("model.sha256")


def evaluation(path: str) -> dict:
    """A figure of Evaluate's evaluation.json, as the definition reads it."""
    return {"Std:JsonGet": {"Path": path, "PropertyFile": {"Get": "Steps.Evaluate.PropertyFiles.EvaluationReport"}}}


def test_the_champion_is_found_after_training_and_scored_by_evaluate(definition):
    champion = step(definition, "FindChampion")
    assert champion["FunctionArn"] == "${ChampionFunctionArn}"
    assert champion["Arguments"] == {
        "endpoint_name": "car-damage-endpoint",
        "model_package_group": "car-damage-models",
        "challenger_model_url": {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"},
    }
    assert {o["OutputName"]: o["OutputType"] for o in champion["OutputParameters"]} == FIND_CHAMPION_OUTPUTS
    arguments = step(definition, "Evaluate")["Arguments"]
    inputs = {i["InputName"]: i["S3Input"] for i in arguments["ProcessingInputs"]}
    assert inputs["champion"]["S3Uri"] == {"Get": "Steps.FindChampion.OutputParameters['model_data_url']"}
    container = arguments["AppSpecification"]["ContainerArguments"]
    assert container[container.index("--champion") + 1] == inputs["champion"]["LocalPath"]
    assert container[container.index("--champion-version") + 1] == {"Get": "Steps.FindChampion.OutputParameters['version']"}
    metadata = step(definition, "Register")["Arguments"]["CustomerMetadataProperties"]
    assert metadata["ChampionVersion"] == {"Get": "Steps.FindChampion.OutputParameters['version']"}
    assert metadata["ChampionMAP"] == {"Std:Join": {"On": "", "Values": [evaluation("champion.map_text")]}}


def test_evaluate_draws_the_bootstrap_pipeline_yaml_sets(definition):
    def bootstrap(rendered):
        container = step(rendered, "Evaluate")["Arguments"]["AppSpecification"]["ContainerArguments"]
        return container[container.index("--bootstrap-resamples") + 1], container[container.index("--bootstrap-seed") + 1]

    assert bootstrap(definition) == ("1000", "23")
    assert bootstrap(json.loads(render_definition(parse_config("evaluation:\n  bootstrap_resamples: 2000\n  bootstrap_seed: 5\n")))) == ("2000", "5")


def test_dependencies_follow_the_data(definition):
    assert references(step(definition, "PrepareData")["Arguments"]) <= {
        "Parameters.InputManifestUri",
        "Parameters.ImagesS3Prefix",
        "Parameters.ProcessingInstanceCount",
        "Parameters.ProcessingInstanceType",
        "Execution.PipelineExecutionId",
    }
    assert "Steps.PrepareData" in references(step(definition, "Train")["Arguments"])
    assert {"Steps.Train", "Steps.PrepareData"} <= references(step(definition, "Evaluate")["Arguments"])
    assert {"Steps.Train", "Steps.Evaluate"} <= references(step(definition, "Register")["Arguments"])


def test_the_fail_message_names_both_maps_the_threshold_and_the_tolerance(definition):
    message = step(definition, "QualityBelowThreshold")["Arguments"]["ErrorMessage"]["Std:Join"]["Values"]
    assert evaluation("metrics.mAP.value") in message and evaluation("champion.text") in message
    assert {"Get": "Parameters.MapThreshold"} in message and {"Get": "Parameters.ChampionTolerance"} in message
    # Each figure after the words that say what it is; the rule, and the figures' intervals as Evaluate wrote them.
    assert message == [
        "Not registered: the challenger's mAP ",
        evaluation("metrics.mAP.value"),
        " must reach the threshold ",
        {"Get": "Parameters.MapThreshold"},
        " (MapThreshold) and fall at most ",
        {"Get": "Parameters.ChampionTolerance"},
        " (ChampionTolerance) below the champion's mAP, ",
        evaluation("champion.text"),
        ", by the rule ",
        {"Get": "Parameters.ChampionRule"},
        " (ChampionRule: margin judges the champion's lead, significant the lower bound of its 95% interval). "
        "With 95% bootstrap intervals over the validation images, the challenger's mAP is ",
        evaluation("map_interval_text"),
        " and the champion's lead ",
        evaluation("champion.lead_text"),
        ".",
    ]


def test_parameters_and_their_defaults_come_from_pipeline_yaml(definition):
    assert {p["Name"]: p["DefaultValue"] for p in definition["Parameters"]} == PARAMETERS
    changed = json.loads(
        render_definition(
            parse_config("training:\n  steps: 50\n  image_size: 256\nevaluation:\n  map_threshold: 0.05\n  champion_rule: significant\n")
        )
    )
    defaults = {p["Name"]: p["DefaultValue"] for p in changed["Parameters"]}
    assert (defaults["TrainingSteps"], defaults["ImageSize"], defaults["MapThreshold"], defaults["ChampionRule"]) == (50, 256, 0.05, "significant")


def test_prepare_data_gives_every_instance_all_the_labels_and_images(definition):
    # Each instance keeps its share of the images by key hash (prepare_data.py), so all of an image's
    # labellings meet on one instance; ShardedByS3Key on the labels would split them, and split YOLO folders.
    arguments = step(definition, "PrepareData")["Arguments"]
    inputs = {i["InputName"]: i["S3Input"] for i in arguments["ProcessingInputs"]}
    assert inputs["manifests"]["S3DataDistributionType"] == "FullyReplicated" and inputs["manifests"]["S3Uri"] == {
        "Get": "Parameters.InputManifestUri"
    }
    assert inputs["images"]["S3DataDistributionType"] == "FullyReplicated"
    assert arguments["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == {"Get": "Parameters.ProcessingInstanceCount"}
    app = arguments["AppSpecification"]
    assert app["ContainerEntrypoint"] == ["python3", "/opt/program/containers/processing/prepare_data.py"]
    assert app["ContainerArguments"][app["ContainerArguments"].index("--classes") + 1] == "dent,scratch"


def test_the_training_job_is_sized_by_the_instance_count_parameter_and_botocore_accepts_it(definition):
    """TrainingInstanceCount (default training.instance_count) is the job's InstanceCount; resolved as an execution
    with two instances resolves it (the local engine's resolver, stand-ins for the earlier steps' outputs), the
    request is a valid CreateTrainingJob for botocore."""
    from botocore.validate import validate_parameters

    from pipelines.local.expressions import Resolver

    declared = {p["Name"]: p for p in definition["Parameters"]}
    assert declared["TrainingInstanceCount"] == {"Name": "TrainingInstanceCount", "Type": "Integer", "DefaultValue": 1}
    arguments = step(definition, "Train")["Arguments"]
    assert arguments["ResourceConfig"]["InstanceCount"] == {"Get": "Parameters.TrainingInstanceCount"}
    resolver = Resolver({**PARAMETERS, "TrainingInstanceCount": 2}, {"PipelineExecutionId": "x1"}, lambda step, name: {})
    prepared = "s3://artifacts/pipeline/x1/PrepareData/prepared"
    resolver.properties["PrepareData"] = {"ProcessingOutputConfig": {"Outputs": [{"OutputName": "prepared", "S3Output": {"S3Uri": prepared}}]}}
    account = {"SageMakerRoleArn": "arn:aws:iam::123456789012:role/execution", "KmsKeyId": "arn:aws:kms:us-east-1:123456789012:key/k"}
    text = re.sub(r"\$\{(\w+)\}", lambda found: account.get(found[1], found[1].lower()), json.dumps(resolver.resolve(arguments)))
    request = json.loads(text)
    assert request["ResourceConfig"]["InstanceCount"] == 2
    shape = botocore.session.get_session().get_service_model("sagemaker").operation_model("CreateTrainingJob").input_shape
    validate_parameters({"TrainingJobName": "pipelines-x1-Train", **request}, shape)


def test_training_is_spot_with_checkpoints_tensorboard_and_metrics(definition, config):
    arguments = step(definition, "Train")["Arguments"]
    assert arguments["EnableManagedSpotTraining"] is True
    assert arguments["StoppingCondition"] == {"MaxRuntimeInSeconds": 240 * 60, "MaxWaitTimeInSeconds": 480 * 60}
    assert arguments["CheckpointConfig"]["LocalPath"] == "/opt/ml/checkpoints"
    # Under the prepared data, named by the static settings' hash and the parameters: a restarted job finds its own.
    checkpoints = arguments["CheckpointConfig"]["S3Uri"]["Std:Join"]
    prepared = {"Get": "Steps.PrepareData.ProcessingOutputConfig.Outputs['prepared'].S3Output.S3Uri"}
    under, *named = checkpoints["Values"]
    assert checkpoints["On"] == "-"
    assert named == [{"Get": f"Parameters.{name}"} for name in ("ModelVariant", "ImageSize", "BatchSize", "TrainingSteps")]
    assert under["Std:Join"]["On"] == "/" and under["Std:Join"]["Values"][:2] == [prepared, "checkpoints"]
    assert re.fullmatch(r"[0-9a-f]{12}", under["Std:Join"]["Values"][2]) and len(under["Std:Join"]["Values"]) == 3
    assert arguments["ResourceConfig"]["InstanceType"] == {"Get": "Parameters.TrainingInstanceType"}
    assert arguments["ResourceConfig"]["InstanceCount"] == {"Get": "Parameters.TrainingInstanceCount"}
    assert arguments["TensorBoardOutputConfig"]["LocalPath"] == "/opt/ml/output/tensorboard"
    assert arguments["AlgorithmSpecification"]["MetricDefinitions"] == METRIC_DEFINITIONS
    assert arguments["AlgorithmSpecification"]["TrainingImage"] == "${TrainingImageUri}"
    channels = {c["ChannelName"] for c in arguments["InputDataConfig"]}
    assert channels == {"train", "validation", "label_map"}
    # Each from its own parameter (as text, as SageMaker passes hyperparameters), the rest from pipeline.yaml.
    assert arguments["HyperParameters"] == {
        "model": {"Get": "Parameters.ModelVariant"},
        "num_steps": {"Std:Join": {"On": "", "Values": [{"Get": "Parameters.TrainingSteps"}]}},
        "batch_size": {"Std:Join": {"On": "", "Values": [{"Get": "Parameters.BatchSize"}]}},
        "image_size": {"Std:Join": {"On": "", "Values": [{"Get": "Parameters.ImageSize"}]}},
        "checkpoint_every": str(config.training.checkpoint_every),
        "log_every": "10",
    }
    # Debugger's hook does not support this TF version and loop; no profiler either (see steps/train.py).
    assert not {"ProfilerConfig", "ProfilerRuleConfigurations", "DebugHookConfig", "DebugRuleConfigurations"} & set(arguments)


def test_spot_and_a_pretrained_checkpoint_follow_the_config():
    config = parse_config("training:\n  spot: false\n  pretrained_checkpoint_uri: s3://models/efficientdet_d0_coco17_tpu-32.tar.gz\n")
    arguments = step(json.loads(render_definition(config)), "Train")["Arguments"]
    assert "EnableManagedSpotTraining" not in arguments or arguments["EnableManagedSpotTraining"] is False
    assert "MaxWaitTimeInSeconds" not in arguments["StoppingCondition"]
    pretrained = next(c for c in arguments["InputDataConfig"] if c["ChannelName"] == "pretrained")
    assert pretrained["DataSource"]["S3DataSource"]["S3Uri"] == "s3://models/efficientdet_d0_coco17_tpu-32.tar.gz"


def test_evaluation_report_is_a_property_file(definition):
    evaluate = step(definition, "Evaluate")
    assert evaluate["PropertyFiles"] == [{"FilePath": "evaluation.json", "OutputName": "evaluation", "PropertyFileName": "EvaluationReport"}]
    inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in evaluate["Arguments"]["ProcessingInputs"]}
    assert inputs["model"] == {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}


def test_registration_carries_metrics_and_content_types(definition):
    arguments = step(definition, "Register")["Arguments"]
    assert arguments["ModelPackageGroupName"] == "car-damage-models"
    statistics = arguments["ModelMetrics"]["ModelQuality"]["Statistics"]
    assert statistics["ContentType"] == "application/json"
    evaluation_output = {"Get": "Steps.Evaluate.ProcessingOutputConfig.Outputs['evaluation'].S3Output.S3Uri"}
    assert statistics["S3Uri"] == {"Std:Join": {"On": "/", "Values": [evaluation_output, "evaluation.json"]}}
    spec = arguments["InferenceSpecification"]
    assert spec["SupportedContentTypes"] == ["image/jpeg", "image/png", "application/x-image", "application/json"]
    assert spec["SupportedRealtimeInferenceInstanceTypes"] == ["ml.m5.xlarge", "ml.g4dn.xlarge"]
    (container,) = spec["Containers"]
    assert container["Image"] == "${InferenceImageUri}" and container["ModelDataUrl"] == {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}
    assert container["Environment"]["SCORE_THRESHOLD"] == "0.3"


def test_the_package_carries_its_drift_baselines_which_evaluate_measures_as_the_endpoint_answers(definition, config):
    baselines = step(definition, "Register")["Arguments"]["DriftCheckBaselines"]
    evaluation_output = {"Get": "Steps.Evaluate.ProcessingOutputConfig.Outputs['evaluation'].S3Output.S3Uri"}
    assert baselines == {
        "ModelDataQuality": {
            "Statistics": {"ContentType": "application/json", "S3Uri": {"Std:Join": {"On": "/", "Values": [evaluation_output, "data-baseline.json"]}}}
        },
        "ModelQuality": {
            "Statistics": {
                "ContentType": "application/json",
                "S3Uri": {"Std:Join": {"On": "/", "Values": [evaluation_output, "model-baseline.json"]}},
            }
        },
    }
    arguments = step(definition, "Evaluate")["Arguments"]
    inputs = {i["InputName"]: i["S3Input"] for i in arguments["ProcessingInputs"]}
    prepared = {"Get": "Steps.PrepareData.ProcessingOutputConfig.Outputs['prepared'].S3Output.S3Uri"}
    assert inputs["statistics"]["S3Uri"] == {"Std:Join": {"On": "/", "Values": [prepared, "statistics"]}}
    container = arguments["AppSpecification"]["ContainerArguments"]
    assert container[container.index("--statistics") + 1] == inputs["statistics"]["LocalPath"]
    # The endpoint's default options, from pipeline.yaml: the same values the package's serving environment carries.
    environment = step(definition, "Register")["Arguments"]["InferenceSpecification"]["Containers"][0]["Environment"]
    assert container[container.index("--score-threshold") + 1] == str(config.deployment.score_threshold) == environment["SCORE_THRESHOLD"]
    assert container[container.index("--max-detections") + 1] == str(config.deployment.max_detections) == environment["MAX_DETECTIONS"]
    other = render_definition(parse_config("deployment:\n  score_threshold: 0.55\n  max_detections: 7\n"))
    container = step(json.loads(other), "Evaluate")["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert container[container.index("--score-threshold") + 1 :][:3] == ["0.55", "--max-detections", "7"]


def test_expensive_steps_are_cached_and_every_job_step_retries(definition):
    for name in CACHED:
        assert step(definition, name)["CacheConfig"] == {"Enabled": True, "ExpireAfter": "P30D"}
    for name in ("PrepareData", "Train", "Evaluate", "Register"):
        kinds = {kind for policy in step(definition, name)["RetryPolicies"] for kind in policy["ExceptionType"]}
        assert {"Step.THROTTLING", "Step.SERVICE_FAULT"} <= kinds
    for name in ("PrepareData", "Train", "Evaluate"):
        kinds = {kind for policy in step(definition, name)["RetryPolicies"] for kind in policy["ExceptionType"]}
        assert "SageMaker.CAPACITY_ERROR" in kinds


def test_cache_keys_are_stable_and_do_not_depend_on_the_execution(definition, config):
    """What SageMaker puts in each step type's cache key (the local engine's CACHE_KEY, from SageMaker's
    documentation) must not change from one render to the next, nor with the execution."""
    again = json.loads(render_definition(config))
    for name in CACHED:
        first, second = step(definition, name), step(again, name)
        for key in CACHE_KEY[first["Type"]]:
            assert first["Arguments"].get(key) == second["Arguments"].get(key)
            assert "Execution.PipelineExecutionId" not in references(first["Arguments"].get(key)), (name, key)


def test_rendering_is_byte_identical_with_sorted_keys(text, config):
    assert render_definition(config) == text
    assert text == json.dumps(json.loads(text), sort_keys=True, indent=2) + "\n"
    assert not re.search(r"20\d\d-\d\d-\d\dT\d\d:\d\d", text), "a timestamp in the definition breaks caching"


def test_jobs_encrypt_with_the_kms_key(definition):
    for name in ("PrepareData", "Evaluate"):
        arguments = step(definition, name)["Arguments"]
        assert arguments["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == "${KmsKeyId}"
        assert arguments["ProcessingOutputConfig"]["KmsKeyId"] == "${KmsKeyId}"
    train = step(definition, "Train")["Arguments"]
    assert train["ResourceConfig"]["VolumeKmsKeyId"] == "${KmsKeyId}" and train["OutputDataConfig"]["KmsKeyId"] == "${KmsKeyId}"


def test_unset_account_values_are_placeholders_and_given_ones_are_filled(text, config):
    found = set(re.findall(r"\$\{([A-Za-z:]+)\}", text))
    assert found == set(PLACEHOLDERS) - {"DeployFunctionArn"} | {"AWS::Region"}  # no Deploy step: nothing approves at registration
    values = {
        "SageMakerRoleArn": "arn:aws:iam::123456789012:role/cardamage-sagemaker",
        "DataBucket": "my-data",
        "ArtifactBucket": "my-artifacts",
        "KmsKeyId": "arn:aws:kms:eu-west-1:123456789012:key/abcd",
        "ProcessingImageUri": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/processing:abc",
        "TrainingImageUri": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/training:abc",
        "InferenceImageUri": "763104351884.dkr.ecr.eu-west-1.amazonaws.com/tensorflow-inference:2.20-cpu-py312-amzn2023-sagemaker-v1",
        "DeployFunctionArn": "arn:aws:lambda:eu-west-1:123456789012:function:deploy",
        "ChampionFunctionArn": "arn:aws:lambda:eu-west-1:123456789012:function:champion",
    }
    filled = render_definition(config.model_copy(update={"aws": config.aws.model_copy(update={"region": "eu-west-1"})}), values)
    assert "${" not in filled and "placeholder" not in filled
    assert "s3://my-data/manifests/" in filled and values["TrainingImageUri"] in filled and '"SAGEMAKER_REGION": "eu-west-1"' in filled
    with pytest.raises(DefinitionError, match=r"unknown value name\(s\) \['Bucket'\]"):
        render_definition(config, {"Bucket": "x"})


def test_rendering_makes_no_network_call_and_needs_no_credentials(monkeypatch, tmp_path, config, text):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "empty").write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "empty"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "empty"))
    attempts = []

    def refuse(sock, address):
        attempts.append(address)
        raise OSError(f"network call to {address} while rendering")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", lambda address, *a, **k: refuse(None, address))
    assert render_definition(config) == text  # the same definition as with this machine's environment
    assert attempts == []


# AWS's published schema (shared/reference, April 2025) predates what the service and SDK 3 write. Each
# step is validated against the definition for its type, with these differences accepted, each for a reason:
# - the schema has no Std:JsonGet and a malformed Std:Join: they are replaced by a Get before validating
#   (their own shape is asserted by the tests above);
# - RetryPolicy.ExceptionType is a list in the service's definition format (and in every SDK), a string in
#   the schema: the first entry is validated;
# - a Condition step's IfSteps/ElseSteps may hold Lambda and Condition steps (the service accepts them):
#   nested steps are validated on their own, and stand-ins take their place in the condition;
# - PropertyFiles is a step-level field the schema lacks; the service reads it for JsonGet;
# - step arguments the schema lacks must exist in botocore's request shape for the step's API call (the
#   newer word on what the service takes), and are listed in the test.
API_SHAPES = {"Processing": "CreateProcessingJobRequest", "Training": "CreateTrainingJobRequest", "RegisterModel": "CreateModelPackageInput"}
KIND = {
    "Processing": "ProcessingStep",
    "Training": "TrainingStep",
    "Condition": "ConditionStep",
    "RegisterModel": "RegisterModelStep",
    "Lambda": "LambdaStep",
    "Fail": "FailStep",
}


def _stand_in(value):
    if isinstance(value, dict):
        if set(value) in ({"Std:JsonGet"}, {"Std:Join"}):
            return {"Get": "Parameters.StandIn"}
        return {key: _stand_in(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_stand_in(item) for item in value]
    return value


def _in_api(shape, path: list, field: str) -> bool:
    """Whether botocore's request shape has `field` at `path` (a path into the step's Arguments)."""
    for part in path:
        if shape.type_name == "list":
            shape = shape.member
            continue
        if shape.type_name != "structure" or part not in shape.members:
            return False
        shape = shape.members[part]
    if shape.type_name == "list":
        shape = shape.member
    return shape.type_name == "structure" and field in shape.members


@pytest.mark.skipif(not SCHEMA.is_file(), reason="the shared reference schema is not beside the repository")
def test_every_step_validates_against_aws_schema_with_only_the_known_deviations(definition):
    schema = json.loads(SCHEMA.read_text())
    model = botocore.session.get_session().get_service_model("sagemaker")
    accepted = []
    for original in all_steps(definition["Steps"]):
        candidate = _stand_in(copy.deepcopy(original))
        for policy in candidate.get("RetryPolicies", []):
            policy["ExceptionType"] = policy["ExceptionType"][0]
        candidate.pop("PropertyFiles", None)
        if candidate["Type"] == "Condition":
            stub = {"Name": "StandIn", "Type": "Fail", "Arguments": {"ErrorMessage": "stand-in"}}
            candidate["Arguments"]["IfSteps"] = [stub for _ in candidate["Arguments"]["IfSteps"]]
            candidate["Arguments"]["ElseSteps"] = [stub for _ in candidate["Arguments"]["ElseSteps"]]
        validator = Draft7Validator({"$ref": f"#/definitions/{KIND[candidate['Type']]}", "definitions": schema["definitions"]})
        for error in validator.iter_errors(candidate):
            path = list(error.absolute_path)
            unexpected = re.findall(r"'([A-Za-z]+)'", error.message) if error.validator == "additionalProperties" else []
            assert unexpected and path[:1] == ["Arguments"], f"{original['Name']}: {path}: {error.message[:300]}"
            shape = model.shape_for(API_SHAPES[candidate["Type"]])
            for field in unexpected:
                assert _in_api(shape, path[1:], field), f"{original['Name']}: {field} at {path} is in neither the schema nor the API"
                accepted.append((original["Name"], ".".join(map(str, [*path[1:], field]))))
    # Fields newer than the schema, each confirmed against botocore's service model above.
    assert sorted(accepted) == sorted(
        [
            ("Train", "Environment"),
            ("Register", "InferenceSpecification.Containers.0.Environment"),
            ("Register", "CustomerMetadataProperties"),
            ("Register", "DriftCheckBaselines"),
            ("Register", "Domain"),
            ("Register", "ModelApprovalStatus"),
            ("Register", "ModelCard"),  # the package's model card (tests/pipelines/test_model_card.py)
            ("Register", "SkipModelValidation"),
            ("Register", "Task"),
        ]
    )
    # The top level: SDK 3 also writes PipelineExperimentConfig and MlflowConfig, which the schema lacks.
    assert set(definition) - set(schema["properties"]) <= {"PipelineExperimentConfig", "MlflowConfig"}
