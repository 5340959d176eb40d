"""The container images the pipeline runs.

- processing/evaluation and training: Docker image assets built from containers/ (their Dockerfiles install
  exactly the lock's packages). CDK only stages the build context (containers/ and requirements/, per
  .dockerignore) at synth; the images are built and pushed to the bootstrap ECR repository at deploy time, so
  synth needs no Docker engine. A release stage's own account that monitors drift declares the processing image
  too (infra/stage_stack.py, processing_image): CDK publishes a stack's assets into the bootstrap repository of that
  stack's own account and region, so the stage's job pulls from its own account, not across.
- inference: SageMaker's TensorFlow Serving image (tensorflow-inference), which runs the model's
  code/inference.py handlers. It is AWS's, published per region from an account that differs by region (CDK's
  region facts map it), so it is referenced, not built; aws.inference_image_uri in pipeline.yaml replaces it.
"""

from __future__ import annotations

import re
from pathlib import Path

from aws_cdk import Aws, Stack
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk.region_info import FactName
from constructs import Construct

from containers.inference import image as serving
from pipelines.config import Config

ROOT = Path(__file__).resolve().parents[1]  # the build context: the repository (see .dockerignore)
_GPU = re.compile(r"^ml\.(g|p)\d")  # GPU instance families (ml.g4dn, ml.g5, ml.p3, ...)


def serving_tag(config: Config) -> str:
    """The TensorFlow Serving image tag for the endpoint's instance type: the GPU build on ml.g*/ml.p*."""
    return serving.tag(config.infrastructure.serving_version, gpu=bool(_GPU.match(config.deployment.instance_type)))


def serving_image(scope: Construct, config: Config) -> tuple[str, str | None]:
    """The serving image of the region `scope`'s stack is deployed in, and the ARN of its repository to pull from:
    aws.inference_image_uri (no repository: whoever names it grants the pull), else AWS's TensorFlow Serving image
    of that region, published from an account that CDK's region facts name."""
    if config.aws.inference_image_uri:
        return config.aws.inference_image_uri, None
    account = Stack.of(scope).regional_fact(FactName.DLC_REPOSITORY_ACCOUNT)
    uri = f"{account}.dkr.ecr.{Aws.REGION}.{Aws.URL_SUFFIX}/{serving.REPOSITORY}:{serving_tag(config)}"
    return uri, f"arn:{Aws.PARTITION}:ecr:{Aws.REGION}:{account}:repository/{serving.REPOSITORY}"


def pull_serving_image(repository_arn: str) -> iam.PolicyStatement:
    """What a role that runs the serving image needs of its repository (with ecr:GetAuthorizationToken, which has no resource)."""
    return iam.PolicyStatement(
        sid="PullServingImage",
        actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
        resources=[repository_arn],
    )


def image_asset(scope: Construct, config: Config, name: str, dockerfile: str) -> ecr_assets.DockerImageAsset:
    """One of the project's images, built from the repository with `dockerfile` for SageMaker's instances."""
    return ecr_assets.DockerImageAsset(
        scope,
        name,
        directory=str(ROOT),
        file=dockerfile,
        platform=ecr_assets.Platform.LINUX_AMD64,  # SageMaker's instances
        display_name=f"{config.project.name} {name.lower()} image",
    )


def processing_image(scope: Construct, config: Config) -> ecr_assets.DockerImageAsset:
    """The processing image (PrepareData, Evaluate, the drift monitor), in `scope`'s stack. The same asset (same
    source, same hash) in each stack that declares it, each publishing it into its own environment: "each environment
    that you want to use with the AWS CDK must first be bootstrapped", its bootstrap resources including the ECR
    repository "used primarily to store Docker images" ("AWS CDK bootstrapping", AWS CDK v2 Developer Guide); the
    stack's synthesizer names that repository by its own account and region (cdk-<qualifier>-container-assets-<account>-
    <region>, the DefaultStackSynthesizer's default)."""
    return image_asset(scope, config, "Processing", "containers/processing/Dockerfile")


class Images(Construct):
    def __init__(self, scope: Construct, id: str, *, config: Config) -> None:
        super().__init__(scope, id)
        self.processing = processing_image(self, config)
        self.training = image_asset(self, config, "Training", "containers/training/Dockerfile")
        self.inference_uri, self._serving_repository_arn = serving_image(self, config)

    def grant_pull(self, role: iam.IGrantable) -> None:
        """Pull the project's images and the serving image (the endpoint's model runs as `role`)."""
        self.processing.repository.grant_pull(role)
        self.training.repository.grant_pull(role)
        if self._serving_repository_arn:
            role.grant_principal.add_to_principal_policy(pull_serving_image(self._serving_repository_arn))
