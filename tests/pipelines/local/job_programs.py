#!/usr/bin/env python3
"""Small real programs for test_job_failures.py: the local engine runs them as its jobs' subprocesses, and a
driver runs the engine with them in a process of its own, for the tests to stop with Ctrl-C (SIGINT).

    job_programs.py wait --pids FILE          a Processing program that starts a child ignoring SIGINT,
                                              writes both pids to FILE and waits
    job_programs.py train --hyperparameters FILE --checkpoints DIR ...
                                              a training program with train.py's contract (below)
    job_programs.py engine --state-dir DIR --definition FILE
                                              the engine with `stand_in_images()`, exit 130 on Ctrl-C

The training stand-in behaves as train.py does where the engine is concerned, without TensorFlow: it resumes
from the newest `ckpt-N` in the checkpoint folder, saves one every `every` steps and keeps at most `keep` of
them, saves one and exits 143 on SIGTERM, dies without saving on SIGINT, and writes its failure reason to the
failure file. Its other hyperparameters: num_steps, crash_at (exit 1 there), failure (the failure file's text
when it crashes), hold_at (wait there for a signal, after writing its pid to the file `ready`), ignore_sigterm
(then SIGTERM only writes the file `ready`.sigterm).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from pipelines.local.jobs import Images

HERE = Path(__file__).resolve()
# What a definition's ContainerEntrypoint names to run this file: the engine maps /opt/program/ onto the repository.
ENTRYPOINT = ["python3", f"/opt/program/{HERE.relative_to(HERE.parents[3]).as_posix()}"]


class StandInImages(Images):
    """The project's images, with this file's `train` standing for train.py."""

    def training_command(self, image: str) -> list[str]:
        super().training_command(image)  # the same check of the image
        return [sys.executable, str(HERE), "train"]


def stand_in_images() -> StandInImages:
    return StandInImages(processing="p", training="t", inference="i")


def write_atomically(path: Path, text: str) -> None:
    """The tests poll for these files: a rename makes each appear whole."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.rename(path)


def wait(pids: Path) -> None:
    code = "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(600)"
    child = subprocess.Popen([sys.executable, "-c", code])
    write_atomically(pids, f"{os.getpid()} {child.pid}\n")
    print("job_programs: waiting", flush=True)
    time.sleep(600)


def train(hyperparameters: Path, checkpoints: Path, model_dir: Path, failure_file: Path) -> int:
    hp = json.loads(hyperparameters.read_text())
    num_steps, every, keep = int(hp.get("num_steps", 4)), int(hp.get("every", 1)), int(hp.get("keep", 100))
    crash_at, hold_at = int(hp.get("crash_at", 0)), int(hp.get("hold_at", 0))
    checkpoints.mkdir(parents=True, exist_ok=True)
    found = sorted(int(p.name.removeprefix("ckpt-")) for p in checkpoints.glob("ckpt-*"))
    start = found[-1] if found else 0
    print(f"job_programs: starting at step {start}", flush=True)
    step = start

    def save(number: int) -> None:
        (checkpoints / f"ckpt-{number}").write_text(f"step {number}\n")
        for old in sorted(int(p.name.removeprefix("ckpt-")) for p in checkpoints.glob("ckpt-*"))[:-keep]:
            (checkpoints / f"ckpt-{old}").unlink()

    def stop(*_args) -> None:
        if hp.get("ignore_sigterm"):
            write_atomically(Path(hp["ready"] + ".sigterm"), "received\n")
            return
        save(step)
        print(f"job_programs: stopped by SIGTERM at step {step}; checkpoint saved", flush=True)
        sys.exit(143)

    signal.signal(signal.SIGTERM, stop)
    while step < num_steps:
        step += 1
        if step % every == 0:
            save(step)
        if step == crash_at:
            print("job_programs: error: the last error line of the log", file=sys.stderr, flush=True)
            print("job_programs: exiting", flush=True)  # the log's last line, not an error
            if "failure" in hp:
                failure_file.parent.mkdir(parents=True, exist_ok=True)
                failure_file.write_text(hp["failure"])
            return 1
        if step == hold_at:
            write_atomically(Path(hp["ready"]), f"{os.getpid()}\n")
            time.sleep(120)  # longer than the tests wait for their signals
    (model_dir / "model.txt").write_text(f"trained to step {step}\n")
    print(f"job_programs: done at step {step}", flush=True)
    return 0


def engine(state_dir: Path, definition: Path) -> int:
    from pipelines.local.engine import Engine, Reporter

    def refuse(event: dict) -> dict:
        raise AssertionError(f"no Lambda step in these definitions: {event}")

    reporter = Reporter(say=lambda line: print(line, flush=True), job_line=lambda step, line: print(f"{step} | {line}", flush=True))
    runner = Engine(state_dir, stand_in_images(), refuse, reporter)
    try:
        runner.run(json.loads(definition.read_text()), "demo")
    except KeyboardInterrupt:
        return 130
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="job_programs.py")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("wait").add_argument("--pids", type=Path, required=True)
    training = commands.add_parser("train")
    for option in ("--hyperparameters", "--checkpoints", "--model-dir", "--failure-file", "--tensorboard-dir"):
        training.add_argument(option, type=Path, required=True)
    driver = commands.add_parser("engine")
    driver.add_argument("--state-dir", type=Path, required=True)
    driver.add_argument("--definition", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "wait":
        wait(args.pids)
        return 0
    if args.command == "train":
        return train(args.hyperparameters, args.checkpoints, args.model_dir, args.failure_file)
    return engine(args.state_dir, args.definition)


if __name__ == "__main__":
    sys.exit(main())
