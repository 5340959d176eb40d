"""What a team is told: an encrypted SNS topic (email subscriptions from pipeline.yaml) that receives failed
pipeline executions, packages waiting for approval, and the endpoint's alarms (5XX errors, model latency, the
share of refused requests), which also roll an endpoint update back (their names: deploy.rollback_alarm_names).
With drift monitoring (infra/drift.py), also each endpoint's drift alarm and the monitoring jobs that failed.
Only those rules and alarms may publish to the topic and use the key to do it. The endpoints are those of the
stages served from the workflow's account; a stage account's stack has its own topic and alarms, its drift alarm and
its failed monitoring jobs' notice, built by the functions here (infra/stage_stack.py)."""

from __future__ import annotations

import jsii
from aws_cdk import Aws, Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from containers.deploy import deploy, monitor_metrics
from containers.deploy.deploy import VARIANT
from infra.arns import arn
from infra.cross_account import workflow_stages
from infra.drift import drift_alarm_name, monitored, monitoring_jobs_rule
from infra.rules import event_rule
from pipelines.config import Config

EXECUTION_EVENT = "SageMaker Model Building Pipeline Execution Status Change"


class Monitoring(Construct):
    def __init__(self, scope: Construct, id: str, *, config: Config, key: kms.IKey, pipeline_arn: str) -> None:
        super().__init__(scope, id)
        self.topic = notification_topic(self, config, key)

        self.failure_rule = event_rule(
            self,
            "OnExecutionFailed",
            description=f"Tell the team when an execution of {config.pipeline_name} fails",
            source="aws.sagemaker",
            detail_type=EXECUTION_EVENT,
            detail={"pipelineArn": [pipeline_arn], "currentPipelineExecutionStatus": ["Failed"]},
            targets=self._tell(
                "Pipeline execution {execution} of " + config.pipeline_name + " failed; its steps in SageMaker Studio (Pipelines) say why.",
                {"execution": "$.detail.pipelineExecutionArn"},
            ),
        )
        self.approval_rule = event_rule(
            self,
            "OnPackageWaiting",
            description=f"Tell approvers when a package of {config.model_package_group} waits for approval",
            source="aws.sagemaker",
            detail_type=deploy.PACKAGE_EVENT,
            detail={"ModelPackageGroupName": [config.model_package_group], "ModelApprovalStatus": ["PendingManualApproval"]},
            targets=self._tell(
                "Model package {arn} waits for approval in the Model Registry (group " + config.model_package_group + ").",
                {"arn": "$.detail.ModelPackageArn"},
            ),
        )
        # Every release stage's endpoint in this account has its own three (a staging update rolls back as
        # production's does); a stage account's endpoint has them in its stage stack (infra/stage_stack.py).
        local = workflow_stages(config)
        self.endpoint_alarms = {
            endpoint: endpoint_alarms(self, "" if endpoint == config.endpoint_name else stage.capitalize(), config, endpoint)
            for stage, endpoint in local.items()
        }
        rules = [self.failure_rule, self.approval_rule]
        self.drift_alarms: dict[str, cloudwatch.Alarm] = {}
        if monitored(config):
            self.monitoring_failed_rule = monitoring_failures(self, config, self.topic)
            rules.append(self.monitoring_failed_rule)
            if config.monitoring.drift_alarm:
                self.drift_alarms = {
                    endpoint: drift_alarm(self, "" if endpoint == config.endpoint_name else stage.capitalize(), config, endpoint)
                    for stage, endpoint in local.items()
                }
        tell(self.topic, *(alarm for alarms in self.endpoint_alarms.values() for alarm in alarms), *self.drift_alarms.values())
        names = [name for endpoint in self.endpoint_alarms for name in deploy.rollback_alarm_names(endpoint)]
        names += [drift_alarm_name(endpoint) for endpoint in self.drift_alarms]
        allow_publishing(self, self.topic, key, rules=rules, alarm_names=names)

    def _tell(self, text: str, paths: dict[str, str]) -> list[events.IRuleTarget]:
        return telling(self.topic, text, paths)


def telling(topic: sns.ITopic, text: str, paths: dict[str, str]) -> list[events.IRuleTarget]:
    """A rule's one target: `topic`, told `text` with each {name} the event's value at its JSON path in `paths`."""
    message = events.RuleTargetInput.from_text(text.format(**{name: events.EventField.from_path(path) for name, path in paths.items()}))
    return [ToTopic(topic, message=message)]


def monitoring_failures(scope: Construct, config: Config, topic: sns.ITopic) -> events.Rule:
    """A drift monitoring job that failed or was stopped (its run time ran out) is reported to `topic`: otherwise a
    window would go unwatched unseen."""
    return monitoring_jobs_rule(
        scope,
        "OnMonitoringJobFailed",
        config,
        ["Failed", "Stopped"],
        description=f"Tell the team when a drift monitoring job of {config.project.name} fails",
        targets=telling(
            topic,
            "Drift monitoring job {job} ended {status}: that window was not monitored. Its log in CloudWatch Logs "
            "(/aws/sagemaker/ProcessingJobs) says why.",
            {"job": "$.detail.ProcessingJobName", "status": "$.detail.ProcessingJobStatus"},
        ),
    )


def notification_topic(scope: Construct, config: Config, key: kms.IKey) -> sns.Topic:
    """The team's topic, encrypted with `key`, refusing plain HTTP, with pipeline.yaml's emails subscribed (each confirms)."""
    topic = sns.Topic(scope, "Notifications", display_name=f"{config.project.name} notifications", master_key=key, enforce_ssl=True)
    for email in config.infrastructure.notification_emails:
        topic.add_subscription(subscriptions.EmailSubscription(email))
    return topic


def tell(topic: sns.ITopic, *alarms: cloudwatch.Alarm) -> None:
    """Each alarm tells `topic` when it goes off and when it is back to OK."""
    for alarm in alarms:
        alarm.add_alarm_action(actions.SnsAction(topic))
        alarm.add_ok_action(actions.SnsAction(topic))


def allow_publishing(scope: Construct, topic: sns.Topic, key: kms.IKey, *, rules: list[events.Rule], alarm_names: list[str]) -> None:
    """Only the project's rules and alarms (by name, in `scope`'s account and region) may publish to the topic, and
    use the key to do it.

    The rules' source is the rule ARN ("Cross-service confused deputy prevention in Amazon EventBridge":
    for event bus rule targets aws:SourceArn is the rule ARN). The alarms' is the alarm ARN, built from the
    names the alarms are given (an alarm's own ARN attribute would make the key depend on the alarm, which
    depends on the topic and so on the key). CloudWatch publishes only if the topic policy allows it ("Why
    didn't I receive an SNS notification for my CloudWatch alarm trigger?", AWS re:Post Knowledge Center),
    and the topic policy CDK writes replaces SNS's default one: the alarms need a statement of their own."""
    alarms = [arn(scope, "cloudwatch", "alarm", name, colon=True) for name in alarm_names]
    from_alarms = {"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}, "ArnEquals": {"aws:SourceArn": alarms}}
    events_principal, cloudwatch_principal = iam.ServicePrincipal("events.amazonaws.com"), iam.ServicePrincipal("cloudwatch.amazonaws.com")
    if rules:
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="TheProjectsRulesPublish",
                principals=[events_principal],
                actions=["sns:Publish"],
                resources=[topic.topic_arn],
                conditions={"ArnEquals": {"aws:SourceArn": [rule.rule_arn for rule in rules]}},
            )
        )
    if alarms:
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="TheProjectsAlarmsPublish",
                principals=[cloudwatch_principal],
                actions=["sns:Publish"],
                resources=[topic.topic_arn],
                conditions=from_alarms,
            )
        )
    # Publishers to an encrypted topic need kms:GenerateDataKey* and kms:Decrypt, and the key policy should
    # hold aws:SourceAccount and aws:SourceArn, except for EventBridge: "Adding the aws:SourceAccount,
    # aws:SourceArn, and aws:SourceOrgID to a AWS KMS policy is not supported for EventBridge-to-encrypted
    # topics" ("Managing Amazon SNS encryption keys and costs", Enable compatibility between event sources
    # from AWS services and encrypted topics). The topic policy above is what limits EventBridge to our rules.
    publishing = ["kms:Decrypt", "kms:GenerateDataKey*"]
    if rules:
        key.add_to_resource_policy(
            iam.PolicyStatement(sid="RulesPublishToTheEncryptedTopic", principals=[events_principal], actions=publishing, resources=["*"])
        )
    if alarms:
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AlarmsPublishToTheEncryptedTopic",
                principals=[cloudwatch_principal],
                actions=publishing,
                resources=["*"],  # in a key policy, "*" is this key
                conditions=from_alarms,
            )
        )


@jsii.implements(events.IRuleTarget)
class ToTopic:
    """A rule's target that publishes to `topic` and grants nothing: targets.SnsTopic would let EventBridge
    publish for any rule, in any account (a topic statement and a key statement without conditions), where
    Monitoring allows the project's rules only."""

    def __init__(self, topic: sns.ITopic, *, message: events.RuleTargetInput) -> None:
        self.topic, self.message = topic, message

    def bind(self, _rule: events.IRuleRef, _id: str | None = None) -> events.RuleTargetConfig:
        return events.RuleTargetConfig(arn=self.topic.topic_arn, input=self.message)


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


def drift_alarm(scope: Construct, suffix: str, config: Config, endpoint: str) -> cloudwatch.Alarm:
    """Goes off when a window of `endpoint`'s captures drifted from its package's baselines (the metrics
    function's Drift, with the Endpoint dimension alone, whatever package is served). A window is published once
    per schedule: the alarm keeps its state between windows (missing data is ignored), so it stays in alarm until
    a window without drift comes."""
    return cloudwatch.Alarm(
        scope,
        f"Drift{suffix}",
        alarm_name=drift_alarm_name(endpoint),
        alarm_description=f"The photos or answers of {endpoint} drifted from its package's baselines: the latest monitor.json names the statistics",
        metric=cloudwatch.Metric(
            namespace=monitor_metrics.namespace(config.project.name),
            metric_name=monitor_metrics.DRIFT,
            dimensions_map={monitor_metrics.ENDPOINT: endpoint},
            statistic="Maximum",
            period=Duration.minutes(5),
        ),
        threshold=1,
        evaluation_periods=1,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treat_missing_data=cloudwatch.TreatMissingData.IGNORE,
    )
