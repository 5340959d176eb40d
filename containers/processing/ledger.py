"""Where every record of the labels goes (the ledger), and the merge rule that picks one labelling per image.

PrepareData and `cardamage import-labels` share both: every record read is written, quarantined with a
reason, or merged into another record of the same image, and the report says which and why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from containers.processing.images import ImageProblem, Stamp
from containers.processing.labelling import Classes, LabelledImage, LabelMap, Record, RecordError, Source, newest_first, resolve, source_ref


@dataclass
class Ledger:
    """Where every record went: written, quarantined (with a reason) or merged into another record of the
    same image. Records are quarantined at several stages (reading, choosing, writing); `quarantined`
    lists them by input, then record."""

    inputs: list[str]
    records_read: int = 0
    lines_read: int = 0  # of Ground Truth manifests
    merged: list[dict] = field(default_factory=list)
    notes: list[dict] = field(default_factory=list)
    _quarantined: list[tuple[tuple[int, int], dict]] = field(default_factory=list)
    _positions: dict[str, int] = field(default_factory=dict)

    def quarantine(self, source: Source, reason: str, source_ref: str | None = None) -> None:
        entry = source.entry() | {"reason": reason}
        if source_ref:
            entry["source_ref"] = source_ref
        if len(self._positions) != len(self.inputs):
            self._positions = {name: index for index, name in enumerate(self.inputs)}
        self._quarantined.append(((self._positions[source.manifest], source.line), entry))

    def note(self, source: Source, note: str) -> None:
        self.notes.append(source.entry() | {"note": note})

    @property
    def quarantined(self) -> list[dict]:
        return [entry for _, entry in sorted(self._quarantined, key=lambda item: item[0])]

    def image_refused(self, key: str, reason: str) -> None:
        """The image itself is unusable: the labellings merged into its chosen one are quarantined too."""
        kept = []
        for entry in self.merged:
            if entry["key"] != key:
                kept.append(entry)
                continue
            source = Source(entry["manifest"], entry["_position"], entry.get("record", ""))
            reason_here = f"{reason} ({key}); another labelling of this image was chosen, but the image is unusable"
            self.quarantine(source, reason_here, entry.get("source_ref"))
        self.merged = kept

    def merged_entries(self) -> list[dict]:
        return [{k: v for k, v in entry.items() if not k.startswith("_")} for entry in self.merged]


def choose(
    records: list[tuple[Record, int]],
    stamps: Mapping[str, Stamp | ImageProblem | None],
    ledger: Ledger,
    prefix: str,
    classes: Classes,
    label_map: LabelMap,
) -> list[tuple[LabelledImage, Stamp | None]]:
    """One labelling per image: the newest that can be used (the merge rule, `newest_first`). A newer labelling
    that cannot be used (its size does not fit the file, a box is degenerate) is quarantined and the next
    newest is tried, so a refused labelling never costs a usable one; the report says which was used.

    `stamps` holds each image's stamp (its header gives the size the labels must fit), the problem that
    makes it unusable, or None when no image was read (`cardamage import-labels` without an images folder):
    then a record's own size stands for the image's, and a record without one cannot be used."""
    by_key: dict[str, list[tuple[Record, int]]] = {}
    for record, order in records:
        by_key.setdefault(record.key, []).append((record, order))
    chosen = []
    for key in sorted(by_key):
        versions = newest_first(by_key[key])
        stamp = stamps[key]
        if isinstance(stamp, ImageProblem):
            for record, _ in versions:
                ledger.quarantine(record.source, f"{stamp} ({key})", source_ref(prefix, key))
            continue
        winner: LabelledImage | None = None
        refused: list[Record] = []
        for record, order in versions:  # each is checked, so an unusable older labelling is reported as such
            try:
                stored, orientation = _header(stamp, record)
                image = resolve(record, order, stored, orientation, prefix, classes, label_map)
            except RecordError as exc:
                refused.append(record)
                ledger.quarantine(record.source, f"{exc} ({key})", source_ref(prefix, key))
                continue
            if winner is None:
                winner = image
                if refused:
                    newer = ", ".join(str(r.source) for r in refused)
                    ledger.note(winner.source, f"used for {key}: the newer labelling(s) {newer} could not be used (see quarantined)")
                continue
            dated = image.creation_date and winner.creation_date and image.creation_date != winner.creation_date
            rule = "newer labelling date" if dated else "later in the input: the same date, or no date to compare"
            ledger.merged.append(
                record.source.entry()
                | {
                    "key": key,
                    "reason": f"same image as {winner.source} ({key}); the labels of {winner.source} were kept ({rule})",
                    "kept": winner.source.entry(),
                    "_position": record.source.line,
                    "source_ref": source_ref(prefix, key),
                }
            )
        if winner is None:
            continue
        chosen.append((winner, stamp))
    return chosen


def _header(stamp: Stamp | None, record: Record) -> tuple[tuple[int, int], int]:
    if stamp is not None:
        return (stamp.width, stamp.height), stamp.orientation
    if record.size is None:
        raise RecordError(f"{record.format} labels do not record the image's size: give the images folder to read it from the file")
    return record.size, 1


def where(entry: dict) -> str:
    return f"{entry['manifest']}:{entry['line']}" if "line" in entry else f"{entry['manifest']} ({entry['record']})"
