"""The Model Registry group and the SageMaker Pipeline whose body is the definition rendered by pipelines/.

The definition is rendered offline with `${Name}` placeholders for the account values (steps/context.py)
and handed to CloudFormation as Fn::Sub with a variable per placeholder: the role, buckets, key, image URIs and
the deployment function's ARN are filled in at deploy time, `${AWS::Region}` by CloudFormation itself. The
template therefore holds the very text `pipelines/` renders, which tests/infra compare byte for byte.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from aws_cdk import Fn
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from infra.arns import sagemaker_arn
from pipelines.config import AwsConfig, Config
from steps.context import PLACEHOLDERS, REGION_PLACEHOLDER

_REFERENCE = re.compile(r"\$\{([^}!][^}]*)\}")


def render_for_cdk(config: Config) -> str:
    """The definition with every account value left as a placeholder for the CDK app to fill.

    pipeline.yaml's `aws` values (for using the CLI with resources made elsewhere) are ignored here, except the
    region: the stack creates the role, buckets, key, images and function the definition must name."""
    from pipelines.definition import render_definition

    cleared = config.model_copy(update={"aws": AwsConfig(region=config.aws.region)})
    return render_definition(cleared)


def substitution(definition: str, values: Mapping[str, str]) -> str:
    """Fn::Sub of `definition` with `values`; refuses a `${...}` that is neither a placeholder nor AWS::Region."""
    unknown = sorted(set(_REFERENCE.findall(definition)) - set(PLACEHOLDERS) - {REGION_PLACEHOLDER})
    if unknown:
        raise ValueError(f"the pipeline definition holds ${{...}} references CloudFormation cannot fill: {unknown}")
    missing = sorted(set(PLACEHOLDERS) - set(values))
    if missing:
        raise ValueError(f"no value for the placeholder(s) {missing}")
    # Only the values the definition names (one without a Deploy step names no deployment function).
    return Fn.sub(definition, {name: value for name, value in values.items() if f"${{{name}}}" in definition})


class Pipeline(Construct):
    def __init__(self, scope: Construct, id: str, *, config: Config, definition: str, values: Mapping[str, str], role_arn: str) -> None:
        super().__init__(scope, id)
        self.group = sagemaker.CfnModelPackageGroup(
            self,
            "ModelPackageGroup",
            model_package_group_name=config.model_package_group,
            model_package_group_description=f"{config.project.name}: EfficientDet car damage detectors registered by {config.pipeline_name}",
        )
        self.pipeline = sagemaker.CfnPipeline(
            self,
            "Pipeline",
            pipeline_name=config.pipeline_name,
            pipeline_display_name=config.pipeline_name,
            pipeline_description=f"{config.project.name}: Ground Truth manifests -> EfficientDet -> COCO mAP gate -> Model Registry -> endpoint",
            role_arn=role_arn,
            pipeline_definition={"PipelineDefinitionBody": substitution(definition, values)},
        )
        self.pipeline.node.add_dependency(self.group)  # Register writes into the group
        self.pipeline_arn = sagemaker_arn(self, "pipeline", config.pipeline_name)
        self.group_arn = self.group.attr_model_package_group_arn
