"""containers/monitor_start/ ships alone as the starter's Lambda code, so start.py keeps copies of how the
deployment function reads the package an endpoint serves (containers/deploy/deploy.py, the one home). These
tests hold each copy equal to its home, statement for statement."""

from __future__ import annotations

import ast

import pytest

from containers.deploy import deploy
from containers.monitor_start import start
from containers.monitoring import statistics
from tests.support import ROOT

COPIED = ("ServedPackage", "is_not_found", "describe_endpoint", "served_package", "_config_tags", "_tags")
CONSTANTS = ("TAG_ARN", "TAG_VERSION", "TAG_GROUP", "VARIANT")


def definitions(relative: str) -> dict[str, str]:
    """Each top-level function and class of a module, as its syntax tree (docstrings and all)."""
    tree = ast.parse((ROOT / relative).read_text(encoding="utf-8"))
    return {node.name: ast.dump(node) for node in tree.body if isinstance(node, ast.FunctionDef | ast.ClassDef)}


@pytest.mark.parametrize("name", COPIED)
def test_the_starter_reads_the_served_package_as_the_deployment_function_does(name):
    assert definitions("containers/monitor_start/start.py")[name] == definitions("containers/deploy/deploy.py")[name]


def test_the_starter_s_names_are_the_deployment_function_s_and_the_statistics_module_s():
    assert {name: getattr(start, name) for name in CONSTANTS} == {name: getattr(deploy, name) for name in CONSTANTS}
    assert (start._NOT_FOUND.pattern, start._NOT_FOUND.flags) == (deploy._NOT_FOUND.pattern, deploy._NOT_FOUND.flags)
    assert [name for name, _ in start.BASELINES.values()] == [statistics.DATA_BASELINE, statistics.MODEL_BASELINE]
