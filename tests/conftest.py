"""Fixtures shared by every test; the helpers themselves are in tests/support.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipelines.local.jobs import LOCAL_WHEELS
from tests.support import SHARED_DATA, Dataset

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before anything imports TensorFlow: the OD API needs Keras 2
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _share_the_cores() -> None:
    """With `pytest -n N`, each worker's TensorFlow (and the jobs it starts, which inherit the environment) gets its
    share of the cores instead of thread pools the size of the machine each: two workers on two cores otherwise run
    four pools' worth of threads on two cores. TensorFlow reads TF_NUM_INTRAOP_THREADS and TF_NUM_INTEROP_THREADS
    when its runtime starts (tensorflow/core/common_runtime/process_util.cc; here, a process that multiplies two
    matrices runs 5 threads with them at 1 instead of 10); OMP_NUM_THREADS sizes oneDNN's."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        threads = str(max(1, len(os.sched_getaffinity(0)) // workers))
        for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
            os.environ.setdefault(name, threads)


_share_the_cores()  # before any test imports TensorFlow (nothing imported above does)
# Training exports unpack the handler's wheels into code/lib from where `make setup` downloaded them.
os.environ.setdefault("SERVING_WHEELS", str(LOCAL_WHEELS))


@pytest.fixture(scope="module")
def chromium():
    """A headless Chromium driven by Playwright (tests/browser.py chose it), for one module's tests: Playwright's
    synchronous API keeps an event loop of its own while it runs, which other modules' asyncio code must not meet."""
    from playwright.sync_api import sync_playwright

    from tests.browser import launch

    with sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


@pytest.fixture
def dataset(tmp_path: Path) -> Dataset:
    return Dataset(tmp_path / "data")


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"the shared car damage data is not beside the repository ({SHARED_DATA}); skipped, not failed")
    return SHARED_DATA


@pytest.fixture(scope="session")
def trained_pipeline(tmp_path_factory):
    """The local pipeline run once, its training interrupted and resumed (tests/trained_pipeline.py)."""
    from tests.trained_pipeline import train_pipeline

    work = tmp_path_factory.mktemp("trained-pipeline")
    return train_pipeline(work / ".cardamage", work)


@pytest.fixture(scope="session")
def served_model(trained_pipeline):
    """The trained pipeline's registered model (version 1) served on 127.0.0.1 through the endpoint's handler, as
    `cardamage serve --model 1` serves it; loaded once for every test that sends it photos."""
    import threading

    from pipelines.local.endpoint import EndpointServer, LocalDeployer
    from pipelines.local.state import State
    from pipelines.local.storage import LocalS3

    state, config = trained_pipeline.state, trained_pipeline.config
    package = next(package for package in State(state).packages(config.model_package_group) if package.version == 1)
    deployer = LocalDeployer(State(state), LocalS3(state / "s3"), state / "endpoints")
    server = EndpointServer(deployer, config.endpoint_name, port=0, package_arn=package.arn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
