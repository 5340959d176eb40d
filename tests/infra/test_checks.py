"""The checks every synth must pass: cdk-nag's AwsSolutions (a failing synth would raise in the fixtures; here:
every acknowledgment carries a reason), cfn-lint on each synthesized template, and the app's variants:
CI/CD with a CodeStar connection or CodeCommit, a labelling prefix in another bucket, a GPU endpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from containers.deploy import deploy
from infra.drift import drift_alarm_name
from tests.infra.conftest import with_infrastructure
from tests.infra.test_permissions import statements_of
from tests.infra.test_workflow_stack import logical_id, resources
from tests.support import ROOT

# cfn-lint findings we accept, and why:
# - W3005: CDK adds DependsOn from each Lambda function to its role's default policy, so that the policy exists
#   before the function can run; cfn-lint finds the dependency already implied by the role's GetAtt. Harmless.
# - E3703: "prefer Fn::Sub over Fn::Join with an empty delimiter", a style rule: CDK Pipelines writes the deploy
#   action's role ARN with Fn::Join, which CloudFormation evaluates to the same string.
IGNORED_CFN_LINT = {"W3005", "E3703"}


def acknowledgments(outdir: Path) -> dict[str, str]:
    """Finding id -> reason, over every stack's metadata in a cloud assembly (stages included)."""
    found = {}
    for metadata in outdir.rglob("*.metadata.json"):
        for entries in json.loads(metadata.read_text()).values():
            for entry in entries:
                if entry["type"] == "aws:cdk:acknowledged-rules":
                    found.update(entry["data"])
    return found


def test_every_cdk_nag_acknowledgment_is_specific_and_has_a_reason(workflow, cicd):
    for synthesized in (workflow, cicd):
        acknowledged = acknowledgments(synthesized.outdir)
        nag = {rule: reason for rule, reason in acknowledged.items() if "AwsSolutions-" in rule}
        assert nag, "cdk-nag ran with nothing to acknowledge?"
        for rule, reason in nag.items():
            assert len(reason) > 40, f"{rule}: give a specific reason"
            if "IAM5" in rule:
                assert rule.endswith("]"), f"{rule}: acknowledge the very wildcard, not the whole rule"


def templates(outdir: Path) -> list[Path]:
    return sorted(outdir.rglob("*.template.json"))


@pytest.mark.parametrize("app", ["workflow", "cicd"])
def test_cfn_lint_finds_no_errors_in_any_synthesized_template(app, request):
    from cfnlint.api import ManualArgs, lint_file

    outdir = request.getfixturevalue(app).outdir
    paths = templates(outdir)
    assert len(paths) == (1 if app == "workflow" else 2)  # the CI/CD stack and the stage's workflow stack
    for path in paths:
        matches = lint_file(path, config=ManualArgs(regions=["eu-west-1", "us-east-1"]))
        problems = [f"{m.rule.id} {m.message} ({m.path})" for m in matches if m.rule.id not in IGNORED_CFN_LINT and not m.rule.id.startswith("I")]
        assert not problems, f"{path.name}:\n" + "\n".join(problems)


def test_the_ci_pipeline_tests_synthesizes_and_deploys_the_workflow_on_push(cicd):
    template = cicd.template_json()
    _, pipeline = next(iter(resources(template, "AWS::CodePipeline::Pipeline").items()))
    stages = [stage["Name"] for stage in pipeline["Properties"]["Stages"]]
    assert stages == ["Source", "Build", "UpdatePipeline", "Assets", "Deploy"]
    source = pipeline["Properties"]["Stages"][0]["Actions"][0]
    assert source["ActionTypeId"]["Provider"] == "CodeStarSourceConnection"
    assert source["Configuration"]["FullRepositoryId"] == "acme/car-damage" and source["Configuration"]["BranchName"] == "main"
    assert source["Configuration"]["ConnectionArn"] == cicd.config.infrastructure.source.connection_arn
    projects = resources(template, "AWS::CodeBuild::Project")
    synth = projects[logical_id(template, "AWS::CodeBuild::Project", "Synth")]["Properties"]
    spec = json.loads(synth["Source"]["BuildSpec"])
    assert spec["phases"]["build"]["commands"] == ["make test", "make synth"]
    assert spec["phases"]["install"]["runtime-versions"] == {"python": "3.11", "nodejs": "20"}
    assert spec["artifacts"]["base-directory"] == "cdk.out"
    assert any("SelfMutation" in name for name in projects)  # self-mutating
    deploy = pipeline["Properties"]["Stages"][-1]["Actions"]
    assert {action["ActionTypeId"]["Provider"] for action in deploy} == {"CloudFormation"}
    assert any(action["Configuration"].get("StackName") == "car-damage" for action in deploy)


def test_the_ci_stage_deploys_the_same_workflow_and_tells_the_subscribers(cicd, workflow_template):
    staged = cicd.template_json(cicd.stack.stage.stack)
    expected = [r["Type"] for r in workflow_template["Resources"].values()] + ["AWS::SNS::Subscription"]
    assert sorted(r["Type"] for r in staged["Resources"].values()) == sorted(expected)
    (subscription,) = resources(staged, "AWS::SNS::Subscription").values()
    assert subscription["Properties"]["Protocol"] == "email" and subscription["Properties"]["Endpoint"] == "mlops@example.com"


def test_a_codecommit_source_is_a_repository_name(synthesize):
    synthesized = synthesize(
        with_infrastructure("", {"    repository: null\n": "    repository: car-damage\n", "    branch: main\n": "    branch: release\n"})
    )
    template = synthesized.template_json()
    (pipeline,) = resources(template, "AWS::CodePipeline::Pipeline").values()
    source = pipeline["Properties"]["Stages"][0]["Actions"][0]
    assert source["ActionTypeId"]["Provider"] == "CodeCommit"
    assert source["Configuration"]["RepositoryName"] == "car-damage" and source["Configuration"]["BranchName"] == "release"


def test_a_labelling_prefix_in_another_bucket_is_read_and_watched_there(synthesize):
    text = with_infrastructure("", {"  output_prefix: null\n": "  output_prefix: s3://labelling-team/car-damage/gt\n"})
    template = synthesize(text).template_json()
    rule = template["Resources"][logical_id(template, "AWS::Events::Rule", "OnNewGroundTruthManifest")]["Properties"]
    assert rule["EventPattern"]["detail"] == {
        "bucket": {"name": ["labelling-team"]},
        "object": {"key": [{"wildcard": "car-damage/gt/*/manifests/output/output.manifest"}]},
    }
    labels = template["Resources"][logical_id(template, "AWS::Events::Rule", "OnNewLabels")]["Properties"]
    assert labels["EventPattern"]["detail"]["object"] == {"key": [{"prefix": "labels/"}]}
    trigger = statements_of(template, "TriggerFunctionRole")
    assert "labelling-team/car-damage/gt/*" in json.dumps(trigger["ReadLabelledInputs"]["Resource"])
    # Each bucket is listed under its own prefix only.
    assert trigger["ListLabelledInputs"]["Condition"] == {"StringLike": {"s3:prefix": ["labels/*"]}}
    assert trigger["ListGroundTruthOutput"]["Condition"] == {"StringLike": {"s3:prefix": ["car-damage/gt/*"]}}
    assert trigger["ListGroundTruthOutput"]["Resource"] == {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::labelling-team"]]}
    statements = statements_of(template, "SageMakerExecution")
    assert {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::labelling-team/car-damage/gt/*"]]} in statements["ReadLabelledData"][
        "Resource"
    ]
    assert statements["ListLabelledData1"]["Resource"] == {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::labelling-team"]]}


def test_a_gpu_endpoint_is_served_by_the_gpu_serving_image_and_a_named_image_wins(synthesize):
    gpu = synthesize(
        with_infrastructure(
            "", {"  instance_type: ml.m5.xlarge\n  initial_instance_count": "  instance_type: ml.g4dn.xlarge\n  initial_instance_count"}
        )
    )
    (pipeline,) = resources(gpu.template_json(), "AWS::SageMaker::Pipeline").values()
    variables = pipeline["Properties"]["PipelineDefinition"]["PipelineDefinitionBody"]["Fn::Sub"][1]
    assert json.dumps(variables["InferenceImageUri"]).endswith('/tensorflow-inference:2.20-gpu-py312-cu129-amzn2023-sagemaker-v1"]]}')
    named = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/car-damage-serving:7"
    own = synthesize(with_infrastructure("", {"  inference_image_uri: null\n": f"  inference_image_uri: {named}\n"}))
    (pipeline,) = resources(own.template_json(), "AWS::SageMaker::Pipeline").values()
    assert pipeline["Properties"]["PipelineDefinition"]["PipelineDefinitionBody"]["Fn::Sub"][1]["InferenceImageUri"] == named


@pytest.mark.parametrize("with_ci", [False, True])
def test_every_acknowledgment_answers_a_finding_that_is_there(with_ci, definition, tmp_path, monkeypatch):
    """Synthesized with the acknowledgments withheld, cdk-nag must report each one's finding on its construct:
    an acknowledgment left over after the code changed would hide the next finding of that id."""
    from aws_cdk import App

    from infra import nag
    from infra.app import build
    from pipelines.config import parse_config
    from tests.infra.conftest import CONNECTION

    withheld: list[tuple[str, str]] = []
    monkeypatch.setattr(nag, "acknowledge", lambda construct, *findings: withheld.extend((construct.node.path, rule) for rule, _ in findings))
    replacements = {
        "    repository: null\n": "    repository: acme/car-damage\n",
        "    connection_arn: null\n": f"    connection_arn: {CONNECTION}\n",
    }
    config = parse_config(with_infrastructure("", replacements if with_ci else {}), base_dir=ROOT)
    app = App(outdir=str(tmp_path), context=json.loads((ROOT / "cdk.json").read_text())["context"])
    build(app, config, definition=definition)
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    found = {
        (violation["ruleName"], construct["constructPath"])
        for plugin in report["pluginReports"]
        for violation in plugin["violations"]
        for construct in violation["violatingConstructs"]
    }
    unused = [(path, rule) for path, rule in withheld if not any(name == rule and (at == path or at.startswith(f"{path}/")) for name, at in found)]
    assert not unused, f"acknowledgments with no finding: {unused}"
    assert {name for name, _ in found} <= {rule for _, rule in withheld}


def test_release_stages_get_alarms_events_and_permissions_of_their_own(synthesize):
    text = with_infrastructure("", {"  linear_step_percent: 25\n": "  linear_step_percent: 25\n  stages: [staging, production]\n"})
    synthesized = synthesize(text)
    template = synthesized.template_json()
    staging, production = "car-damage-endpoint-staging", "car-damage-endpoint"
    names = sorted(body["Properties"]["AlarmName"] for body in resources(template, "AWS::CloudWatch::Alarm").values())
    drift = (drift_alarm_name(staging), drift_alarm_name(production))
    assert names == sorted(deploy.rollback_alarm_names(staging) + deploy.rollback_alarm_names(production) + drift)
    function = template["Resources"][logical_id(template, "AWS::Lambda::Function", "DeployFunction")]["Properties"]["Environment"]["Variables"]
    # Approvals deploy to staging, rolled back on staging's alarms; the function also handles production's events.
    assert (function["ENDPOINT_NAME"], function["LATER_STAGE_ENDPOINTS"]) == (staging, production)
    assert function["ROLLBACK_ALARMS"] == ",".join(deploy.rollback_alarm_names(staging))
    assert function["DATA_CAPTURE_S3_URI"]["Fn::Join"][1][-1].endswith(f"/data-capture/{staging}/")
    rule = template["Resources"][logical_id(template, "AWS::Events::Rule", "OnEndpointInService")]["Properties"]
    assert rule["EventPattern"]["detail"]["EndpointName"] == [staging, production]
    endpoints = json.dumps(statements_of(template, "DeployFunctionRole")["CreateAndUpdateTheEndpoint"]["Resource"])
    assert f":endpoint/{staging}" in endpoints and f':endpoint/{production}"' in endpoints
    champion = json.dumps(statements_of(template, "ChampionFunctionRole")["ReadTheServedPackage"]["Resource"])
    assert f':endpoint/{production}"' in champion and staging not in champion  # the champion is production's package
    logs = json.dumps(statements_of(template, "SageMakerExecution")["WriteSageMakerLogs"]["Resource"])
    assert f':log-group:/aws/sagemaker/Endpoints/{staging}"' in logs and f':log-group:/aws/sagemaker/Endpoints/{production}"' in logs
    (policy,) = resources(template, "AWS::SNS::TopicPolicy").values()
    (alarms,) = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}]
    published = json.dumps(alarms["Condition"]["ArnEquals"]["aws:SourceArn"])
    assert all(f":alarm:{name}" in published for name in deploy.rollback_alarm_names(staging) + deploy.rollback_alarm_names(production) + drift)
