"""CheckQuality: the quality gate. Register (then deploy when approved) only when
- the challenger's mAP >= MapThreshold, and
- when the endpoint serves a model (the champion), by the ChampionRule parameter:
  - margin: the challenger's mAP >= the champion's mAP - ChampionTolerance, both measured by Evaluate on the same
    validation records (written as the champion's lead over the challenger, which must not exceed the
    tolerance: a definition's conditions cannot subtract);
  - significant: the lower bound of the lead's 95% bootstrap interval (paired, over the validation images) does
    not exceed the tolerance: a challenger is refused only when the interval says the champion is ahead by more.
Otherwise the Fail step, whose message names both mAPs, the threshold, the tolerance, the rule and the intervals."""

from __future__ import annotations

from containers.evaluation.intervals import CONFIDENCE
from pipelines.config import CHAMPION_RULES
from steps.context import BuildContext
from steps.evaluate import (
    CHAMPION_LEAD_LOW_PATH,
    CHAMPION_LEAD_PATH,
    CHAMPION_LEAD_TEXT_PATH,
    CHAMPION_TEXT_PATH,
    CHAMPION_VERSION_PATH,
    MAP_INTERVAL_TEXT_PATH,
    measured_map,
)
from steps.parameters import Parameters

NAME = "CheckQuality"
FAIL = "QualityBelowThreshold"
FLOOR = "CheckGateSettings"
FLOOR_FAIL = "GateLooserThanAllowed"
MARGIN, SIGNIFICANT = CHAMPION_RULES


def gate_floor_step(context: BuildContext, params: Parameters, if_steps: list):
    """The first step: an execution whose MapThreshold or ChampionTolerance is looser than pipeline.yaml
    allows (evaluation.min_map_threshold, evaluation.max_champion_tolerance), or whose ChampionRule is not one
    of evaluation.champion_rules (nor any rule at all), ends here, at a Fail step naming the keys, before any job
    starts. Anyone allowed to start an execution can pass any value through the API,
    so the definition itself holds the floor, not only the CLI. Every other step is in the if-branch: a
    branch's steps run only when the condition holds (the API reference's ConditionStep: "If all of the
    conditions ... evaluate to True, the if_steps are marked as ready for execution")."""
    from sagemaker.core.workflow.conditions import ConditionEquals, ConditionGreaterThanOrEqualTo, ConditionLessThanOrEqualTo, ConditionOr
    from sagemaker.core.workflow.functions import Join
    from sagemaker.mlops.workflow.condition_step import ConditionStep
    from sagemaker.mlops.workflow.fail_step import FailStep

    evaluation = context.config.evaluation
    floor, ceiling, rules = evaluation.map_floor, evaluation.tolerance_ceiling, evaluation.champion_rules
    fail = FailStep(
        name=FLOOR_FAIL,
        error_message=Join(
            on="",
            values=[
                "Refused: the execution's quality gate is looser than pipeline.yaml allows. MapThreshold ",
                params.map_threshold,
                f" must be at least {floor} (evaluation.min_map_threshold) and ChampionTolerance ",
                params.champion_tolerance,
                f" at most {ceiling} (evaluation.max_champion_tolerance), and ChampionRule ",
                params.champion_rule,
                f" one of {', '.join(rules)} (evaluation.champion_rules).",
            ],
        ),
    )
    return ConditionStep(
        name=FLOOR,
        conditions=[
            ConditionGreaterThanOrEqualTo(left=params.map_threshold, right=floor),
            ConditionLessThanOrEqualTo(left=params.champion_tolerance, right=ceiling),
            # Equals in an Or, not an In condition: AWS's published definition schema and the SDK disagree on In's
            # field names (Value/In against QueryValue/Values), and Or of Equals is in both.
            ConditionOr(conditions=[ConditionEquals(left=params.champion_rule, right=rule) for rule in rules]),
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
    interval_within = ConditionLessThanOrEqualTo(left=measured_map(evaluate, report, CHAMPION_LEAD_LOW_PATH), right=params.champion_tolerance)
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
                ", by the rule ",
                params.champion_rule,
                f" (ChampionRule: {MARGIN} judges the champion's lead, {SIGNIFICANT} the lower bound of its {CONFIDENCE:.0%} interval). "
                f"With {CONFIDENCE:.0%} bootstrap intervals over the validation images, the challenger's mAP is ",
                measured_map(evaluate, report, MAP_INTERVAL_TEXT_PATH),
                " and the champion's lead ",
                measured_map(evaluate, report, CHAMPION_LEAD_TEXT_PATH),
                ".",
            ],
        ),
    )
    # A definition's conditions have no And: each rule's condition holds when the other rule was chosen (the
    # first step lets only these two through), so that the list's conjunction is "the chosen rule's condition".
    return ConditionStep(
        name=NAME,
        conditions=[
            ConditionGreaterThanOrEqualTo(left=challenger, right=params.map_threshold),
            ConditionOr(conditions=[no_champion, ConditionEquals(left=params.champion_rule, right=SIGNIFICANT), within_tolerance]),
            ConditionOr(conditions=[no_champion, ConditionEquals(left=params.champion_rule, right=MARGIN), interval_within]),
        ],
        if_steps=if_steps,
        else_steps=[fail],
    )
