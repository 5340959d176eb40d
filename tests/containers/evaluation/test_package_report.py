"""report.html (containers/evaluation/package_report.py): the page's content from a known evaluation, the photos
where the two models differ most in the order shown, that the page asks for nothing outside itself, that text
from the data shows as text, and the page a real Evaluate run writes (on the fake detector, tests/fake_model.py).
"""

from __future__ import annotations

import base64
import io
import json
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from containers.evaluation.evaluate import ChampionOptions, Options, evaluate, main
from containers.evaluation.intervals import format_interval
from containers.evaluation.model import Detections
from containers.evaluation.package_report import (
    THUMBNAIL,
    DataReports,
    Photo,
    Selection,
    Tally,
    read_data_reports,
    render,
    select_photos,
    tally,
)
from containers.evaluation.validation import GroundTruth
from tests.containers.evaluation.helpers import DENT, ELSEWHERE, SCRATCH, box, detection, write_validation
from tests.fake_model import write_model_dir
from tests.support import jpeg_bytes

SCRIPT = "<script>alert(1)</script>"


class Page(HTMLParser):
    """What a test reads of a page: its tags, every src and href, its tables, its headings, and its text."""

    def __init__(self, html: str):
        super().__init__()
        self.tags: list[str] = []
        self.links: list[str] = []
        self.tables: list[list[list[str]]] = []
        self.headings: list[str] = []
        self.text: list[str] = []
        self._cell: list[str] | None = None
        self._heading: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.links += [value or "" for name, value in attrs if name in ("src", "href", "action", "srcset", "poster", "data")]
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "h3":
            self._heading = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "h3" and self._heading is not None:
            self.headings.append("".join(self._heading).strip())
            self._heading = None

    def handle_data(self, data):
        self.text.append(data)
        for part in (self._cell, self._heading):
            if part is not None:
                part.append(data)

    def row(self, column: str, first: str) -> list[str]:
        """The row starting with `first` of the table that has a `column`."""
        table = next(table for table in self.tables if column in table[0])
        return next(row for row in table if row[0] == first)

    @property
    def photos(self) -> list[str]:
        """The photos' headings, in order ("1. car-2.jpg: ...")."""
        return [heading for heading in self.headings if heading[:1].isdigit()]

    @property
    def all_text(self) -> str:
        return " ".join(" ".join(self.text).split())


def known_evaluation(*, intervals: bool = True, champion: bool = True, name: str = "scratch") -> dict:
    """An evaluation.json as Evaluate writes it, with round figures: the challenger's mAP 0.4083 against the
    champion's 0.4607 (a lead of 0.0524) and, with `intervals`, their bootstrap intervals."""

    def figures(map_value, dent, other):
        metrics = {"mAP": map_value, "mAP_50": 0.71, "mAP_75": 0.4, "recall": 0.52, "mAP_small": None, "mAP_medium": 0.3, "mAP_large": 0.45}
        per_class = {
            "dent": {"AP": dent, "AP_50": 0.6, "recall": 0.5, "ground_truth_boxes": 3},
            name: {"AP": other, "AP_50": 0.8, "recall": 0.6, "ground_truth_boxes": 7},
        }
        return {name: {"value": value} for name, value in metrics.items()}, per_class

    metrics, per_class = figures(0.4083, 0.35, 0.4666)
    report = {
        "metrics": metrics,
        "per_class": per_class,
        "images": 7,
        "ground_truth_boxes": 10,
        "detections": 20,
        "warnings": [],
        "model": {
            "sha256": "ab" * 32,
            "label_map": {"1": "dent", "2": name},
            "metadata": {"model": "efficientdet-d0", "trained_steps": 500, "hyperparameters": {"batch_size": 8, "learning_rate": 0.08}},
        },
        "settings": {"pictures": 6, "picture_score_threshold": 0.3},
        "champion": {"version": 0, "map_lead": 0.0},
        "baselines": {
            "model": {"file": "model-baseline.json", "images": 7, "score_threshold": 0.3, "max_detections": 100},
            "data": {"file": None, "reason": "no --statistics folder was given"},
        },
    }
    if intervals:
        report["intervals"] = {
            "method": "percentile bootstrap over validation images",
            "resamples": 1000,
            "confidence": 0.95,
            "seed": 23,
            "metrics": {"mAP": [0.33, 0.49], "mAP_50": [0.6, 0.8], "AP/dent": [0.2, 0.5], f"AP/{name}": [0.3, 0.6]},
        }
    if champion:
        served, served_per_class = figures(0.4607, 0.45, 0.4714)
        report["champion"] = {
            "version": 3,
            "map_lead": 0.0524,
            "metrics": served,
            "per_class": served_per_class,
            "model": {"label_map": {"1": "dent", "2": name}, "metadata": {"model": "efficientdet-d0", "trained_steps": 2000}},
        }
        if intervals:
            report["champion"]["lead_interval"] = [-0.02, 0.12]
            report["champion"]["intervals"] = {"metrics": {"mAP": [0.38, 0.55]}}
    return report


def page_of(evaluation: dict, **changes) -> Page:
    arguments = {"selection": Selection([], "none", 7), "photos": [], "threshold": 0.3, "data": DataReports(note="not given"), "baselines": {}}
    arguments |= {"pr_curves": None} | changes
    return Page(render(evaluation, **arguments))


# The metrics


def test_the_metrics_show_both_models_with_their_intervals_and_the_deltas():
    page = page_of(known_evaluation())
    assert page.tables[0][0] == ["figure", "challenger", "champion (version 3)", "challenger − champion"]
    assert page.row("figure", "mAP@[.5:.95]") == ["mAP@[.5:.95]", "0.41 (0.33-0.49)", "0.46 (0.38-0.55)", "-0.052"]
    assert page.row("figure", "mAP@.5") == ["mAP@.5", "0.71 (0.60-0.80)", "0.71", "+0.000"]
    assert page.row("figure", "mAP small") == ["mAP small", "n/a", "n/a", "n/a"]
    assert page.row("challenger AP", "dent") == ["dent", "3", "0.35 (0.20-0.50)", "0.60", "0.45", "0.60", "-0.100"]
    text = page.all_text
    assert "Challenger mAP 0.41 (0.33-0.49); the champion (version 3) leads by 0.052 on the same photos." in text
    assert "The champion's lead with its interval: 0.052 (-0.020 to 0.120); it holds 0" in text
    assert "95% intervals (percentile bootstrap over validation images, 1000 resamples, seed 23)" in text


def test_an_evaluation_from_before_intervals_shows_the_figures_alone_and_says_so():
    page = page_of(known_evaluation(intervals=False))
    assert page.row("figure", "mAP@[.5:.95]") == ["mAP@[.5:.95]", "0.41", "0.46", "-0.052"]
    assert page.row("challenger AP", "dent")[2] == "0.35"
    text = page.all_text
    assert "No interval for the lead" in text and "No confidence intervals: this evaluation was made before Evaluate computed them." in text


@pytest.mark.parametrize(
    ("bounds", "reading"),
    [([0.01, 0.09], "it excludes 0: the champion is better"), ([-0.12, -0.01], "it excludes 0: the challenger is better")],
)
def test_a_lead_interval_that_excludes_zero_says_which_model_is_better(bounds, reading):
    evaluation = known_evaluation()
    evaluation["champion"]["lead_interval"] = bounds
    assert reading in page_of(evaluation).all_text


def test_without_a_champion_the_challenger_is_shown_alone():
    page = page_of(known_evaluation(champion=False))
    assert page.tables[0][0] == ["figure", "challenger"]
    assert page.row("figure", "mAP@[.5:.95]") == ["mAP@[.5:.95]", "0.41 (0.33-0.49)"]
    assert "No champion: nothing was served when it was evaluated." in page.all_text


# The photos: which, and in what order


def truth(index: int, *boxes: tuple[int, tuple[float, float, float, float]]) -> GroundTruth:
    return GroundTruth(f"car-{index}.jpg", 320, 240, tuple(corners for _, corners in boxes), tuple(label for label, _ in boxes))


def found(*rows: tuple[int, float, tuple[float, float, float, float]]) -> Detections:
    """Detections from (class, score, normalised xmin, ymin, xmax, ymax) rows."""
    return Detections(
        np.array([[ymin, xmin, ymax, xmax] for _, _, (xmin, ymin, xmax, ymax) in rows]).reshape(-1, 4),
        np.array([score for _, score, _ in rows]),
        np.array([label for label, _, _ in rows]),
    )


def test_a_photo_is_tallied_as_coco_matches_at_iou_one_half():
    photo = truth(0, (1, DENT), (1, ELSEWHERE), (2, SCRATCH))
    detections = found(
        (1, 0.9, DENT),  # finds the first dent
        (1, 0.8, DENT),  # the same dent again: matches nothing left
        (2, 0.7, ELSEWHERE),  # a scratch where the other dent is: another class
        (1, 0.2, ELSEWHERE),  # below the threshold: not counted
    )
    assert tally(photo, detections, 0.3) == Tally(found=1, missed=2, false=2)
    assert tally(photo, detections, 0.1) == Tally(found=2, missed=1, false=2)
    shifted = found((1, 0.9, (0.3, 0.2, 0.7, 0.6)))  # half the dent's width off: IoU 1/3
    assert tally(truth(1, (1, DENT)), shifted, 0.3) == Tally(found=0, missed=1, false=1)


# Five photos: the champion perfect on 1 and 2, the challenger on 0 and 3.
PHOTOS = [truth(0, (1, DENT)), truth(1, (1, DENT)), truth(2, (1, DENT), (2, SCRATCH)), truth(3, (1, DENT), (2, SCRATCH)), truth(4, (1, DENT))]
CHALLENGER = [found((1, 0.9, DENT)), found(), found((1, 0.9, ELSEWHERE)), found((1, 0.9, DENT), (2, 0.9, SCRATCH)), found((2, 0.9, DENT))]
CHAMPION = [found((1, 0.9, DENT)), found((1, 0.9, DENT)), found((1, 0.9, DENT), (2, 0.9, SCRATCH)), found(), found((2, 0.8, DENT))]


def test_the_photos_where_the_models_differ_most_come_worst_first():
    # Errors, challenger against champion: 0-0, 1-0 (+1), 3-0 (+3), 0-2 (-2), 2-2.
    selection = select_photos(PHOTOS, CHALLENGER, CHAMPION, 0.3, 6)
    assert selection.basis == "champion" and [(row.index, row.gap) for row in selection.photos] == [(2, 3), (1, 1), (3, -2)]
    # Two photos: the two largest differences, still worst first.
    assert [row.index for row in select_photos(PHOTOS, CHALLENGER, CHAMPION, 0.3, 2).photos] == [2, 3]


def test_without_a_champion_or_when_the_two_agree_the_challengers_worst_photos_are_shown():
    alone = select_photos(PHOTOS, CHALLENGER, None, 0.3, 6)
    assert alone.basis == "none" and [(row.index, row.challenger.errors) for row in alone.photos] == [(2, 3), (4, 2), (1, 1)]
    same = select_photos(PHOTOS, CHALLENGER, CHALLENGER, 0.3, 6)
    assert same.basis == "agree" and [row.index for row in same.photos] == [2, 4, 1]
    assert select_photos(PHOTOS, CHALLENGER, CHAMPION, 0.3, 0).photos == []


def photos_of(selection: Selection, challenger=CHALLENGER, champion=CHAMPION) -> list[Photo]:
    return [
        Photo(row, PHOTOS[row.index], jpeg_bytes((640, 480), seed=row.index), challenger[row.index], champion[row.index] if champion else None)
        for row in selection.photos
    ]


def test_the_page_shows_each_photo_three_times_in_the_order_chosen_and_says_how_it_chose():
    selection = select_photos(PHOTOS, CHALLENGER, CHAMPION, 0.3, 6)
    page = page_of(known_evaluation(), selection=selection, photos=photos_of(selection))
    assert page.photos == [
        "1. car-2.jpg: the challenger makes 3 error(s) more than the champion",
        "2. car-1.jpg: the challenger makes 1 error(s) more than the champion",
        "3. car-3.jpg: the challenger makes 2 error(s) fewer than the champion",
    ]
    text = page.all_text
    assert "ground truth: 2 box(es) champion (version 3): 2 found, 0 missed, 0 false challenger: 0 found, 2 missed, 1 false" in text
    assert "differ most, worst first" in text and "at IoU 0.5 or more" in text
    assert page.tags.count("img") == 9


def test_photos_are_downscaled_jpegs():
    selection = select_photos(PHOTOS, CHALLENGER, None, 0.3, 1)
    page = page_of(known_evaluation(champion=False), selection=selection, photos=photos_of(selection, champion=None))
    (first, second) = [link for link in page.links if link.startswith("data:image/jpeg;base64,")]
    for link in (first, second):
        image = Image.open(io.BytesIO(base64.b64decode(link.split(",", 1)[1])))
        assert image.format == "JPEG" and max(image.size) == THUMBNAIL  # from 640 x 480
    assert page.photos == ["1. car-2.jpg: 3 error(s)"]


# Self-contained, and text shown as text


def a_data_report(name: str = "scratch", **changes) -> dict:
    """PrepareData's report.json, with what the page reads."""
    report = {
        "status": "succeeded",
        "class_map": {"1": "dent", "2": name},
        "inputs": [{"path": "/opt/ml/processing/input/manifests/0001-coco/coco.json", "format": "coco", "records": 40, "sha256": "cd" * 32}],
        "labels_uri": "s3://data/snapshots/20261130T101500Z-0123456789ab/inputs/",
        "snapshot": "s3://data/snapshots/20261130T101500Z-0123456789ab/snapshot.json",
        "records_read": 41,
        "images_written": 38,
        "splits": {
            "train": {"images": {"dent": 20, name: 25}, "boxes": {"dent": 30, name: 50}},
            "validation": {"images": {"dent": 2, name: 5}, "boxes": {"dent": 3, name: 7}},
        },
        "dropped_boxes": {"rust": 4},
        "boxes": {"clipped": 2, "crowd_skipped": 0},
        "quarantined": [{"manifest": "coco.json", "record": "image 7", "reason": "the image is missing"}],
        "merged": [{"key": "a.jpg"}, {"key": "b.jpg"}],
    }
    return report | changes


def test_the_page_asks_for_nothing_outside_itself():
    selection = select_photos(PHOTOS, CHALLENGER, CHAMPION, 0.3, 6)
    png = io.BytesIO()
    Image.new("RGB", (8, 8)).save(png, format="PNG")
    html = render(
        known_evaluation(),
        selection=selection,
        photos=photos_of(selection),
        threshold=0.3,
        data=DataReports((a_data_report(),), ("report.json",)),
        baselines={"model": {"continuous": {"top_score": [0.9, 0.8]}, "categorical": {"empty": {"no": 2}}}, "data": None},
        pr_curves=png.getvalue(),
    )
    page = Page(html)
    assert len(page.links) == 10  # 9 photos and the PR curves
    assert all(link.startswith("data:") or link.startswith("#") for link in page.links), [link[:40] for link in page.links]
    assert not {"script", "link", "iframe", "object", "embed", "base", "form"} & set(page.tags)
    assert "url(" not in html and "@import" not in html
    assert "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">" in html


def test_text_from_the_data_shows_as_text():
    evaluation = known_evaluation(name=SCRIPT)
    evaluation["warnings"] = [f"validation holds no box of class {SCRIPT!r}"]
    evaluation["model"]["metadata"]["hyperparameters"]["note"] = '"><img src=x onerror=alert(1)>'
    photos = [truth(0, (2, SCRATCH))]
    tricky = GroundTruth(f"{SCRIPT}.jpg", 320, 240, photos[0].boxes, photos[0].labels)
    selection = select_photos([tricky], [found()], None, 0.3, 1)
    shown = [Photo(selection.photos[0], tricky, jpeg_bytes((64, 48)), found())]
    data = DataReports((a_data_report(SCRIPT, quarantined=[{"manifest": "m", "line": 3, "reason": SCRIPT}]),), ("report.json",))
    html = render(evaluation, selection=selection, photos=shown, threshold=0.3, data=data, baselines={}, pr_curves=None)
    page = Page(html)
    assert "script" not in page.tags and page.links and all(link.startswith("data:") for link in page.links)
    assert SCRIPT not in html and "&lt;script&gt;" in html
    text = page.all_text
    for shown_text in (f"1. {SCRIPT}.jpg: 1 error(s)", f"Warning: validation holds no box of class '{SCRIPT}'", '"><img src=x onerror=alert(1)>'):
        assert shown_text in text, shown_text
    assert page.row("challenger AP", SCRIPT)[:4] == [SCRIPT, "7", "0.47 (0.30-0.60)", "0.80"]
    assert page.row("reason", "m:3") == ["m:3", SCRIPT]


# The data


def test_the_data_section_shows_the_snapshot_inputs_boxes_drops_and_quarantine():
    page = page_of(known_evaluation(), data=DataReports((a_data_report(),), ("report.json",)))
    text = page.all_text
    assert "Dataset snapshot 20261130T101500Z-0123456789ab (s3://data/snapshots/20261130T101500Z-0123456789ab/snapshot.json)." in text
    assert "41 labelled record(s) read, 38 image(s) written, 1 record(s) quarantined, 2 merged" in text
    assert page.row("input", "/opt/ml/processing/input/manifests/0001-coco/coco.json") == [
        "/opt/ml/processing/input/manifests/0001-coco/coco.json", "coco", "40", "cd" * 8,
    ]  # fmt: skip
    assert page.row("train boxes", "scratch") == ["scratch", "25", "50", "5", "7"]
    assert "Dropped boxes (classes that are not the model's and are not mapped onto one): rust: 4." in text
    assert page.row("reason", "coco.json (image 7)") == ["coco.json (image 7)", "the image is missing"]
    # An evaluation.json from before Evaluate kept its photos has no training_data: the page says so.
    assert "Images new since the champion's data" in page.headings
    assert "Not known: this evaluation was made before Evaluate kept its list of photos." in text


def since_champion(**changes) -> dict:
    """evaluation.json's training_data, as image_lists.training_data writes it, against the champion's version 3."""
    since = {
        "known": True,
        "version": 3,
        "snapshot": "s3://data/snapshots/20261001T080000Z-aaaaaaaaaaaa/snapshot.json",
        "labels_uri": "s3://data/snapshots/20261001T080000Z-aaaaaaaaaaaa/inputs/",
        "new": 12,
        "new_by_split": {"train": 10, "validation": 2},
        "new_examples": [f"new-{i:02d}.jpg" for i in range(10)],
        "gone": 1,
        "gone_examples": ["old.jpg"],
        "unchanged": 26,
        "validation_in_champion_training": 0,
    }
    return {"images": 38, "image_list": "evaluation-images.json", "since_champion": since | changes}


def test_the_images_new_since_the_champions_data_are_counted_and_named():
    evaluation = known_evaluation() | {"training_data": since_champion()}
    page = page_of(evaluation, data=DataReports((a_data_report(),), ("report.json",)))
    text = page.all_text
    assert "Against the data of the champion (version 3): dataset snapshot 20261001T080000Z-aaaaaaaaaaaa (s3://data/snapshots/" in text
    assert page.row("photos", "new: in this model's data, not in the champion's") == [
        "new: in this model's data, not in the champion's", "12", "train 10, validation 2",
    ]  # fmt: skip
    assert page.row("photos", "no longer present: in the champion's data, not in this model's")[1] == "1"
    assert page.row("photos", "in both")[1] == "26"
    assert f"New: {', '.join(f'new-{i:02d}.jpg' for i in range(10))} and 2 more." in text
    assert "No longer present: old.jpg." in text and "training data: its figures on them flatter it" not in text


def test_validation_photos_the_champion_trained_on_are_a_warning_and_names_show_as_text():
    changes = {"validation_in_champion_training": 2, "new_examples": [SCRIPT], "new": 1, "snapshot": None}
    html = render(
        known_evaluation() | {"training_data": since_champion(**changes)},
        selection=Selection([], "none", 7), photos=[], threshold=0.3, data=DataReports(), baselines={}, pr_curves=None,
    )  # fmt: skip
    page = Page(html)
    text = page.all_text
    assert "2 validation photo(s) were in the champion's training data: its figures on them flatter it." in text
    assert f"New: {SCRIPT}." in text and SCRIPT not in html and "script" not in page.tags
    assert "Against the data of the champion (version 3): the labels s3://data/snapshots/20261001T080000Z-aaaaaaaaaaaa/inputs/." in text


def test_the_champions_data_not_known_says_why():
    unknown = {"images": 38, "image_list": "evaluation-images.json", "since_champion": {"known": False, "reason": "there is no champion"}}
    page = page_of(known_evaluation() | {"training_data": unknown})
    assert "Not known: there is no champion." in page.all_text and not any("in both" in row for table in page.tables for row in table)


def test_several_instances_reports_are_added_up():
    second = a_data_report(
        inputs=[{"path": "/opt/ml/processing/input/manifests/0001-coco/coco.json", "format": "coco", "records": 2, "sha256": "cd" * 32}],
        records_read=2, images_written=2, dropped_boxes={"rust": 1, "dirt": 2}, merged=[],
        quarantined=[{"manifest": "coco.json", "record": "image 9", "reason": "a box outside the image"}],
    )  # fmt: skip
    page = page_of(known_evaluation(), data=DataReports((a_data_report(), second), ("report-algo-1.json", "report-algo-2.json")))
    text = page.all_text
    assert "43 labelled record(s) read, 40 image(s) written, 2 record(s) quarantined, 2 merged" in text
    assert page.row("input", "/opt/ml/processing/input/manifests/0001-coco/coco.json")[2] == "42"
    assert page.row("train boxes", "scratch") == ["scratch", "50", "100", "10", "14"] and "dirt: 2, rust: 5" in text


def test_the_reports_are_read_under_either_name_and_a_broken_one_is_named(tmp_path):
    folder = tmp_path / "prepared"
    folder.mkdir()
    # SageMaker names a file of the `<prepared>/report` prefix by its own name; the local engine by what follows the prefix.
    (folder / "report.json").write_text(json.dumps(a_data_report()))
    (folder / "-algo-2.json").write_text(json.dumps(a_data_report()))
    (folder / "report.png").write_bytes(b"\x89PNG")
    (folder / "report-algo-3.json").write_text("{not json")
    (folder / "report-algo-4.json").write_text(json.dumps({"status": "succeeded"}))
    found_reports = read_data_reports(folder)
    assert found_reports.files == ("-algo-2.json", "report.json") and len(found_reports.reports) == 2
    assert found_reports.problems[0].startswith("report-algo-3.json: not readable as JSON (JSONDecodeError")
    assert found_reports.problems[1] == "report-algo-4.json: not a PrepareData report (no splits, inputs, quarantined, dropped_boxes)"
    page = page_of(known_evaluation(), data=found_reports)
    assert "PrepareData report report-algo-4.json: not a PrepareData report" in page.all_text
    assert read_data_reports(None).note == "Evaluate was not given PrepareData's report (--prepared)"
    assert (
        "No data report: Evaluate was not given PrepareData's report (--prepared)."
        in page_of(known_evaluation(), data=read_data_reports(None)).all_text
    )


# Training and monitoring


def test_the_training_settings_of_both_models_are_side_by_side_with_the_differences_marked():
    html = render(
        known_evaluation(),
        selection=Selection([], "none", 7),
        photos=[],
        threshold=0.3,
        data=DataReports(),
        baselines={"model": {"continuous": {"top_score": [0.1, 0.5, 0.9]}, "categorical": {"empty": {"no": 2, "yes": 1}}}},
        pr_curves=None,
    )
    page = Page(html)
    assert page.row("setting", "trained_steps") == ["trained_steps", "500", "2000"]
    assert page.row("setting", "hyperparameters.learning_rate") == ["hyperparameters.learning_rate", "0.08", "-"]
    assert page.row("setting", "model") == ["model", "efficientdet-d0", "efficientdet-d0"]
    assert '<tr class="differs"><td>trained_steps</td>' in html and "<tr><td>model</td>" in html
    text = page.all_text
    assert "model-baseline.json: the challenger's answers on 7 validation photo(s) as the endpoint gives them (score threshold 0.3" in text
    assert "No data baseline: no --statistics folder was given." in text
    assert page.row("statistic", "top_score") == ["top_score", "3", "0.5", "0.14 to 0.86"] and page.row("category", "empty") == [
        "empty",
        "no: 2, yes: 1",
    ]


# The page a real Evaluate run writes


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    """Evaluate with a champion on four photos: the challenger finds every dent, the champion every scratch."""
    work = tmp_path_factory.mktemp("package-report")
    validation = write_validation(
        work / "validation",
        [[box(1, "dent", DENT)], [box(1, "dent", DENT), box(2, "scratch", SCRATCH)], [box(2, "scratch", SCRATCH)], []],
    )
    challenger = write_model_dir(work / "challenger", [detection(1, 0.9, DENT)])
    champion = write_model_dir(work / "champion", [detection(2, 0.9, SCRATCH)])
    prepared = work / "prepared"
    prepared.mkdir()
    (prepared / "report.json").write_text(json.dumps(a_data_report()))
    lines: list[str] = []
    options = Options(challenger, validation, work / "out", champion=ChampionOptions(champion, 2, "arn:champion"), prepared=prepared)
    report = evaluate(options, log=lines.append)
    # Alone, through the command line the step runs.
    arguments = ["--model", str(challenger), "--validation", str(validation), "--output", str(work / "alone"), "--pictures", "1"]
    assert main([*arguments, "--prepared", str(prepared)]) == 0
    return {"report": report, "out": work / "out", "alone": work / "alone", "log": lines}


def test_evaluate_writes_the_page_beside_evaluation_json(run):
    page_path = run["out"] / "report.html"
    assert run["report"]["pictures"]["report"] == "report.html"
    assert json.loads((run["out"] / "evaluation.json").read_text())["pictures"]["report"] == "report.html"
    html = page_path.read_text(encoding="utf-8")
    page = Page(html)
    # Errors, challenger against champion: 0-2, 1-1, 2-0, 1-1: the photo it does worse on first, then the better one.
    assert page.photos == [
        "1. car-2.jpg: the challenger makes 2 error(s) more than the champion",
        "2. car-0.jpg: the challenger makes 2 error(s) fewer than the champion",
    ]
    report = run["report"]
    mine, theirs = report["metrics"]["mAP"]["value"], report["champion"]["metrics"]["mAP"]["value"]
    intervals = [(section.get("intervals") or {}).get("metrics", {}).get("mAP") for section in (report, report["champion"])]
    assert page.row("figure", "mAP@[.5:.95]")[1:3] == [format_interval(mine, intervals[0]), format_interval(theirs, intervals[1])]
    assert page.row("train boxes", "scratch") == ["scratch", "25", "50", "5", "7"]
    assert all(link.startswith("data:") for link in page.links) and page.tags.count("img") == 2 * 3 + 1
    size = len(html.encode())
    assert f"evaluate: report page: 2 photo(s), {size / 1024:.0f} KiB -> report.html" in run["log"]


def test_without_a_champion_the_page_shows_the_challengers_worst_photos(run):
    page = Page((run["alone"] / "report.html").read_text(encoding="utf-8"))
    assert page.photos == ["1. car-2.jpg: 2 error(s)"] and page.tags.count("img") == 2 + 1
    assert "No champion to compare with" in page.all_text and page.row("train boxes", "dent") == ["dent", "20", "30", "2", "3"]


def test_the_page_shows_every_picture_in_a_browser_and_asks_for_nothing(run, chromium):
    from tests.browser import outside_requests

    page = chromium.new_page()
    try:
        elsewhere, messages = outside_requests(page), []
        page.on("console", lambda message: messages.append(message.text))
        own = (run["out"] / "report.html").as_uri()
        page.goto(own)
        sizes = page.eval_on_selector_all("img", "images => images.map(i => [i.complete, i.naturalWidth, i.getBoundingClientRect().width])")
        assert len(sizes) == 7 and all(complete and natural > 0 and shown > 0 for complete, natural, shown in sizes), sizes
        assert [url for url in elsewhere if url != own] == [] and messages == []
    finally:
        page.close()
