"""The suite relies on `pytest -n 2 --dist loadgroup` keeping the tests of one `xdist_group` on one worker: the
trained model and the local pipeline run are made once per worker that needs them, in minutes. pytest 9.2
broke that silently with pytest-xdist 3.8 (both workers trained the model); this holds the pinned pair to it."""

from __future__ import annotations

import re
import subprocess
import sys

GROUPED = """
import os, pathlib, pytest
pytestmark = pytest.mark.xdist_group("one")
@pytest.mark.parametrize("i", range(6))
def test_grouped(i):
    pathlib.Path(f"worker-{i}").write_text(os.environ["PYTEST_XDIST_WORKER"])
"""
OTHERS = """
import pytest, time
@pytest.mark.parametrize("i", range(12))
def test_other(i):
    time.sleep(0.02)
"""


def test_an_xdist_group_runs_on_one_worker(tmp_path):
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_grouped.py").write_text(GROUPED)
    (tmp_path / "test_others.py").write_text(OTHERS)
    command = [sys.executable, "-m", "pytest", "-q", "-n", "2", "--dist", "loadgroup", "-p", "no:cacheprovider"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert re.search(r"^18 passed\b", result.stdout.splitlines()[-1]), result.stdout[-2000:]  # every test of both files ran
    workers = {(tmp_path / f"worker-{i}").read_text() for i in range(6)}
    assert len(workers) == 1 and workers <= {"gw0", "gw1"}, workers
