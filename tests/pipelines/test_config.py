"""pipeline.yaml: the repository's file loads, and every kind of mistake names its key and line."""

from __future__ import annotations

import re

import pytest
import yaml

from containers.training.hyperparameters import VARIANTS
from pipelines.config import (
    ENDPOINT_ROLE,
    PROMOTE_ROLE,
    STAGE_ROLES,
    ConfigError,
    StageAccount,
    load_config,
    parse_config,
    stage_event_bus_arn,
    stage_event_bus_name,
    stage_function_name,
    stage_role_arn,
    stage_role_name,
)
from tests.support import ROOT


def problems(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="pipeline.yaml")
    return str(info.value)


def test_the_repository_configuration_loads_with_every_profile_and_names_files_that_exist():
    config = load_config(ROOT / "pipeline.yaml")
    for profile in (None, *config.profiles):
        loaded = load_config(ROOT / "pipeline.yaml", profile=profile)
        for manifest in loaded.data.sample.manifests:
            assert loaded.path(manifest).is_file(), (profile, manifest)
        assert loaded.path(loaded.data.sample.images).is_dir()


def readme_defaults() -> list[tuple[str, object]]:
    """(dotted key, default) of the configuration table (docs/configuration.md), where the default is a literal
    value: the `data.shards` row with `4`, and rows that name several keys (`a.b` / `c` / `d`) with as many values."""
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    found = []
    for keys, values in re.findall(r"^\| (`[a-z_.]+`(?: / `[a-z_]+`)*) \| (`[^|]*`(?: / `[^|]*`)*) \|", section, re.M):
        names = re.findall(r"`([a-z_.]+)`", keys)
        literals = re.findall(r"`([^`]*)`", values)
        assert len(names) == len(literals), keys
        parent = names[0].rsplit(".", 1)[0]
        for index, (name, literal) in enumerate(zip(names, literals, strict=True)):
            found.append((name if index == 0 else f"{parent}.{name}", yaml.safe_load(literal)))
    return found


def test_the_readme_documents_the_defaults_an_empty_file_gets():
    defaults = parse_config("").model_dump(mode="json")
    documented = readme_defaults()
    assert len(documented) >= 12
    for key, value in documented:
        actual = defaults
        for part in key.split("."):
            actual = actual[part]
        assert actual == value, key


def test_the_commented_severity_profile_is_a_valid_configuration():
    """pipeline.yaml shows a severity detector as a commented profile; uncommented, it loads and maps."""
    lines = (ROOT / "pipeline.yaml").read_text().splitlines()
    start = lines.index("  # severity:")
    block = []
    for line in lines[start:]:
        if not line.startswith("  #") or (block and not line.startswith("  #   ")):
            break
        block.append("  " + line[4:])
    text = "\n".join(lines[:start] + block + lines[start + len(block) :]) + "\n"
    config = parse_config(text, base_dir=ROOT, profile="severity")
    assert config.data.classes[:3] == ["minor-dent", "moderate-dent", "severe-dent"]
    assert config.data.class_map["deep-scratch"] == "severe-scratch"
    from steps.prepare_data import data_arguments

    arguments = data_arguments(config.data)
    assert arguments[arguments.index("--classes") + 1].startswith("minor-dent,moderate-dent,severe-dent,")
    assert "light-dent=minor-dent" in arguments


def test_defaults_fill_an_empty_file():
    config = parse_config("")
    assert config.data.validation_fraction == 0.2 and config.data.sample is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("data:\n  validation_fraction: -0.1\n", "pipeline.yaml:2: data.validation_fraction: must be at least 0.0 (got -0.1)"),
        ("data:\n  validation_fraction: 1.0\n", "pipeline.yaml:2: data.validation_fraction: must be less than 1.0"),
        ("data:\n  max_invalid_fraction: 2\n", "pipeline.yaml:2: data.max_invalid_fraction: must be at most 1.0"),
        ("data:\n  shards: four\n", "pipeline.yaml:2: data.shards: must be a whole number (got 'four')"),
        ("data:\n  shards: 0\n", "data.shards: must be at least 1"),
        ("data:\n  split_seed: '7'\n", "data.split_seed: must be a whole number (got '7')"),
        (
            "data:\n  processing:\n    instance_type: m5.xlarge\n",
            "pipeline.yaml:3: data.processing.instance_type: must be a SageMaker instance type such as ml.m5.xlarge (got 'm5.xlarge')",
        ),
        ("training:\n  instance_type: p3.2xlarge\n", "training.instance_type: must be a SageMaker instance type"),
        (
            "training:\n  image_size: 320\n",
            "pipeline.yaml:2: training.image_size: must be a multiple of 128 (EfficientDet's feature levels 3-7 need it) (got 320)",
        ),
        ("training:\n  model: efficientdet-d9\n", "training.model: must be one of 'efficientdet-d0'"),
        ("data:\n  classes: [dent, dent]\n", "data.classes: class names must be unique; repeated: dent"),
        ("data:\n  classes: []\n", "data.classes: list should have at least 1 item"),
        ("data:\n  label_attribute: ''\n", "data.label_attribute: string should have at least 1 character"),
        ("data:\n  sample:\n    images: x\n", "pipeline.yaml:2: data.sample.manifests: required key is missing"),
        ("data:\n  sample:\n    manifests: [a]\n    images: x\n    images_prefix: http://x\n", "data.sample.images_prefix: must be an S3 URI"),
        ("project:\n  name: 'car damage'\n", "project.name: must match"),
        ("data:\n  class_map: {rayure: paint}\n", "pipeline.yaml:2: data.class_map: maps onto names that are not in data.classes"),
        ("data:\n  class_map: {Rayure: scratch, ' rayure': dent}\n", "data.class_map: names a source class twice (case and spaces do not count)"),
        ("data:\n  label_format: png\n", "data.label_format: must be one of 'auto', 'groundtruth', 'coco'"),
    ],
)
def test_an_impossible_value_names_its_key_and_line(text, expected):
    assert expected in problems(text)


def test_an_unknown_key_is_named_with_the_keys_that_exist():
    message = problems("data:\n  shards: 2\n  validaton_fraction: 0.3\n")
    expected = "pipeline.yaml:3: data.validaton_fraction: unknown key (expected one of: label_attribute, classes, class_map, label_format"
    assert expected + ", via_attribute, validation_fraction" in message
    assert "pipeline.yaml:1: nonsense: unknown key (expected one of: project, aws, data, pipeline, training" in problems("nonsense: 1\n")


def test_every_problem_is_reported_at_once():
    message = problems("data:\n  shards: -1\n  seed: 3\ntraining:\n  image_size: 100\n")
    first, shards, seed, size = message.splitlines()  # one line per problem, each with its own line number
    assert (first, shards, size) == (
        "invalid configuration:",
        "  pipeline.yaml:2: data.shards: must be at least 1 (got -1)",
        "  pipeline.yaml:5: training.image_size: must be at least 256 (got 100)",
    )
    assert seed.startswith("  pipeline.yaml:3: data.seed: unknown key (expected one of: ")


def test_broken_yaml_and_a_missing_file_are_clear(tmp_path):
    assert "pipeline.yaml:3: not valid YAML" in problems("data:\n  shards: 2\n   x: 1\n")
    assert "the top level must be a mapping" in problems("- a\n- b\n")
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_config(tmp_path / "absent.yaml")


def test_relative_paths_resolve_against_the_config_file(tmp_path):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "p.yaml").write_text(
        "data:\n  sample:\n    manifests: [m/a.manifest]\n    images: imgs\n    images_prefix: s3://bucket/x/\n"
    )
    config = load_config(tmp_path / "conf" / "p.yaml")
    assert config.path(config.data.sample.images) == tmp_path / "conf" / "imgs"


@pytest.mark.parametrize("model", sorted(VARIANTS))
def test_each_variant_has_an_input_size_that_is_a_multiple_of_128(model):
    config = parse_config(f"training:\n  model: {model}\n")
    assert config.training.input_size % 128 == 0
    assert parse_config(f"training:\n  model: {model}\n  image_size: 256\n").training.input_size == 256


def test_names_default_from_the_project_and_spot_needs_time_to_wait():
    config = parse_config("project:\n  name: fleet-a\n")
    assert (config.pipeline_name, config.model_package_group, config.endpoint_name) == ("fleet-a-pipeline", "fleet-a-models", "fleet-a-endpoint")
    assert "max_wait_minutes (60) must be at least max_run_minutes (120)" in problems("training:\n  max_run_minutes: 120\n  max_wait_minutes: 60\n")
    assert parse_config("training:\n  spot: false\n  max_run_minutes: 120\n  max_wait_minutes: 60\n").training.spot is False
    assert "deployment: max_instance_count (1) is below initial_instance_count (2)" in problems(
        "deployment:\n  initial_instance_count: 2\n  max_instance_count: 1\n"
    )


def test_prepared_data_may_not_expire_before_a_cached_step_reuses_it():
    text = "pipeline:\n  cache_expire_after: P30D\ninfrastructure:\n  artifact_expiration_days: 30\n"
    assert "artifact_expiration_days (30) must be longer than pipeline.cache_expire_after (P30D)" in problems(text)
    assert parse_config(text.replace("P30D", "P7D")).infrastructure.artifact_expiration_days == 30
    assert parse_config(text.replace("pipeline:\n", "pipeline:\n  caching: false\n")).pipeline.caching is False


def test_the_configured_gate_may_not_be_looser_than_its_own_floor():
    assert "map_threshold (0.2) must be at least min_map_threshold (0.25)" in problems(
        "evaluation:\n  map_threshold: 0.2\n  min_map_threshold: 0.25\n"
    )
    assert "champion_tolerance (0.1) must be at most max_champion_tolerance (0.05)" in problems(
        "evaluation:\n  champion_tolerance: 0.1\n  max_champion_tolerance: 0.05\n"
    )
    unset = parse_config("evaluation:\n  map_threshold: 0.4\n  champion_tolerance: 0.01\n").evaluation
    assert (unset.map_floor, unset.tolerance_ceiling) == (0.4, 0.01)  # by default an execution may tighten the gate, not loosen it


def test_the_champion_rule_is_one_a_run_may_choose_and_the_bootstrap_draws_enough():
    defaults = parse_config("").evaluation
    assert (defaults.champion_rule, defaults.champion_rules) == ("margin", ["margin", "significant"])
    assert (defaults.bootstrap_resamples, defaults.bootstrap_seed) == (1000, 23)
    assert "champion_rule (significant) must be one of champion_rules (margin)" in problems(
        "evaluation:\n  champion_rule: significant\n  champion_rules: [margin]\n"
    )
    assert "evaluation.champion_rule: must be one of 'margin' or 'significant' (got 'strict')" in problems("evaluation:\n  champion_rule: strict\n")
    assert "champion_rules (margin, margin) names a rule twice" in problems("evaluation:\n  champion_rules: [margin, margin]\n")
    assert "evaluation.bootstrap_resamples: must be at least 1000 (got 999)" in problems("evaluation:\n  bootstrap_resamples: 999\n")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("aws:\n  role_arn: my-role\n", "aws.role_arn"),
        ("aws:\n  region: Europe\n", "aws.region"),
        ("pipeline:\n  cache_expire_after: 30 days\n", "pipeline.cache_expire_after"),
        ("evaluation:\n  map_threshold: 1.5\n", "evaluation.map_threshold"),
        ("registry:\n  approval_status: Maybe\n", "registry.approval_status"),
        ("labeling:\n  workteam_arn: team-1\n", "labeling.workteam_arn"),
        ("training:\n  pretrained_checkpoint_uri: /tmp/ckpt\n", "training.pretrained_checkpoint_uri"),
    ],
)
def test_aws_values_are_checked_too(text, key):
    assert f"pipeline.yaml:2: {key}:" in problems(text)


def test_a_profile_overrides_sections_and_every_profile_is_checked():
    text = "training:\n  steps: 2000\n  batch_size: 8\nprofiles:\n  local:\n    training:\n      steps: 10\n"
    assert parse_config(text).training.steps == 2000
    local = parse_config(text, profile="local")
    assert (local.profile, local.training.steps, local.training.batch_size) == ("local", 10, 8)
    message = problems("profiles:\n  local:\n    training:\n      steps: -1\n      bogus: 2\n")
    assert "pipeline.yaml:4: profiles.local.training.steps: must be at least 1" in message
    assert "pipeline.yaml:5: profiles.local.training.bogus: unknown key" in message
    assert "profiles: must map each profile name to a mapping" in problems("profiles: [local]\n")
    with pytest.raises(ConfigError, match=r"no profile 'prod' \(profiles: local\)"):
        parse_config(text, profile="prod")


def test_the_repository_local_profile_lets_make_run_reach_the_endpoint_in_minutes():
    """`make run` must pass every step up to Deploy with a model trained for seconds: the gate cannot fail and the
    package is approved at once."""
    local = load_config(ROOT / "pipeline.yaml", profile="local")
    assert (local.training.model, local.training.input_size) == ("efficientdet-d0", 256)
    assert local.training.steps <= 20 and local.evaluation.map_threshold == 0.0 and local.registry.approval_status == "Approved"


def test_release_stages_name_their_endpoints_and_impossible_ones_are_refused():
    config = parse_config("deployment:\n  stages: [staging, production]\n")
    assert config.stage_endpoints == {"staging": "car-damage-endpoint-staging", "production": "car-damage-endpoint"}
    assert (config.approval_endpoint, config.endpoint_name) == ("car-damage-endpoint-staging", "car-damage-endpoint")
    assert parse_config("").stage_endpoints == {"production": "car-damage-endpoint"} and parse_config("").approval_endpoint == "car-damage-endpoint"
    for text, message in (
        ("deployment:\n  stages: [staging]\n", "one stage (staging) is one endpoint"),
        ("deployment:\n  stages: [staging, staging]\n", "names a stage twice"),
        ("deployment:\n  stages: [Staging, production]\n", "deployment.stages.0"),
        ("deployment:\n  endpoint_name: " + "e" * 60 + "\n  stages: [staging, production]\n", "over SageMaker's 63 characters"),
    ):
        with pytest.raises(ConfigError, match=re.escape(message)):
            parse_config(text)


STAGE_ACCOUNTS = 'infrastructure:\n  account: "123456789012"\ndeployment:\n  stages: [staging, production]\n  accounts:\n'


def test_stage_accounts_are_ids_or_an_id_and_a_region_and_the_workflow_s_own_account_is_not_one():
    text = STAGE_ACCOUNTS + '    staging: "111111111111"\n    production: {account: "222222222222", region: eu-west-1}\n'
    config = parse_config(text)
    assert config.stage_accounts == {
        "staging": StageAccount(account="111111111111"),
        "production": StageAccount(account="222222222222", region="eu-west-1"),
    }
    assert list(parse_config(text.replace("    staging:", "    s:").replace("[staging,", "[s,")).stage_accounts) == ["s", "production"]
    # A stage listed with the workflow's account is served from it: nothing crosses accounts for it.
    same = parse_config(STAGE_ACCOUNTS + '    staging: "123456789012"\n    production: "222222222222"\n')
    assert list(same.stage_accounts) == ["production"] and same.deployment.accounts["staging"].account == "123456789012"
    assert parse_config("").stage_accounts == {} and parse_config("").deployment.accounts == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            STAGE_ACCOUNTS + "    staging: 111111111111\n",
            'pipeline.yaml:6: deployment.accounts.staging: must be an AWS account id: 12 digits in quotes, e.g. "111111111111"',
        ),
        (STAGE_ACCOUNTS + "    staging: '11111111111'\n", "pipeline.yaml:6: deployment.accounts.staging: must be an AWS account id"),
        (
            STAGE_ACCOUNTS + "    staging: {account: 'x11111111111'}\n",
            "pipeline.yaml:6: deployment.accounts.staging.account: must be an AWS account id",
        ),
        (STAGE_ACCOUNTS + "    staging: {region: eu-west-1}\n", "pipeline.yaml:6: deployment.accounts.staging.account: required key is missing"),
        (
            STAGE_ACCOUNTS + "    staging: {account: '111111111111', region: Ireland}\n",
            "pipeline.yaml:6: deployment.accounts.staging.region: must match",
        ),
        (
            STAGE_ACCOUNTS + "    staging: {account: '111111111111', zone: a}\n",
            "pipeline.yaml:6: deployment.accounts.staging.zone: unknown key (expected one of: account, region)",
        ),
        (
            STAGE_ACCOUNTS + '    staging: "111111111111"\n    prod: "222222222222"\n',
            "pipeline.yaml:7: deployment.accounts.prod: is not a release stage (deployment.stages: staging, production)",
        ),
        (
            'infrastructure:\n  account: "123456789012"\ndeployment:\n  accounts:\n    staging: "111111111111"\n',
            "pipeline.yaml:4: deployment.accounts: names release stages' accounts, but deployment.stages lists no stages",
        ),
        (
            'deployment:\n  stages: [staging, production]\n  accounts:\n    staging: "111111111111"\ninfrastructure:\n  account: null\n',
            "pipeline.yaml:6: infrastructure.account: must name the workflow's account when deployment.accounts names stages' accounts",
        ),
        (
            "aws:\n  region: us-east-1\n" + STAGE_ACCOUNTS + '    staging: {account: "123456789012", region: eu-west-1}\n',
            "pipeline.yaml:8: deployment.accounts.staging.region: a stage in the workflow's own account (123456789012) is served from "
            "the workflow's region (aws.region: us-east-1)",
        ),
        (
            f"project:\n  name: {'p' * 41}\n" + STAGE_ACCOUNTS.replace("production]", "productionworlds]") + '    productionworlds: "111111111111"\n',
            f"pipeline.yaml:2: project.name: the role name {'p' * 41}-productionworlds-endpoint of stage productionworlds's account is "
            "over IAM's 64 characters",
        ),
    ],
)
def test_a_wrong_stage_account_names_its_key_and_line(text, expected):
    assert expected in problems(text)


def test_long_names_are_refused_only_for_stages_in_other_accounts():
    # The same name is fine when the stage is served from the workflow's account (its roles are not built by name).
    text = f"project:\n  name: {'p' * 41}\n" + STAGE_ACCOUNTS.replace("production]", "productionworlds]") + '    productionworlds: "123456789012"\n'
    assert parse_config(text).stage_accounts == {}
    # The workflow's own region, named, is its region.
    own_region = "aws:\n  region: eu-west-1\n" + STAGE_ACCOUNTS + '    staging: {account: "123456789012", region: eu-west-1}\n'
    assert parse_config(own_region).stage_accounts == {}


def test_the_names_across_accounts_come_from_the_project_the_stage_and_the_account():
    assert stage_role_name("car-damage", "staging", ENDPOINT_ROLE) == "car-damage-staging-endpoint"
    assert [stage_role_arn("fleet", "production", "222222222222", role) for role in STAGE_ROLES] == [
        "arn:aws:iam::222222222222:role/fleet-production-endpoint",
        "arn:aws:iam::222222222222:role/fleet-production-deploy",
        "arn:aws:iam::222222222222:role/fleet-production-promote",
        "arn:aws:iam::222222222222:role/fleet-production-reader",
        "arn:aws:iam::222222222222:role/fleet-production-monitor",
    ]
    assert stage_function_name("fleet", "qa") == "fleet-qa-deploy"
    assert stage_role_arn("fleet", "qa", "111111111111", PROMOTE_ROLE, partition="aws-cn") == "arn:aws-cn:iam::111111111111:role/fleet-qa-promote"
    assert stage_event_bus_name("fleet", "qa") == "fleet-qa-approvals"
    assert stage_event_bus_arn("fleet", "qa", "111111111111", "eu-west-1") == "arn:aws:events:eu-west-1:111111111111:event-bus/fleet-qa-approvals"
    with pytest.raises(ValueError, match="no stage role 'deployer'"):
        stage_role_name("fleet", "qa", "deployer")


def test_the_commented_stage_accounts_in_the_repository_file_are_valid():
    """pipeline.yaml shows stage accounts as a comment; uncommented, with the stages and the workflow's account, it loads."""
    text = (ROOT / "pipeline.yaml").read_text()
    example = re.search(r"^  accounts: \{\}\n((?:  #   .*\n)+)", text, re.M)
    assert example, "pipeline.yaml's deployment.accounts example"
    entries = "".join("    " + line[len("  #   ") :] + "\n" for line in example[1].splitlines())
    text = text.replace(example[0], "  stages: [staging, production]\n  accounts:\n" + entries)
    text = text.replace("  account: null\n", '  account: "123456789012"\n')
    config = parse_config(text, base_dir=ROOT)
    assert config.stage_accounts == {
        "staging": StageAccount(account="111111111111"),
        "production": StageAccount(account="222222222222", region="eu-west-1"),
    }


@pytest.mark.parametrize(
    ("training", "replica_count"),
    [
        ("  instance_count: 3\n", 3),  # ml.p3.2xlarge: one GPU each
        ("  instance_type: ml.p3.16xlarge\n  instance_count: 2\n  batch_size: 12\n", 16),
        ("  instance_type: ml.g5.12xlarge\n  batch_size: 6\n", 4),
        ("  instance_type: ml.m5.xlarge\n  instance_count: 3\n  batch_size: 4\n", 3),  # no GPU: one replica each
    ],
)
def test_a_batch_that_does_not_split_across_the_replicas_names_the_instance_count(training, replica_count):
    text = "training:\n" + training
    assert re.search(r"pipeline\.yaml:\d+: training\.instance_count: the batch size \d+ does not divide evenly", problems(text))
    assert f"does not divide evenly across {replica_count} replicas" in problems(text)


def test_a_batch_that_splits_and_an_unknown_gpu_type_load():
    assert parse_config("training:\n  instance_count: 2\n  batch_size: 8\n").training.instance_count == 2
    assert parse_config("training:\n  instance_type: ml.p3.16xlarge\n  instance_count: 2\n  batch_size: 32\n").training.instance_count == 2
    # A GPU type the table does not know: the training program checks with the GPUs it finds.
    assert parse_config("training:\n  instance_type: ml.g6.48xlarge\n  batch_size: 7\n").training.batch_size == 7
    assert parse_config("").training.instance_count == 1


def test_each_training_instance_needs_a_training_shard_of_its_own():
    text = "data:\n  shards: 2\ntraining:\n  instance_count: 4\n  batch_size: 8\n"
    assert "pipeline.yaml:4: training.instance_count: 4 instances each read training files of their own, but data.shards is 2" in problems(text)
    assert parse_config(text.replace("shards: 2", "shards: 4")).training.instance_count == 4
