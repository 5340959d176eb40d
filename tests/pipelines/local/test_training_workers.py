"""A training job of two instances run here by the local engine (run_training with InstanceCount 2): two processes
of the real training program, algo-1 and algo-2, MultiWorkerMirroredStrategy workers on 127.0.0.1, on the bundled
sample.

One checkpoint prefix, three runs, as a job interrupted twice would see them:
1. algo-2 is killed (SIGKILL, as a reclaimed instance ends) once the chief's first checkpoint is on disk: the job
   fails naming algo-2, and the chief, whose collective lost its peer, ends by itself naming algo-2 too;
2. the next run resumes from that checkpoint; a SIGTERM reaches algo-2 alone (a stop request or a spot
   interruption seen by one instance first): both workers stop at the same step and the chief's checkpoint lands;
3. the last run resumes from it and trains to the end: the chief exports, and the model archive is its folder.
"""

from __future__ import annotations

import os
import re
import signal
import tarfile
import time

import pytest

from pipelines.local.storage import LocalS3
from tests.containers.training.workers import Job, prepare_sample, put_data, steps_logged, training_request

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("training-workers")]

STEPS = 10
CHECKPOINTS = "s3://local-artifacts/checkpoints/workers"
# A checkpoint every 2 steps for the first run; none but SIGTERM's and the last for the second and third.
EARLY, LATE = {"num_steps": str(STEPS), "checkpoint_every": "2"}, {"num_steps": str(STEPS), "checkpoint_every": "100"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    state = tmp_path_factory.mktemp("workers") / "state"
    put_data(state, prepare_sample(state.parent / "prepared"))

    killed = Job(state, training_request(EARLY, 2, CHECKPOINTS), "killed")
    killed.start()
    killed.wait_for(lambda: killed.checkpoint_saved("algo-1") is not None, "the chief's first checkpoint")
    killed_after = killed.checkpoint_saved("algo-1")
    os.kill(killed.pid("algo-2"), signal.SIGKILL)
    noticed = time.monotonic()
    killed.ended(300)
    chief_ended = time.monotonic() - noticed

    stopped = Job(state, training_request(LATE, 2, CHECKPOINTS), "stopped")
    stopped.start()
    resumed_at = int(killed_after.removeprefix("ckpt-"))
    stopped.wait_for(lambda: any(step > resumed_at for step, _ in steps_logged(stopped.log("algo-2"))), "a step after the resumed one")
    os.kill(stopped.pid("algo-2"), signal.SIGTERM)
    stopped.ended(300)

    stopped_at = re.search(r"train: stopped by SIGTERM \(here\) at step (\d+)", stopped.log("algo-2"))

    finished = Job(state, training_request(LATE, 2, CHECKPOINTS), "finished").finish()
    return {
        "state": state,
        "killed": killed,
        "killed_after": killed_after,
        "chief_ended": chief_ended,
        "stopped": stopped,
        "stopped_at": int(stopped_at.group(1)) if stopped_at else None,
        "finished": finished,
    }


def test_a_killed_worker_fails_the_job_with_its_name_and_the_chief_ends_without_hanging(runs):
    killed = runs["killed"]
    assert killed.error is not None and str(killed.error) == "algo-2: the program was killed by SIGKILL"
    assert killed.error.log == killed.work / "algo-2.log"
    # The chief's collective lost its peer: it ended by itself, naming algo-2, within the engine's SIGTERM grace.
    chief_failure = (killed.work / "algo-1" / "opt" / "ml" / "output" / "failure").read_text()
    assert chief_failure.startswith("algo-2 stopped answering (seen from algo-1: "), chief_failure
    assert runs["chief_ended"] < 100
    assert "algo-2 failed: stopping algo-1 (SIGTERM, up to 120 s)" in killed.lines


def test_a_sigterm_on_one_worker_stops_both_at_one_step_and_the_chiefs_checkpoint_lands(runs):
    stopped = runs["stopped"]
    step = runs["killed_after"].removeprefix("ckpt-")
    for host in ("algo-1", "algo-2"):
        assert f"train: resuming from {runs['killed_after']} at step {step}" in stopped.log(host)
    here = re.search(r"train: stopped by SIGTERM \(here\) at step (\d+); the chief \(algo-1\) saved the checkpoint", stopped.log("algo-2"))
    there = re.search(r"train: stopped by SIGTERM \(on another worker\) at step (\d+); checkpoint saved", stopped.log("algo-1"))
    assert here and there and here.group(1) == there.group(1), (stopped.log("algo-1")[-1500:], stopped.log("algo-2")[-1500:])
    assert int(step) < int(here.group(1)) == runs["stopped_at"] < STEPS
    assert stopped.error is not None and re.match(r"^algo-[12]: train: stopped by SIGTERM", str(stopped.error))
    checkpoints = LocalS3(runs["state"] / "s3").path(CHECKPOINTS)
    assert (checkpoints / f"ckpt-{here.group(1)}.index").is_file()  # the chief's save, mirrored to the prefix


def test_the_last_run_resumes_from_the_chiefs_checkpoint_and_both_workers_end_at_the_same_step(runs):
    finished, stopped_at = runs["finished"], runs["stopped_at"]
    assert finished.error is None, finished.error
    logs = {host: finished.log(host) for host in ("algo-1", "algo-2")}
    for log in logs.values():
        resumed = re.search(r"train: resuming from ckpt-(\d+) at step (\d+)", log)
        assert resumed and resumed.group(1) == resumed.group(2), log[-2000:]
        assert int(resumed.group(1)) == stopped_at
        assert f"train: done at step {STEPS}" in log
    # The losses are reduced across the workers: both logged the same ones, and the same final step.
    assert steps_logged(logs["algo-1"]) == steps_logged(logs["algo-2"]) and steps_logged(logs["algo-1"])[-1][0] == STEPS
    checkpoints = LocalS3(runs["state"] / "s3").path(CHECKPOINTS)
    assert (checkpoints / f"ckpt-{STEPS}.index").is_file()


def test_the_model_archive_is_the_chiefs_and_written_once(runs):
    finished = runs["finished"]
    archive = LocalS3(runs["state"] / "s3").path(finished.result["ModelArtifacts"]["S3ModelArtifacts"])
    with tarfile.open(archive) as packed:
        names = packed.getnames()
    chief_model = finished.work / "algo-1" / "opt" / "ml" / "model"
    assert sorted(names) == sorted(str(p.relative_to(chief_model)) for p in chief_model.rglob("*"))
    assert len(names) == len(set(names)) and "1/saved_model.pb" in names and "model.json" in names
    assert not any((finished.work / "algo-2" / "opt" / "ml" / "model").iterdir())  # algo-2 wrote nothing there
    joint = (finished.work / "training.log").read_text()
    assert len(re.findall(r"train: exported the SavedModel", joint)) == 1
    assert "[algo-2] train: waiting for the chief (algo-1) to export the model" in joint
    assert {m["MetricName"] for m in finished.result["FinalMetricDataList"]} >= {"train:loss", "train:images_per_sec"}


def test_every_line_is_prefixed_by_its_host(runs):
    finished = runs["finished"]
    lines = (finished.work / "training.log").read_text().splitlines()
    assert lines and all(re.match(r"^\[algo-[12]\] ", line) for line in lines)
    assert all(re.match(r"^\[algo-[12]\] ", line) for line in finished.lines)  # what the engine showed, the restores too
    assert finished.lines[-len(lines) :] == lines
    hosts = {line.split("]")[0][1:] for line in lines if " train step=" in line}
    assert hosts == {"algo-1", "algo-2"}
    assert "train step=" in finished.log("algo-1") and "[algo-" not in finished.log("algo-1")  # its own lines, unprefixed


def test_a_batch_that_does_not_split_across_the_workers_fails_naming_it(tmp_path):
    state = tmp_path / "state"
    put_data(state, prepare_sample(tmp_path / "prepared"))
    job = Job(state, training_request({"num_steps": "2", "batch_size": "3"}, 2, CHECKPOINTS), "odd").finish(300)
    assert job.error is not None
    assert re.match(r"^algo-[12]: batch_size 3 on 2 replica\(s\) \(0 GPU\(s\) a host, 2 hosts: algo-1, algo-2\): the batch size 3", str(job.error))
