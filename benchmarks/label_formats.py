#!/usr/bin/env python3
"""PrepareData's COCO path beside its Ground Truth path, on the same images, as a ratio in one run.

    .venv/bin/python benchmarks/label_formats.py [--data ../shared/data/car-damage] [--replicas 2] [--repeats 3] [--workers N]

The Bilgi University train split (910 images, 640x640) is replicated under several prefixes (folder
symlinks, so each replica is its own key). Its manifest is written out as one COCO file holding the same
images and boxes. Both inputs go through the whole program (read, hash, check, write TFRecords, report),
alternating, after a warm-up run of each (imports, page cache); the fastest of the repeats counts. The
goal: the COCO path within 10% of the Ground Truth path's time (the reading of labels is a small part of
the job; the images are the same).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from containers.processing.prepare_data import Options, prepare  # noqa: E402

DATASET = "bilgi_university_car_damage"
PREFIX = "s3://example-bucket/car-damage/"
ATTRIBUTE = "car-damage"


def build_inputs(data: Path, work: Path, replicas: int) -> tuple[Path, Path, Path, int]:
    """A Ground Truth manifest and a COCO file of the same replicated images."""
    lines = [json.loads(line) for line in (data / DATASET / "manifests" / "train.manifest").read_text().splitlines()]
    images = work / "images"
    images.mkdir(parents=True)
    for r in range(replicas):
        (images / f"replica-{r}").symlink_to(data, target_is_directory=True)
    manifest = work / "labels.manifest"
    coco = {"images": [], "annotations": [], "categories": [{"id": 0, "name": "dent"}, {"id": 1, "name": "scratch"}]}
    with open(manifest, "w") as out:
        for r in range(replicas):
            for original in lines:
                key = f"replica-{r}/" + original["source-ref"][len(PREFIX) :]
                line = original | {"source-ref": PREFIX + key}
                out.write(json.dumps(line) + "\n")
                size = line[ATTRIBUTE]["image_size"][0]
                image_id = len(coco["images"]) + 1
                coco["images"].append({"id": image_id, "file_name": key, "width": size["width"], "height": size["height"]})
                for a in line[ATTRIBUTE]["annotations"]:
                    bbox = [a["left"], a["top"], a["width"], a["height"]]
                    coco["annotations"].append({"id": len(coco["annotations"]) + 1, "image_id": image_id, "category_id": a["class_id"], "bbox": bbox})
    path = work / "labels.coco.json"
    path.write_text(json.dumps(coco))
    return manifest, path, images, replicas * len(lines)


def run(source: Path, images: Path, output: Path, workers: int) -> dict:
    options = Options([source], images, PREFIX, output, classes=["dent", "scratch"], workers=workers, max_invalid_fraction=0.0)
    return prepare(options)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "car-damage")
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        manifest, coco, images, count = build_inputs(args.data, work, args.replicas)
        contenders = {"groundtruth": manifest, "coco": coco}
        reports = {name: run(path, images, work / f"warm-{name}", args.workers) for name, path in contenders.items()}
        if reports["coco"]["splits"] != reports["groundtruth"]["splits"]:
            sys.exit("the two inputs gave different records: the comparison would not be fair")
        times: dict[str, list[float]] = {name: [] for name in contenders}
        for repeat in range(args.repeats):
            for name, path in contenders.items():
                start = time.perf_counter()
                run(path, images, work / f"{name}-{repeat}", args.workers)
                times[name].append(time.perf_counter() - start)
    best = {name: min(values) for name, values in times.items()}
    print(f"{count} images, {args.workers} worker(s), best of {args.repeats}")
    for name, seconds in best.items():
        print(f"  {name:<12} {seconds:6.2f} s  {count / seconds:7.0f} images/s")
    ratio = best["coco"] / best["groundtruth"]
    print(f"  coco / groundtruth time: {ratio:.3f} (goal: at most 1.10)")


if __name__ == "__main__":
    main()
