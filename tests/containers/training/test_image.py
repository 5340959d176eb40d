"""The training image cannot be built here (no Docker engine): these tests hold its Dockerfile to the lock."""

from __future__ import annotations

import re

from tests.support import ROOT

DOCKERFILE = ROOT / "containers" / "training" / "Dockerfile"
REQUIREMENTS = ROOT / "containers" / "training" / "requirements.txt"
LOCK = ROOT / "requirements" / "lock.txt"


def pins(path) -> dict[str, tuple[str, set[str]]]:
    """name -> (version, hashes) of a hash-pinned requirements file."""
    result, name = {}, None
    for line in path.read_text().splitlines():
        if match := re.match(r"^([A-Za-z0-9_.-]+)==([^ \\]+)", line):
            name = match.group(1).lower()
            result[name] = (match.group(2), set())
        if name and (digest := re.search(r"--hash=sha256:([0-9a-f]{64})", line)):
            result[name][1].add(digest.group(1))
    return result


def assert_hash_checked_installs_and_existing_copies(dockerfile) -> str:
    """Every pip install is --no-deps --require-hashes from a file, nothing is cloned or :latest, and every
    COPY source exists; returns the Dockerfile's text for further checks."""
    text = dockerfile.read_text()
    installs = re.findall(r"pip install ([^&\n]*)", text)
    assert installs
    for arguments in installs:
        assert "--require-hashes" in arguments and "--no-deps" in arguments and " -r " in f" {arguments}", arguments
    assert "git clone" not in text and ":latest" not in text
    for source in re.findall(r"^COPY (.+) \S+$", text, re.MULTILINE):
        for path in source.split():
            assert (ROOT / path).exists(), f"COPY names {path}, which does not exist"
    return text


def assert_pinned_as_in_the_lock(requirements) -> dict[str, tuple[str, set[str]]]:
    """Every package of an image's requirements is the lock's version with the lock's hashes; returns its pins."""
    lock, image = pins(LOCK), pins(requirements)
    assert image, "the image installs nothing?"
    for name, (version, hashes) in image.items():
        assert name in lock, f"{name} is in the image but not in the lock"
        assert version == lock[name][0], f"{name}: image {version}, lock {lock[name][0]}"
        assert hashes and hashes <= lock[name][1], f"{name}: hashes differ from the lock's"
    return image


def assert_covers_its_requirements_in(requirements) -> dict[str, tuple[str, set[str]]]:
    """The compiled requirements hold every package of the requirements.in beside them, and no TensorFlow (the
    base image's); returns its pins."""
    lines = (requirements.parent / "requirements.in").read_text().splitlines()
    wanted = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    image = pins(requirements)
    assert wanted and all(name.lower() in image for name in wanted)
    assert "tensorflow" not in image and "tensorflow-cpu" not in image
    return image


def test_every_package_of_the_image_is_pinned_as_in_the_lock():
    assert_pinned_as_in_the_lock(REQUIREMENTS)


def test_the_image_covers_what_training_needs_and_leaves_tensorflow_to_the_base():
    assert_covers_its_requirements_in(REQUIREMENTS)


def assert_base_is_tensorflow_at_the_lock_s_version(dockerfile, build: str) -> None:
    """The image starts FROM tensorflow/tensorflow at the lock's TensorFlow version, of `build` ("": CPU, "-gpu")."""
    base = re.search(rf"^FROM tensorflow/tensorflow:([0-9.]+){build}\s*$", dockerfile.read_text(), re.MULTILINE)
    assert base, f"{dockerfile} must start FROM tensorflow/tensorflow:<version>{build}"
    assert base.group(1) == pins(LOCK)["tensorflow-cpu"][0]


def test_the_base_image_is_tensorflow_gpu_at_the_lock_s_version():
    assert_base_is_tensorflow_at_the_lock_s_version(DOCKERFILE, "-gpu")


def test_the_dockerfile_installs_only_hash_checked_files_and_clones_nothing():
    text = assert_hash_checked_installs_and_existing_copies(DOCKERFILE)
    assert "containers/training/train.py" in text


def test_setuptools_for_the_sdist_build_is_the_lock_s():
    build = pins(ROOT / "requirements" / "build-constraints.txt")
    assert build["setuptools"][0] == pins(LOCK)["setuptools"][0]
