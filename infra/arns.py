"""ARNs in this account and region as CloudFormation references (never literals), so that the same policy,
and the same cdk-nag finding ids, come out whether or not the stack is bound to an environment."""

from __future__ import annotations

from aws_cdk import ArnFormat, Aws, Stack
from constructs import Construct


def arn(scope: Construct, service: str, resource: str, name: str, *, colon: bool = False) -> str:
    return Stack.of(scope).format_arn(
        service=service,
        resource=resource,
        resource_name=name,
        region=Aws.REGION,
        account=Aws.ACCOUNT_ID,
        arn_format=ArnFormat.COLON_RESOURCE_NAME if colon else ArnFormat.SLASH_RESOURCE_NAME,
    )


def sagemaker_arn(scope: Construct, resource: str, name: str) -> str:
    """SageMaker ARNs name their resources in lower case."""
    return arn(scope, "sagemaker", resource, name.lower())
