"""CheckQuality: the quality gate. mAP >= MapThreshold: register (then deploy when approved); below it:
the Fail step, whose message names the measured mAP and the threshold."""

from __future__ import annotations

from steps.context import BuildContext
from steps.parameters import Parameters

NAME = "CheckQuality"
FAIL = "QualityBelowThreshold"


def check_quality_step(context: BuildContext, params: Parameters, measured_map, if_steps: list):
    from sagemaker.core.workflow.conditions import ConditionGreaterThanOrEqualTo
    from sagemaker.core.workflow.functions import Join
    from sagemaker.mlops.workflow.condition_step import ConditionStep
    from sagemaker.mlops.workflow.fail_step import FailStep

    fail = FailStep(
        name=FAIL,
        error_message=Join(
            on="", values=["The model's mAP ", measured_map, " is below the threshold ", params.map_threshold, " (MapThreshold): not registered"]
        ),
    )
    return ConditionStep(
        name=NAME, conditions=[ConditionGreaterThanOrEqualTo(left=measured_map, right=params.map_threshold)], if_steps=if_steps, else_steps=[fail]
    )
