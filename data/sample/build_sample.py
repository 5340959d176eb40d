#!/usr/bin/env python3
"""Rebuilds the bundled sample from the shared car damage data set (kept for provenance; the sample is
committed, so nothing runs this at build or test time).

    python data/sample/build_sample.py ../shared/data/car-damage

Picks a fixed, class-balanced subset of the Bilgi University Car Damage images (CC BY 4.0, see README.md):
batch 1 from its train split and batch 2 from its valid split, labelled a month later, with one batch-1
image labelled again in batch 2 to show how a re-labelled image is merged.
"""

import hashlib
import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATASET = "bilgi_university_car_damage"


def pick(lines: list[dict], per_class: int) -> list[dict]:
    """`per_class` lines holding a dent and as many holding only scratches, by a fixed hash order."""
    ordered = sorted(lines, key=lambda line: hashlib.sha256(line["source-ref"].encode()).hexdigest())
    dents = [line for line in ordered if any(a["class_id"] == 0 for a in line["car-damage"]["annotations"])]
    scratches = [line for line in ordered if all(a["class_id"] == 1 for a in line["car-damage"]["annotations"])]
    return sorted(dents[:per_class] + scratches[:per_class], key=lambda line: line["source-ref"])


def main(shared: Path) -> None:
    source = shared / DATASET
    batches = {
        "batch-1": (pick(_read(source / "manifests" / "train.manifest"), 16), "2024-01-01T00:00:00.000000"),
        "batch-2": (pick(_read(source / "manifests" / "valid.manifest"), 8), "2024-02-01T00:00:00.000000"),
    }
    batches["batch-2"][0].append(json.loads(json.dumps(batches["batch-1"][0][0])))  # labelled again
    (HERE / "manifests").mkdir(exist_ok=True)
    for name, (lines, created) in batches.items():
        with open(HERE / "manifests" / f"{name}.manifest", "w") as out:
            for line in lines:
                line["car-damage-metadata"]["creation-date"] = created
                line["car-damage-metadata"]["job-name"] = f"labeling-job/car-damage-{name}"
                out.write(json.dumps(line) + "\n")
                key = line["source-ref"].removeprefix("s3://example-bucket/car-damage/")
                target = HERE / "images" / key
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(shared / key, target)


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


if __name__ == "__main__":
    main(Path(sys.argv[1]))
