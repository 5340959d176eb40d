"""The processing/evaluation image cannot be built here (no Docker engine): these tests hold its Dockerfile to
the lock, as tests/containers/training/test_image.py does for the training image."""

from __future__ import annotations

import re

from steps.common import CONTAINER_ROOT
from tests.containers.training.test_image import (
    assert_base_is_tensorflow_at_the_lock_s_version,
    assert_covers_its_requirements_in,
    assert_hash_checked_installs_and_existing_copies,
    assert_pinned_as_in_the_lock,
)
from tests.support import ROOT

DOCKERFILE = ROOT / "containers" / "processing" / "Dockerfile"
REQUIREMENTS = ROOT / "containers" / "processing" / "requirements.txt"
LOCK = ROOT / "requirements" / "lock.txt"


def test_every_package_of_the_image_is_pinned_as_in_the_lock():
    assert_pinned_as_in_the_lock(REQUIREMENTS)


def test_the_image_covers_what_preparation_and_evaluation_import_and_leaves_tensorflow_to_the_base():
    image = assert_covers_its_requirements_in(REQUIREMENTS)
    # PrepareData's own needs beyond the training image's, and Evaluate's.
    assert {"simplejpeg", "google-crc32c", "tqdm", "pycocotools", "tf-object-detection-api", "matplotlib"} <= set(image)


def test_the_base_image_is_tensorflow_cpu_at_the_lock_s_version():
    assert_base_is_tensorflow_at_the_lock_s_version(DOCKERFILE, "")


def test_the_dockerfile_installs_only_hash_checked_files_and_puts_the_programs_where_the_steps_run_them():
    text = assert_hash_checked_installs_and_existing_copies(DOCKERFILE)
    assert re.search(rf"^COPY containers {CONTAINER_ROOT}$", text, re.MULTILINE)
    for program in ("processing/prepare_data.py", "evaluation/evaluate.py"):
        assert (ROOT / "containers" / program).is_file()
