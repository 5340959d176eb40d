"""Deploy: when pipeline.yaml registers packages Approved (`registry.approval_status: Approved`, a team's
deliberate choice for a development pipeline), deploy the new package at once through the deployment function,
the same code that a person's approval in the Model Registry reaches through the EventBridge rule
(containers/deploy/deploy.py), to the same endpoint: the first release stage's when deployment.stages is set.
Otherwise the definition has no Deploy step: only a person's approval deploys. A Lambda step takes no retry
policy."""

from __future__ import annotations

from steps.context import BuildContext

NAME = "Deploy"


def deploy_steps(context: BuildContext, register) -> list:
    """The Lambda step that deploys the registered package, when the configuration approves at registration."""
    from sagemaker.core.lambda_helper import Lambda
    from sagemaker.mlops.workflow.lambda_step import LambdaOutput, LambdaOutputTypeEnum, LambdaStep

    if context.config.registry.approval_status != "Approved":
        return []
    return [
        LambdaStep(
            name=NAME,
            lambda_func=Lambda(function_arn=context.placeholder("DeployFunctionArn"), session=context.session),
            inputs={"model_package_arn": register.properties.ModelPackageArn, "endpoint_name": context.config.approval_endpoint},
            outputs=[
                LambdaOutput(output_name="status", output_type=LambdaOutputTypeEnum.String),
                LambdaOutput(output_name="endpoint_name", output_type=LambdaOutputTypeEnum.String),
            ],
            description="Create or update the endpoint for the package, registered Approved",
        )
    ]
