"""Dependencies point one way: container programs import none of pipelines/, steps/ or infra/; steps import
only the typed configuration from pipelines/; nothing below the CLI imports it; and no import, at the top of
a module or inside a function, closes a cycle."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

from tests.support import ROOT

PACKAGES = ("containers", "steps", "pipelines", "infra")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {
    module_name(path): path
    for package in PACKAGES
    for path in sorted((ROOT / package).rglob("*.py"))
    if "__pycache__" not in path.parts and not path.name.startswith("test_")
}


def imports(path: Path) -> list[tuple[str, int]]:
    """(project module, line) of every import in the file, at any depth; `from a import b` counts as a.b when
    a.b is a module."""
    found = []
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in MODULES else node.module for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level > 0:  # relative: resolve against the importing package
            base = module_name(path).split(".")
            base = base[: len(base) - node.level + (1 if path.name == "__init__.py" else 0)]
            module = ".".join([*base, *([node.module] if node.module else [])])
            names = [f"{module}.{alias.name}" if f"{module}.{alias.name}" in MODULES else module for alias in node.names]
        else:
            continue
        found += [(name, node.lineno) for name in names if name.split(".")[0] in PACKAGES]
    return found


def allowed(source: str, target: str) -> bool:
    top = source.split(".", maxsplit=1)[0]
    if top == "containers":
        return target.startswith("containers")
    if top == "steps":
        return target.startswith(("containers", "steps")) or target == "pipelines.config"
    if source == "pipelines.config":
        return target.startswith("containers")
    if top == "pipelines":
        return not target.startswith("infra") and (source.startswith("pipelines.cli") or not target.startswith("pipelines.cli"))
    return True  # infra: the top


def test_the_modules_were_found():
    assert {"containers.inference.inference", "steps.parameters", "pipelines.cli.app", "infra.stack"} <= set(MODULES)


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_point_down(package):
    wrong = [
        f"{MODULES[source].relative_to(ROOT)}:{line} imports {target}"
        for source in MODULES
        if source.split(".")[0] == package
        for target, line in imports(MODULES[source])
        if not allowed(source, target)
    ]
    assert not wrong, "\n".join(wrong)


def test_no_import_closes_a_cycle_not_even_inside_a_function():
    graph = {source: {target for target, _ in imports(path) if target in MODULES and target != source} for source, path in MODULES.items()}
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as exc:
        pytest.fail(f"import cycle: {' -> '.join(exc.args[1])}")
