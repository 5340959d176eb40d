"""Two workers train as one does at the same global batch: the same losses step by step, with each worker's
replica taking half the batch.

The two runs must start alike and meet alike batches, so nothing random is left to them:
- the same weights: the one-worker run checkpoints every step, and the two-worker run starts from its first
  checkpoint (weights, optimizer state, step), so both take steps 2 to 5 from one state;
- the same batches: every record is one photo with the same boxes, augmentation off (horizontal_flip and
  scale_crop false), so however the records are dealt to workers and batches, every batch is alike, and batch
  normalisation sees the same statistics in a batch of 8 and in two of 4;
- no random masks: EfficientNet's drop connect is turned off in the jobs (without_drop_connect/sitecustomize.py).

The learning rate is the default one, scaled from batch_size (Hyperparameters.peak_learning_rate): both runs take
it from the global batch. What remains is float32 arithmetic in another order: a batch of 8 through each
convolution against two batches of 4 whose gradients are summed by the all-reduce. Measured here the losses differ
by at most 1.2e-7 of their value (2 units in the last place of a float32 near 2), while each step moves the loss
by 5e-5 to 1e-4 of it. A two-worker run taking steps twice as long (its gradients summed instead of averaged, or
its learning rate doubled: tried by doubling it) differed by 4.6e-5 at the first step after the start, and more
after. TOLERANCE sits between, 16 times above the one and 23 times below the other.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from pipelines.local.storage import LocalS3
from tests.containers.training.workers import Job, put_data, same_photo, training_request

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("training-workers")]

WITHOUT_DROP_CONNECT = Path(__file__).parent / "without_drop_connect"
SETTINGS = {
    "num_steps": "5",
    "batch_size": "8",
    "checkpoint_every": "1",
    "checkpoints_to_keep": "10",
    "horizontal_flip": "false",
    "scale_crop": "false",
}
ONE, TWO = "s3://local-artifacts/checkpoints/one-worker", "s3://local-artifacts/checkpoints/two-workers"
TOLERANCE = 2e-6  # relative


def scalars(folder: Path, tag: str) -> dict[int, float]:
    """A TensorBoard scalar at each step, at float32 precision (the log rounds to 4 decimals)."""
    import tensorflow as tf

    found = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.tag == tag:
                    found[event.step] = float(tf.make_ndarray(value.tensor)) if value.HasField("tensor") else value.simple_value
    return found


def first_checkpoint_only(s3: LocalS3, source: str, target: str) -> None:
    """The checkpoint prefix of a job whose only checkpoint is the other job's first (ckpt-1)."""
    folder = s3.path(target)
    folder.mkdir(parents=True)
    for path in s3.path(source).glob("ckpt-1.*"):
        shutil.copy2(path, folder / path.name)
    (folder / "checkpoint").write_text('model_checkpoint_path: "ckpt-1"\nall_model_checkpoint_paths: "ckpt-1"\n')


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    state = tmp_path_factory.mktemp("equivalence") / "state"
    put_data(state, same_photo(state.parent / "data", records=8))
    s3 = LocalS3(state / "s3")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join([str(WITHOUT_DROP_CONNECT), *filter(None, [os.environ.get("PYTHONPATH")])]))
        one = Job(state, training_request(SETTINGS, 1, ONE, "s3://local-artifacts/tb/one/"), "one").finish()
        assert one.error is None, one.error
        first_checkpoint_only(s3, ONE, TWO)
        two = Job(state, training_request(SETTINGS, 2, TWO, "s3://local-artifacts/tb/two/"), "two").finish()
        assert two.error is None, two.error
    return {"one": one, "two": two, "tensorboard": {run: s3.path(f"s3://local-artifacts/tb/{run}/") for run in ("one", "two")}}


def test_two_workers_split_the_global_batch_and_start_from_the_same_state(runs):
    one, two = (runs["one"].work / "training.log").read_text(), runs["two"].log("algo-1")
    assert re.search(r"^train: efficientdet-d0 at 256px, batch 8 \(8 per replica\), 0 GPU\(s\), 1 replica\(s\), mixed", one, re.M)
    assert re.search(r"^train: efficientdet-d0 at 256px, batch 8 \(4 per replica\), 0 GPU\(s\), 2 replica\(s\) on 2 workers", two, re.M)
    for host in ("algo-1", "algo-2"):
        assert "train: resuming from ckpt-1 at step 1" in runs["two"].log(host)


def test_the_losses_of_two_workers_match_one_workers_step_by_step(runs):
    one = scalars(runs["tensorboard"]["one"], "Loss/total_loss")
    two = scalars(runs["tensorboard"]["two"], "Loss/total_loss")
    assert sorted(one) == [1, 2, 3, 4, 5] and sorted(two) == [2, 3, 4, 5]
    assert all(abs(one[step] - one[step + 1]) > 10 * TOLERANCE * one[step] for step in (2, 3, 4))  # the loss moves: the test can tell
    for step in sorted(two):
        assert two[step] == pytest.approx(one[step], rel=TOLERANCE), (step, one, two)
    rates = scalars(runs["tensorboard"]["one"], "learning_rate"), scalars(runs["tensorboard"]["two"], "learning_rate")
    assert all(rates[1][step] == pytest.approx(rates[0][step], rel=1e-7) for step in sorted(two))
