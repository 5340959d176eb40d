"""Bootstrap intervals of the COCO figures over the validation images, without running COCOeval again.

A resample draws as many images as the validation set holds, with replacement. Scored by pycocotools, an
image drawn twice would need a new image id with its ground truth and detections copied: COCO matches
detections to ground truth within one image, so each copy's matches are the original image's. That is what
`ImageTable` keeps, once, from the full evaluation (COCOeval's per-image results, `evalImgs`, for all areas
and at most 100 detections): per class and image, the detections' scores, whether each is a true or false
positive at each IoU threshold, and the image's ground-truth boxes. A resample's figures are then COCOeval's
`accumulate` and `summarize` over the drawn images' rows, in the order pycocotools would see them: the drawn
images in validation order, a repeated image's copies one after the other (as if each copy's new id followed
the original's). Only the true positives' ranks in that order are computed: the interpolated precision is
read at true positives (`ImageTable._precision`), so a resample costs in proportion to them and to the runs of
tied rows, not to every detection. tests/containers/evaluation/test_bootstrap.py holds the figures equal to
pycocotools' own on the full set and on resamples with duplicated images, ties and ignored detections.

The paired bootstrap of the champion's lead scores both models on the same drawn images; the interval is the
percentile one ([2.5%, 97.5%] of the resampled figures). A figure that is undefined in a resample (no
ground-truth box of the class was drawn) is left out of that figure's interval.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .intervals import CONFIDENCE, DEFAULT_SEED, MIN_RESAMPLES

AREA = "all"
MAX_DETECTIONS = 100


@dataclass(frozen=True)
class Settings:
    """How many resamples, and the seed that draws them."""

    resamples: int = MIN_RESAMPLES
    seed: int = DEFAULT_SEED


@dataclass(frozen=True)
class ClassRows:
    """One class's detections over the validation images in the order COCOeval's `accumulate` ranks them (score,
    best first; a tie in validation order, then in the image's own order), kept as what the interpolated
    precision reads: the runs of rows of one image with one score (where each starts, its length, its image);
    the true positives and the rows COCO ignores (neither true nor false positive), each as its threshold, its
    run and its place in the run; and each image's ground-truth boxes that count."""

    run_starts: np.ndarray
    run_lengths: np.ndarray
    run_images: np.ndarray
    hits: Marks
    ignored: Marks
    truths: np.ndarray

    @classmethod
    def of(cls, scores: list[np.ndarray], true_positive: list[np.ndarray], false_positive: list[np.ndarray], truths: list[int]) -> ClassRows:
        """From each image's rows (as COCOeval keeps them, best first: scores, and [T, D] true and false
        positives) and its ground-truth boxes that count."""
        images = np.repeat(np.arange(len(scores)), [len(s) for s in scores])
        flat = np.concatenate(scores)
        # pycocotools sorts the concatenated scores with a stable mergesort: ties keep the concatenation order.
        order = np.argsort(-flat, kind="mergesort")
        flat, images = flat[order], images[order]
        tp = np.concatenate(true_positive, axis=1)[:, order]
        ignored = ~tp & ~np.concatenate(false_positive, axis=1)[:, order]
        starts = np.flatnonzero(np.r_[True, (flat[1:] != flat[:-1]) | (images[1:] != images[:-1])]) if flat.size else np.zeros(0, np.int64)
        # The runs after the last one holding a true positive come after every true positive in any resample: no
        # precision that counts is read there. Most of a detector's 100 boxes per image are such low-scoring misses.
        hits = np.flatnonzero(tp.any(axis=0))
        kept = int(np.searchsorted(starts, hits[-1], side="right")) if hits.size else 0
        end = int(starts[kept]) if kept < len(starts) else flat.size
        starts = starts[:kept]
        return cls(
            run_starts=starts,
            run_lengths=np.diff(np.r_[starts, end]).astype(np.int64),
            run_images=images[starts],
            hits=Marks.of(tp[:, :end], starts),
            ignored=Marks.of(ignored[:, :end], starts),
            truths=np.asarray(truths, dtype=np.int64),
        )

    def ranks(self, marks: Marks, counts: np.ndarray) -> list[np.ndarray]:
        """Per IoU threshold, where the marked rows stand (every copy, from 0, ascending) in the ranking of the
        images drawn `counts` times: the drawn images in validation order, a repeated image's copies one after
        the other, so that a run of one image's rows with one score comes whole once per copy."""
        repeats = counts[self.run_images]
        lengths = self.run_lengths * repeats
        run_start = np.cumsum(lengths) - lengths  # where each run's copies begin
        copies = repeats[marks.runs]
        row = np.repeat(np.arange(len(marks.runs)), copies)
        copy = np.arange(int(copies.sum())) - np.repeat(np.cumsum(copies) - copies, copies)
        at = run_start[marks.runs][row] + copy * self.run_lengths[marks.runs][row] + marks.offsets[row]
        span = int(lengths.sum()) + 1
        keys = np.sort(marks.thresholds[row] * span + at)  # by threshold, then rank
        bounds = np.searchsorted(keys, np.arange(marks.count + 1) * span)
        return [keys[bounds[t] : bounds[t + 1]] - t * span for t in range(marks.count)]


@dataclass(frozen=True)
class Marks:
    """Rows of a class's ranking marked at each IoU threshold (true positives, or ignored rows): each mark's
    threshold, run and place in its run; `count` thresholds."""

    thresholds: np.ndarray
    runs: np.ndarray
    offsets: np.ndarray
    count: int

    @classmethod
    def of(cls, marked: np.ndarray, run_starts: np.ndarray) -> Marks:
        thresholds, rows = np.nonzero(marked)  # by threshold, then row
        runs = np.searchsorted(run_starts, rows, side="right") - 1
        return cls(thresholds.astype(np.int64), runs, rows - run_starts[runs], marked.shape[0])


@dataclass(frozen=True)
class ImageTable:
    """COCOeval's per-image results, per class (by label id, with its name), over `images` images."""

    images: int
    classes: dict[int, str]
    rows: dict[int, ClassRows]
    iou_thresholds: np.ndarray
    recall_thresholds: np.ndarray

    @classmethod
    def from_cocoeval(cls, evaluation, classes: Mapping[int, str]) -> ImageTable:
        """The table of a COCOeval that has run `evaluate()` (image ids in validation order)."""
        params = evaluation.params
        image_ids, category_ids = list(params.imgIds), list(params.catIds)
        areas = len(params.areaRng)
        area = list(params.areaRngLbl).index(AREA)
        if max(params.maxDets) != MAX_DETECTIONS:
            raise ValueError(f"COCOeval kept {max(params.maxDets)} detections per image, not {MAX_DETECTIONS}")
        thresholds = len(params.iouThrs)
        rows = {}
        for k, label in enumerate(category_ids):
            if label not in classes:
                continue
            first = (k * areas + area) * len(image_ids)
            results = evaluation.evalImgs[first : first + len(image_ids)]
            scores, true_positive, false_positive, truths = [], [], [], []
            for result in results:
                if result is None:  # neither ground truth nor detections of the class in this image
                    scores.append(np.zeros(0))
                    true_positive.append(np.zeros((thresholds, 0), bool))
                    false_positive.append(np.zeros((thresholds, 0), bool))
                    truths.append(0)
                    continue
                matched = np.asarray(result["dtMatches"]) != 0
                ignored = np.asarray(result["dtIgnore"]).astype(bool)
                scores.append(np.asarray(result["dtScores"], dtype=np.float64))
                true_positive.append(matched & ~ignored)
                false_positive.append(~matched & ~ignored)
                truths.append(int(np.count_nonzero(np.asarray(result["gtIgnore"]) == 0)))
            rows[label] = ClassRows.of(scores, true_positive, false_positive, truths)
        return cls(
            len(image_ids),
            dict(classes),
            rows,
            np.asarray(params.iouThrs, dtype=np.float64),
            np.asarray(params.recThrs, dtype=np.float64),
        )

    @classmethod
    def empty(cls, classes: Mapping[int, str], images: int) -> ImageTable:
        """The table of a set with nothing to measure (no image, or no ground-truth box): every figure undefined."""
        return cls(images, dict(classes), {}, np.linspace(0.5, 0.95, 10), np.linspace(0.0, 1.0, 101))

    def names(self) -> list[str]:
        """The figures' names, in evaluation.json's order."""
        return ["mAP", "mAP_50", *(f"AP/{name}" for name in self.classes.values())]

    def figures(self, counts: np.ndarray) -> dict[str, np.ndarray]:
        """mAP, mAP@0.5 and each class's AP for each row of `counts` ([resamples, images]: how often each image
        was drawn); NaN where a figure is undefined."""
        counts = np.atleast_2d(counts)
        found = {name: np.full(len(counts), np.nan) for name in self.names()}
        iou_50 = int(np.argmin(np.abs(self.iou_thresholds - 0.5)))
        for r, drawn in enumerate(counts):
            precision = -np.ones((len(self.iou_thresholds), len(self.recall_thresholds), len(self.classes)))
            for k, (label, name) in enumerate(self.classes.items()):
                if label in self.rows:
                    precision[:, :, k] = self._precision(self.rows[label], drawn)
                found[f"AP/{name}"][r] = _mean_defined(precision[:, :, k])
            found["mAP"][r] = _mean_defined(precision)
            found["mAP_50"][r] = _mean_defined(precision[iou_50])
        return found

    def _precision(self, rows: ClassRows, drawn: np.ndarray) -> np.ndarray:
        """COCOeval.accumulate's interpolated precision [T, R] of one class over the drawn images; -1 where the
        drawn images hold no ground-truth box of it. The interpolated precision at a recall level is the best
        precision at that recall or beyond, which is always found at a true positive (a false positive only
        lowers it); at the k-th true positive, with n rows that count up to it, it is k / n. So only the true
        positives' ranks are needed, and the figures are computed with pycocotools' own operations."""
        thresholds, recalls = len(self.iou_thresholds), len(self.recall_thresholds)
        truths = int(np.dot(rows.truths, drawn))
        if truths == 0:
            return -np.ones((thresholds, recalls))
        interpolated = np.zeros((thresholds, recalls))
        hits = rows.ranks(rows.hits, drawn)
        ignored = rows.ranks(rows.ignored, drawn) if rows.ignored.runs.size else None
        for t, ranked in enumerate(hits):
            if not ranked.size:
                continue  # no true positive: precision 0 at every recall level
            # Among the rows that count: those COCO ignores count neither way.
            ranks = ranked if ignored is None else ranked - np.searchsorted(ignored[t], ranked)
            found = np.arange(1, ranks.size + 1)
            tp, fp = found.astype(float), (ranks + 1 - found).astype(float)
            precision = np.maximum.accumulate((tp / (fp + tp + np.spacing(1)))[::-1])[::-1]
            at = np.searchsorted(tp / truths, self.recall_thresholds, side="left")
            inside = at < ranks.size  # recall levels never reached keep precision 0
            interpolated[t, inside] = precision[at[inside]]
        return interpolated


def draw(images: int, settings: Settings) -> np.ndarray:
    """How often each image is drawn in each resample ([resamples, images]), from the seed alone."""
    generator = np.random.default_rng(settings.seed)
    picks = generator.integers(0, images, size=(settings.resamples, images)) if images else np.zeros((settings.resamples, 0), np.int64)
    counts = np.zeros((settings.resamples, images), dtype=np.int64)
    np.add.at(counts, (np.arange(settings.resamples)[:, None], picks), 1)
    return counts


def percentile_interval(values: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float | None, float | None]:
    """The percentile interval of the defined resampled values; (None, None) when none is defined."""
    defined = values[~np.isnan(values)]
    if not defined.size:
        return None, None
    tail = (1 - confidence) / 2
    low, high = np.quantile(defined, [tail, 1 - tail])
    return float(low), float(high)


def _mean_defined(values: np.ndarray) -> float:
    """COCOeval.summarize's mean over the defined (> -1) precisions; NaN when there is none."""
    defined = values[values > -1]
    return float(np.mean(defined)) if defined.size else np.nan
