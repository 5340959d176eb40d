"""Register: the model package in the Model Registry group from pipeline.yaml, with its evaluation as
ModelMetrics, its drift baselines as DriftCheckBaselines, the sha256 of its model archive, and pipeline.yaml's
registry.approval_status (no run may choose another)."""

from __future__ import annotations

from containers.deploy.champion import METADATA_MAP, METADATA_VERSION
from containers.deploy.deploy import METADATA_SHA256
from containers.evaluation.model_card import MODEL_CARD, card_status
from containers.evaluation.package_report import PAGE
from containers.inference.inference import serving_environment
from containers.monitoring.statistics import DATA_BASELINE, MODEL_BASELINE
from steps.common import service_retries
from steps.context import BuildContext
from steps.evaluate import CHAMPION_MAP_TEXT_PATH, MODEL_SHA256_PATH, evaluation_uri, measured_map
from steps.find_champion import output
from steps.parameters import Parameters
from steps.prepare_data import prepared_uri

NAME = "Register"
# Metadata keys besides the champion's: the prepared validation records' prefix (`cardamage promote` sends the
# first photos of it to a stage as its smoke test).
METADATA_VALIDATION = "ValidationData"
# And the S3 URI of the package's report page (report.html, which Evaluate writes beside evaluation.json): `cardamage report`.
METADATA_REPORT = "ReportUri"


def register_step(context: BuildContext, params: Parameters, prepare, train, evaluate, report, champion):
    from sagemaker.core.drift_check_baselines import DriftCheckBaselines
    from sagemaker.core.model_metrics import MetricsSource, ModelMetrics
    from sagemaker.core.shapes import ModelPackageModelCard
    from sagemaker.mlops.workflow.model_step import ModelStep
    from sagemaker.serve.model_builder import ModelBuilder

    config = context.config
    builder = ModelBuilder(
        s3_model_data_url=train.properties.ModelArtifacts.S3ModelArtifacts,
        image_uri=context.placeholder("InferenceImageUri"),
        role_arn=context.role,
        sagemaker_session=context.session,
        # The endpoint handler's defaults; a request may set its own.
        env_vars=serving_environment(config.deployment.score_threshold, config.deployment.max_detections),
    )
    step_args = builder.register(
        model_package_group_name=config.model_package_group,
        content_types=list(config.registry.content_types),
        response_types=list(config.registry.response_types),
        inference_instances=list(config.registry.inference_instance_types),
        model_metrics=ModelMetrics(model_statistics=MetricsSource(s3_uri=evaluation_uri(evaluate), content_type="application/json")),
        # The baselines the monitor compares the endpoint's captures with (containers/monitoring/). In CreateModelPackage's
        # DriftCheckBaselines (botocore's sagemaker service model), ModelDataQuality.Statistics is "the drift check model data
        # quality statistics": the photos' input statistics; ModelQuality.Statistics is "the drift check model quality
        # statistics": the statistics of the model's answers. No constraints: the monitor's tests carry their thresholds.
        drift_check_baselines=DriftCheckBaselines(
            model_data_statistics=MetricsSource(s3_uri=evaluation_uri(evaluate, DATA_BASELINE), content_type="application/json"),
            model_statistics=MetricsSource(s3_uri=evaluation_uri(evaluate, MODEL_BASELINE), content_type="application/json"),
        ),
        # pipeline.yaml's, not a parameter: whoever may start an execution may not approve its model.
        approval_status=config.registry.approval_status,
        # The package's model card, shown on its page in Studio: its content is Evaluate's (containers/evaluation/
        # model_card.py), read with JsonGet, as the definition cannot build JSON around run-time values safely; its
        # status goes with the approval status (PendingReview while a person decides), and `cardamage approve` and
        # `reject` keep it so.
        model_card=ModelPackageModelCard(
            model_card_content=measured_map(evaluate, report, MODEL_CARD), model_card_status=card_status(config.registry.approval_status)
        ),
        description=f"EfficientDet ({config.training.model} by default) for {', '.join(config.data.classes or ['the manifests classes'])}",
        # TrainingData: the labels the model was trained on; a dataset snapshot's inputs/ prefix when the trigger
        # (or cardamage start) started the execution, with its snapshot.json beside it. The champion: the package
        # the endpoint served when this one was judged, and its mAP on the same records ("0" and "none": nothing).
        customer_metadata_properties={
            "mAP": measured_map(evaluate, report).to_string(),
            METADATA_VERSION: output(champion, "version"),
            METADATA_MAP: measured_map(evaluate, report, CHAMPION_MAP_TEXT_PATH).to_string(),
            "TrainingSteps": params.training_steps.to_string(),
            "TrainingData": params.input_manifest_uri,
            METADATA_VALIDATION: prepared_uri(prepare, "validation"),
            # The archive Evaluate scored: the deployment function deploys no other (containers/deploy/deploy.py).
            METADATA_SHA256: measured_map(evaluate, report, MODEL_SHA256_PATH),
            # CreateModelPackage's CustomerMetadataValue holds up to 256 characters of letters, digits, spaces and
            # _.:/=+-@ (botocore's sagemaker service model): an S3 URI of the artifact bucket fits.
            METADATA_REPORT: evaluation_uri(evaluate, PAGE),
        },
        domain="COMPUTER_VISION",
        task="OBJECT_DETECTION",
    )
    return ModelStep(name=NAME, step_args=step_args, retry_policies=service_retries())
