"""The artifacts bucket's expiry (issue 21, section 6): by default the prepared data, which holds TFRecord copies
of the photos, expires, and no expiring rule reaches the model archives that packages and the endpoint read. The
keys are the ones the rendered definition writes, so moving an output without its rule fails here; the
template passes cdk-nag and cfn-lint."""

from __future__ import annotations

import json
import re

from pipelines.config import InfrastructureConfig
from tests.infra.test_checks import IGNORED_CFN_LINT, templates
from tests.infra.test_workflow_stack import logical_id, resources
from tests.pipelines.test_definition import step
from tests.support import ROOT

EXECUTION = "a1b2c3d4e5f6"


def key_prefix(join: dict) -> str:
    """The bucket key that a definition's `Std:Join` S3 URI gives for one execution."""
    values = [EXECUTION if value == {"Get": "Execution.PipelineExecutionId"} else value for value in join["Std:Join"]["Values"]]
    assert all(isinstance(value, str) for value in values), values
    uri = join["Std:Join"]["On"].join(values)
    return uri.removeprefix("s3://${ArtifactBucket}/").rstrip("/") + "/"


def expiring_rules(template: dict) -> list[dict]:
    bucket = resources(template, "AWS::S3::Bucket")[logical_id(template, "AWS::S3::Bucket", "Artifacts")]
    rules = bucket["Properties"]["LifecycleConfiguration"]["Rules"]
    return [rule for rule in rules if "ExpirationInDays" in rule or "ExpirationDate" in rule]


def reaches(rule: dict, prefix: str) -> bool:
    """Whether a rule filtered by a key prefix (or by nothing) can expire some object under `prefix`."""
    own = rule.get("Prefix") or (rule.get("Filter") or {}).get("Prefix") or ""
    return own.startswith(prefix) or prefix.startswith(own)


def test_by_default_prepared_data_expires_and_no_expiry_reaches_the_model_archives(synthesize, definition):
    text = re.sub(r"^  artifact_expiration_days: .*\n", "", (ROOT / "pipeline.yaml").read_text(), flags=re.M)  # the default
    synthesized = synthesize(text)  # cdk-nag raises here on a finding nobody acknowledged
    template = synthesized.template_json()
    rendered = json.loads(definition)
    (prepared,) = step(rendered, "PrepareData")["Arguments"]["ProcessingOutputConfig"]["Outputs"]
    photos = key_prefix(prepared["S3Output"]["S3Uri"])
    models = key_prefix(step(rendered, "Train")["Arguments"]["OutputDataConfig"]["S3OutputPath"])  # then <job>/output/model.tar.gz

    default = InfrastructureConfig().artifact_expiration_days
    assert default == 90
    covering = [rule for rule in expiring_rules(template) if reaches(rule, photos)]
    assert [rule["ExpirationInDays"] for rule in covering] == [default], covering
    assert not [rule for rule in expiring_rules(template) if reaches(rule, models)]

    from cfnlint.api import ManualArgs, lint_file

    (path,) = templates(synthesized.outdir)
    matches = lint_file(path, config=ManualArgs(regions=["eu-west-1", "us-east-1"]))
    assert not [m for m in matches if m.rule.id not in IGNORED_CFN_LINT and not m.rule.id.startswith("I")], matches
