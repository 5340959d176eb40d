"""CheckQuality: the quality gate. Register (then deploy when approved) only when
- the challenger's mAP >= MapThreshold, and
- when the endpoint serves a model (the champion), the challenger's mAP >= the champion's mAP - ChampionTolerance,
  both measured by Evaluate on the same validation records (written as the champion's lead over the
  challenger, which must not exceed the tolerance: a definition's conditions cannot subtract).
Otherwise the Fail step, whose message names both mAPs, the threshold and the tolerance."""

from __future__ import annotations

from steps.context import BuildContext
from steps.evaluate import CHAMPION_LEAD_PATH, CHAMPION_TEXT_PATH, CHAMPION_VERSION_PATH, measured_map
from steps.parameters import Parameters

NAME = "CheckQuality"
FAIL = "QualityBelowThreshold"
FLOOR = "CheckGateSettings"
FLOOR_FAIL = "GateLooserThanAllowed"


def gate_floor_step(context: BuildContext, params: Parameters, if_steps: list):
    """The first step: an execution whose MapThreshold or ChampionTolerance is looser than pipeline.yaml
    allows (evaluation.min_map_threshold, evaluation.max_champion_tolerance) ends here, at a Fail step naming
    the keys, before any job starts. Anyone allowed to start an execution can pass any value through the API,
    so the definition itself holds the floor, not only the CLI. Every other step is in the if-branch: a
    branch's steps run only when the condition holds (the API reference's ConditionStep: "If all of the
    conditions ... evaluate to True, the if_steps are marked as ready for execution")."""
    from sagemaker.core.workflow.conditions import ConditionGreaterThanOrEqualTo, ConditionLessThanOrEqualTo
    from sagemaker.core.workflow.functions import Join
    from sagemaker.mlops.workflow.condition_step import ConditionStep
    from sagemaker.mlops.workflow.fail_step import FailStep

    evaluation = context.config.evaluation
    floor, ceiling = evaluation.map_floor, evaluation.tolerance_ceiling
    fail = FailStep(
        name=FLOOR_FAIL,
        error_message=Join(
            on="",
            values=[
                "Refused: the execution's quality gate is looser than pipeline.yaml allows. MapThreshold ",
                params.map_threshold,
                f" must be at least {floor} (evaluation.min_map_threshold) and ChampionTolerance ",
                params.champion_tolerance,
                f" at most {ceiling} (evaluation.max_champion_tolerance).",
            ],
        ),
    )
    return ConditionStep(
        name=FLOOR,
        conditions=[
            ConditionGreaterThanOrEqualTo(left=params.map_threshold, right=floor),
            ConditionLessThanOrEqualTo(left=params.champion_tolerance, right=ceiling),
        ],
        if_steps=if_steps,
        else_steps=[fail],
    )


def check_quality_step(context: BuildContext, params: Parameters, evaluate, report, if_steps: list):
    from sagemaker.core.workflow.conditions import ConditionEquals, ConditionGreaterThanOrEqualTo, ConditionLessThanOrEqualTo, ConditionOr
    from sagemaker.core.workflow.functions import Join
    from sagemaker.mlops.workflow.condition_step import ConditionStep
    from sagemaker.mlops.workflow.fail_step import FailStep

    challenger = measured_map(evaluate, report)
    no_champion = ConditionEquals(left=measured_map(evaluate, report, CHAMPION_VERSION_PATH), right=0)
    within_tolerance = ConditionLessThanOrEqualTo(left=measured_map(evaluate, report, CHAMPION_LEAD_PATH), right=params.champion_tolerance)
    fail = FailStep(
        name=FAIL,
        error_message=Join(
            on="",
            values=[
                "Not registered: the challenger's mAP ",
                challenger,
                " must reach the threshold ",
                params.map_threshold,
                " (MapThreshold) and fall at most ",
                params.champion_tolerance,
                " (ChampionTolerance) below the champion's mAP, ",
                measured_map(evaluate, report, CHAMPION_TEXT_PATH),
            ],
        ),
    )
    return ConditionStep(
        name=NAME,
        conditions=[
            ConditionGreaterThanOrEqualTo(left=challenger, right=params.map_threshold),
            ConditionOr(conditions=[no_champion, within_tolerance]),
        ],
        if_steps=if_steps,
        else_steps=[fail],
    )
