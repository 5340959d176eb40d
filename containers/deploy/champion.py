"""FindChampion: the package the endpoint serves now, the champion that a challenger must not fall behind.

The pipeline's FindChampion Lambda step runs this before Evaluate; the local engine runs `Champion` lookups
against the local registry instead (pipelines/local/endpoint.py). What is served is read as the deployment
function reads it (deploy.served_package: the endpoint's current endpoint config, so a rolled-back update
is not mistaken for the champion).

The answer always names a model for Evaluate to read: a Processing input must name objects that exist, so
when there is no champion, `model_data_url` is the challenger's own and `found` is false (Evaluate then
scores the challenger alone). Standard library and boto3 only: it ships beside deploy.py as the Lambda's code.

It also names the champion's data, for the report page's "images new since the champion's data": beside each
package's evaluation.json (its ModelMetrics), Evaluate keeps the list of the photos the model was trained and
validated on (containers/evaluation/image_lists.py). `data_uri` is that evaluation.json's URI less ".json", a
prefix that holds evaluation.json itself and the list when its Evaluate kept one, so never an empty prefix.
When the champion's data cannot be named, `data_uri` is `model_data_url` (an object that exists, as for the
model) and `data_missing` says why; Evaluate then shows the images as not known, and does not fail.

Production may be served from an account of its own (deployment.accounts): the function's environment then
names production's reader role (CHAMPION_ROLE_ARN) and, when production names its own region, that region
(CHAMPION_REGION). The function assumes the role to read the endpoint, its config and their tags, and reads the
package with its own credentials: the registry is the workflow account's, where the function runs.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

try:  # imported as containers.deploy.champion: the tests, the local engine, the CDK app
    from . import deploy
except ImportError:  # the Lambda: handler "champion.handler", with this folder on sys.path
    import deploy  # type: ignore[no-redef]

NONE = "none"  # the package ARN and mAP outputs when there is no champion (metadata values may not be empty)
# The model package metadata (CustomerMetadataProperties) where Register records the champion it was judged
# against: its version ("0": none) and its mAP on the same validation records ("none": none).
METADATA_VERSION = "ChampionVersion"
METADATA_MAP = "ChampionMAP"
EVALUATION_FILE = "evaluation.json"  # what a package's ModelMetrics (ModelQuality.Statistics) names: Evaluate's report
# `data_missing` is one of Evaluate's container arguments, which hold at most 256 characters each (botocore's
# sagemaker service model, shape ContainerArgument): a longer reason is cut.
MAX_ARGUMENT = 256
_PIPELINE_ROOT = re.compile(r"^s3://[^/]+/[^/]+/")  # s3://<artifact bucket>/<pipeline>/: the outputs the pipeline's role reads
ROLE_VARIABLE = "CHAMPION_ROLE_ARN"  # production's reader role, when production is in another account
REGION_VARIABLE = "CHAMPION_REGION"  # production's region, when it is not the function's
_SESSION_NAME = re.compile(r"[^\w+=,.@-]")  # the characters a RoleSessionName may not hold (AssumeRole, AWS STS API Reference)


@dataclass(frozen=True)
class Champion:
    """What the challenger is compared with. `recorded_map` is the mAP the champion was registered with;
    Evaluate measures it again on the challenger's validation records."""

    found: bool
    reason: str
    model_data_url: str  # the champion's model.tar.gz; the challenger's when there is none
    package_arn: str = NONE
    version: int = 0
    group: str = ""
    recorded_map: float | None = None
    data_uri: str = ""  # the prefix of its evaluation.json and image list; "" when not known
    data_missing: str = ""  # why its data is not known, when it was found ("" otherwise: `reason` says why)

    def outputs(self) -> dict[str, Any]:
        """The Lambda's answer: the FindChampion step's outputs (`found` a Boolean, the others strings)."""
        return {
            "found": self.found,
            "reason": self.reason,
            "model_data_url": self.model_data_url,
            "package_arn": self.package_arn,
            "version": str(self.version),
            "recorded_map": NONE if self.recorded_map is None else f"{self.recorded_map:.6f}",
            "data_uri": self.data_uri or self.model_data_url,
            "data_missing": NONE if self.data_uri else _argument(self.data_missing or self.reason),
        }


def _argument(text: str) -> str:
    return text if len(text) <= MAX_ARGUMENT else text[: MAX_ARGUMENT - 3] + "..."


def recorded_champion(metadata: Mapping[str, Any] | None) -> tuple[int, float | None] | None:
    """(version, mAP) of the champion a package's metadata records; (0, None) when there was none; None for a
    package registered before champions were recorded (or with unreadable values)."""
    metadata = metadata or {}
    if METADATA_VERSION not in metadata:
        return None
    try:
        version = int(metadata[METADATA_VERSION])
        text = str(metadata.get(METADATA_MAP, NONE))
        return version, (None if text == NONE else float(text))
    except ValueError:
        return None


def none(reason: str, challenger_model_url: str) -> Champion:
    return Champion(False, reason, challenger_model_url)


def nothing_served(endpoint_name: str, challenger_model_url: str) -> Champion:
    return none(f"there is no endpoint {endpoint_name}: nothing is served", challenger_model_url)


def deleted(endpoint_name: str, version: int, challenger_model_url: str) -> Champion:
    return none(f"endpoint {endpoint_name} serves version {version}, whose package was deleted", challenger_model_url)


def served(endpoint_name: str, package: deploy.Candidate, model_data_url: str, evaluation_uri: str | None = None) -> Champion:
    """The champion: the package `endpoint_name` serves, as the deployment rule reads it, its model and, from
    `evaluation_uri` (the evaluation.json its ModelMetrics name), its data."""
    reason = f"endpoint {endpoint_name} serves version {package.version} of {package.group}"
    data_uri, missing = champion_data(package.version, evaluation_uri, model_data_url)
    return Champion(True, reason, model_data_url, package.arn, package.version, package.group, package.map, data_uri, missing)


def champion_data(version: int, evaluation_uri: str | None, model_data_url: str) -> tuple[str, str]:
    """(the prefix of the champion's evaluation.json and image list, "") or ("", why there is none to read). The
    evaluation must be under the pipeline's outputs its model is under (s3://<bucket>/<pipeline>/), which
    Evaluate's role reads: one elsewhere could fail the job when SageMaker downloads it."""
    if not evaluation_uri:
        return "", f"version {version}'s package names no {EVALUATION_FILE} (ModelMetrics)"
    if not evaluation_uri.startswith("s3://") or not evaluation_uri.endswith(f"/{EVALUATION_FILE}"):
        return "", f"version {version}'s package names {evaluation_uri} as its metrics, not an Evaluate {EVALUATION_FILE}"
    root = _PIPELINE_ROOT.match(model_data_url)
    if root is None or not evaluation_uri.startswith(root.group(0)):
        where = root.group(0) if root else model_data_url
        return "", f"version {version}'s {EVALUATION_FILE} ({evaluation_uri}) is not under its model's pipeline outputs ({where})"
    return evaluation_uri.removesuffix(".json"), ""


def of_package(package: Mapping[str, Any], endpoint_name: str, challenger_model_url: str) -> Champion:
    """The champion from a DescribeModelPackage answer."""
    offered = deploy.candidate(package)
    containers = (package.get("InferenceSpecification") or {}).get("Containers") or [{}]
    url = containers[0].get("ModelDataUrl")
    if not url:
        return none(f"endpoint {endpoint_name} serves version {offered.version}, whose package names no model data", challenger_model_url)
    statistics = ((package.get("ModelMetrics") or {}).get("ModelQuality") or {}).get("Statistics") or {}
    return served(endpoint_name, offered, url, statistics.get("S3Uri"))


def another_group(endpoint_name: str, version: int, group: str, challenger_model_url: str) -> Champion:
    return none(f"endpoint {endpoint_name} serves version {version} of another group, {group}: no champion of ours", challenger_model_url)


def find_champion(sagemaker: Any, endpoint_name: str, challenger_model_url: str, group: str | None = None, *, endpoints: Any = None) -> Champion:
    """The package `endpoint_name` serves now, or why there is none to compare with. With `group`, a package of
    another group is none (the deployment rule deploys over it; the function may not read it). `sagemaker`
    describes the package; `endpoints` (None: `sagemaker`) reads the endpoint, in production's account."""
    endpoints = endpoints or sagemaker
    endpoint = deploy.describe_endpoint(endpoints, endpoint_name)
    if endpoint is None:
        return nothing_served(endpoint_name, challenger_model_url)
    tagged = deploy.served_package(endpoints, endpoint)
    if tagged is None:
        return none(f"endpoint {endpoint_name} serves no package of this project (no {deploy.TAG_ARN} tag)", challenger_model_url)
    if group and tagged.group and tagged.group != group:
        return another_group(endpoint_name, tagged.version, tagged.group, challenger_model_url)
    try:
        package = sagemaker.describe_model_package(ModelPackageName=tagged.arn)
    except ClientError as exc:
        if not deploy.is_not_found(exc):
            raise
        return deleted(endpoint_name, tagged.version, challenger_model_url)
    return of_package(package, endpoint_name, challenger_model_url)


def parse_event(event: Any) -> tuple[str, str, str | None]:
    """(endpoint name, challenger model URL, group) of the step's input `{"endpoint_name", "challenger_model_url",
    "model_package_group"}` (a definition rendered before the group was passed has none)."""
    if not isinstance(event, Mapping):
        raise deploy.DeployError(f"the event must be a JSON object, not {type(event).__name__}")
    endpoint, challenger = event.get("endpoint_name"), event.get("challenger_model_url")
    if not isinstance(endpoint, str) or not deploy._NAME.match(endpoint):
        raise deploy.DeployError(f"endpoint_name must be an endpoint name (got {endpoint!r})")
    if not isinstance(challenger, str) or not challenger.startswith("s3://"):
        raise deploy.DeployError(f"challenger_model_url must be the challenger's model.tar.gz S3 URI (got {challenger!r})")
    group = event.get("model_package_group")
    if group is not None and not (isinstance(group, str) and deploy._NAME.match(group)):
        raise deploy.DeployError(f"model_package_group must be a model package group's name (got {group!r})")
    return endpoint, challenger, group


def endpoint_reader(environ: Mapping[str, str]) -> Any:
    """The SageMaker client that reads production's endpoint: with CHAMPION_ROLE_ARN, the role's (assumed with a
    session named after the function), in CHAMPION_REGION when set; None when neither is set (production is in the
    function's own account and region). A role that cannot be assumed fails the invocation, naming the role and the fix."""
    import boto3

    role, region = (environ.get(ROLE_VARIABLE) or "").strip(), (environ.get(REGION_VARIABLE) or "").strip()
    if role and not deploy._ROLE.match(role):
        raise deploy.DeployError(f"environment variable {ROLE_VARIABLE} must be an IAM role ARN (arn:aws:iam::<account>:role/<name>), got {role!r}")
    if region and not deploy._REGION.match(region):
        raise deploy.DeployError(f"environment variable {REGION_VARIABLE} must be an AWS region such as eu-west-1, got {region!r}")
    if not (role or region):
        return None
    credentials = {}
    if role:
        # Lambda sets AWS_LAMBDA_FUNCTION_NAME ("Defined runtime environment variables", AWS Lambda Developer Guide).
        session = _SESSION_NAME.sub("-", environ.get("AWS_LAMBDA_FUNCTION_NAME") or "cardamage-champion")[:64]
        try:
            assumed = boto3.client("sts").assume_role(RoleArn=role, RoleSessionName=session)["Credentials"]
        except ClientError as exc:
            error = exc.response.get("Error", {})
            why = f"{error.get('Code')}: {str(error.get('Message')).rstrip('.')}"
            raise deploy.DeployError(
                f"cannot assume {role} ({ROLE_VARIABLE}) to read what production serves: {why}. "
                "The production stage stack's reader role trusts the workflow account, and this function's role may assume it: "
                "deploy (or update) that stack after the workflow stack, so that the role exists"
            ) from None
        credentials = {
            "aws_access_key_id": assumed["AccessKeyId"],
            "aws_secret_access_key": assumed["SecretAccessKey"],
            "aws_session_token": assumed["SessionToken"],
        }
    return boto3.client("sagemaker", region_name=region or None, **credentials)


def handler(event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
    """The Lambda entry point; raises (the step fails) only when SageMaker cannot be read."""
    import boto3

    endpoint, challenger, group = parse_event(event)
    endpoints = endpoint_reader(os.environ)
    answer = find_champion(boto3.client("sagemaker"), endpoint, challenger, group, endpoints=endpoints).outputs()
    print(json.dumps(answer, sort_keys=True))  # the Lambda's log line
    return answer
