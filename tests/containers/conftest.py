"""The bundled sample, prepared once per test session as the pipeline's first step prepares it. (The trained
model of the end-to-end tests is the local pipeline's: `trained_pipeline`, tests/trained_pipeline.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from containers.processing.prepare_data import Options, prepare
from tests.support import SAMPLE, SAMPLE_PREFIX


@pytest.fixture(scope="session")
def prepared_sample(tmp_path_factory) -> Path:
    prepared = tmp_path_factory.mktemp("sample") / "prepared"
    prepare(
        Options(
            manifests=sorted((SAMPLE / "manifests").glob("*.manifest")),
            images=SAMPLE / "images",
            images_prefix=SAMPLE_PREFIX,
            output=prepared,
            classes=["dent", "scratch"],
            workers=1,
        )
    )
    return prepared
