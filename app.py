#!/usr/bin/env python3
"""The AWS CDK app: the car damage detection workflow from pipeline.yaml (`make synth`, `cdk deploy`).

Context: `-c config=PATH` (default pipeline.yaml), `-c profile=NAME` (a profile of that file). With
infrastructure.source.repository set, the app is the CI/CD pipeline stack (which deploys the workflow stage);
without, the workflow stack itself. infra/ holds the constructs.
"""

from __future__ import annotations

import os

from aws_cdk import App

from infra.app import build
from pipelines.config import load_config

app = App()
config = load_config(app.node.try_get_context("config") or "pipeline.yaml", profile=app.node.try_get_context("profile"))
build(
    app,
    config,
    account=config.infrastructure.account or os.environ.get("CDK_DEFAULT_ACCOUNT"),
    region=config.aws.region or os.environ.get("CDK_DEFAULT_REGION"),
)
app.synth()
