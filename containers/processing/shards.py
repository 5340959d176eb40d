"""Writing one TFRecord shard: each image is read once, checked, stored as it is or converted, measured, and
written.

This is a worker's unit of work (see parallel.py); what comes back per image is small: its plan for storing
it and the input statistics of the bytes stored (containers/monitoring/statistics.py, the data's drift
baseline), or the reason it cannot be used. The statistics are computed here, where the bytes already are,
so that no second pass reads the images again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from containers.monitoring.statistics import StatisticsError, input_statistics

from .images import ImageProblem, Plan, Stamp, check_bytes, encode_image, plan_image, read_stamped
from .labelling import Box
from .records import ShardWriter, build_example


@dataclass(frozen=True)
class Entry:
    """One image to write: where it is, its stamp from the hashing pass, the size its boxes refer to, its boxes."""

    path: str
    stamp: Stamp
    key: str
    width: int
    height: int
    boxes: tuple[Box, ...]


@dataclass(frozen=True)
class Outcome:
    """What became of an entry: written (with how it was stored), or not (with the reason)."""

    problem: str | None = None
    plan: Plan | None = None
    statistics: dict | None = None  # input_statistics of the bytes written, upright as the endpoint sees them


def write_shard(path: Path, entries: Sequence[Entry]) -> list[Outcome]:
    """Write `entries` that pass their checks to the TFRecord file `path`, in order; one outcome each."""
    outcomes = []
    with ShardWriter(path.parent, [path.name]) as writer:
        for entry in entries:
            try:
                data = read_stamped(entry.path, entry.stamp)
                check = check_bytes(data)
                plan = plan_image(check, entry.width, entry.height)
                encoded = encode_image(data, plan)
                statistics = input_statistics(encoded)
            except ImageProblem as exc:
                outcomes.append(Outcome(problem=str(exc)))
                continue
            except StatisticsError as exc:  # Pillow cannot read what libjpeg-turbo passed: the endpoint could not either
                outcomes.append(Outcome(problem=f"the input statistics cannot be computed: {exc}"))
                continue
            sha256 = entry.stamp.sha256 if plan.passthrough else None
            writer.write(build_example(encoded=encoded, key=entry.key, width=entry.width, height=entry.height, boxes=entry.boxes, sha256=sha256))
            outcomes.append(Outcome(plan=plan, statistics=statistics))
    return outcomes
