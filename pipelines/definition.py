"""The SageMaker Pipeline assembled from steps/ and rendered to its definition JSON, offline.

    CheckGateSettings -> yes: PrepareData -> Train -> FindChampion -> Evaluate -> CheckQuality -> yes: Register [-> Deploy]
                         no:  GateLooserThanAllowed (Fail)                                     no:  QualityBelowThreshold (Fail)

CheckGateSettings refuses an execution whose MapThreshold or ChampionTolerance is looser than pipeline.yaml
allows, or whose ChampionRule is not in evaluation.champion_rules.
FindChampion (a Lambda) names the package the endpoint serves; Evaluate scores it beside the new model
on the same records; CheckQuality asks for the threshold and, when something is served, not to fall behind it.
Deploy is there only when pipeline.yaml registers packages Approved; otherwise a person's approval deploys.

Rendering needs no AWS credentials and makes no network call (a test holds it to that with a socket
guard): the SDK is given valid-looking sentinels for the account values (steps/context.py), which
are replaced at the end by the values given (pipeline.yaml's `aws` section or `values`) or by `${Name}`
placeholders that the CDK app fills with Fn::Sub. The JSON is written with sorted keys and no
timestamps, so the same inputs give the same bytes and step cache keys stay stable across builds.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from collections.abc import Iterator, Mapping

from pipelines.config import Config
from steps.check_quality import check_quality_step, gate_floor_step
from steps.context import PLACEHOLDERS, REGION_PLACEHOLDER, REGION_SENTINEL, BuildContext
from steps.deploy import deploy_steps
from steps.evaluate import evaluate_step
from steps.find_champion import find_champion_step
from steps.parameters import build_parameters
from steps.prepare_data import prepare_data_step
from steps.register import register_step
from steps.train import train_step

# The SDK reads these at import and while building; they are set only for the duration of a render.
_RENDER_ENVIRONMENT = {
    "SAGEMAKER_VALIDATE_ROLE": "false",  # else it asks IAM whether the role may be assumed
    "AWS_ACCESS_KEY_ID": "rendering-offline",  # never used: nothing is sent
    "AWS_SECRET_ACCESS_KEY": "rendering-offline",
}
_SDK_CONFIG = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}


class DefinitionError(ValueError):
    """A value given for the definition is not usable; the message names it."""


def account_values(config: Config, values: Mapping[str, str] | None = None) -> dict[str, str]:
    """The account values the definition will carry: `values`, else pipeline.yaml's `aws` section, else `${Name}`."""
    unknown = sorted(set(values or {}) - set(PLACEHOLDERS))
    if unknown:
        raise DefinitionError(f"unknown value name(s) {unknown}; known: {', '.join(PLACEHOLDERS)}")
    resolved = {}
    for name, (field, _) in PLACEHOLDERS.items():
        given = (values or {}).get(name) or getattr(config.aws, field)
        resolved[name] = given or f"${{{name}}}"
    return resolved


def build_pipeline(config: Config, region: str | None = None):
    """The SageMaker SDK Pipeline object (with sentinels in place of the account values)."""
    import boto3
    from sagemaker.core.workflow.pipeline_context import PipelineSession
    from sagemaker.mlops.workflow.pipeline import Pipeline

    sentinels = {name: sentinel for name, (_, sentinel) in PLACEHOLDERS.items()}
    session = PipelineSession(
        boto_session=boto3.Session(region_name=region or REGION_SENTINEL),
        default_bucket=sentinels["ArtifactBucket"],
        sagemaker_config=_SDK_CONFIG,
    )
    session._default_bucket = sentinels["ArtifactBucket"]  # registration would otherwise look the bucket up in S3
    context = BuildContext(config=config, session=session, sentinels=sentinels)
    params = build_parameters(config, sentinels["DataBucket"])

    prepare = prepare_data_step(context, params)
    train = train_step(context, params, prepare)
    champion = find_champion_step(context, train)
    evaluate, report = evaluate_step(context, params, prepare, train, champion)
    register = register_step(context, params, prepare, train, evaluate, report, champion)
    gate = check_quality_step(context, params, evaluate, report, if_steps=[register, *deploy_steps(context, register)])
    floor = gate_floor_step(context, params, if_steps=[prepare, train, champion, evaluate, gate])
    return Pipeline(name=config.pipeline_name, parameters=params.all(), steps=[floor], sagemaker_session=session)


def render_definition(config: Config, values: Mapping[str, str] | None = None) -> str:
    """The pipeline definition JSON: deterministic, offline, account values filled or left as ${Name}."""
    resolved = account_values(config, values)
    with _rendering(config.aws.region or REGION_SENTINEL):
        raw = build_pipeline(config, config.aws.region).definition()
    text = json.dumps(json.loads(raw), sort_keys=True, indent=2)
    for name, (_, sentinel) in PLACEHOLDERS.items():
        text = text.replace(sentinel, _json_fragment(resolved[name]))
    if not config.aws.region:
        text = text.replace(REGION_SENTINEL, f"${{{REGION_PLACEHOLDER}}}")
    leftover = [s for _, s in PLACEHOLDERS.values() if s in text] + (["placeholder region"] if "placeholder" in text else [])
    if leftover:  # a sentinel the SDK transformed on its way through (never seen; a guard, not a branch)
        raise RuntimeError(f"sentinels left in the definition: {leftover}")
    json.loads(text)  # still JSON after the substitutions
    return text + "\n"


def _json_fragment(value: str) -> str:
    """A value as it may appear inside a JSON string."""
    return json.dumps(value)[1:-1]


@contextlib.contextmanager
def _rendering(region: str) -> Iterator[None]:
    """The SDK's environment for an offline render, restored afterwards; its chatter kept out of the output.
    The SDK creates a client when it is imported, which needs a region (any name: nothing is sent)."""
    environment = {**_RENDER_ENVIRONMENT, "AWS_DEFAULT_REGION": region}
    saved = {key: os.environ.get(key) for key in environment}
    os.environ.update(environment)
    logging.disable(logging.WARNING)  # the SDK logs at INFO and DEBUG through loggers of its own
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        logging.disable(logging.NOTSET)
