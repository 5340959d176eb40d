"""Fixtures shared by every test; the helpers themselves are in tests/support.py."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before anything imports TensorFlow: the OD API needs Keras 2
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Training exports unpack the handler's wheels into code/lib from where `make setup` downloaded them.
from pipelines.local.jobs import LOCAL_WHEELS

os.environ.setdefault("SERVING_WHEELS", str(LOCAL_WHEELS))

import pytest

from tests.support import SHARED_DATA, Dataset


@pytest.fixture
def dataset(tmp_path: Path) -> Dataset:
    return Dataset(tmp_path / "data")


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"the shared car damage data is not beside the repository ({SHARED_DATA}); skipped, not failed")
    return SHARED_DATA
