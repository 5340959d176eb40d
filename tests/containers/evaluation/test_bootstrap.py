"""The bootstrap intervals (containers/evaluation/bootstrap.py): a resample's figures from the per-image table
equal pycocotools' own on the same images, the full set and a resample with duplicated images alike (each
copy a new image id with its ground truth and detections copied); the seed alone decides the resamples; and
two known answers: identical or equally good models give a lead interval that holds 0, a much better one an
interval that excludes it."""

from __future__ import annotations

import numpy as np
import pytest

from containers.evaluation.bootstrap import ImageTable, Settings, draw, percentile_interval
from containers.evaluation.coco import coco_detections, coco_ground_truth, compute_metrics, run_cocoeval
from containers.evaluation.intervals import ReportIntervals, format_interval, intervals_section
from containers.evaluation.model import Detections
from containers.evaluation.validation import GroundTruth

CLASSES = {1: "dent", 2: "scratch", 3: "crack"}  # no image holds a crack: its AP is undefined everywhere


def synthetic(images: int, seed: int, *, hit_rate: float = 0.7) -> tuple[list[GroundTruth], list[Detections]]:
    """Random dents and scratches, and a model that finds about `hit_rate` of them (boxes jittered) and adds
    false boxes, some of which COCO ignores; scores rounded to one decimal, so that ties across and within
    images are common."""
    rng = np.random.default_rng(seed)
    truths, found = [], []
    for index in range(images):
        boxes, labels, rows = [], [], []
        for _ in range(rng.integers(0, 4)):
            x, y = rng.uniform(0, 0.6, 2)
            w, h = rng.uniform(0.05, 0.4, 2)
            boxes.append((x, y, x + w, y + h))
            labels.append(int(rng.integers(1, 3)))
            if rng.random() < hit_rate:
                jitter = rng.normal(0, 0.02, 4)
                rows.append((labels[-1], round(rng.uniform(0.3, 1.0), 1), (x + jitter[0], y + jitter[1], x + w + jitter[2], y + h + jitter[3])))
        for _ in range(rng.integers(0, 3)):
            x, y = rng.uniform(0, 0.8, 2)
            rows.append((int(rng.integers(1, 3)), round(rng.uniform(0.1, 0.9), 1), (x, y, x + 0.1, y + 0.1)))
        if rng.random() < 0.2:  # a box with a negative area: outside every area range, so COCO ignores it unmatched
            x, y = rng.uniform(0.2, 0.8, 2)
            rows.append((int(rng.integers(1, 3)), round(rng.uniform(0.1, 0.9), 1), (x, y, x - 0.1, y + 0.1)))
        truths.append(GroundTruth(f"{index}.jpg", 320, 240, tuple(boxes), tuple(labels)))
        found.append(_detections(rows))
    return truths, found


def _detections(rows) -> Detections:
    return Detections(
        boxes=np.array([[c[1], c[0], c[3], c[2]] for _, _, c in rows], dtype=np.float64).reshape(-1, 4),
        scores=np.array([score for _, score, _ in rows], dtype=np.float64),
        classes=np.array([label for label, _, _ in rows], dtype=np.int64),
    )


def pycocotools_figures(truths, found) -> dict[str, float | None]:
    """pycocotools' own figures: COCOeval run on exactly these images (image i gets id i + 1)."""
    evaluation, _ = run_cocoeval(coco_ground_truth(truths, CLASSES), coco_detections(truths, found))
    precision = evaluation.eval["precision"][:, :, :, 0, -1]  # area all, 100 detections
    figures = {"mAP": float(evaluation.stats[0]), "mAP_50": float(evaluation.stats[1])}
    for k, label in enumerate(evaluation.params.catIds):
        defined = precision[:, :, k][precision[:, :, k] > -1]
        figures[f"AP/{CLASSES[label]}"] = float(np.mean(defined)) if defined.size else None
    return figures


def table_figures(table: ImageTable, counts) -> dict[str, float | None]:
    return {name: (None if np.isnan(values[0]) else float(values[0])) for name, values in table.figures(np.asarray([counts])).items()}


@pytest.fixture(scope="module")
def validation():
    return synthetic(60, seed=7)


@pytest.fixture(scope="module")
def table(validation):
    truths, found = validation
    return compute_metrics(truths, found, CLASSES).table


def test_the_full_set_gives_pycocotools_own_figures(validation, table):
    truths, found = validation
    expected = pycocotools_figures(truths, found)
    figures = table_figures(table, np.ones(len(truths), dtype=int))
    assert set(figures) == {"mAP", "mAP_50", "AP/dent", "AP/scratch", "AP/crack"}
    assert figures["AP/crack"] is None and expected["AP/crack"] is None
    assert 0.1 < expected["mAP"] < 0.9  # a case where ranking and ties matter
    assert any(rows.ignored.runs.size for rows in table.rows.values())  # and rows COCO ignores
    for name in ("mAP", "mAP_50", "AP/dent", "AP/scratch"):
        assert figures[name] == pytest.approx(expected[name], abs=1e-9), name


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_resample_with_duplicates_gives_pycocotools_figures_on_the_copied_images(validation, table, seed):
    """The oracle: the drawn images as a new validation set, a drawn-twice image twice, each copy with a new id
    (its position) and its ground truth and detections copied; pycocotools scores that set."""
    truths, found = validation
    (counts,) = draw(len(truths), Settings(resamples=1, seed=seed))
    assert counts.max() >= 2 and (counts == 0).any()  # duplicates and left-out images, as bootstrap draws make
    copied = [i for i, count in enumerate(counts) for _ in range(count)]
    expected = pycocotools_figures([truths[i] for i in copied], [found[i] for i in copied])
    figures = table_figures(table, counts)
    for name, value in expected.items():
        assert figures[name] == pytest.approx(value, abs=1e-9) if value is not None else figures[name] is None, name


def test_a_resample_without_any_box_of_a_class_leaves_its_ap_undefined(validation, table):
    truths, _ = validation
    counts = np.array([1 if 2 not in truth.labels else 0 for truth in truths])  # only images without a scratch
    figures = table_figures(table, counts)
    assert figures["AP/scratch"] is None and figures["AP/dent"] is not None


def test_the_seed_alone_decides_the_resamples(validation, table):
    truths, _ = validation
    first, again = draw(len(truths), Settings(200, seed=5)), draw(len(truths), Settings(200, seed=5))
    assert np.array_equal(first, again) and (first.sum(axis=1) == len(truths)).all()
    assert not np.array_equal(first, draw(len(truths), Settings(200, seed=6)))
    bounds = percentile_interval(table.figures(first)["mAP"])
    assert bounds == percentile_interval(table.figures(again)["mAP"])
    assert bounds != percentile_interval(table.figures(draw(len(truths), Settings(200, seed=6)))["mAP"])


def paired_lead(champion: ImageTable, challenger: ImageTable, settings: Settings):
    counts = draw(champion.images, settings)
    return percentile_interval(champion.figures(counts)["mAP"] - challenger.figures(counts)["mAP"])


def test_identical_models_give_a_lead_interval_that_holds_zero(validation):
    truths, found = validation
    one, other = compute_metrics(truths, found, CLASSES).table, compute_metrics(truths, list(found), CLASSES).table
    low, high = paired_lead(one, other, Settings(1000, seed=11))
    assert low == high == 0.0  # the same images for both: every resample's lead is exactly 0


def test_equally_good_models_with_different_misses_give_a_lead_interval_that_holds_zero():
    """Each model finds every box of one half of the images and none of the other half's: equal by design."""
    truths, _ = synthetic(80, seed=9, hit_rate=0.0)
    perfect = [_detections([(label, 0.9, box) for box, label in zip(t.boxes, t.labels, strict=True)]) for t in truths]
    empty = _detections([])
    first = [found if i % 2 else empty for i, found in enumerate(perfect)]
    second = [empty if i % 2 else found for i, found in enumerate(perfect)]
    low, high = paired_lead(compute_metrics(truths, first, CLASSES).table, compute_metrics(truths, second, CLASSES).table, Settings(1000, seed=3))
    assert low < 0 < high


def test_a_much_better_champion_gives_a_lead_interval_that_excludes_zero(validation):
    truths, found = validation
    perfect = [_detections([(label, 0.9, box) for box, label in zip(t.boxes, t.labels, strict=True)]) for t in truths]
    champion, challenger = compute_metrics(truths, perfect, CLASSES), compute_metrics(truths, found, CLASSES)
    low, high = paired_lead(champion.table, challenger.table, Settings(1000, seed=4))
    assert 0 < low <= champion.overall["mAP"] - challenger.overall["mAP"] <= high
    low, high = paired_lead(challenger.table, champion.table, Settings(1000, seed=4))  # the other way round: all below 0
    assert low <= high < 0


def test_nothing_to_measure_leaves_every_interval_undefined():
    truths = [GroundTruth("a.jpg", 320, 240, (), ())]
    table = compute_metrics(truths, [_detections([(1, 0.9, (0.1, 0.1, 0.2, 0.2))])], CLASSES).table
    assert all(percentile_interval(values) == (None, None) for values in table.figures(draw(1, Settings(50))).values())
    assert compute_metrics([], [], CLASSES).table.figures(draw(0, Settings(10)))["mAP"].shape == (10,)


def test_a_blind_model_has_ap_zero_in_every_resample_that_draws_a_box():
    truths, _ = synthetic(20, seed=2)
    table = compute_metrics(truths, [_detections([])] * len(truths), CLASSES).table
    figures = table.figures(draw(len(truths), Settings(100, seed=1)))
    assert percentile_interval(figures["mAP"]) == (0.0, 0.0) and percentile_interval(figures["AP/crack"]) == (None, None)


def test_a_figure_is_shown_with_its_interval():
    assert format_interval(0.4083, (0.3301, 0.4902)) == "0.41 (0.33-0.49)"
    assert format_interval(0.052, (-0.041, 0.15)) == "0.05 (-0.04 to 0.15)"
    assert format_interval(-0.001, (-0.004, -0.0001), digits=2) == "0.00 (0.00 to 0.00)"  # no "-0.00"
    assert format_interval(0.4083, (None, None)) == format_interval(0.4083) == "0.41"
    assert format_interval(None, (0.1, 0.2)) == "n/a"
    assert format_interval(0.40831, (0.33012, 0.49023), digits=4) == "0.4083 (0.3301-0.4902)"


def test_the_report_section_and_what_is_read_back():
    section = intervals_section({"mAP": (0.1234567, 0.5), "AP/crack": (None, None)}, resamples=1000, seed=23, digits=6)
    assert section == {
        "method": "percentile bootstrap over validation images",
        "resamples": 1000,
        "confidence": 0.95,
        "seed": 23,
        "metrics": {"mAP": [0.123457, 0.5], "AP/crack": [None, None]},
    }
    report = {
        "intervals": section,
        "champion": {"version": 2, "map_lead": 0.05, "lead_interval": [-0.04, 0.15], "intervals": {"metrics": {"mAP": [0.4, 0.5]}}},
    }
    assert ReportIntervals.from_report(report) == ReportIntervals((0.123457, 0.5), (0.4, 0.5), 0.05, (-0.04, 0.15))
    alone = {"intervals": section, "champion": {"version": 0, "map_lead": 0.0, "lead_interval": None}}
    assert ReportIntervals.from_report(alone) == ReportIntervals((0.123457, 0.5))
    assert ReportIntervals.from_report({"metrics": {}}) is None and ReportIntervals.from_report("not a report") is None
