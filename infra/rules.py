"""EventBridge rules in the one shape the stack uses: events of one source and detail type whose detail matches."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aws_cdk import aws_events as events
from constructs import Construct

from containers.deploy import deploy
from pipelines.config import Config


def event_rule(
    scope: Construct, id: str, *, description: str, source: str, detail_type: str, detail: Mapping[str, Any], targets: Sequence[events.IRuleTarget]
) -> events.Rule:
    return events.Rule(
        scope,
        id,
        description=description,
        event_pattern=events.EventPattern(source=[source], detail_type=[detail_type], detail=dict(detail)),
        targets=list(targets),
    )


def approvals(config: Config) -> dict[str, Any]:
    """A person's approval of our group's packages (event_rule's source, detail type and detail): what deploys, the
    deployment rule's in the workflow account (infra.deployment) and the forwarding rule's to stage accounts
    (infra.cross_account)."""
    detail = {"ModelPackageGroupName": [config.model_package_group], "ModelApprovalStatus": ["Approved"]}
    return {"source": "aws.sagemaker", "detail_type": deploy.PACKAGE_EVENT, "detail": detail}
