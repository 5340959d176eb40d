"""Deploy: when the run registered its package as Approved (a dev pipeline), deploy it at once through the
deployment function, the same code that a person's approval in the Model Registry reaches through the
EventBridge rule (containers/deploy/deploy.py), to the same endpoint: the first release stage's when
deployment.stages is set. A Lambda step takes no retry policy."""

from __future__ import annotations

from steps.context import BuildContext
from steps.parameters import Parameters

NAME = "Deploy"
CHECK = "CheckApproval"


def deploy_steps(context: BuildContext, params: Parameters, register):
    """The Condition step that runs the Lambda step only for an Approved package."""
    from sagemaker.core.lambda_helper import Lambda
    from sagemaker.core.workflow.conditions import ConditionEquals
    from sagemaker.mlops.workflow.condition_step import ConditionStep
    from sagemaker.mlops.workflow.lambda_step import LambdaOutput, LambdaOutputTypeEnum, LambdaStep

    deploy = LambdaStep(
        name=NAME,
        lambda_func=Lambda(function_arn=context.placeholder("DeployFunctionArn"), session=context.session),
        inputs={"model_package_arn": register.properties.ModelPackageArn, "endpoint_name": context.config.approval_endpoint},
        outputs=[
            LambdaOutput(output_name="status", output_type=LambdaOutputTypeEnum.String),
            LambdaOutput(output_name="endpoint_name", output_type=LambdaOutputTypeEnum.String),
        ],
        description="Create or update the endpoint for the approved package",
    )
    return ConditionStep(
        name=CHECK, conditions=[ConditionEquals(left=params.model_approval_status, right="Approved")], if_steps=[deploy], else_steps=[]
    )
