"""What the project's Lambda functions share: code from containers/, a role of their own, a log group
with a retention, and the same runtime."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.images import ROOT

RUNTIME = lambda_.Runtime.PYTHON_3_14
LOG_RETENTION = logs.RetentionDays.ONE_YEAR


def small_function(
    scope: Construct,
    id: str,
    *,
    folder: str,
    handler: str,
    description: str,
    environment: dict[str, str],
    timeout_seconds: int = 60,
    function_name: str | None = None,
    role: iam.Role | None = None,
    role_name: str | None = None,
) -> tuple[lambda_.Function, logs.LogGroup]:
    """A function whose code is containers/<folder>/ (standard library and boto3 only), with its own role that
    may write only its own log group. `function_name` and `role_name`: names another account's policies or
    programs rely on (CloudFormation picks one otherwise); `role`: a role made beforehand, trusting Lambda."""
    log_group = logs.LogGroup(scope, f"{id}Logs", retention=LOG_RETENTION, removal_policy=RemovalPolicy.DESTROY)
    if role is None:
        role = iam.Role(scope, f"{id}Role", role_name=role_name, assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"), description=description)
    function = lambda_.Function(
        scope,
        id,
        runtime=RUNTIME,
        handler=handler,
        code=lambda_.Code.from_asset(str(ROOT / "containers" / folder), exclude=["__pycache__", "*.pyc"]),
        function_name=function_name,
        description=description,
        environment=environment,
        timeout=Duration.seconds(timeout_seconds),
        memory_size=256,
        role=role,
        log_group=log_group,
        tracing=lambda_.Tracing.DISABLED,
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid="WriteOwnLogs",
            actions=["logs:CreateLogStream", "logs:PutLogEvents"],
            resources=[log_group.log_group_arn],  # CloudFormation's log group Arn ends in ":*": its streams
        )
    )
    return function, log_group
