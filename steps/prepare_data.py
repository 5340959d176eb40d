"""PrepareData: the Processing step that runs containers/processing/prepare_data.py on the manifests."""

from __future__ import annotations

from pipelines.config import DataConfig
from steps.common import CONTAINER_ROOT, cache, isolated, job_retries, s3_input
from steps.context import BuildContext
from steps.parameters import Parameters

NAME = "PrepareData"
OUTPUT = "prepared"  # the output holding train/, validation/, label_map.pbtxt and the report
# Its prefix, s3://<artifacts>/<pipeline>/prepared-data/<execution>/: the TFRecord copies of the photos come before the
# execution id, so that one lifecycle rule expires them and nothing else (infra/storage.py).
OUTPUT_FOLDER = "prepared-data"
INPUT_ROOT = "/opt/ml/processing/input"


def prepare_data_step(context: BuildContext, params: Parameters):
    """Several instances each read all the labels and take a share of the images, by a hash of each image's key
    (prepare_data.py): all the labellings of an image meet on one instance, where the merge rule picks one, and
    a multi-file export (YOLO, VOC) is never split, as ShardedByS3Key on the labels would do. They agree on the
    split without talking and name their files after their host."""
    from sagemaker.core.processing import Processor
    from sagemaker.core.shapes import ProcessingOutput, ProcessingS3Output
    from sagemaker.core.workflow.execution_variables import ExecutionVariables
    from sagemaker.core.workflow.functions import Join
    from sagemaker.mlops.workflow.steps import ProcessingStep

    data = context.config.data
    processor = Processor(
        role=context.role,
        image_uri=context.placeholder("ProcessingImageUri"),
        instance_count=params.processing_instance_count,
        instance_type=params.processing_instance_type,
        entrypoint=["python3", f"{CONTAINER_ROOT}/processing/prepare_data.py"],
        volume_size_in_gb=50,
        volume_kms_key=context.kms_key,
        output_kms_key=context.kms_key,
        sagemaker_session=context.session,
        env={"PYTHONUNBUFFERED": "1"},
        network_config=isolated(),
    )
    arguments = [
        "--manifest", f"{INPUT_ROOT}/manifests",
        "--labels-uri", params.input_manifest_uri,
        "--images", f"{INPUT_ROOT}/images",
        "--images-prefix", params.images_prefix,
        "--output", "/opt/ml/processing/output",
        "--no-progress",
        *data_arguments(data),
    ]  # fmt: skip
    step_args = processor.run(
        inputs=[
            s3_input("manifests", params.input_manifest_uri, f"{INPUT_ROOT}/manifests"),
            s3_input("images", params.images_prefix, f"{INPUT_ROOT}/images"),
        ],
        outputs=[
            ProcessingOutput(
                output_name=OUTPUT,
                s3_output=ProcessingS3Output(
                    s3_uri=Join(
                        on="/",
                        values=[
                            "s3:/",
                            context.placeholder("ArtifactBucket"),
                            context.config.pipeline_name,
                            OUTPUT_FOLDER,
                            ExecutionVariables.PIPELINE_EXECUTION_ID,
                        ],
                    ),
                    local_path="/opt/ml/processing/output",
                    s3_upload_mode="EndOfJob",
                ),
            )
        ],
        arguments=arguments,
    )
    return ProcessingStep(
        name=NAME,
        step_args=step_args,
        cache_config=cache(context),
        retry_policies=job_retries(),
        description="Labels (any format) + images -> TFRecords",
    )


def data_arguments(data: DataConfig, workers: int | None = None) -> list[str]:
    """The program's arguments that pipeline.yaml's `data` section sets: what the job passes, and what
    `cardamage prepare-data` passes here (with `workers` overriding data.processing.workers)."""
    arguments = [
        "--validation-fraction", str(data.validation_fraction),
        "--seed", str(data.split_seed),
        "--shards", str(data.shards),
        "--max-invalid-fraction", str(data.max_invalid_fraction),
    ]  # fmt: skip
    if data.classes:
        arguments += ["--classes", ",".join(data.classes)]
    if data.label_attribute:
        arguments += ["--label-attribute", data.label_attribute]
    for source, target in data.class_map.items():
        arguments += ["--class-map", f"{source}={target}"]
    if data.label_format != "auto":
        arguments += ["--label-format", data.label_format]
    if data.via_attribute:
        arguments += ["--via-attribute", data.via_attribute]
    if workers or data.processing.workers:
        arguments += ["--workers", str(workers or data.processing.workers)]
    return arguments


def prepared_uri(step, *parts: str):
    """The S3 URI of PrepareData's output (or a path under it), as a property of the step."""
    from sagemaker.core.workflow.functions import Join

    root = step.properties.ProcessingOutputConfig.Outputs[OUTPUT].S3Output.S3Uri
    return Join(on="/", values=[root, *parts]) if parts else root
