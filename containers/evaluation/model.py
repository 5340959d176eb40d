"""The model under evaluation: finding it (a `model.tar.gz`, a folder holding one, or an extracted model
folder), reading its class names, and running its `serving_default` signature on encoded images.

A model folder is what training writes to SM_MODEL_DIR: `1/` (the SavedModel, as TF Serving loads it) and
`model.json` (its class names, variant and hyperparameters), with `label_map.pbtxt`, `pipeline.config` and
`code/` beside them. SageMaker packs that folder into `model.tar.gz` with the files at the archive's root,
and a Processing input downloads the archive itself.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from containers.common import archives
from containers.inference.inference import read_classes

from .errors import EvaluationError, brief

SAVED_MODEL = "1"
METADATA = "model.json"
SIGNATURE = "serving_default"
OUTPUTS = ("detection_boxes", "detection_scores", "detection_classes", "num_detections")
TARBALL_SUFFIXES = (".tar.gz", ".tgz", ".tar")


@dataclass(frozen=True)
class ModelSource:
    """Where the model came from (for the report and error messages) and the folder it is in now."""

    folder: Path
    packaging: str  # "model.tar.gz" or "folder"
    archive: Path | None = None

    def describe(self) -> str:
        return str(self.archive) if self.archive else str(self.folder)


@dataclass(frozen=True)
class Detections:
    """One image's detections, best first: boxes normalised (ymin, xmin, ymax, xmax) as the model gives them,
    scores, and label-map ids."""

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    classes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.scores)


def locate_model(path: Path, work: Path) -> ModelSource:
    """The model folder for `--model`: a tarball is extracted under `work` (which the caller deletes).
    Raises `EvaluationError` when nothing usable is there, saying what was expected."""
    if not path.exists():
        raise EvaluationError(f"{path}: no model found: no such file or folder (pass --model: a model.tar.gz or a model folder)")
    archive = archive_of(path)
    if archive is None:
        return _checked(ModelSource(folder=path, packaging="folder"))
    folder = extract_model(archive, work / "model")
    return _checked(ModelSource(folder=folder, packaging="model.tar.gz", archive=archive))


def archive_of(path: Path) -> Path | None:
    """The model archive `--model` names (the file, or the one archive of a folder), or None for an extracted
    model folder. Raises `EvaluationError` for a folder with no archive or several."""
    if path.is_dir() and (path / SAVED_MODEL).is_dir():
        return None
    return _archive_in(path) if path.is_dir() else path


def _archive_in(folder: Path) -> Path:
    """The model archive in a folder (a Processing input downloads the training job's model.tar.gz there)."""
    if (folder / "model.tar.gz").is_file():
        return folder / "model.tar.gz"
    archives = sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(TARBALL_SUFFIXES))
    if len(archives) == 1:
        return archives[0]
    if archives:
        raise EvaluationError(f"{folder}: several model archives ({', '.join(p.name for p in archives)}); name one with --model")
    raise EvaluationError(f"{folder}: no model found: expected model.tar.gz or a model folder holding {SAVED_MODEL}/ (the SavedModel) and {METADATA}")


def extract_model(archive: Path, target: Path) -> Path:
    """Extract a model archive safely into `target` and return the model folder in it: the archive's root
    (as SageMaker packs SM_MODEL_DIR), or its one top-level folder when it was packed with one. A member that
    is a link or a device, or whose name is absolute or has `..`, refuses the archive before anything is
    written (containers/common/archives.py)."""
    if not tarfile.is_tarfile(archive):
        raise EvaluationError(f"{archive}: not a tar archive (expected model.tar.gz or a model folder)")
    try:
        archives.extract_tar(archive, target)
    except archives.ArchiveError as exc:
        raise EvaluationError(str(exc)) from None
    if (target / SAVED_MODEL).is_dir():
        return target
    entries = [p for p in target.iterdir() if not p.name.startswith(".")]
    if len(entries) == 1 and (entries[0] / SAVED_MODEL).is_dir():
        return entries[0]
    return target


def _checked(model: ModelSource) -> ModelSource:
    saved_model = model.folder / SAVED_MODEL
    if not any((saved_model / name).is_file() for name in ("saved_model.pb", "saved_model.pbtxt")):
        raise EvaluationError(f"{model.describe()}: no {SAVED_MODEL}/ SavedModel (expected {SAVED_MODEL}/saved_model.pb, as training exports it)")
    if not (model.folder / METADATA).is_file():
        raise EvaluationError(f"{model.describe()}: no {METADATA} beside the SavedModel (training writes it there)")
    return model


def read_metadata(folder: Path) -> tuple[dict[int, str], dict]:
    """The model's class names (id -> name) and, for the report, its whole `model.json` (variant, steps,
    hyperparameters). The names are read by the endpoint handler's own reader, so evaluation and the
    endpoint name a class alike."""
    path = folder / METADATA
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise EvaluationError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        classes = read_classes(text, str(path))
    except ValueError as exc:
        raise EvaluationError(str(exc)) from None
    return classes, json.loads(text)


class Detector:
    """The exported model's `serving_default` signature, called on batches of encoded images."""

    def __init__(self, saved_model: Path):
        import tensorflow as tf

        try:
            self._loaded = tf.saved_model.load(str(saved_model))
        except (OSError, ValueError, tf.errors.OpError) as exc:
            raise EvaluationError(f"{saved_model}: the SavedModel cannot be loaded ({brief(str(exc))})") from None
        signature = getattr(self._loaded, "signatures", {}).get(SIGNATURE)
        if signature is None:
            raise EvaluationError(f"{saved_model}: the SavedModel has no {SIGNATURE!r} signature")
        inputs = signature.structured_input_signature[1]
        spec = inputs.get("input_tensor")
        if spec is None or spec.dtype != tf.string:
            raise EvaluationError(f"{saved_model}: {SIGNATURE} must take input_tensor, a [N] tf.string of encoded images (it takes {inputs})")
        self._signature = signature
        self._tf = tf

    def __call__(self, encoded: Sequence[bytes], keys: Sequence[str] = ()) -> list[Detections]:
        """Detections for each image; `keys` name the images in an error."""
        tf = self._tf
        try:
            outputs = self._signature(input_tensor=tf.constant(list(encoded), dtype=tf.string))
        except (tf.errors.OpError, ValueError) as exc:
            names = ", ".join(keys) or f"{len(encoded)} image(s)"
            raise EvaluationError(f"the model failed on a batch holding {names} ({brief(str(exc))})") from None
        missing = [name for name in OUTPUTS if name not in outputs]
        if missing:
            raise EvaluationError(f"the model's {SIGNATURE} signature does not return {', '.join(missing)}")
        arrays = {name: outputs[name].numpy() for name in OUTPUTS}
        return [detections_from_outputs(arrays, index) for index in range(len(encoded))]


def detections_from_outputs(outputs: Mapping[str, np.ndarray], index: int) -> Detections:
    """Image `index`'s detections from the signature's batched outputs: its first `num_detections` rows,
    those scoring above 0 (the rest is padding), classes as integer label-map ids."""
    count = int(outputs["num_detections"][index])
    scores = np.asarray(outputs["detection_scores"][index][:count], dtype=np.float64)
    keep = scores > 0
    boxes = np.asarray(outputs["detection_boxes"][index][:count], dtype=np.float64).reshape(-1, 4)[keep]
    classes = np.rint(np.asarray(outputs["detection_classes"][index][:count], dtype=np.float64))[keep].astype(np.int64)
    return Detections(boxes=boxes, scores=scores[keep], classes=classes)
