#!/usr/bin/env python3
"""Throughput of PrepareData against a naive baseline, as the marginal cost per image.

    .venv/bin/python benchmarks/prepare_data_throughput.py [--data ../shared/data/car-damage] [--replicas 4] [--repeats 5]

The Bilgi University train split (910 images, 640x640 JPEG) is replicated under several prefixes (folder
symlinks, so every replica is its own key) to make manifests of N and 2N lines. Each contender runs on
both in this process, after a warm-up run (imports, page cache), several times, keeping the fastest run
(the least disturbed by the rest of the machine); the marginal cost per image is (T(2N) - T(N)) / N,
which cancels fixed costs (imports, starting the worker processes, the report pictures).

- raw read: reading every image file's bytes, nothing else (the floor for any preparation);
- naive baseline: one thread, every image fully decoded with Pillow as the check, Examples built with
  TensorFlow's API (as the OD API's dataset tools do), one output file;
- prepare_data: the program in one process (workers=1), and with one worker process per core.
The peak memory of the program (its main process) at N and 2N lines is measured in child processes.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from PIL import Image  # noqa: E402

from containers.processing.formats.groundtruth import object_detection_attributes  # noqa: E402
from containers.processing.prepare_data import Options, prepare  # noqa: E402

DATASET = "bilgi_university_car_damage"
PREFIX = "s3://example-bucket/car-damage/"


def build_inputs(data: Path, work: Path, replicas: int) -> dict[int, Path]:
    """Manifests of N (replicas x 910) and 2N lines over symlinked replicas of the train images."""
    lines = (data / DATASET / "manifests" / "train.manifest").read_text().splitlines()
    images = work / "images"
    images.mkdir(parents=True)
    for r in range(2 * replicas):
        (images / f"replica-{r}").symlink_to(data, target_is_directory=True)
    manifests = {}
    for count in (replicas, 2 * replicas):
        path = work / f"lines-{count * len(lines)}.manifest"
        with open(path, "w") as out:
            for r in range(count):
                for line in lines:
                    out.write(line.replace(PREFIX, f"{PREFIX}replica-{r}/", 1) + "\n")
        manifests[count * len(lines)] = path
    return manifests


def raw_read(manifest: Path, images: Path, output: Path) -> None:
    for line in manifest.read_text().splitlines():
        (images / json.loads(line)["source-ref"][len(PREFIX) :]).read_bytes()


def _bytes(values):
    import tensorflow as tf

    return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))


def _float(values):
    import tensorflow as tf

    return tf.train.Feature(float_list=tf.train.FloatList(value=values))


def _int64(values):
    import tensorflow as tf

    return tf.train.Feature(int64_list=tf.train.Int64List(value=values))


def naive_baseline(manifest: Path, images: Path, output: Path) -> None:
    """What a first version would do (and the OD API's dataset tools do): one thread, a full Pillow decode
    per image as the check, Examples built with TensorFlow's API, one TFRecord file."""
    import tensorflow as tf

    output.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(output / "all.tfrecord")) as writer:
        for line in manifest.read_text().splitlines():
            record = json.loads(line)
            attribute = object_detection_attributes(record)[0]
            class_map = record[f"{attribute}-metadata"]["class-map"]
            key = record["source-ref"][len(PREFIX) :]
            data = (images / key).read_bytes()
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                width, height = image.size
            annotations = record[attribute]["annotations"]
            feature = {
                "image/encoded": _bytes([data]),
                "image/format": _bytes([b"jpeg"]),
                "image/height": _int64([height]),
                "image/width": _int64([width]),
                "image/filename": _bytes([key.encode()]),
                "image/source_id": _bytes([key.encode()]),
                "image/key/sha256": _bytes([hashlib.sha256(data).hexdigest().encode()]),
                "image/object/bbox/xmin": _float([a["left"] / width for a in annotations]),
                "image/object/bbox/ymin": _float([a["top"] / height for a in annotations]),
                "image/object/bbox/xmax": _float([(a["left"] + a["width"]) / width for a in annotations]),
                "image/object/bbox/ymax": _float([(a["top"] + a["height"]) / height for a in annotations]),
                "image/object/class/text": _bytes([class_map[str(a["class_id"])].encode() for a in annotations]),
                "image/object/class/label": _int64([a["class_id"] + 1 for a in annotations]),
            }
            example = tf.train.Example(features=tf.train.Features(feature=feature))
            writer.write(example.SerializeToString(deterministic=True))


def program(workers: int):
    def run(manifest: Path, images: Path, output: Path) -> None:
        prepare(
            Options(
                manifests=[manifest],
                images=images,
                images_prefix=PREFIX,
                output=output,
                classes=["dent", "scratch"],
                workers=workers,
                max_invalid_fraction=0.0,
            )
        )

    return run


def same_records(warmup: Path) -> int:
    """The records both wrote, compared by image key: the comparison is like for like."""
    import tensorflow as tf

    def read(paths):
        result = {}
        for path in paths:
            for raw in tf.data.TFRecordDataset(str(path)):
                data = raw.numpy()
                result[tf.train.Example.FromString(data).features.feature["image/source_id"].bytes_list.value[0]] = data
        return result

    baseline = read([warmup / "naive-baseline" / "all.tfrecord"])
    ours = read(sorted((warmup / "prepare_data,-1-process").glob("*/*.tfrecord")))
    if baseline != ours:
        sys.exit("the baseline and the program wrote different records: the comparison would not be fair")
    return len(ours)


def timed(fn, manifest: Path, images: Path, output: Path, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(manifest, images, output)
        times.append(time.perf_counter() - start)
    return min(times)


def peak_rss_mb(manifest: Path, images: Path, output: Path) -> float:
    """Peak resident memory of the program run as the Processing job runs it, in a child process."""
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent (which holds TensorFlow here).
    code = (
        "from containers.processing.prepare_data import main; "
        f"main(['--manifest', {str(manifest)!r}, '--images', {str(images)!r}, '--images-prefix', {PREFIX!r}, "
        f"'--output', {str(output)!r}, '--classes', 'dent,scratch', '--no-progress']); "
        "print(next(line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM')))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return int(result.stdout.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "car-damage")
    parser.add_argument("--replicas", type=int, default=4, help="N = replicas x 910 lines (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=5, help="runs per measurement; the fastest is kept (default: %(default)s)")
    args = parser.parse_args()
    if not (args.data / DATASET).is_dir():
        sys.exit(f"no {DATASET} under {args.data}: pass --data (the shared car damage data)")

    with tempfile.TemporaryDirectory(prefix="prepare-bench-") as tmp:
        work = Path(tmp)
        manifests = build_inputs(args.data, work, args.replicas)
        (n, small), (n2, large) = sorted(manifests.items())
        images = work / "images"
        cores = len(os.sched_getaffinity(0))
        contenders = [
            ("raw read", raw_read),
            ("naive baseline", naive_baseline),
            ("prepare_data, 1 process", program(1)),
            (f"prepare_data, {cores} workers", program(cores)),
        ]
        print(f"PrepareData throughput: {DATASET} train replicated to N={n} and 2N={n2} lines; {cores} cores; warm page cache")
        for name, fn in contenders:  # warm-up: imports, page cache
            fn(small, images, work / "warmup" / name.replace(" ", "-"))
        same = same_records(work / "warmup")
        print(f"the baseline and the program wrote the same {same} records, byte for byte")
        marginal = {}
        print(f"{'':26}{'T(N) s':>9}{'T(2N) s':>9}{'ms/image':>10}{'images/s':>10}{'vs baseline':>13}")
        rows = []
        for name, fn in contenders:
            t1 = timed(fn, small, images, work / "out", args.repeats)
            t2 = timed(fn, large, images, work / "out", args.repeats)
            marginal[name] = (t2 - t1) / (n2 - n)
            rows.append((name, t1, t2))
        for name, t1, t2 in rows:
            per = marginal[name]
            ratio = marginal["naive baseline"] / per
            print(f"{name:26}{t1:9.2f}{t2:9.2f}{per * 1e3:10.3f}{1 / per:10.0f}{ratio:12.2f}x")
        rss_small = peak_rss_mb(small, images, work / "rss")
        rss_large = peak_rss_mb(large, images, work / "rss")
        print(f"peak RSS of the program (child process): {rss_small:.0f} MB at N, {rss_large:.0f} MB at 2N")


if __name__ == "__main__":
    main()
