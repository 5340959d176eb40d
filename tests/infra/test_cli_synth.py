"""`make synth`'s command end to end: the CDK CLI pinned in package-lock.json synthesizes app.py offline, with
no AWS credentials and no Docker engine (the image assets are staged, not built)."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from tests.support import ROOT

CDK = ROOT / "node_modules" / ".bin" / "cdk"


def test_the_cli_is_the_one_package_lock_pins():
    lock = json.loads((ROOT / "package-lock.json").read_text())
    pinned = lock["packages"]["node_modules/aws-cdk"]["version"]
    assert re.fullmatch(r"2\.\d+\.\d+", pinned), "the CLI must be major 2 (3.0.0 on npm was published by mistake)"
    assert json.loads((ROOT / "package.json").read_text())["devDependencies"]["aws-cdk"] == pinned  # exact, no range
    if CDK.exists():
        installed = json.loads((ROOT / "node_modules" / "aws-cdk" / "package.json").read_text())["version"]
        assert installed == pinned, "node_modules is stale: run make setup"


def test_make_synth_names_the_pinned_cli_and_no_credentials():
    dry = subprocess.run(["make", "-n", "synth"], cwd=ROOT, capture_output=True, text=True, check=True, env={**os.environ, "MAKEFLAGS": ""}).stdout
    assert "node_modules/.bin/cdk synth" in dry and "npx" not in dry
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        assert f"-u {variable}" in dry


@pytest.mark.slow
def test_the_pinned_cli_synthesizes_the_app_offline_without_docker(tmp_path):
    if not CDK.exists():
        pytest.skip("node_modules is not installed (make setup installs the pinned CDK CLI)")
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("AWS_") and name not in {"CDK_DEFAULT_ACCOUNT", "CDK_DEFAULT_REGION"}
    }
    environment.update(
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
        CDK_DISABLE_CLI_TELEMETRY="true",
        JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20",
        DOCKER_HOST="unix:///nonexistent/docker.sock",  # any use of Docker would fail
    )
    out = tmp_path / "cdk.out"
    result = subprocess.run(
        [str(CDK), "synth", "--quiet", "--output", str(out)], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert "car-damage" in manifest["artifacts"]
    assets = json.loads((out / "car-damage.assets.json").read_text())
    images = assets["dockerImages"].values()
    assert sorted(image["source"]["dockerFile"] for image in images) == ["containers/processing/Dockerfile", "containers/training/Dockerfile"]
    for image in images:  # the staged build context is what .dockerignore lets through
        staged = out / image["source"]["directory"]
        assert sorted(path.name for path in staged.iterdir()) == [".dockerignore", "containers", "requirements"]
    assert not (tmp_path / "none").exists()
