"""The serving image: which SageMaker TensorFlow inference image serves a registered model, and which Python
runs the endpoint handler (inference.py, with libraries.py's code/lib) inside it. One home for these facts;
infra/images.py (the CDK app), the config's default, the Makefile and the training image's Dockerfile follow
them (tests/test_serving_versions.py holds the copies that cannot import this equal).

Sources (AWS's own container repository, aws/deep-learning-containers):
- 2.20: `.github/config/image/tensorflow/2.20-inference-sagemaker-cpu.yml` and `...-cuda.yml` give the
  production tags below and Python 3.12; `docker/tensorflow/inference/2.20/cpu/pyproject.toml` pins the
  handler stack, falcon 3.1.0 (tests use that version). Unverified here (no AWS account): that the CUDA image
  is released in every region; its config named the "gamma" environment when read. Where it is missing, set
  `aws.inference_image_uri`.
- 2.19 and older: the short `<version>-cpu` / `<version>-gpu` tags (the SageMaker SDK's image_uri_config).
"""

from __future__ import annotations

from dataclasses import dataclass

REPOSITORY = "tensorflow-inference"
# The version that serves by default: the training image's TensorFlow (an older runtime may fail to load a
# newer SavedModel; TensorFlow guarantees only the other direction).
DEFAULT_VERSION = "2.20"


@dataclass(frozen=True)
class ServingImage:
    cpu_tag: str
    gpu_tag: str
    python: str  # the interpreter the handler (code/inference.py) and its code/lib run under


KNOWN = {
    "2.20": ServingImage("2.20-cpu-py312-amzn2023-sagemaker-v1", "2.20-gpu-py312-cu129-amzn2023-sagemaker-v1", "3.12"),
    "2.19": ServingImage("2.19-cpu", "2.19-gpu", "3.12"),
}


def image(version: str) -> ServingImage:
    """The image of a serving version; a version this table does not know gets the short tags."""
    major_minor = ".".join(version.split(".")[:2])
    return KNOWN.get(major_minor, ServingImage(f"{major_minor}-cpu", f"{major_minor}-gpu", KNOWN[DEFAULT_VERSION].python))


def tag(version: str, gpu: bool) -> str:
    chosen = image(version)
    return chosen.gpu_tag if gpu else chosen.cpu_tag


# The handler's dependencies travel in the model as code/lib (the container puts it on PYTHONPATH and skips its
# start-time `pip install`): wheels for this Python and platform, from containers/inference/requirements.txt.
SERVING_PYTHON = KNOWN[DEFAULT_VERSION].python
SERVING_PLATFORM = "manylinux_2_28_x86_64"
