"""Evaluate: the Processing step that runs containers/evaluation/evaluate.py on the trained model, with
evaluation.json as a PropertyFile for the quality gate."""

from __future__ import annotations

from steps.common import CONTAINER_ROOT, cache, job_retries, s3_input
from steps.context import BuildContext
from steps.parameters import Parameters
from steps.prepare_data import prepared_uri

NAME = "Evaluate"
OUTPUT = "evaluation"
REPORT = "evaluation.json"
PROPERTY_FILE = "EvaluationReport"
MAP_PATH = "metrics.mAP.value"  # where evaluate.py writes COCO mAP@[.5:.95]


def evaluate_step(context: BuildContext, params: Parameters, prepare, train):
    from sagemaker.core.processing import Processor
    from sagemaker.core.shapes import ProcessingOutput, ProcessingS3Output
    from sagemaker.core.workflow.properties import PropertyFile
    from sagemaker.mlops.workflow.steps import ProcessingStep

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
    )
    step_args = processor.run(
        inputs=[
            s3_input("model", train.properties.ModelArtifacts.S3ModelArtifacts, "/opt/ml/processing/input/model"),
            s3_input("validation", prepared_uri(prepare, "validation"), "/opt/ml/processing/input/validation"),
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
        description="COCO mAP on the validation split",
    )
    return step, report


def evaluation_uri(step, name: str = REPORT):
    from sagemaker.core.workflow.functions import Join

    return Join(on="/", values=[step.properties.ProcessingOutputConfig.Outputs[OUTPUT].S3Output.S3Uri, name])


def measured_map(step, report):
    """The mAP the Evaluate step measured, read from its evaluation.json at run time."""
    from sagemaker.core.workflow.functions import JsonGet

    return JsonGet(step_name=step.name, property_file=report, json_path=MAP_PATH)
