"""What a team is told: an encrypted SNS topic (email subscriptions from pipeline.yaml) that receives failed
pipeline executions, packages waiting for approval, and the endpoint's alarms (5XX errors, model latency, the
share of refused requests), which also roll an endpoint update back (their names: deploy.rollback_alarm_names)."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from containers.deploy import deploy
from containers.deploy.deploy import VARIANT
from infra.rules import event_rule
from pipelines.config import Config

EXECUTION_EVENT = "SageMaker Model Building Pipeline Execution Status Change"


class Monitoring(Construct):
    def __init__(self, scope: Construct, id: str, *, config: Config, key: kms.IKey, pipeline_arn: str) -> None:
        super().__init__(scope, id)
        self.topic = sns.Topic(self, "Notifications", display_name=f"{config.project.name} notifications", master_key=key, enforce_ssl=True)
        for email in config.infrastructure.notification_emails:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))

        def notice(text: str, paths: dict[str, str]) -> events.RuleTargetInput:
            return events.RuleTargetInput.from_text(text.format(**{name: events.EventField.from_path(path) for name, path in paths.items()}))

        self.failure_rule = event_rule(
            self,
            "OnExecutionFailed",
            description=f"Tell the team when an execution of {config.pipeline_name} fails",
            source="aws.sagemaker",
            detail_type=EXECUTION_EVENT,
            detail={"pipelineArn": [pipeline_arn], "currentPipelineExecutionStatus": ["Failed"]},
            targets=[
                targets.SnsTopic(
                    self.topic,
                    message=notice(
                        "Pipeline execution {execution} of " + config.pipeline_name + " failed; its steps in SageMaker Studio (Pipelines) say why.",
                        {"execution": "$.detail.pipelineExecutionArn"},
                    ),
                )
            ],
        )
        self.approval_rule = event_rule(
            self,
            "OnPackageWaiting",
            description=f"Tell approvers when a package of {config.model_package_group} waits for approval",
            source="aws.sagemaker",
            detail_type=deploy.PACKAGE_EVENT,
            detail={"ModelPackageGroupName": [config.model_package_group], "ModelApprovalStatus": ["PendingManualApproval"]},
            targets=[
                targets.SnsTopic(
                    self.topic,
                    message=notice(
                        "Model package {arn} waits for approval in the Model Registry (group " + config.model_package_group + ").",
                        {"arn": "$.detail.ModelPackageArn"},
                    ),
                )
            ],
        )
        # Every release stage's endpoint has its own three (a staging update rolls back as production's does).
        self.endpoint_alarms = {
            endpoint: endpoint_alarms(self, "" if endpoint == config.endpoint_name else stage.capitalize(), config, endpoint)
            for stage, endpoint in config.stage_endpoints.items()
        }
        self.errors_alarm, self.latency_alarm, self.client_errors_alarm = self.endpoint_alarms[config.endpoint_name]
        for alarm in (alarm for alarms in self.endpoint_alarms.values() for alarm in alarms):
            alarm.add_alarm_action(actions.SnsAction(self.topic))
            alarm.add_ok_action(actions.SnsAction(self.topic))


def endpoint_alarms(scope: Construct, suffix: str, config: Config, endpoint: str) -> tuple[cloudwatch.Alarm, cloudwatch.Alarm, cloudwatch.Alarm]:
    """The alarms of one endpoint that roll its updates back (named deploy.rollback_alarm_names(endpoint))."""
    dimensions = {"EndpointName": endpoint, "VariantName": VARIANT}
    alarms = config.infrastructure.alarms
    server_errors_name, latency_name, client_errors_name = deploy.rollback_alarm_names(endpoint)
    errors = cloudwatch.Alarm(
        scope,
        f"EndpointErrors{suffix}",
        alarm_name=server_errors_name,  # the deployment function rolls an update back on it (deploy.rollback_alarm_names)
        alarm_description=f"{endpoint} answered {alarms.server_errors} or more requests with a 5XX error in 5 minutes",
        metric=cloudwatch.Metric(
            namespace="AWS/SageMaker", metric_name="Invocation5XXErrors", dimensions_map=dimensions, statistic="Sum", period=Duration.minutes(5)
        ),
        threshold=alarms.server_errors,
        evaluation_periods=1,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,  # no traffic, no errors
    )
    latency = cloudwatch.Alarm(
        scope,
        f"EndpointLatency{suffix}",
        alarm_name=latency_name,
        alarm_description=f"{endpoint}'s model took over {alarms.model_latency_ms} ms on average for 15 minutes",
        metric=cloudwatch.Metric(
            namespace="AWS/SageMaker", metric_name="ModelLatency", dimensions_map=dimensions, statistic="Average", period=Duration.minutes(5)
        ),
        threshold=alarms.model_latency_ms * 1000,  # ModelLatency is in microseconds
        evaluation_periods=3,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
    )

    def metric(name: str) -> cloudwatch.Metric:
        return cloudwatch.Metric(namespace="AWS/SageMaker", metric_name=name, dimensions_map=dimensions, statistic="Sum", period=Duration.minutes(5))

    client_errors = cloudwatch.Alarm(
        scope,
        f"EndpointClientErrors{suffix}",
        alarm_name=client_errors_name,
        alarm_description=(
            f"{endpoint} refused {alarms.client_error_percent}% or more of its requests (4XX) in 5 minutes: "
            "a model that rejects what the last one took"
        ),
        metric=cloudwatch.MathExpression(
            expression="IF(invocations > 0, 100 * refused / invocations, 0)",
            using_metrics={"refused": metric("Invocation4XXErrors"), "invocations": metric("Invocations")},
            label="4XX share (%)",
            period=Duration.minutes(5),
        ),
        threshold=alarms.client_error_percent,
        evaluation_periods=1,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
    )
    return errors, latency, client_errors
