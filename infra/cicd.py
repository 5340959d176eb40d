"""CI/CD on git push: a self-mutating CDK Pipelines CodePipeline.

    source (CodeStar connection or CodeCommit, pipeline.yaml infrastructure.source)
      -> Synth: `make test` (linters and every test, from the repository's pinned locks), then `make synth`
      -> UpdatePipeline (self-mutation: changes to this file apply themselves)
      -> Assets: the Lambda code and the two Docker images, built and pushed
      -> Deploy: the workflow stack, and with it the updated SageMaker Pipeline definition

CodePipeline, CodeBuild and the deployment run as roles of their own (CDK Pipelines makes them; deployment
goes through the bootstrap's deploy role), none shared with the workflow.
"""

from __future__ import annotations

from aws_cdk import Environment, Stack
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_codecommit as codecommit
from aws_cdk import pipelines as cdk_pipelines
from constructs import Construct

from infra import nag
from infra.stack import WorkflowStage
from pipelines.config import Config


def source_of(scope: Construct, config: Config) -> cdk_pipelines.CodePipelineSource:
    source = config.infrastructure.source
    assert source.repository
    if source.connection_arn:
        return cdk_pipelines.CodePipelineSource.connection(source.repository, source.branch, connection_arn=source.connection_arn)
    repository = codecommit.Repository.from_repository_name(scope, "Repository", source.repository)
    return cdk_pipelines.CodePipelineSource.code_commit(repository, source.branch)


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
        self.pipeline = cdk_pipelines.CodePipeline(
            self,
            "Pipeline",
            pipeline_name=f"{config.project.name}-cicd",
            synth=synth,
            self_mutation=True,
            cross_account_keys=False,
            docker_enabled_for_self_mutation=False,
            publish_assets_in_parallel=False,  # one CodeBuild project for every asset, not one each
        )
        self.stage = WorkflowStage(self, "Deploy", config=config, definition=definition, env=env)
        self.pipeline.add_stage(self.stage)
        self.pipeline.build_pipeline()
        nag.acknowledge_cicd(self.pipeline)
