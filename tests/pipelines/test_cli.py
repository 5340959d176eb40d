"""The `cardamage` command line."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from containers.processing.prepare_data import parse_args
from pipelines.cli import app, prepare_data_arguments
from pipelines.config import load_config
from tests.support import ROOT, SAMPLE_PREFIX

runner = CliRunner()
COMMANDS = sorted(command.name for command in typer.main.get_command(app).commands.values())


def test_the_top_level_help_lists_every_command():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert all(name in result.output for name in COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_and_takes_a_config_path(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "--config" in result.output


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("cardamage ")


def test_config_prints_the_resolved_configuration(monkeypatch):
    monkeypatch.chdir(ROOT)
    result = runner.invoke(app, ["config", "--json"])
    assert result.exit_code == 0
    assert json.loads(result.output)["data"]["classes"] == ["dent", "scratch"]


def test_an_invalid_config_exits_2_naming_the_key(tmp_path):
    (tmp_path / "bad.yaml").write_text("data:\n  shards: many\n")
    result = runner.invoke(app, ["config", "--config", str(tmp_path / "bad.yaml")])
    assert result.exit_code == 2
    assert "bad.yaml:2: data.shards" in result.output


def test_the_program_accepts_the_arguments_the_configuration_gives(tmp_path):
    config = load_config(ROOT / "pipeline.yaml")
    manifests = [config.path(m) for m in config.data.sample.manifests]
    arguments = prepare_data_arguments(config, manifests, config.path(config.data.sample.images), SAMPLE_PREFIX, tmp_path, workers=3)
    options = parse_args(arguments)
    assert options.manifests == manifests
    assert options.classes == config.data.classes
    assert (options.validation_fraction, options.seed, options.shards, options.max_invalid_fraction, options.workers) == (
        config.data.validation_fraction,
        config.data.split_seed,
        config.data.shards,
        config.data.max_invalid_fraction,
        3,
    )


def test_a_manifest_needs_its_images_folder_and_prefix(tmp_path):
    result = runner.invoke(app, ["prepare-data", "--config", str(ROOT / "pipeline.yaml"), "--manifest", str(tmp_path / "m.manifest")])
    assert result.exit_code == 2
    assert "--manifest needs --images DIR and --images-prefix" in result.output


def test_prepare_data_on_the_bundled_sample_prints_where_the_outputs_are(tmp_path):
    output = tmp_path / "prepared"
    result = runner.invoke(app, ["prepare-data", "--config", str(ROOT / "pipeline.yaml"), "--output", str(output)])
    assert result.exit_code == 0, result.output
    report = json.loads((output / "report.json").read_text())
    assert report["lines_read"] == 49 and report["images_written"] == 48 and len(report["merged"]) == 1
    for name in ("train", "validation", "label_map.pbtxt", "report.json", "report.png", "samples.png"):
        assert str(output / name) in result.output
