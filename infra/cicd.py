"""CI/CD on git push: a self-mutating CDK Pipelines CodePipeline.

    source (CodeStar connection or CodeCommit, pipeline.yaml infrastructure.source)
      -> Synth: `make test` (linters and every test, from the repository's pinned locks), then `make synth`
      -> UpdatePipeline (self-mutation: changes to this file apply themselves)
      -> Assets: the Lambda code and the two Docker images, built and pushed
      -> Deploy: the workflow stack, and with it the updated SageMaker Pipeline definition
      -> Deploy-<stage>: with deployment.accounts, each stage account's stack (infra.stage_stack), in stage order

CodePipeline, CodeBuild and the deployment run as roles of their own (CDK Pipelines makes them; deployment
goes through the bootstrap's deploy role of the target account), none shared with the workflow.
"""

from __future__ import annotations

from aws_cdk import Environment, Stack, Stage
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_codecommit as codecommit
from aws_cdk import pipelines as cdk_pipelines
from constructs import Construct

from infra import nag
from infra.stack import WorkflowStage
from infra.stage_stack import StageStack, stage_stack_args
from pipelines.config import Config


def source_of(scope: Construct, config: Config) -> cdk_pipelines.CodePipelineSource:
    source = config.infrastructure.source
    assert source.repository
    if source.connection_arn:
        return cdk_pipelines.CodePipelineSource.connection(source.repository, source.branch, connection_arn=source.connection_arn)
    repository = codecommit.Repository.from_repository_name(scope, "Repository", source.repository)
    return cdk_pipelines.CodePipelineSource.code_commit(repository, source.branch)


class ReleaseStage(Stage):
    """What CI/CD deploys for a release stage in an account of its own: that stage's stack (infra.stage_stack), in
    its account and region, under the name `cdk deploy` gives it without CI/CD (<stack>-<stage>)."""

    def __init__(self, scope: Construct, id: str, *, config: Config, stage: str, workflow_region: str | None) -> None:
        args = stage_stack_args(config, stage, workflow_account=config.infrastructure.account, workflow_region=workflow_region)
        super().__init__(scope, id, env=args.pop("env"))
        self.stack = StageStack(self, "Stage", stack_name=config.stage_stack_name(stage), **args)


class CicdStack(Stack):
    def __init__(self, scope: Construct, id: str, *, config: Config, definition: str, env: Environment | None = None) -> None:
        super().__init__(scope, id, env=env, description=f"{config.project.name}: CI/CD, the pipeline that tests and deploys the workflow")
        synth = cdk_pipelines.CodeBuildStep(
            "Synth",
            input=source_of(self, config),
            install_commands=["python3.11 --version", "node --version"],
            commands=["make test", "make synth"],
            primary_output_directory="cdk.out",
            build_environment=codebuild.BuildEnvironment(
                build_image=codebuild.LinuxBuildImage.STANDARD_7_0,  # Ubuntu 22.04: Python 3.11, Node 20
                compute_type=codebuild.ComputeType.LARGE,  # TensorFlow's tests need the memory
            ),
            partial_build_spec=codebuild.BuildSpec.from_object({"phases": {"install": {"runtime-versions": {"python": "3.11", "nodejs": "20"}}}}),
        )
        cross_account = bool(config.stage_accounts)
        self.pipeline = cdk_pipelines.CodePipeline(
            self,
            "Pipeline",
            pipeline_name=f"{config.project.name}-cicd",
            synth=synth,
            self_mutation=True,
            # Deploying to another account needs the artifact bucket encrypted with a key that account may use (CDK
            # Pipelines' README, aws-cdk-lib's pipelines module: "Deploying to other accounts / encrypting the Artifact
            # Bucket"); the key costs a fee a month, so only when there are stage accounts to deploy to.
            cross_account_keys=cross_account,
            enable_key_rotation=cross_account,
            docker_enabled_for_self_mutation=False,
            publish_assets_in_parallel=False,  # one CodeBuild project for every asset, not one each
        )
        self.stage = WorkflowStage(self, "Deploy", config=config, definition=definition, env=env)
        self.pipeline.add_stage(self.stage)
        # After the workflow, whose grants the stage stacks' roles rely on; then in stage order, production last.
        workflow_region = env.region if env else None
        self.release_stages = [
            ReleaseStage(self, f"Deploy-{stage}", config=config, stage=stage, workflow_region=workflow_region) for stage in config.stage_accounts
        ]
        for release in self.release_stages:
            self.pipeline.add_stage(release)
        self.pipeline.build_pipeline()
        nag.acknowledge_cicd(self.pipeline)
        if cross_account:
            acknowledge_cross_account(self.pipeline)


def acknowledge_cross_account(pipeline: cdk_pipelines.CodePipeline) -> None:
    """What cross_account_keys adds to CDK Pipelines' findings (nag.acknowledge_cicd has the rest): its roles' use of
    the artifact key, and for a stage in another region the replication bucket CodePipeline copies artifacts to there,
    which CDK Pipelines puts in a support stack of the pipeline's account in that region."""
    key = "CDK Pipelines' grants on the artifact keys it makes for deploying to other accounts (cross_account_keys), on those keys only"
    nag.acknowledge(pipeline, ("AwsSolutions-IAM5[Action::kms:GenerateDataKey*]", key), ("AwsSolutions-IAM5[Action::kms:ReEncrypt*]", key))
    for region, support in pipeline.pipeline.cross_region_support.items():
        bucket = Stack.of(pipeline).resolve(support.replication_bucket.bucket_name)
        nag.acknowledge(
            pipeline,
            (
                f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::{bucket}/*]",
                f"CodePipeline copies the pipeline's artifacts to its replication bucket in {region}, for the stages deployed there",
            ),
        )
        nag.acknowledge(
            support.stack,
            (
                "AwsSolutions-S1",
                f"CodePipeline's replication bucket in {region} holds transient build artifacts written only by the pipeline's roles",
            ),
        )
