"""Evaluate: the Processing step that runs containers/evaluation/evaluate.py on the trained model (the
challenger) and on the package the endpoint serves (the champion, found by FindChampion), on the same
validation records in the same job, with evaluation.json as a PropertyFile for the quality gate. It also
writes the package's drift baselines beside it: PrepareData's photo statistics merged (data-baseline.json),
and the challenger's answers under the endpoint's settings from pipeline.yaml (model-baseline.json)."""

from __future__ import annotations

from containers.monitoring.statistics import STATISTICS_FOLDER
from steps.common import CONTAINER_ROOT, cache, isolated, job_retries, s3_input
from steps.context import BuildContext
from steps.find_champion import output
from steps.parameters import Parameters
from steps.prepare_data import prepared_uri

NAME = "Evaluate"
OUTPUT = "evaluation"
REPORT = "evaluation.json"
PROPERTY_FILE = "EvaluationReport"
MAP_PATH = "metrics.mAP.value"  # where evaluate.py writes COCO mAP@[.5:.95]
# Where it writes the champion's: its version (0: none), its mAP less the challenger's, and its mAP as text.
CHAMPION_VERSION_PATH = "champion.version"
CHAMPION_LEAD_PATH = "champion.map_lead"
CHAMPION_MAP_TEXT_PATH = "champion.map_text"
CHAMPION_TEXT_PATH = "champion.text"
MODEL_SHA256_PATH = "model.sha256"  # the sha256 of the challenger's model archive, as scored


def evaluate_step(context: BuildContext, params: Parameters, prepare, train, champion):
    from sagemaker.core.processing import Processor
    from sagemaker.core.shapes import ProcessingOutput, ProcessingS3Output
    from sagemaker.core.workflow.properties import PropertyFile
    from sagemaker.mlops.workflow.steps import ProcessingStep

    deployment = context.config.deployment
    processor = Processor(
        role=context.role,
        image_uri=context.placeholder("ProcessingImageUri"),
        instance_count=1,
        instance_type=params.evaluation_instance_type,
        entrypoint=["python3", f"{CONTAINER_ROOT}/evaluation/evaluate.py"],
        volume_kms_key=context.kms_key,
        output_kms_key=context.kms_key,
        sagemaker_session=context.session,
        env={"PYTHONUNBUFFERED": "1"},
        network_config=isolated(),
    )
    step_args = processor.run(
        inputs=[
            s3_input("model", train.properties.ModelArtifacts.S3ModelArtifacts, "/opt/ml/processing/input/model"),
            s3_input("validation", prepared_uri(prepare, "validation"), "/opt/ml/processing/input/validation"),
            # The served model, or the challenger's again when nothing is served (an input must name objects that exist).
            s3_input("champion", output(champion, "model_data_url"), "/opt/ml/processing/input/champion"),
            # PrepareData's photo statistics, one document per instance: the data baseline.
            s3_input("statistics", prepared_uri(prepare, STATISTICS_FOLDER), "/opt/ml/processing/input/statistics"),
        ],
        outputs=[
            ProcessingOutput(
                output_name=OUTPUT,
                s3_output=ProcessingS3Output(
                    s3_uri=context.execution_uri("evaluation"), local_path="/opt/ml/processing/evaluation", s3_upload_mode="EndOfJob"
                ),
            )
        ],
        arguments=[
            "--model",
            "/opt/ml/processing/input/model",
            "--validation",
            "/opt/ml/processing/input/validation",
            "--output",
            "/opt/ml/processing/evaluation",
            "--champion",
            "/opt/ml/processing/input/champion",
            "--champion-version",
            output(champion, "version"),
            "--champion-package",
            output(champion, "package_arn"),
            "--statistics",
            "/opt/ml/processing/input/statistics",
            # The endpoint's default options, which the model baseline is measured under.
            "--score-threshold",
            str(deployment.score_threshold),
            "--max-detections",
            str(deployment.max_detections),
            "--no-progress",
        ],
    )
    report = PropertyFile(name=PROPERTY_FILE, output_name=OUTPUT, path=REPORT)
    step = ProcessingStep(
        name=NAME,
        step_args=step_args,
        property_files=[report],
        cache_config=cache(context),
        retry_policies=job_retries(),
        description="COCO mAP of the challenger and the champion on the same validation records",
    )
    return step, report


def evaluation_uri(step, name: str = REPORT):
    from sagemaker.core.workflow.functions import Join

    return Join(on="/", values=[step.properties.ProcessingOutputConfig.Outputs[OUTPUT].S3Output.S3Uri, name])


def measured_map(step, report, path: str = MAP_PATH):
    """A value the Evaluate step wrote (by default the challenger's mAP), read from its evaluation.json at run time."""
    from sagemaker.core.workflow.functions import JsonGet

    return JsonGet(step_name=step.name, property_file=report, json_path=path)
