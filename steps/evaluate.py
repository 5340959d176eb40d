"""Evaluate: the Processing step that runs containers/evaluation/evaluate.py on the trained model (the
challenger) and on the package the endpoint serves (the champion, found by FindChampion), on the same
validation records in the same job, with evaluation.json as a PropertyFile for the quality gate. It also
writes the package's drift baselines beside it: PrepareData's photo statistics merged (data-baseline.json),
and the challenger's answers under the endpoint's settings from pipeline.yaml (model-baseline.json). It keeps the
list of the photos the challenger learnt from (evaluation-images.json) and compares it with the champion's."""

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
# And the bootstrap intervals' (containers/evaluation/intervals.py): the lower bound of the lead's interval (what
# ChampionRule significant compares), the lead and the challenger's mAP with their intervals as text.
CHAMPION_LEAD_LOW_PATH = "champion.lead_low"
CHAMPION_LEAD_TEXT_PATH = "champion.lead_text"
MAP_INTERVAL_TEXT_PATH = "map_interval_text"
MODEL_SHA256_PATH = "model.sha256"  # the sha256 of the challenger's model archive, as scored
PREPARED_REPORT = "report"  # the start of the names of PrepareData's reports (report.json, report-<host>.json)
PREPARED_IMAGES = "images"  # and of its lists of the photos it wrote (images.jsonl, images-<host>.jsonl)


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
            # PrepareData's report.json (report-<host>.json per instance) for report.html's data section: the prefix
            # <prepared>/report, so that none of the training records comes along (report*.png do, unread).
            s3_input("prepared", prepared_uri(prepare, PREPARED_REPORT), "/opt/ml/processing/input/prepared"),
            # PrepareData's lists of the photos it wrote (the prefix <prepared>/images), which Evaluate keeps beside
            # evaluation.json: the prepared data expires, the execution's outputs do not.
            s3_input("images", prepared_uri(prepare, PREPARED_IMAGES), "/opt/ml/processing/input/images"),
            # The champion's evaluation.json and kept list of photos (a prefix that holds at least evaluation.json), or,
            # when FindChampion cannot name them, a model archive that exists (its data_missing says why): an input
            # whose prefix holds no object may fail the job (unverified for Processing; CreateTrainingJob refuses one with
            # "No S3 objects found under S3 URL", an error quoted in aws/amazon-sagemaker-examples issue 2267, not documented).
            s3_input("champion-data", output(champion, "data_uri"), "/opt/ml/processing/input/champion-data"),
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
            "--prepared",
            "/opt/ml/processing/input/prepared",
            "--images",
            "/opt/ml/processing/input/images",
            "--champion-data",
            "/opt/ml/processing/input/champion-data",
            "--champion-data-missing",
            output(champion, "data_missing"),
            # The endpoint's default options, which the model baseline is measured under.
            "--score-threshold",
            str(deployment.score_threshold),
            "--max-detections",
            str(deployment.max_detections),
            # The intervals: pipeline.yaml's, so that a rerun of the same inputs draws the same resamples.
            "--bootstrap-resamples",
            str(context.config.evaluation.bootstrap_resamples),
            "--bootstrap-seed",
            str(context.config.evaluation.bootstrap_seed),
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
