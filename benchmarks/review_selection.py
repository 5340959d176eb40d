#!/usr/bin/env python3
"""Does `cardamage review`'s uncertainty pick (pipelines/review.py) teach the model more than a random pick?

    .venv/bin/python benchmarks/review_selection.py [--data ../shared/data/car-damage] [--seed-images 40]
        [--pool-images 100] [--test-images 40] [--count 20] [--seeds 2] [--steps 40] [--image-size 256]
        [--batch-size 4] [--score-threshold F] [--checkpoint PATH] [--work DIR]

On the shared bilgi data (bilgi_university_car_damage; --data is the folder its README describes): a fixed
draw of --seed-images labelled photos and a disjoint --pool-images pool from its train split, and a fixed
--test-images subset of its valid split as the test set. Every model goes through the project's own code, each
training in a fresh process as a training job runs: PrepareData's `prepare` writes the TFRecords, the training
program's `run` trains and exports, the Evaluate step's `evaluate` gives COCO mAP on the test set.
1. Train the seed model on the seed photos; send every pool photo to it through the endpoint's handler
   (LocalEndpoint) and record the answers as the endpoint's data capture does (pipelines/local/capture.py).
2. Read the capture as `cardamage review` does (`review.captured_photos`), the seed photos counting as labelled,
   and pick --count photos with `review.select` by "uncertain" and, for each of --seeds seeds, by "random".
3. For each seed k: retrain on seed + uncertain pick and on seed + random pick k (their ground truth standing in
   for a person's labels), both from the same initial state: the initial weights of training seed k (the seed
   model uses seed 0), or the --checkpoint's weights. Evaluate each on the test set. Data order and augmentations
   are not reproducible (the OD API's input pipeline), so two trainings of one seed and data still differ.
Reported: the seed model's mAP (and mAP@0.5), the mean ± standard deviation over seeds of each pick's retrains,
each one's gain over the seed model, the ratio of the gains (uncertain / random), the per-seed paired difference,
how many pool photos the seed model was unsure of at all, and wall times; the same figures in WORK/result.json.
The seed model is one training: its own noise moves both gains (and their ratio) alike and is not in the ±; the
paired difference (uncertain - random retrain of the same seed) does not depend on it.

With the defaults this takes about 25 minutes on a 2-core CPU (26.4 measured: 5 trainings of about 5 minutes,
most of it fixed cost: starting TensorFlow, tracing the first step, the 2-minute export), and it measures
nothing: EfficientDet trained from random weights for 40 steps at 256 px still scores every box at the focal
loss's prior (about 0.01), so the seed model answers no pool photo with a box over the endpoint's threshold,
every pool photo scores 0 (the uncertain pick then falls back to capture order, an arbitrary pick too) and every
mAP is about 0. The script says so: it prints a caveat when the gain intervals overlap and another when the
seed model was unsure of no pool photo. A meaningful run fine-tunes the COCO checkpoint on a GPU (ml.p3.2xlarge
scale; 11 trainings of 1500 steps, an estimated 1-2 hours, not measured):

    python benchmarks/review_selection.py --checkpoint efficientdet_d0_coco17_tpu-32.tar.gz \\
        --image-size 512 --batch-size 8 --steps 1500 --seed-images 100 --pool-images 600 \\
        --test-images 266 --count 60 --seeds 5 --work /tmp/review-selection
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from containers.common.arguments import fraction, positive  # noqa: E402
from containers.training.hyperparameters import HyperparameterError, parse_hyperparameters  # noqa: E402
from pipelines import review  # noqa: E402
from pipelines.local.jobs import local_wheels  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "car-damage"
FOLDER = "bilgi_university_car_damage"
IMAGES_PREFIX = "s3://example-bucket/car-damage/"  # the manifests' source-refs; the data folder stands for it
CLASSES = ["dent", "scratch"]
SPLIT_SEED = 2021  # fixes which photos are seed, pool and test: the same in every run
CONTENT_TYPE = "image/jpeg"
# The export bundles the handler's wheels, which `make setup` downloaded here (inference_latency.py does the same).
ENVIRONMENT = {"TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "SERVING_WHEELS": str(local_wheels())}
CAVEAT = (
    "the gain intervals (mean ± std over seeds) overlap: this run does not tell the picks apart. On a CPU, with a model "
    "trained from random weights for a few hundred steps, the difference is likely noise; run the GPU command of the "
    "module's docstring (pretrained checkpoint, larger sizes and steps, more seeds) for a meaningful answer."
)

NOTHING_UNSURE = (
    "the seed model was unsure of no pool photo (no answer had detections in the ambiguous band or overlapping classes): "
    "the uncertain pick fell back to capture order, so this run compared two arbitrary picks, not uncertainty with chance."
)


@dataclass(frozen=True)
class Split:
    seed: list[dict]  # manifest lines
    pool: list[dict]
    test: list[dict]


@dataclass(frozen=True)
class Trained:
    """One training's figures, as its child process reports them."""

    name: str
    images: int
    boxes: int
    mAP: float
    mAP_50: float
    train_seconds: float
    evaluate_seconds: float
    capture_seconds: float
    wall_seconds: float


# The data: the shared manifests, split into seed, pool and test.


def read_manifest(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def check_data(data: Path) -> dict[str, Path]:
    """The bilgi manifests under `data`; exits with a message saying what is missing."""
    manifests = {split: data / FOLDER / "manifests" / f"{split}.manifest" for split in ("train", "valid")}
    missing = [str(path) for path in manifests.values() if not path.is_file()]
    if missing:
        raise SystemExit(
            f"review_selection: no car-damage data at {data} (missing {', '.join(missing)}); pass --data, the folder of "
            f"/work/shared/data/car-damage/README.md ({FOLDER}/manifests/train.manifest and valid.manifest)"
        )
    return manifests


def split_data(manifests: dict[str, Path], seed_images: int, pool_images: int, test_images: int) -> Split:
    train = read_manifest(manifests["train"])
    valid = read_manifest(manifests["valid"])
    if seed_images + pool_images > len(train) or test_images > len(valid):
        raise SystemExit(f"review_selection: {FOLDER} has {len(train)} train and {len(valid)} valid photos: asked for too many")
    drawn = random.Random(SPLIT_SEED).sample(train, seed_images + pool_images)
    test = random.Random(SPLIT_SEED).sample(valid, test_images)
    return Split(drawn[:seed_images], drawn[seed_images:], test)


def image_path(data: Path, line: dict) -> Path:
    return data / line["source-ref"].removeprefix(IMAGES_PREFIX)


def box_count(lines: list[dict]) -> int:
    return sum(len(line["car-damage"]["annotations"]) for line in lines)


def prepare_records(lines: list[dict], data: Path, output: Path) -> Path:
    """TFRecords of `lines` by PrepareData, every photo in its train split (validation fraction 0)."""
    from containers.processing.prepare_data import Options, prepare

    output.mkdir(parents=True, exist_ok=True)
    manifest = output / "input.manifest"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    prepare(Options(manifests=[manifest], images=data, images_prefix=IMAGES_PREFIX, output=output, classes=CLASSES, validation_fraction=0.0))
    return output


def labelled_hashes(prepared: Path) -> set[str]:
    """What the seed model trained on, by content: PrepareData's images.jsonl, as `cardamage review` reads it."""
    lines = (prepared / "images.jsonl").read_text(encoding="utf-8").splitlines()
    return {json.loads(line)["sha256"] for line in lines if line.strip()}


# One training, in a fresh process: train and export, optionally capture the pool's answers, evaluate.


def child(spec_file: Path) -> None:
    """The child process's work; writes result.json beside the spec."""
    spec = json.loads(spec_file.read_text(encoding="utf-8"))
    from containers.evaluation.evaluate import Options as EvaluationOptions
    from containers.evaluation.evaluate import evaluate
    from containers.training.train import Paths, run

    same_start(spec["seed"])
    work, prepared = Path(spec["work"]), Path(spec["prepared"])
    hp = parse_hyperparameters(spec["hyperparameters"])
    pretrained = Path(spec["checkpoint"]) if spec["checkpoint"] else None
    paths = Paths(prepared / "train", Path(spec["test"]), prepared / "label_map.pbtxt", pretrained, work / "model", work / "ckpt", work / "tb")
    started = time.perf_counter()
    run(hp, paths, log=lambda line: print(line, flush=True))
    trained = time.perf_counter()
    if spec["pool"]:
        capture_pool(paths.model_dir, [Path(p) for p in spec["pool"]], work / "capture.jsonl", spec["score_threshold"])
    captured = time.perf_counter()
    options = EvaluationOptions(model=paths.model_dir, validation=Path(spec["test"]), output=work / "evaluation", pictures=0)
    report = evaluate(options, log=lambda line: print(line, flush=True))
    figures = {
        "mAP": report["metrics"]["mAP"]["value"],
        "mAP_50": report["metrics"]["mAP_50"]["value"],
        "train_seconds": trained - started,
        "capture_seconds": captured - trained,
        "evaluate_seconds": time.perf_counter() - captured,
    }
    (work / "result.json").write_text(json.dumps(figures) + "\n", encoding="utf-8")


def same_start(seed: int) -> None:
    """The same seed gives the same initial weights (checked: identical variables after building the model). Not
    the same data order or augmentations: the OD API's input pipeline interleaves records sloppily, and
    `tf.config.experimental.enable_op_determinism()` fails on its augmentations (unseeded random ops)."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)


def capture_pool(model_dir: Path, images: list[Path], output: Path, score_threshold: float | None) -> None:
    """Send each pool photo to the model through the endpoint's handler and keep request and answer as the
    endpoint's data capture writes them."""
    from datetime import UTC, datetime

    from containers.inference.inference import Options, Settings
    from containers.inference.local import LocalEndpoint
    from pipelines.local.capture import capture_line

    settings = Settings(options=Options(score_threshold=score_threshold)) if score_threshold is not None else None
    endpoint = LocalEndpoint(model_dir, settings=settings)
    with output.open("w", encoding="utf-8") as capture:
        for image in images:
            data = image.read_bytes()
            status, answer, answer_type = endpoint.invoke(data, CONTENT_TYPE)
            if status != 200:
                raise RuntimeError(f"{image}: the endpoint answered {status}: {answer[:300]!r}")
            line = capture_line(data, CONTENT_TYPE, answer, answer_type, when=datetime.now(UTC), event_id=image.name)
            capture.write(json.dumps(line) + "\n")


def hyperparameters(args: argparse.Namespace) -> dict:
    """Every training's hyperparameters: the training program's defaults but for size, batch and steps."""
    steps = {"num_steps": args.steps, "log_every": max(1, args.steps // 5), "checkpoint_every": args.steps}
    return {"image_size": args.image_size, "batch_size": args.batch_size, **steps}


def train_and_score(name: str, lines: list[dict], args: argparse.Namespace, seed: int, pool: list[Path] | None = None) -> Trained:
    """Prepare `lines`, then train, export and evaluate in a child process; the files stay in WORK/name."""
    work = args.work / name
    started = time.perf_counter()
    prepared = prepare_records(lines, args.data, work / "prepared")
    spec = {
        "work": str(work),
        "prepared": str(prepared),
        "test": str(args.work / "test" / "train"),  # the test photos, prepared once into a "train" split
        "seed": seed,
        "checkpoint": str(args.checkpoint) if args.checkpoint else None,
        "hyperparameters": hyperparameters(args),
        "pool": [str(p) for p in pool or []],
        "score_threshold": args.score_threshold,
    }
    (work / "spec.json").write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
    log = work / "log.txt"
    with log.open("w", encoding="utf-8") as output:
        done = subprocess.run(
            [sys.executable, __file__, "--child", str(work / "spec.json")],
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, **ENVIRONMENT},
            check=False,
        )
    if done.returncode != 0:
        tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-30:])
        raise SystemExit(f"review_selection: {name} failed (exit status {done.returncode}); end of {log}:\n{tail}")
    figures = json.loads((work / "result.json").read_text(encoding="utf-8"))
    return Trained(name, len(lines), box_count(lines), wall_seconds=time.perf_counter() - started, **figures)


# Picking from the seed model's captured answers.


def read_capture(path: Path) -> list[review.Captured]:
    records = [(str(path), number, json.loads(line)) for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)]
    photos, unusable = review.captured_photos(records)
    if unusable:
        raise SystemExit(f"review_selection: {len(unusable)} capture record(s) unusable, first: {unusable[0]}")
    return photos


def pick(
    photos: list[review.Captured], labelled: set[str], count: int, strategy: str, seed: int, by_hash: dict[str, dict]
) -> tuple[list[dict], list[float]]:
    """The manifest lines (ground truth) of the photos `review.select` picks, and their uncertainty scores."""
    selection = review.select(photos, labelled, count, strategy, seed)
    if len(selection.picked) < count:
        raise SystemExit(f"review_selection: {strategy} picked {len(selection.picked)} of {count} ({selection.skipped}): enlarge --pool-images")
    return [by_hash[scored.photo.sha256] for scored, _ in selection.picked], [scored.score for scored, _ in selection.picked]


def content_hashes(lines: list[dict], data: Path) -> dict[str, dict]:
    return {hashlib.sha256(image_path(data, line).read_bytes()).hexdigest(): line for line in lines}


# Figures.


def spread(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarise(seed_model: Trained, uncertain: list[Trained], randoms: list[Trained], pool: dict, args: argparse.Namespace, wall: float) -> dict:
    result = {"settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "child"}, "pool": pool}
    result["seed_model"] = {"mAP": seed_model.mAP, "mAP_50": seed_model.mAP_50}
    for metric in ("mAP", "mAP_50"):
        base = getattr(seed_model, metric)
        u_mean, u_std = spread([getattr(t, metric) for t in uncertain])
        r_mean, r_std = spread([getattr(t, metric) for t in randoms])
        paired = [getattr(u, metric) - getattr(r, metric) for u, r in zip(uncertain, randoms, strict=True)]
        u_gain, r_gain = u_mean - base, r_mean - base
        result[metric] = {
            "seed_model": base,
            "uncertain": {"mean": u_mean, "std": u_std, "gain": u_gain},
            "random": {"mean": r_mean, "std": r_std, "gain": r_gain},
            "gain_ratio": u_gain / r_gain if r_gain else None,
            "paired_difference": dict(zip(("mean", "std"), spread(paired), strict=True)),
            "intervals_overlap": u_gain - u_std <= r_gain + r_std and r_gain - r_std <= u_gain + u_std,
        }
    result["trainings"] = [asdict(t) for t in [seed_model, *uncertain, *randoms]]
    result["wall_seconds"] = wall
    return result


def print_table(result: dict) -> None:
    def figure(value: float | None, sign: bool = False) -> str:
        if value is None or not math.isfinite(value):
            return "n/a"
        shape = ".4f" if value == 0 or abs(value) >= 1e-3 else ".1e"  # near-zero mAPs stay visible
        return format(value, ("+" if sign else "") + shape)

    runs = result["settings"]["seeds"]
    print(f"\n{'':<28}{'mAP':>18}{'gain':>18}{'mAP@0.5':>18}{'gain':>18}")
    print(f"{'seed model':<28}{figure(result['mAP']['seed_model']):>18}{'':>18}{figure(result['mAP_50']['seed_model']):>18}")
    for pick_name in ("uncertain", "random"):
        cells = []
        for metric in ("mAP", "mAP_50"):
            part = result[metric][pick_name]
            cells += [f"{figure(part['mean'])} ± {figure(part['std'])}", f"{figure(part['gain'], True)} ± {figure(part['std'])}"]
        print(f"{f'{pick_name} pick, {runs} seed(s)':<28}" + "".join(f"{cell:>18}" for cell in cells))
    for metric, label in (("mAP", "mAP"), ("mAP_50", "mAP@0.5")):
        part = result[metric]
        paired = part["paired_difference"]
        print(
            f"{label}: paired difference uncertain - random, same seed {figure(paired['mean'], True)} ± {figure(paired['std'])}; "
            f"gain ratio uncertain / random {figure(part['gain_ratio'])} (means something only when both gains are clearly positive)"
        )
    pool = result["pool"]
    print(
        f"pool: {pool['photos']} photos, {pool['unsure']} with uncertainty > 0 (mean {pool['mean_uncertainty']:.3f}); "
        f"uncertain pick: mean uncertainty {pool['uncertain_pick_mean']:.3f}, {pool['uncertain_pick_boxes']} boxes; "
        f"random picks: mean uncertainty {pool['random_pick_mean']:.3f}, {pool['random_pick_boxes']:.1f} boxes on average"
    )
    trainings = result["trainings"]
    each, train, evaluation = (statistics.fmean(t[key] for t in trainings) for key in ("wall_seconds", "train_seconds", "evaluate_seconds"))
    print(
        f"wall time: {result['wall_seconds'] / 60:.1f} min for {len(trainings)} trainings (each {each:.0f} s on average: training and "
        f"export {train:.0f} s, evaluation {evaluation:.0f} s; capturing the pool {trainings[0]['capture_seconds']:.0f} s)"
    )
    if result["mAP"]["intervals_overlap"] or runs < 2:
        print(f"caveat: {CAVEAT}")
    if pool["unsure"] == 0:
        print(f"caveat: {NOTHING_UNSURE}")


# The benchmark.


def progress(started: float, message: str) -> None:
    print(f"[{(time.perf_counter() - started) / 60:5.1f} min] {message}", flush=True)


def benchmark(args: argparse.Namespace) -> dict:
    started = time.perf_counter()
    split = split_data(check_data(args.data), args.seed_images, args.pool_images, args.test_images)
    args.work = (args.work or Path(tempfile.mkdtemp(prefix="review-selection-"))).resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    progress(started, f"{FOLDER}: seed {len(split.seed)}, pool {len(split.pool)}, test {len(split.test)} photos; work in {args.work}")
    prepare_records(split.test, args.data, args.work / "test")
    trainings = 1 + 2 * args.seeds

    pool_paths = [image_path(args.data, line) for line in split.pool]
    seed_model = train_and_score("seed", split.seed, args, seed=0, pool=pool_paths)
    progress(started, f"1/{trainings} seed model: mAP {seed_model.mAP:.4f} (train {seed_model.train_seconds:.0f} s)")

    photos = read_capture(args.work / "seed" / "capture.jsonl")
    labelled = labelled_hashes(args.work / "seed" / "prepared")
    by_hash = content_hashes(split.pool, args.data)
    uncertain_lines, uncertain_scores = pick(photos, labelled, args.count, "uncertain", 0, by_hash)
    scores = [review.uncertainty(photo.detections)[0] for photo in photos]
    pool = {
        "photos": len(photos),
        "unsure": sum(score > 0 for score in scores),
        "mean_uncertainty": statistics.fmean(scores),
        "uncertain_pick_mean": statistics.fmean(uncertain_scores),
        "uncertain_pick_boxes": box_count(uncertain_lines),
    }
    uncertain, randoms, random_scores, random_boxes = [], [], [], []
    for seed in range(args.seeds):
        random_lines, chosen_scores = pick(photos, labelled, args.count, "random", seed, by_hash)
        random_scores += chosen_scores
        random_boxes.append(box_count(random_lines))
        for name, lines, results in (("uncertain", uncertain_lines, uncertain), ("random", random_lines, randoms)):
            trained = train_and_score(f"{name}-{seed}", split.seed + lines, args, seed=seed)
            results.append(trained)
            done = 1 + len(uncertain) + len(randoms)
            progress(started, f"{done}/{trainings} {name} pick, seed {seed}: mAP {trained.mAP:.4f} (train {trained.train_seconds:.0f} s)")
    pool["random_pick_mean"] = statistics.fmean(random_scores)
    pool["random_pick_boxes"] = statistics.fmean(random_boxes)
    result = summarise(seed_model, uncertain, randoms, pool, args, time.perf_counter() - started)
    (args.work / "result.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the car-damage data folder (default: %(default)s)")
    parser.add_argument("--seed-images", type=positive, default=40, help="labelled photos the seed model trains on (default: %(default)s)")
    parser.add_argument("--pool-images", type=positive, default=100, help="photos the picks choose from (default: %(default)s)")
    parser.add_argument("--test-images", type=positive, default=40, help="photos of bilgi valid to evaluate on (default: %(default)s)")
    parser.add_argument("--count", type=positive, default=20, help="photos each pick adds (default: %(default)s)")
    parser.add_argument("--seeds", type=positive, default=2, help="random picks and training seeds (default: %(default)s)")
    parser.add_argument("--steps", type=positive, default=40, help="training steps of every model (default: %(default)s)")
    parser.add_argument("--image-size", type=positive, default=256, help="a multiple of 128, as the training program requires (default: %(default)s)")
    parser.add_argument("--batch-size", type=positive, default=4, help="(default: %(default)s)")
    parser.add_argument("--score-threshold", type=fraction(), default=None, help="the endpoint's score threshold (default: the endpoint's own)")
    parser.add_argument("--checkpoint", type=Path, default=None, help="pretrained EfficientDet checkpoint (zoo tarball or folder) to fine-tune")
    parser.add_argument("--work", type=Path, default=None, help="folder for the intermediate files and result.json (default: a new temporary one)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is None:
        try:
            parse_hyperparameters(hyperparameters(args), "--image-size, --batch-size, --steps")
        except HyperparameterError as exc:
            parser.error(str(exc))
        if args.checkpoint is not None and not args.checkpoint.exists():
            parser.error(f"--checkpoint {args.checkpoint}: no such file or folder")
        args.data = args.data.resolve()
        args.checkpoint = args.checkpoint.resolve() if args.checkpoint else None  # the training runs from the repository root
    return args


def main() -> None:
    args = parse_args()
    if args.child is not None:
        child(args.child)
        return
    result = benchmark(args)
    print_table(result)
    print(f"figures in {args.work / 'result.json'}; intermediate files in {args.work}")


if __name__ == "__main__":
    main()
