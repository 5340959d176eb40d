"""EventBridge rules in the one shape the stack uses: events of one source and detail type whose detail matches."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aws_cdk import aws_events as events
from constructs import Construct


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
