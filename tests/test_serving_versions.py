"""The model is trained by one TensorFlow and served by another: they must agree (TensorFlow promises that a
newer runtime loads an older SavedModel, not the reverse), and every copy of the serving facts must follow
containers/inference/image.py, their one home."""

from __future__ import annotations

import re

import yaml

from containers.inference import image as serving
from containers.inference import libraries
from pipelines.config import InfrastructureConfig
from tests.containers.training.test_image import DOCKERFILE, LOCK, pins
from tests.support import ROOT


def major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def training_tensorflow() -> str:
    base = re.search(r"^FROM tensorflow/tensorflow:([0-9.]+)-gpu\s*$", DOCKERFILE.read_text(), re.MULTILINE)
    assert base, "the training image must start FROM tensorflow/tensorflow:<version>-gpu"
    return base.group(1)


def test_the_serving_tensorflow_is_the_training_tensorflow():
    trained = training_tensorflow()
    assert trained == pins(LOCK)["tensorflow-cpu"][0]  # the local environment trains with the same version
    assert major_minor(trained) == serving.DEFAULT_VERSION
    assert InfrastructureConfig().serving_version == serving.DEFAULT_VERSION
    shipped = yaml.safe_load((ROOT / "pipeline.yaml").read_text())["infrastructure"]["serving_version"]
    assert major_minor(shipped) == major_minor(trained), f"pipeline.yaml serves with {shipped}, training exports with {trained}"
    assert serving.DEFAULT_VERSION in serving.KNOWN  # its tags are the published ones, not guessed


def test_the_default_serving_image_has_aws_s_published_tags():
    image = serving.image(serving.DEFAULT_VERSION)
    assert serving.tag("2.20", gpu=False) == "2.20-cpu-py312-amzn2023-sagemaker-v1"
    assert serving.tag("2.20.0", gpu=True) == "2.20-gpu-py312-cu129-amzn2023-sagemaker-v1"
    assert serving.tag("2.19", gpu=True) == "2.19-gpu" and serving.tag("2.18", gpu=False) == "2.18-cpu"
    assert f"py{image.python.replace('.', '')}" in image.cpu_tag


def test_every_copy_of_the_serving_python_is_the_same():
    python = serving.SERVING_PYTHON
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^SERVING_PYTHON := (\S+)$", makefile, re.MULTILINE).group(1) == python
    dockerfile = DOCKERFILE.read_text()
    assert re.findall(r"--python-version (\S+)", dockerfile) == [python]
    platforms = set(re.findall(r"--platform (\S+)", makefile + dockerfile))
    assert platforms == {serving.SERVING_PLATFORM}
    assert f"ENV {libraries.SERVING_WHEELS_ENV}={libraries.IMAGE_WHEELS}" in dockerfile
    assert f"-d {libraries.IMAGE_WHEELS} " in dockerfile


def test_the_handler_s_wheels_are_the_lock_s_versions_and_hashes():
    lock, served = pins(LOCK), pins(libraries.REQUIREMENTS)
    wanted = [line.strip() for line in (libraries.REQUIREMENTS.parent / "requirements.in").read_text().splitlines() if line.strip()[:1].isalpha()]
    assert sorted(served) == sorted(wanted) == ["numpy", "pillow"]
    for name, (version, hashes) in served.items():
        assert version == lock[name][0], f"{name}: served {version}, locked {lock[name][0]}"
        assert hashes and hashes <= lock[name][1], f"{name}: hashes differ from the lock's"
    assert {name: (pin.version, set(pin.hashes)) for name, pin in libraries.read_pins().items()} == served
