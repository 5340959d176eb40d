"""The app's composition, apart from app.py so that tests build it the same way."""

from __future__ import annotations

from aws_cdk import App, Environment, Stack

from infra import nag
from infra.pipeline import render_for_cdk
from infra.stack import WorkflowStack, stack_name
from infra.stage_stack import stage_stacks
from pipelines.config import Config


def build(app: App, config: Config, *, account: str | None = None, region: str | None = None, definition: str | None = None) -> Stack:
    """Add the app's stack to `app` (the CI/CD stack when a source repository is configured, else the workflow
    stack) with cdk-nag's checks; `definition` defaults to the one rendered from `config`."""
    definition = definition if definition is not None else render_for_cdk(config)
    env = Environment(account=account, region=region) if account or region else None
    nag.check(app)
    problem = config.cross_account_deploy_step_problem()
    if problem:
        raise ValueError(f"pipeline.yaml: {problem}")
    if config.infrastructure.source.repository:
        from infra.cicd import CicdStack

        return CicdStack(app, f"{stack_name(config)}-cicd", config=config, definition=definition, env=env)
    workflow = WorkflowStack(app, stack_name(config), config=config, definition=definition, env=env)
    # Release stages in accounts of their own, deployed with each account's credentials (CI/CD: infra.cicd deploys them).
    workflow.stage_stacks = stage_stacks(app, config, workflow_account=config.infrastructure.account, workflow_region=region)
    return workflow
