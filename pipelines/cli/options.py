"""The options that two or more `cardamage` commands take, declared once, and `option()`, which declares a
command's own option in one line. (The options every command of a side takes, `--config`, `--local`,
`--region` and the rest, are app.py's: `@command` adds them.)"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from containers.processing.formats import AUTO, FORMATS
from steps.context import PLACEHOLDERS


def option(kind: Any, *names: str, **settings: Any) -> Any:
    """`kind` with its Typer option: `package: option(str | None, "--package", metavar="N", help="...") = None`."""
    return Annotated[kind, typer.Option(*names, **settings)]


# Labels in: run, prepare-data, import-labels.
LabelsOption = option(
    list[Path] | None,
    "--manifest",
    "-m",
    metavar="LABELS",
    help="Labels in any format PrepareData reads (a Ground Truth manifest, a COCO / Label Studio / VIA JSON, VOC or CVAT XML, a YOLO "
    "folder), a file or a folder of them (repeatable). Default: the bundled sample.",
)
_IMAGES_PREFIX = typer.Option("--images-prefix", metavar="S3URI", help="The S3 prefix the labels' image references (source-refs, keys) start with.")
ImagesPrefixOption = Annotated[str | None, _IMAGES_PREFIX]
RequiredImagesPrefixOption = Annotated[str, _IMAGES_PREFIX]
ImagesOption = option(
    Path | None, "--images", metavar="DIR", file_okay=False, help="The local folder that stands for --images-prefix: the images, at their keys."
)
LabelFormatOption = option(
    str | None,
    "--format",
    "--label-format",
    metavar="FORMAT",
    help=f"The labels' format: {', '.join((AUTO, *FORMATS))} (default: data.label_format, auto: told from each input's content).",
)
ClassMapOption = option(
    list[str] | None,
    "--class-map",
    metavar="SOURCE=CLASS",
    help="A class name of the labels onto one of data.classes (repeatable; added to data.class_map; case and spaces do not count).",
)

# The pipeline: definition, upsert, start, run.
ParamOption = option(
    list[str] | None, "--param", "-p", metavar="NAME=VALUE", help="A pipeline parameter for this execution (repeatable), e.g. TrainingSteps=500."
)
ValuesOption = option(
    list[str] | None,
    "--value",
    metavar="NAME=VALUE",
    help=f"An account value for the definition (repeatable); NAME is one of {', '.join(PLACEHOLDERS)}.",
)
RoleOption = option(str | None, "--role-arn", metavar="ARN", help="The IAM role SageMaker uses (default: aws.role_arn in the config).")
TimeoutOption = option(float, "--timeout", metavar="SECONDS", min=0, help="Give up waiting after this long (exit status 124).")
PollOption = option(float, "--poll", metavar="SECONDS", min=0.01, help="Time between two status checks.")

# Deployments: deploy and promote force past the deployment rule, always with a reason.
ForceOption = option(bool, "--force", help="Deploy an older version, or one with a lower mAP, than the endpoint serves (a rollback); needs --reason.")
ReasonOption = option(str | None, "--reason", "-m", metavar="WHY", help="Why --force: recorded in the endpoint's tags.")

# Predictions: predict, serve, batch-predict.
ModelOption = option(str | None, "--model", metavar="PACKAGE", help="Use this package (version or ARN) instead of the deployed one.")
ScoreThresholdOption = option(
    float | None,
    "--score-threshold",
    metavar="SCORE",
    min=0.0,
    max=1.0,
    help="Drop detections below this score (default: the endpoint's).",
)
MaxDetectionsOption = option(int | None, "--max-detections", metavar="N", min=1, help="At most this many detections.")
