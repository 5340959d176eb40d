"""FindChampion: the Lambda step, before Evaluate, that finds the package the endpoint serves now (the
champion) through the champion function (containers/deploy/champion.py). Evaluate then scores the challenger
and the champion on the same validation records. It runs after Train, so that the champion is the one served
when the challenger is judged, not when training began. A Lambda step takes no retry policy."""

from __future__ import annotations

from steps.context import BuildContext

NAME = "FindChampion"
# The function's answer (champion.Champion.outputs): `found` is a Boolean, the others are strings. `data_uri` names
# the champion's data (its evaluation.json and image list) for Evaluate, or an object that exists when it cannot:
# then `data_missing` says why ("none" when it names them).
STRING_OUTPUTS = ("reason", "model_data_url", "package_arn", "version", "recorded_map", "data_uri", "data_missing")
OUTPUTS = {"found": "Boolean", **dict.fromkeys(STRING_OUTPUTS, "String")}


def find_champion_step(context: BuildContext, train):
    from sagemaker.core.lambda_helper import Lambda
    from sagemaker.mlops.workflow.lambda_step import LambdaOutput, LambdaOutputTypeEnum, LambdaStep

    return LambdaStep(
        name=NAME,
        lambda_func=Lambda(function_arn=context.placeholder("ChampionFunctionArn"), session=context.session),
        inputs={
            "endpoint_name": context.config.endpoint_name,
            "model_package_group": context.config.model_package_group,
            "challenger_model_url": train.properties.ModelArtifacts.S3ModelArtifacts,
        },
        outputs=[LambdaOutput(output_name=name, output_type=LambdaOutputTypeEnum[kind]) for name, kind in OUTPUTS.items()],
        description="The package the endpoint serves now: the champion the challenger is compared with",
    )


def output(step, name: str):
    """One of the step's outputs, as the steps after it read it at run time."""
    if name not in OUTPUTS:
        raise KeyError(f"FindChampion has no output {name!r} (it has {', '.join(OUTPUTS)})")
    return step.properties.Outputs[name]
