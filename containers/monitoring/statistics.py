"""The statistics the monitor compares, and how: the one home for PrepareData (the data's baseline), Evaluate
(the model's baseline) and the monitor (a window of captured requests and answers).

Input statistics, of one photo (`input_statistics`), computed on a fixed downscale (the longest side
DOWNSCALE pixels; JPEGs are decoded at that scale, so a photo costs a few milliseconds):
- `width`, `height`: the photo's own size in pixels, upright (EXIF orientation applied, as the endpoint does);
- `aspect_ratio`: width / height;
- `format`: the encoded format Pillow reads (JPEG, PNG, WEBP, ...), a category;
- `brightness`: the mean of luma Y = (299 R + 587 G + 114 B) / 1000 (ITU-R BT.601, Pillow's "L"), over 255;
- `contrast`: the standard deviation of that luma, over 255;
- `sharpness`: the variance of the Laplacian of luma (scipy.ndimage.laplace, luma in 0-1), at the downscale;
- `saturation`: the mean of HSV saturation (Pillow's "HSV"), over 255.
Output statistics, of one answer (`output_statistics`), under the endpoint's score threshold and maximum:
- `top_score`: the best detection's score, 0 with none;
- `detections`: how many detections;
- `empty`: whether there is none, a category ("yes"/"no": the share of photos with no detection);
- `class_mix`: the detections per class, a category counted per detection;
- `area_share:<class>`: the share of the photo inside that class's boxes (their union), one statistic per class.

A baseline or a window (`summarize`) keeps each continuous statistic's values (a seeded sample of at most
MAX_SAMPLE) and each category's counts. `compare` tests each statistic of a window against the baseline:
- continuous: the two-sample Kolmogorov-Smirnov test (scipy.stats.ks_2samp); its effect is D, the largest gap
  between the two empirical distributions;
- categories: the chi-squared test of the 2 x K table of counts (scipy.stats.chi2_contingency); its effect is
  Cramer's V (scipy.stats.contingency.association).
A statistic drifted when its p-value is below ALPHA / m (Bonferroni over the m statistics tested, so a window
drawn from the baseline's own distribution raises drift with probability at most ALPHA) and its effect is at
least MIN_EFFECT (with thousands of photos a test finds differences too small to matter). A statistic that
cannot be tested (no values on either side, or the same single value on both) is reported, not drifted.
"""

from __future__ import annotations

import io
import math
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from containers.common.pictures import pixel_box

DOWNSCALE = 256  # the longest side, in pixels, that pixel statistics are computed at
MAX_SAMPLE = 5000  # values kept per continuous statistic: KS on 5000 against a window is exact enough and small
ALPHA = 0.01  # the family-wise chance that a window from the baseline's own distribution raises drift
MIN_EFFECT = {"ks": 0.1, "chi2": 0.1}  # the smallest D or Cramer's V that counts as drift
VERSION = 1  # of the baseline and window documents

INPUT_CONTINUOUS = ("width", "height", "aspect_ratio", "brightness", "contrast", "sharpness", "saturation")
INPUT_CATEGORICAL = ("format",)
OUTPUT_CONTINUOUS = ("top_score", "detections")
OUTPUT_CATEGORICAL = ("empty", "class_mix")
AREA = "area_share:"  # the prefix of the per-class area statistics
KINDS = ("input", "output")
# File names: what PrepareData writes per instance (under its output's STATISTICS_FOLDER), and the two baselines
# Evaluate writes beside evaluation.json, which Register records as the package's DriftCheckBaselines.
STATISTICS_FOLDER = "statistics"
DATA_BASELINE = "data-baseline.json"  # kind "input": the photos PrepareData wrote (train and validation)
MODEL_BASELINE = "model-baseline.json"  # kind "output": the challenger's answers on the validation photos


class StatisticsError(ValueError):
    """A photo, an answer or a document cannot be read; the message says what."""


def input_statistics(data: bytes) -> dict[str, Any]:
    """The input statistics of one encoded photo (module docstring). Raises StatisticsError for bytes Pillow
    cannot decode."""
    from PIL import Image, ImageOps, UnidentifiedImageError
    from scipy import ndimage

    try:
        with Image.open(io.BytesIO(data)) as image:
            kind = image.format or "unknown"
            orientation = image.getexif().get(0x0112, 1)
            width, height = (image.height, image.width) if orientation in (5, 6, 7, 8) else (image.width, image.height)
            image.draft("RGB", (DOWNSCALE, DOWNSCALE))  # JPEG: decode at 1/2, 1/4 or 1/8 scale, no smaller than asked
            small = ImageOps.exif_transpose(image).convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise StatisticsError(f"not a readable photo ({type(exc).__name__}: {exc})") from None
    small.thumbnail((DOWNSCALE, DOWNSCALE), Image.Resampling.BILINEAR)
    luma = np.asarray(small.convert("L"), dtype=np.float64) / 255.0
    saturation = np.asarray(small.convert("HSV"), dtype=np.float64)[..., 1] / 255.0
    return {
        "width": int(width),
        "height": int(height),
        "aspect_ratio": width / height if height else 0.0,
        "format": kind,
        "brightness": float(luma.mean()),
        "contrast": float(luma.std()),
        "sharpness": float(ndimage.laplace(luma).var()),
        "saturation": float(saturation.mean()),
    }


def output_statistics(detections: Sequence[Mapping[str, Any]], width: int, height: int) -> dict[str, Any]:
    """The output statistics of one answer: `detections` as the endpoint answers them (`class`, `score`, and
    `box` in pixels {xmin, ymin, xmax, ymax} of a `width` x `height` photo or `box_normalized`, read by
    pictures.pixel_box), already cut by its score threshold and maximum. The area of a class is the union of its
    boxes, on a grid of at most DOWNSCALE cells a side."""
    scores = [float(d.get("score", 0.0)) for d in detections]
    classes = [str(d.get("class", "")) for d in detections]
    areas: dict[str, float] = {}
    if width > 0 and height > 0:
        scale = DOWNSCALE / max(width, height)
        grid = (max(1, round(height * scale)), max(1, round(width * scale)))
        for name in sorted(set(classes)):
            mask = np.zeros(grid, dtype=bool)
            for detection, label in zip(detections, classes, strict=True):
                if label != name:
                    continue
                try:
                    xmin, ymin, xmax, ymax = pixel_box(detection, width, height)
                except (KeyError, TypeError, ValueError) as exc:
                    raise StatisticsError(f"a detection's box is not {{xmin, ymin, xmax, ymax}} in pixels ({exc})") from None
                rows = slice(max(0, math.floor(ymin * scale)), min(grid[0], math.ceil(ymax * scale)))
                columns = slice(max(0, math.floor(xmin * scale)), min(grid[1], math.ceil(xmax * scale)))
                mask[rows, columns] = True
            areas[name] = float(mask.mean())
    return {
        "top_score": max(scores, default=0.0),
        "detections": len(detections),
        "empty": "yes" if not detections else "no",
        "class_mix": dict(Counter(classes)),
        "areas": areas,
    }


def summarize(rows: Iterable[Mapping[str, Any]], kind: str, *, classes: Sequence[str] = (), seed: int = 0) -> dict[str, Any]:
    """A baseline or window document from per-photo statistics (`input_statistics` or `output_statistics`
    rows): {"version", "kind", "images", "continuous": {name: [values]}, "categorical": {name: {category:
    count}}}. `classes`: the classes whose area share is kept (a class absent from a photo counts as 0); by
    default the classes seen. Continuous values beyond MAX_SAMPLE are sampled with `seed`."""
    if kind not in KINDS:
        raise StatisticsError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    rows = list(rows)
    continuous: dict[str, list[float]] = {}
    categorical: dict[str, Counter] = {}
    if kind == "input":
        for name in INPUT_CONTINUOUS:
            continuous[name] = [float(row[name]) for row in rows]
        for name in INPUT_CATEGORICAL:
            categorical[name] = Counter(str(row[name]) for row in rows)
    else:
        names = list(classes) or sorted({name for row in rows for name in row.get("areas", {})})
        for name in OUTPUT_CONTINUOUS:
            continuous[name] = [float(row[name]) for row in rows]
        for name in names:
            continuous[AREA + name] = [float(row.get("areas", {}).get(name, 0.0)) for row in rows]
        categorical["empty"] = Counter(str(row["empty"]) for row in rows)
        categorical["class_mix"] = Counter()
        for row in rows:
            categorical["class_mix"].update(row.get("class_mix", {}))
    sampler = random.Random(seed)
    return {
        "version": VERSION,
        "kind": kind,
        "images": len(rows),
        "continuous": {name: _sample(values, sampler) for name, values in continuous.items()},
        "categorical": {name: dict(sorted(counts.items())) for name, counts in categorical.items()},
    }


def merge(documents: Sequence[Mapping[str, Any]], *, seed: int = 0) -> dict[str, Any]:
    """One document from several of the same kind (one per PrepareData instance, say)."""
    if not documents:
        raise StatisticsError("nothing to merge: no statistics documents")
    kinds = {check(document)["kind"] for document in documents}
    if len(kinds) != 1:
        raise StatisticsError(f"cannot merge documents of kinds {sorted(kinds)}")
    continuous: dict[str, list[float]] = {}
    categorical: dict[str, Counter] = {}
    for document in documents:
        for name, values in document["continuous"].items():
            continuous.setdefault(name, []).extend(values)
        for name, counts in document["categorical"].items():
            categorical.setdefault(name, Counter()).update(counts)
    sampler = random.Random(seed)
    return {
        "version": VERSION,
        "kind": kinds.pop(),
        "images": sum(int(document["images"]) for document in documents),
        "continuous": {name: _sample(values, sampler) for name, values in sorted(continuous.items())},
        "categorical": {name: dict(sorted(counts.items())) for name, counts in sorted(categorical.items())},
    }


def check(document: Any, where: str = "the statistics document") -> dict[str, Any]:
    """`document` when it is a baseline or window document of this VERSION; StatisticsError naming `where` and
    the key otherwise."""
    if not isinstance(document, Mapping):
        raise StatisticsError(f"{where}: expected a JSON object, found {type(document).__name__}")
    if document.get("version") != VERSION:
        raise StatisticsError(f"{where}: version must be {VERSION}, found {document.get('version')!r}")
    if document.get("kind") not in KINDS:
        raise StatisticsError(f"{where}: kind must be one of {', '.join(KINDS)}, found {document.get('kind')!r}")
    for key, kind in (("images", int), ("continuous", Mapping), ("categorical", Mapping)):
        if not isinstance(document.get(key), kind):
            raise StatisticsError(f"{where}: {key} is missing or not {'a number' if kind is int else 'an object'}")
    return dict(document)


@dataclass(frozen=True)
class Result:
    """One statistic of a window against the baseline (monitor.json's `statistics` entries)."""

    name: str
    kind: str  # "input" or "output"
    test: str  # "ks" or "chi2"
    value: float | None  # the test's effect: KS D, or Cramer's V
    p_value: float | None
    threshold: float  # the p-value below which it drifted: ALPHA over the statistics tested
    min_effect: float
    drifted: bool
    note: str = ""  # why it was not tested, when it was not

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare(baseline: Mapping[str, Any], window: Mapping[str, Any], *, alpha: float = ALPHA) -> list[Result]:
    """Each statistic of `window` against `baseline`, two documents of one kind (module docstring). `alpha` is
    family-wise for this call: a caller testing several kinds passes each its share."""
    from scipy import stats
    from scipy.stats.contingency import association

    baseline, window = check(baseline, "the baseline"), check(window, "the window")
    if baseline["kind"] != window["kind"]:
        raise StatisticsError(f"the baseline holds {baseline['kind']} statistics, the window {window['kind']} statistics")
    kind = baseline["kind"]
    continuous = [name for name in baseline["continuous"] if name in window["continuous"]]
    categorical = [name for name in baseline["categorical"] if name in window["categorical"]]
    threshold = alpha / max(1, len(continuous) + len(categorical))
    results = []
    for name in continuous:
        expected, seen = np.asarray(baseline["continuous"][name], float), np.asarray(window["continuous"][name], float)
        if not len(expected) or not len(seen):
            results.append(Result(name, kind, "ks", None, None, threshold, MIN_EFFECT["ks"], False, "no values on one side"))
            continue
        test = stats.ks_2samp(expected, seen)
        drifted = bool(test.pvalue < threshold and test.statistic >= MIN_EFFECT["ks"])
        results.append(Result(name, kind, "ks", float(test.statistic), float(test.pvalue), threshold, MIN_EFFECT["ks"], drifted))
    for name in categorical:
        categories = sorted(set(baseline["categorical"][name]) | set(window["categorical"][name]))
        table = np.array([[baseline["categorical"][name].get(c, 0) for c in categories], [window["categorical"][name].get(c, 0) for c in categories]])
        table = table[:, table.sum(axis=0) > 0]
        if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
            note = "one category on both sides" if table.shape[1] < 2 else "no counts on one side"
            results.append(Result(name, kind, "chi2", None, None, threshold, MIN_EFFECT["chi2"], False, note))
            continue
        p_value = float(stats.chi2_contingency(table, correction=False).pvalue)
        effect = float(association(table, method="cramer"))
        drifted = bool(p_value < threshold and effect >= MIN_EFFECT["chi2"])
        results.append(Result(name, kind, "chi2", effect, p_value, threshold, MIN_EFFECT["chi2"], drifted))
    return results


class Atypicality:
    """How unlike a baseline a photo's continuous statistics are, the baseline read once (sorted) for the many
    photos of a window: calling it with a photo's row gives -log10 of the smallest two-sided empirical tail share
    of its values among the baseline's (0: typical), and which statistic makes it so. The shares are
    scipy.stats.percentileofscore's "weak" and "strict" counts, found by binary search in the sorted values."""

    def __init__(self, baseline: Mapping[str, Any]):
        continuous = check(baseline, "the baseline")["continuous"]
        self.sorted = {name: np.sort(np.asarray(values, dtype=float)) for name, values in continuous.items() if values}

    def __call__(self, row: Mapping[str, Any]) -> tuple[float, str]:
        worst, why = 1.0, ""
        for name, values in self.sorted.items():
            if name not in row:
                continue
            value = round(float(row[name]), 6)  # as the documents keep values (_sample)
            count = len(values)
            below = np.searchsorted(values, value, side="right") / count  # the share at or below it
            above = 1.0 - np.searchsorted(values, value, side="left") / count  # the share at or above it
            tail = max(min(below, above) * 2.0, 1.0 / (count + 1))  # no tail is thinner than one value in the sample
            if tail < worst:
                side = "below" if below < above else "above"
                worst, why = tail, f"{name} {value:.4g} is {side} {100 * (1 - min(below, above)):.1f}% of the baseline"
        return float(-math.log10(worst)), why


def atypicality(baseline: Mapping[str, Any], row: Mapping[str, Any]) -> tuple[float, str]:
    """One photo's Atypicality against `baseline` (for many photos, make one Atypicality and call it)."""
    return Atypicality(baseline)(row)


def _sample(values: list[float], sampler: random.Random) -> list[float]:
    if len(values) <= MAX_SAMPLE:
        return [round(v, 6) for v in values]
    return [round(v, 6) for v in sampler.sample(values, MAX_SAMPLE)]
