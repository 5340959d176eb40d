"""The CDK app built in-process once per session: the pipeline definition is rendered once (it imports the
SageMaker SDK, ~15 s), and each configuration's app is synthesized once (a few seconds) and shared.

Every infra test is in one xdist group, so that `make test` (-n 2 --dist loadgroup) renders and synthesizes
on one worker only."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import ROOT

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

CONNECTION = "arn:aws:codestar-connections:eu-west-1:123456789012:connection/0a1b2c3d-4e5f-6789-abcd-ef0123456789"


def pytest_collection_modifyitems(items):
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.xdist_group("infra"))


def with_infrastructure(extra: str, replacements: dict[str, str] | None = None) -> str:
    """pipeline.yaml's text with its infrastructure values replaced (`replacements`: line -> line) and `extra` appended."""
    text = (ROOT / "pipeline.yaml").read_text()
    for old, new in (replacements or {}).items():
        assert old in text, old
        text = text.replace(old, new, 1)
    return text + extra


@dataclass
class Synthesized:
    config: object  # pipelines.config.Config
    stack: object  # the stack build() returned
    outdir: Path

    def template(self, stack=None):
        from aws_cdk.assertions import Template

        return Template.from_stack(stack or self.stack)

    def template_json(self, stack=None) -> dict:
        return self.template(stack).to_json()


@pytest.fixture(scope="session")
def definition() -> str:
    from infra.pipeline import render_for_cdk
    from pipelines.config import load_config

    return render_for_cdk(load_config(ROOT / "pipeline.yaml"))


@pytest.fixture(scope="session")
def synthesize(definition, tmp_path_factory) -> Callable[..., Synthesized]:
    """Build and synthesize the app for a pipeline.yaml text (cached per text), as app.py does."""
    from aws_cdk import App

    from infra.app import build
    from pipelines.config import parse_config

    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    cache: dict[tuple, Synthesized] = {}

    def run(text: str | None = None, *, account: str | None = None, region: str | None = None) -> Synthesized:
        text = text if text is not None else (ROOT / "pipeline.yaml").read_text()
        key = (text, account, region)
        if key not in cache:
            config = parse_config(text, source="pipeline.yaml", base_dir=ROOT)
            outdir = tmp_path_factory.mktemp("cdk.out")
            app = App(outdir=str(outdir), context=context)
            stack = build(app, config, account=account, region=region, definition=definition)
            app.synth()  # raises when cdk-nag finds anything unacknowledged
            cache[key] = Synthesized(config, stack, outdir)
        return cache[key]

    return run


@pytest.fixture(scope="session")
def workflow(synthesize) -> Synthesized:
    """The repository's pipeline.yaml: no CI source, so the app is the workflow stack, environment-agnostic."""
    return synthesize()


@pytest.fixture(scope="session")
def workflow_template(workflow) -> dict:
    return workflow.template_json()


@pytest.fixture(scope="session")
def cicd(synthesize) -> Synthesized:
    text = with_infrastructure(
        "",
        {
            "    repository: null\n": "    repository: acme/car-damage\n",
            "    connection_arn: null\n": f"    connection_arn: {CONNECTION}\n",
            "  notification_emails: []\n": "  notification_emails: [mlops@example.com]\n",
        },
    )
    return synthesize(text, account="123456789012", region="eu-west-1")
