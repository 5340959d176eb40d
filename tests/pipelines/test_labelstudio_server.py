"""The review loop against a real Label Studio server: the PyPI package at the version requirements/labelstudio.txt
pins, in its own virtual environment (`make labelstudio`, run here), on 127.0.0.1 with a temporary data folder.

`cardamage review --push-labelstudio` sends a batch; a person's corrections are made through Label Studio's API
(accept two predictions as they are, move a box, delete one, add one); `cardamage review --pull-labelstudio`
brings the export back under the labels prefix; PrepareData finds exactly the corrected boxes in its records."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request

import pytest
from typer.testing import CliRunner

from containers.processing.prepare_data import Options, prepare
from pipelines.cli.app import app
from pipelines.config import load_config
from pipelines.local.storage import LocalS3
from tests.review_support import capture_answers, corners
from tests.support import ROOT, SAMPLE, all_records

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("labelstudio")]

SERVER = ROOT / ".venv-labelstudio" / "bin" / "label-studio"
TEMPLATE = ROOT / ".venv-labelstudio" / "template" / "label_studio.sqlite3"
TOKEN = "cardamage-test-token-not-a-secret"  # a legacy token the server is started with; it lives as long as the test
STARTUP_SECONDS = 600  # about 20 s on a quiet machine, with the database already migrated
PHOTOS = sorted((SAMPLE / "images").rglob("*.jpg"))[:3]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory) -> str:
    subprocess.run(["make", "-s", "labelstudio"], cwd=ROOT, check=True)
    data = tmp_path_factory.mktemp("label-studio-data")
    shutil.copy(TEMPLATE, data / TEMPLATE.name)  # the schema, migrated by `make labelstudio`; no user, no project
    port = _free_port()
    environment = {
        **os.environ,
        "LABEL_STUDIO_BASE_DATA_DIR": str(data),
        "LATEST_VERSION_CHECK": "false",  # no call to pypi.org at start
        "COLLECT_ANALYTICS": "false",
    }
    log = (data / "server.log").open("w")
    server = subprocess.Popen(
        [
            str(SERVER), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port), "--data-dir", str(data),
            "--username", "reviewer@example.com", "--password", "not-a-secret-0", "--user-token", TOKEN, "--enable-legacy-api-token",
        ],
        env=environment, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not _healthy(url):
            if server.poll() is not None or time.monotonic() > deadline:
                tail = (data / "server.log").read_text(errors="replace")[-3000:]
                pytest.fail(f"Label Studio did not start (exit {server.poll()}):\n{tail}")
            time.sleep(0.5)  # polling its health check
        yield url
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=5) as answer:
            return answer.status == 200
    except OSError:
        return False


def _annotate_as_a_person(ls, project: int) -> dict[str, list[tuple]]:
    """Through the API, as the labelling screen would: the first task's two predictions accepted as they are,
    the second's dent moved, the third's scratch deleted and a new dent drawn. Returns the boxes each photo
    should end with, by image URL: (class id, normalized corners)."""
    tasks = sorted(ls.tasks.list(project=project, fields="all"), key=lambda task: task.id)
    assert len(tasks) == 3 and all(len(task.predictions) == 1 for task in tasks)
    expected = {}
    for number, task in enumerate(tasks):
        prediction = task.predictions[0]
        dent, scratch = sorted((dict(r) for r in prediction.result), key=lambda r: r["value"]["rectanglelabels"][0])
        if number == 0:
            result = [dent, scratch]
        elif number == 1:
            result = [{**dent, "value": {**dent["value"], "x": dent["value"]["x"] + 7.5, "y": dent["value"]["y"] + 2.0}}, scratch]
        else:
            drawn = {**dent, "id": "drawn", "value": {**dent["value"], "x": 55.0, "y": 5.0, "width": 20.0, "height": 12.5}}
            result = [dent, drawn]
        for region in result:
            region.pop("score", None)  # a person's box has no model score
        ls.annotations.create(id=task.id, result=result, was_cancelled=False, ground_truth=False, parent_prediction=prediction.id, lead_time=12.0)
        labels = {"dent": 1, "scratch": 2}
        expected[task.data["image"]] = sorted((labels[r["value"]["rectanglelabels"][0]], *corners(r["value"])) for r in result)
    return expected


def test_a_batch_goes_through_label_studio_and_comes_back_as_the_corrected_boxes(label_studio, tmp_path):
    from label_studio_sdk import LabelStudio

    config = load_config(ROOT / "pipeline.yaml", profile="local")
    state_dir, out = tmp_path / "state", tmp_path / "batch"
    capture_answers(config, state_dir, PHOTOS)
    local = ["--local", "--state-dir", str(state_dir)]
    push = ["--push-labelstudio", label_studio, "--project", "cars"]
    pull = ["--pull-labelstudio", label_studio, "--project", "cars"]
    runner = CliRunner(env={"LABEL_STUDIO_API_KEY": TOKEN})  # the token as a user passes it, not on the command line

    pushed = runner.invoke(app, ["review", *local, "--output", str(out), *push])
    assert pushed.exit_code == 0, pushed.output
    assert "Label Studio project 'cars' (id " in pushed.output and "created): 3 task(s) imported" in pushed.output
    document = json.loads((out / "review.json").read_text())

    ls = LabelStudio(base_url=label_studio, api_key=TOKEN)
    (project,) = [p for p in ls.projects.list() if p.title == "cars"]
    expected = _annotate_as_a_person(ls, project.id)

    # The same photos again: the project holds them, so nothing is imported twice.
    again = runner.invoke(app, ["review", *local, "--output", str(tmp_path / "again"), *push])
    assert again.exit_code == 0, again.output
    imported_again = (
        f"Label Studio project 'cars' (id {project.id}, updated): 0 task(s) imported with the model's boxes as predictions; "
        "3 already in the project, not imported again"
    )
    assert imported_again in again.output.splitlines(), again.output
    assert len(list(ls.tasks.list(project=project.id))) == 3  # no task twice

    pulled = runner.invoke(app, ["review", *local, *pull, "--output", str(tmp_path / "pulled")])
    assert pulled.exit_code == 0, pulled.output
    assert "pulled 3 annotated task(s), 3 annotation(s)" in pulled.output and "warning" not in pulled.output
    (staged,) = LocalS3(state_dir / "s3").objects(str(config.labels_prefix("local-data")))
    assert staged[0].startswith("labelstudio-cars-") and staged[0].endswith("/export.json")
    export = tmp_path / "pulled" / "export.json"
    assert staged[1].read_bytes() == export.read_bytes()

    options = Options(
        manifests=[export], images=out / "images", images_prefix=document["images_prefix"], output=tmp_path / "prepared",
        classes=list(config.data.classes), validation_fraction=0.0, shards=1, workers=1,
    )  # fmt: skip
    report = prepare(options)
    assert report["images_written"] == 3 and report["quarantined"] == []
    found = {
        document["images_prefix"] + key: sorted((label, *(round(c, 4) for c in box)) for label, *box in record["boxes"])
        for key, record in all_records(tmp_path / "prepared").items()
    }
    assert found == expected

    # Pulled again with nothing new: the labels prefix is not written twice (which would start another execution).
    repeat = runner.invoke(app, ["review", *local, *pull])
    labels = str(config.labels_prefix("local-data"))
    unchanged = f"{labels}{staged[0]} holds this export already (3 annotated task(s), 3 annotation(s)): nothing new to pull"
    assert repeat.exit_code == 0 and repeat.output.splitlines() == [unchanged], repeat.output
    assert [name for name, _ in LocalS3(state_dir / "s3").objects(labels)] == [staged[0]]


def test_label_studio_refusals_are_one_line_with_the_reason(label_studio, tmp_path):
    config = load_config(ROOT / "pipeline.yaml", profile="local")
    state_dir = tmp_path / "state"
    capture_answers(config, state_dir, PHOTOS[:1])
    local = ["--local", "--state-dir", str(state_dir)]
    wrong = CliRunner().invoke(app, ["review", *local, "--output", str(tmp_path / "b"), "--push-labelstudio", label_studio, "--token", "wrong-token"])
    assert wrong.exit_code == 1 and "Label Studio answered 401" in wrong.output, wrong.output
    missing = CliRunner().invoke(app, ["review", *local, "--pull-labelstudio", label_studio, "--token", TOKEN, "--project", "no-such-project"])
    assert missing.exit_code == 1 and "no Label Studio project titled 'no-such-project'" in missing.output, missing.output
    closed = CliRunner().invoke(app, ["review", *local, "--pull-labelstudio", f"http://127.0.0.1:{_free_port()}", "--token", TOKEN])
    assert closed.exit_code == 1 and "cannot reach Label Studio at http://127.0.0.1:" in closed.output, closed.output
