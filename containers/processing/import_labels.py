"""Labels in any format PrepareData reads -> one SageMaker Ground Truth augmented manifest.

For inspection, for tools that take manifests, or as the input of a Ground Truth bounding-box adjustment
job. The same readers, class rules and merge rule as PrepareData; every record is written, quarantined with
its reason or merged, and `<output>.report.json` says which. With an images folder each labelling is checked
against its image's header (and YOLO / VIA, which record no size, take it from there); without one, a
record's own size stands for the image's.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from containers.processing import formats
from containers.processing.formats import Context, Refusal
from containers.processing.formats.groundtruth import OBJECT_DETECTION_TYPE
from containers.processing.images import ImageProblem, Stamp, stamp_file
from containers.processing.labelling import Classes, LabelMap, Record
from containers.processing.ledger import Ledger, choose

DEFAULT_ATTRIBUTE = "labels"


@dataclass(frozen=True)
class ImportOptions:
    inputs: Sequence[Path]
    images_prefix: str
    output: Path
    label_format: str = formats.AUTO
    classes: list[str] | None = None
    class_map: dict[str, str] = field(default_factory=dict)
    images: Path | None = None
    via_attribute: str | None = None
    label_attribute: str = DEFAULT_ATTRIBUTE


def import_labels(options: ImportOptions) -> dict:
    """Write the manifest and its report; returns the report. Raises `InputError` for an unusable input."""
    classes = Classes(options.classes, options.class_map)
    label_map = LabelMap(options.classes)
    inputs = formats.inputs(list(options.inputs), options.label_format)
    ledger = Ledger([str(source.path) for source in inputs])
    context = Context(options.images_prefix, images=options.images, via_attribute=options.via_attribute, classes=classes, label_map=label_map)
    records: list[tuple[Record, int]] = []
    per_input: Counter = Counter()
    for source in inputs:
        for item in formats.read(source, context):
            ledger.records_read += 1
            per_input[str(source.path)] += 1
            if isinstance(item, Refusal):
                ledger.quarantine(item.source, item.reason, item.source_ref)
            else:
                if item.note:
                    ledger.note(item.source, item.note)
                records.append((item, ledger.records_read))
    stamps: dict[str, Stamp | ImageProblem | None] = {}
    for record, _ in records:
        if record.key not in stamps:
            stamps[record.key] = _stamp(options.images, record.key) if options.images is not None else None
    chosen = choose(records, stamps, ledger, options.images_prefix, classes, label_map)

    class_map = {str(label - 1): name for label, name in label_map.items()}
    options.output.parent.mkdir(parents=True, exist_ok=True)
    with open(options.output, "w", encoding="utf-8") as out:
        for image, _ in sorted(chosen, key=lambda pair: pair[0].key):
            out.write(json.dumps(_line(image, class_map, options.label_attribute)) + "\n")
    report = {
        "output": str(options.output),
        "records_read": ledger.records_read,
        "images_written": len(chosen),
        "class_map": class_map,
        "dropped_boxes": dict(sorted(Counter(name for image, _ in chosen for name in image.dropped).items())),
        "inputs": [{"path": str(s.path), "format": s.format, "records": per_input[str(s.path)], "sha256": s.sha256()} for s in inputs],
        "quarantined": ledger.quarantined,
        "merged": ledger.merged_entries(),
        "notes": ledger.notes,
    }
    if report["images_written"] + len(report["quarantined"]) + len(report["merged"]) != ledger.records_read:
        raise RuntimeError("record accounting is off")
    report_path = options.output.with_name(options.output.name + ".report.json")
    report_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def _stamp(images: Path, key: str) -> Stamp | ImageProblem:
    try:
        return stamp_file(images / key)
    except ImageProblem as exc:
        return exc


def _line(image, class_map: dict[str, str], attribute: str) -> dict:
    """One Ground Truth bounding-box output line (AWS docs: "Bounding box job output")."""
    annotations = [
        {
            "class_id": box.label - 1,
            "left": round(box.xmin, 2),
            "top": round(box.ymin, 2),
            "width": round(box.width, 2),
            "height": round(box.height, 2),
        }
        for box in image.boxes
    ]
    metadata = {
        "objects": [{"confidence": 1.0} for _ in annotations],
        "class-map": class_map,
        "type": OBJECT_DETECTION_TYPE,
        "human-annotated": "yes",
        "job-name": f"labeling-job/imported-from-{image.format}",
    }
    if image.creation_date:
        metadata["creation-date"] = image.creation_date.removesuffix("+00:00")
    return {
        "source-ref": image.source_ref,
        attribute: {"image_size": [{"width": image.width, "height": image.height, "depth": 3}], "annotations": annotations},
        f"{attribute}-metadata": metadata,
    }
