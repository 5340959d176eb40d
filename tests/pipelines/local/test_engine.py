"""The local engine's interpreter on hand-written definitions, with stand-in jobs (no program runs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.local.engine import Engine, ExecutionFailed, Reporter, parameter_values
from pipelines.local.expressions import DefinitionProblem, Resolver, navigate
from pipelines.local.jobs import Images

IMAGES = Images("p", "t", "i")


class FakeJobs:
    """Processing jobs that write the evaluation.json they are told to, and record what they were given."""

    def __init__(self, engine_s3, map_value: float = 0.5):
        self.s3, self.map_value, self.calls = engine_s3, map_value, []

    def processing(self, arguments, name, work, echo):
        self.calls.append(("Processing", name, arguments))
        for output in arguments.get("ProcessingOutputConfig", {}).get("Outputs", []):
            path = self.s3.path(output["S3Output"]["S3Uri"]) / "evaluation.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"metrics": {"mAP": {"value": self.map_value}}, "items": [{"name": "first"}]}))
        return {**arguments, "ProcessingJobName": name}

    def training(self, arguments, name, work, echo):
        self.calls.append(("Training", name, arguments))
        return {**arguments, "TrainingJobName": name, "ModelArtifacts": {"S3ModelArtifacts": f"s3://artifacts/{name}/model.tar.gz"}}


def make_engine(tmp_path, map_value=0.5):
    deployed = []
    engine = Engine(
        tmp_path / "state",
        IMAGES,
        invoke=lambda event: deployed.append(event) or {"status": "created", "endpoint_name": "e"},
        reporter=Reporter(say=lambda line: None),
    )
    fakes = FakeJobs(engine.s3, map_value)
    engine.jobs = {"Processing": fakes.processing, "Training": fakes.training}
    return engine, fakes, deployed


def processing(name, output_uri, cache=False, depends=()):
    step = {
        "Name": name,
        "Type": "Processing",
        "Arguments": {
            "AppSpecification": {"ImageUri": "p", "ContainerArguments": ["--steps", {"Get": "Parameters.Steps"}]},
            "ProcessingInputs": [],
            "ProcessingOutputConfig": {"Outputs": [{"OutputName": "out", "S3Output": {"S3Uri": output_uri, "LocalPath": "/opt/ml/processing/out"}}]},
        },
        "PropertyFiles": [{"PropertyFileName": "Report", "OutputName": "out", "FilePath": "evaluation.json"}],
    }
    if cache:
        step["CacheConfig"] = {"Enabled": True, "ExpireAfter": "P1D"}
    if depends:
        step["DependsOn"] = list(depends)
    return step


def definition(threshold=0.3, approve="Approved"):
    """Evaluate -> Gate (mAP >= Threshold): Register -> Approval (Status == Approved): Deploy; else Fail."""
    map_value = {"Std:JsonGet": {"PropertyFile": {"Get": "Steps.Evaluate.PropertyFiles.Report"}, "Path": "metrics.mAP.value"}}
    register = {
        "Name": "Register",
        "Type": "RegisterModel",
        "Arguments": {
            "ModelPackageGroupName": "group",
            "ModelApprovalStatus": {"Get": "Parameters.Status"},
            "InferenceSpecification": {"Containers": [{"Image": "i", "ModelDataUrl": {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}}]},
            "CustomerMetadataProperties": {"mAP": {"Std:Join": {"On": "", "Values": [map_value]}}},
        },
    }
    deploy = {
        "Name": "Deploy",
        "Type": "Lambda",
        "FunctionArn": "arn:deploy",
        "Arguments": {"model_package_arn": {"Get": "Steps.Register.ModelPackageArn"}},
        "OutputParameters": [{"OutputName": "status"}],
    }
    approval = {
        "Name": "Approval",
        "Type": "Condition",
        "Arguments": {
            "Conditions": [{"Type": "Equals", "LeftValue": {"Get": "Parameters.Status"}, "RightValue": "Approved"}],
            "IfSteps": [deploy],
            "ElseSteps": [],
        },
    }
    fail = {
        "Name": "TooLow",
        "Type": "Fail",
        "Arguments": {"ErrorMessage": {"Std:Join": {"On": "", "Values": ["mAP ", map_value, " < ", {"Get": "Parameters.Threshold"}]}}},
    }
    return {
        "Version": "2020-12-01",
        "Parameters": [
            {"Name": "Steps", "Type": "Integer", "DefaultValue": 10},
            {"Name": "Threshold", "Type": "Float", "DefaultValue": threshold},
            {"Name": "Status", "Type": "String", "DefaultValue": approve},
        ],
        "Steps": [
            {
                "Name": "Train",
                "Type": "Training",
                "Arguments": {"HyperParameters": {"num_steps": {"Std:Join": {"On": "", "Values": [{"Get": "Parameters.Steps"}]}}}},
            },
            {
                **processing(
                    "Evaluate", {"Std:Join": {"On": "/", "Values": ["s3://artifacts", {"Get": "Execution.PipelineExecutionId"}, "evaluation"]}}
                ),
                "Arguments": {
                    **processing("Evaluate", "")["Arguments"],
                    "ProcessingInputs": [
                        {
                            "InputName": "model",
                            "S3Input": {"S3Uri": {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}, "LocalPath": "/opt/ml/processing/model"},
                        }
                    ],
                    "ProcessingOutputConfig": {
                        "Outputs": [
                            {
                                "OutputName": "out",
                                "S3Output": {
                                    "S3Uri": {
                                        "Std:Join": {"On": "/", "Values": ["s3://artifacts", {"Get": "Execution.PipelineExecutionId"}, "evaluation"]}
                                    },
                                    "LocalPath": "/opt/ml/processing/out",
                                },
                            }
                        ]
                    },
                },
            },
            {
                "Name": "Gate",
                "Type": "Condition",
                "Arguments": {
                    "Conditions": [{"Type": "GreaterThanOrEqualTo", "LeftValue": map_value, "RightValue": {"Get": "Parameters.Threshold"}}],
                    "IfSteps": [register, approval],
                    "ElseSteps": [fail],
                },
            },
        ],
    }


def statuses(engine, execution):
    return {s["name"]: s["status"] for s in engine.state.steps(execution)}


def test_the_passing_branch_registers_then_deploys_an_approved_package(tmp_path):
    engine, fakes, deployed = make_engine(tmp_path, map_value=0.5)
    result = engine.run(definition(), "demo", {"Steps": "25"})
    assert result.status == "Succeeded"
    assert statuses(engine, result.execution) == {
        "Train": "Succeeded",
        "Evaluate": "Succeeded",
        "Gate": "Succeeded",
        "Register": "Succeeded",
        "Approval": "Succeeded",
        "Deploy": "Succeeded",
        "TooLow": "NotRun",
    }
    # Overrides reach the steps, converted to the parameter's type and joined as text.
    assert fakes.calls[0][2]["HyperParameters"] == {"num_steps": "25"}
    assert fakes.calls[1][2]["AppSpecification"]["ContainerArguments"] == ["--steps", 25]
    # Property references resolve to what the earlier step reported.
    evaluate_inputs = fakes.calls[1][2]["ProcessingInputs"][0]["S3Input"]["S3Uri"]
    assert evaluate_inputs == f"s3://artifacts/{fakes.calls[0][1]}/model.tar.gz"
    (package,) = engine.state.packages("group")
    assert (package.version, package.status, package.map) == (1, "Approved", 0.5)
    assert deployed == [{"model_package_arn": package.arn, "FunctionArn": "arn:deploy"}]


def test_the_registry_keeps_the_drift_baselines_a_package_is_registered_with(tmp_path):
    engine, _, _ = make_engine(tmp_path)
    with_baselines = definition()
    register = with_baselines["Steps"][2]["Arguments"]["IfSteps"][0]
    evaluation = {"Get": "Steps.Evaluate.ProcessingOutputConfig.Outputs['out'].S3Output.S3Uri"}
    register["Arguments"]["DriftCheckBaselines"] = {
        field: {"Statistics": {"ContentType": "application/json", "S3Uri": {"Std:Join": {"On": "/", "Values": [evaluation, name]}}}}
        for field, name in (("ModelDataQuality", "data-baseline.json"), ("ModelQuality", "model-baseline.json"))
    }
    first = engine.run(with_baselines, "demo").execution
    engine.run(definition(), "demo")
    newer, older = engine.state.packages("group")
    assert older.drift_check_baselines == {
        "ModelDataQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": f"s3://artifacts/{first}/evaluation/data-baseline.json"}},
        "ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": f"s3://artifacts/{first}/evaluation/model-baseline.json"}},
    }
    assert older.metadata["DriftCheckBaselines"] == older.drift_check_baselines  # where `cardamage monitor --local` reads them
    assert newer.drift_check_baselines == {} and "DriftCheckBaselines" not in newer.metadata


def test_a_pending_package_is_registered_but_not_deployed(tmp_path):
    engine, _, deployed = make_engine(tmp_path)
    result = engine.run(definition(approve="PendingManualApproval"), "demo")
    assert statuses(engine, result.execution)["Deploy"] == "NotRun" and deployed == []
    assert engine.state.packages("group")[0].status == "PendingManualApproval"


def test_the_failing_branch_ends_in_the_fail_step_with_its_message(tmp_path):
    engine, _, _ = make_engine(tmp_path, map_value=0.1)
    with pytest.raises(ExecutionFailed, match=r"^mAP 0\.1 < 0\.3$") as info:
        engine.run(definition(threshold=0.3), "demo")
    assert engine.state.execution(info.value.execution)["status"] == "Failed"
    steps = statuses(engine, info.value.execution)
    assert steps["TooLow"] == "Failed" and steps["Register"] == "NotRun" and engine.state.packages("group") == []


def test_parameter_overrides_are_checked_by_name_and_type():
    declared = definition()
    assert parameter_values(declared, {"Threshold": "0.5"})["Threshold"] == 0.5
    with pytest.raises(DefinitionProblem, match=r"unknown parameter\(s\) Treshold; the pipeline's parameters are: Steps, Threshold, Status"):
        parameter_values(declared, {"Treshold": "1"})
    with pytest.raises(DefinitionProblem, match="Steps='ten' must be a whole number"):
        parameter_values(declared, {"Steps": "ten"})


def test_a_cached_step_is_not_run_again_and_keeps_its_outputs(tmp_path):
    engine, fakes, _ = make_engine(tmp_path)
    steps = {
        "Version": "2020-12-01",
        "Parameters": [{"Name": "Steps", "Type": "Integer", "DefaultValue": 1}],
        "Steps": [processing("Prepare", "s3://artifacts/prepared", cache=True)],
    }
    first = engine.run(steps, "demo")
    second = engine.run(steps, "demo")
    assert len(fakes.calls) == 1
    cached = engine.state.steps(second.execution)[0]
    assert cached["cached_from"] == first.execution and cached["status"] == "Succeeded"
    engine.run(steps, "demo", {"Steps": "2"})  # a changed argument is a new cache key
    assert len(fakes.calls) == 2


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["Steps"].append({"Name": "Send", "Type": "EMR", "Arguments": {}}), r"the step type 'EMR' is not supported by the local engine"),
        (lambda d: d["Steps"][0]["Arguments"]["HyperParameters"].update({"x": {"Std:Upper": "a"}}), r"the function 'Std:Upper' is not supported"),
        (
            lambda d: d["Steps"][0]["Arguments"]["HyperParameters"].update({"x": {"Get": "Steps.Nowhere.Out"}}),
            r"Get refers to a step that does not exist: 'Nowhere'",
        ),
        (lambda d: d["Steps"][0]["Arguments"]["HyperParameters"].update({"x": {"Get": "Parameters.Nope"}}), r"unknown parameter 'Nope'"),
        (
            lambda d: d["Steps"][0].update({"DependsOn": ["Evaluate"]}),
            r"dependency cycle: (Train -> Evaluate -> Train|Evaluate -> Train -> Evaluate)",
        ),
        (lambda d: d["Steps"][0].update({"DependsOn": ["Ghost"]}), r"Train.DependsOn: no step named 'Ghost'"),
        (lambda d: d["Steps"][2]["Arguments"]["Conditions"].append({"Type": "Between"}), r"the condition type 'Between' is not supported"),
        (
            lambda d: d["Steps"][2]["Arguments"]["Conditions"].append(
                {
                    "Type": "Equals",
                    "LeftValue": {"Std:JsonGet": {"PropertyFile": {"Get": "Steps.Evaluate.PropertyFiles.Other"}, "Path": "a"}},
                    "RightValue": 1,
                }
            ),
            r"has no property file 'Other'",
        ),
    ],
)
def test_an_unusable_definition_is_refused_before_anything_runs(tmp_path, mutate, message):
    engine, fakes, _ = make_engine(tmp_path)
    broken = definition()
    mutate(broken)
    with pytest.raises(DefinitionProblem, match=message):
        engine.run(broken, "demo")
    assert fakes.calls == [] and engine.state.executions() == []


def test_nested_conditions_or_not_and_in():
    resolver = Resolver({"A": 3, "B": "x"}, {}, read_property_file=lambda step, name: {})
    assert resolver.condition(
        {
            "Type": "Or",
            "Conditions": [
                {"Type": "Equals", "LeftValue": 1, "RightValue": 2},
                {"Type": "LessThan", "LeftValue": {"Get": "Parameters.A"}, "RightValue": 4},
            ],
        }
    )
    assert resolver.condition({"Type": "Not", "Condition": {"Type": "In", "QueryValue": {"Get": "Parameters.B"}, "Values": ["y", "z"]}})
    assert not resolver.condition({"Type": "GreaterThan", "LeftValue": {"Get": "Parameters.A"}, "RightValue": 3})


def test_property_paths_read_lists_by_name_and_index():
    document = {"ProcessingOutputConfig": {"Outputs": [{"OutputName": "prepared", "S3Output": {"S3Uri": "s3://b/p"}}]}, "items": [{"name": "first"}]}
    assert navigate(document, "ProcessingOutputConfig.Outputs['prepared'].S3Output.S3Uri", where="x") == "s3://b/p"
    assert navigate(document, "items[0].name", where="x", json_path=True) == "first"
    with pytest.raises(DefinitionProblem, match="no item named 'other'"):
        navigate(document, "ProcessingOutputConfig.Outputs['other']", where="x")


def test_ctrl_c_stops_the_execution_and_records_it(tmp_path):
    engine, _, _ = make_engine(tmp_path)

    def interrupted(arguments, name, work, echo):
        raise KeyboardInterrupt

    engine.jobs["Training"] = interrupted
    with pytest.raises(KeyboardInterrupt):
        engine.run(definition(), "demo")
    (execution,) = engine.state.executions()
    assert execution["status"] == "Stopped"
    assert statuses(engine, execution["id"])["Train"] == "Stopped"


def test_the_state_folder_holds_everything(tmp_path):
    engine, _, _ = make_engine(tmp_path)
    engine.run(definition(), "demo")
    assert (tmp_path / "state" / "state.sqlite").is_file()
    assert any(Path(tmp_path / "state" / "s3" / "artifacts").rglob("evaluation.json"))
