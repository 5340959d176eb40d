"""The `cardamage` command line: its help is what the README says and shows real metavariables, the shared
options choose one backend and refuse an option of the other side, and the offline commands work."""

from __future__ import annotations

import json
import re
import tomllib

import pytest
from typer.testing import CliRunner

from containers.processing.prepare_data import parse_args
from pipelines.cli import app
from pipelines.config import load_config
from steps.prepare_data import data_arguments
from tests.support import ROOT

runner = CliRunner()
CONFIG = str(ROOT / "pipeline.yaml")
# What a user reads in `--help` when Click or Typer fall back to a type's name instead of a metavariable.
TYPE_NAMES = re.compile(
    r"<(?:bool|str|int|float|file|dir|path|Path|datetime|UUID|list\[[^\]]*\]|[a-z]+ range)>"
    r"|\b(?:TEXT|INTEGER|FLOAT|BOOLEAN|PATH|FILENAME|DIRECTORY)\b"
)
SECTIONS = {"On AWS, or on this machine with --local": "both", "On AWS only": "AWS", "On this machine only": "local", "Offline": "offline"}


def help_sections() -> dict[str, str]:
    """Command name -> side, read from `cardamage --help` as a user sees it."""
    result = runner.invoke(app, ["--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    found, side = {}, None
    for line in result.output.splitlines():
        heading = next((SECTIONS[title] for title in SECTIONS if line.startswith(title)), None)
        if heading:
            side = heading
        elif side and re.match(r"^  [a-z]", line):
            found[line.split()[0]] = side
        elif line and not line.startswith(" "):
            side = None
    return found


def readme_commands() -> dict[str, str]:
    """Command name -> side, from the README's table of commands (`| \\`cardamage NAME ...\\` | side | ... |`)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `cardamage ([a-z-]+)[^`]*` \| (both|AWS|local|offline) \|", text, re.M)
    found: dict[str, str] = {}
    for name, side in rows:
        assert found.get(name, side) == side, f"README lists {name} as {found[name]} and {side}"
        found[name] = side
    return found


def test_the_readme_table_lists_the_commands_of_the_help_on_the_same_side():
    listed = help_sections()
    assert len(listed) >= 16
    assert readme_commands() == listed


@pytest.mark.parametrize("command", sorted(help_sections()))
def test_every_command_help_shows_metavariables_not_type_names(command):
    result = runner.invoke(app, [command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "--config FILE" in result.output
    options = result.output.split("Options:", 1)[1]
    assert not TYPE_NAMES.search(options), TYPE_NAMES.search(options)
    assert not TYPE_NAMES.search(result.output.splitlines()[0])  # the usage line
    # Every option that takes a value names it in capitals (FILE, N, NAME=VALUE, S3URI, ...).
    for line in options.splitlines():
        match = re.match(r"^  (?:-\w, )?(--[a-z-]+)(?: ([^ ]+))?", line)
        if match and match.group(2):
            assert re.fullmatch(r"[A-Z][A-Z0-9=]*", match.group(2)), line


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["models", "--local", "--region", "eu-west-1"], "--region and --endpoint-url are for AWS"),
        (["executions", "--local", "--endpoint-url", "http://127.0.0.1:1"], "--region and --endpoint-url are for AWS"),
        (["models", "--state-dir", "somewhere"], "--state-dir is the local engine's: add --local"),
        (["start", "--local"], "`cardamage start` runs on AWS only; on this machine, `cardamage run`"),
        (["label", "--local", "--manifest", "s3://b/m"], "`cardamage label` runs on AWS only; Ground Truth is an AWS service"),
        (["promote", "--local", "--role-arn", "arn:aws:iam::222222222222:role/p"], "--role-arn names a role in a stage's AWS account; with --local"),
    ],
)
def test_an_option_of_the_other_side_is_refused_with_a_pointer(arguments, message):
    result = runner.invoke(app, [*arguments, "--config", CONFIG])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_a_local_only_command_does_not_need_local_and_accepts_it(tmp_path):
    empty = tmp_path / "state"
    for arguments in (["serve"], ["serve", "--local"]):
        result = runner.invoke(app, [*arguments, "--state-dir", str(empty), "--config", CONFIG])
        assert result.exit_code == 2 and "no local runs here yet" in result.output, result.output


def test_both_sided_commands_choose_the_local_backend_with_local(tmp_path):
    result = runner.invoke(app, ["executions", "--local", "--state-dir", str(tmp_path / "none"), "--config", CONFIG])
    assert result.exit_code == 2 and "no local runs here yet" in result.output


def test_version():
    result = runner.invoke(app, ["--version"])
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert result.exit_code == 0 and result.output == f"cardamage {declared}\n", result.output


def test_config_prints_the_resolved_configuration_and_a_profile(monkeypatch):
    monkeypatch.chdir(ROOT)
    plain = json.loads(runner.invoke(app, ["config", "--json"]).output)
    local = json.loads(runner.invoke(app, ["config", "--json", "--profile", "local"]).output)
    assert plain["data"]["classes"] == load_config(CONFIG).data.classes
    assert local["training"] == load_config(CONFIG, "local").training.model_dump(mode="json")


def test_an_invalid_config_exits_2_naming_the_key(tmp_path):
    (tmp_path / "bad.yaml").write_text("data:\n  shards: many\n")
    result = runner.invoke(app, ["config", "--config", str(tmp_path / "bad.yaml")])
    assert result.exit_code == 2
    assert "bad.yaml:2: data.shards" in result.output


def test_the_program_accepts_the_arguments_the_configuration_gives(tmp_path):
    config = load_config(CONFIG)
    options = parse_args(["--manifest", "m", "--images", "i", "--images-prefix", "s3://b/i/", "--output", "o", *data_arguments(config.data, 3)])
    assert options.classes == config.data.classes
    assert (options.validation_fraction, options.seed, options.shards, options.max_invalid_fraction, options.workers) == (
        config.data.validation_fraction,
        config.data.split_seed,
        config.data.shards,
        config.data.max_invalid_fraction,
        3,
    )


def test_a_manifest_needs_its_images_folder_and_prefix(tmp_path):
    result = runner.invoke(app, ["prepare-data", "--config", CONFIG, "--manifest", str(tmp_path / "m.manifest")])
    assert result.exit_code == 2
    assert "--manifest needs --images DIR and --images-prefix" in result.output


def test_prepare_data_on_the_bundled_sample_prints_where_the_outputs_are(tmp_path):
    output = tmp_path / "prepared"
    result = runner.invoke(app, ["prepare-data", "--config", CONFIG, "--output", str(output)])
    assert result.exit_code == 0, result.output
    report = json.loads((output / "report.json").read_text())
    assert report["lines_read"] == 49 and report["images_written"] == 48 and len(report["merged"]) == 1
    for name in ("train", "validation", "label_map.pbtxt", "report.json", "report.png", "samples.png"):
        assert str(output / name) in result.output
