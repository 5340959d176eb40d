"""The monitor program (containers/monitoring/monitor.py) on small made-up photos: monitor.json's shape, every
capture line accounted for, the answer's boxes measured as the handler writes them, an empty window, a missing or
unreadable baseline, bad arguments, and a self-contained report.html with a plot per statistic. The drift tests
on real photos are in test_drift_windows.py."""

from __future__ import annotations

import base64
import json
import re
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from containers.monitoring import monitor, statistics
from containers.monitoring.statistics import DATA_BASELINE, MODEL_BASELINE
from pipelines.local.capture import capture_line
from tests.review_support import answer, detection
from tests.support import jpeg_bytes

WHEN = datetime(2026, 12, 1, 10, tzinfo=UTC)
SIZE = (64, 48)
CONTRACT_KEYS = {"drift", "window", "baseline", "statistics", "atypical", "unusable", "quality"}


def photo_answer(seed: int) -> tuple[bytes, bytes]:
    found = [detection("dent", 0.5 + seed % 5 / 10, size=SIZE)] if seed % 3 else []
    return jpeg_bytes(size=SIZE, seed=seed), answer(found, SIZE)


def capture_lines(seeds, start: datetime = WHEN) -> list[str]:
    lines = []
    for index, seed in enumerate(seeds):
        data, body = photo_answer(seed)
        line = capture_line(data, "image/jpeg", body, "application/json", when=start + timedelta(seconds=index), event_id=str(seed))
        lines.append(json.dumps(line))
    return lines


def write_captures(folder: Path, lines: list[str]) -> Path:
    hour = folder / "car-damage-endpoint" / "AllTraffic" / "2026" / "12" / "01" / "10"
    hour.mkdir(parents=True, exist_ok=True)
    (hour / "00-00-000-window.jsonl").write_text("".join(line + "\n" for line in lines))
    return folder


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> Path:
    """Both baselines, of 60 made-up photos and their answers."""
    folder = tmp_path_factory.mktemp("baseline")
    inputs, outputs = [], []
    for seed in range(60):
        data, body = photo_answer(seed)
        inputs.append(statistics.input_statistics(data))
        prediction = json.loads(body)["predictions"][0]
        outputs.append(statistics.output_statistics(prediction["detections"], *SIZE))
    (folder / DATA_BASELINE).write_text(json.dumps(statistics.summarize(inputs, "input")))
    (folder / MODEL_BASELINE).write_text(json.dumps(statistics.summarize(outputs, "output", classes=["dent", "scratch"])))
    return folder


def run(captures: Path, baseline: Path, output: Path, *extra: str) -> int:
    return monitor.main(["--captures", str(captures), "--baseline", str(baseline), "--output", str(output), "--no-progress", *extra])


def test_monitor_json_has_the_contracts_shape_and_accounts_for_every_line(tmp_path, baseline, capsys):
    broken_box = json.loads(capture_lines([7])[0])
    broken_box["captureData"]["endpointOutput"]["data"] = answer([{"class": "dent", "score": 0.9, "box": {"xmin": 1}}], SIZE).decode()
    garbage = base64.b64encode(b"not a photo").decode()
    not_a_photo = json.loads(capture_lines([8])[0])
    not_a_photo["captureData"]["endpointInput"]["data"] = garbage
    lines = [*capture_lines(range(100, 130)), "{broken", json.dumps(broken_box), json.dumps(not_a_photo)]
    captures = write_captures(tmp_path / "captures", lines)
    assert run(captures, baseline, tmp_path / "out", "--package", "car-damage/3", "--atypical", "5", "--since", "2026-12-01T10:00:00Z") == 0
    document = json.loads((tmp_path / "out" / "monitor.json").read_text())
    assert set(document) == CONTRACT_KEYS and document["quality"] is None
    assert document["window"] == {"since": "2026-12-01T10:00:00Z", "until": None, "images": 30}
    assert document["baseline"] == {"package": "car-damage/3", "images": 60, "missing": []}
    assert document["window"]["images"] + len(document["unusable"]) == len(lines)  # every line accounted for
    reasons = {entry["capture"].rsplit(":", 1)[1]: entry["reason"] for entry in document["unusable"]}
    assert set(reasons) == {"31", "32", "33"} and "JSONDecodeError" in reasons["31"]
    unmeasured = "cannot be measured (StatisticsError: a detection's box is not {xmin, ymin, xmax, ymax} in pixels ('ymin'))"
    assert unmeasured in reasons["32"] and "not a readable photo" in reasons["33"]
    names = [(entry["kind"], entry["name"]) for entry in document["statistics"]]
    expected = [("input", name) for name in (*statistics.INPUT_CONTINUOUS, *statistics.INPUT_CATEGORICAL)]
    expected += [("output", name) for name in ("top_score", "detections", "area_share:dent", "area_share:scratch", "empty", "class_mix")]
    assert names == expected
    for entry in document["statistics"]:
        assert {"name", "kind", "test", "value", "p_value", "threshold", "drifted"} <= set(entry) and entry["test"] in ("ks", "chi2")
        assert entry["threshold"] == pytest.approx(statistics.ALPHA / 14)  # Bonferroni over both kinds' statistics
    assert len(document["atypical"]) == 5 and all(set(entry) == {"capture", "score", "why"} for entry in document["atypical"])
    scores = [entry["score"] for entry in document["atypical"]]
    assert scores == sorted(scores, reverse=True) and document["atypical"][0]["why"]
    listing = json.loads((tmp_path / "out" / "atypical.json").read_text())
    assert [entry["capture"] for entry in listing] == [entry["capture"] for entry in document["atypical"]]
    assert set(listing[0]["statistics"]["input"]) >= {"brightness", "sharpness"} and "top_score" in listing[0]["statistics"]["output"]
    assert "30 photo(s), 3 unusable record(s)" in capsys.readouterr().out


def test_the_answers_boxes_are_measured_as_the_handler_writes_them():
    """The handler's `box` is {xmin, ymin, xmax, ymax} in pixels (and `box_normalized` in 0-1): a dent over the
    left half of the photo is half its area, whichever of the two the answer holds."""
    box = {"class": "dent", "score": 0.8, "box": {"xmin": 0, "ymin": 0, "xmax": 32, "ymax": 48}}
    normalized = {"class": "dent", "score": 0.8, "box_normalized": {"xmin": 0, "ymin": 0, "xmax": 0.5, "ymax": 1.0}}
    for found in (box, normalized):
        line = capture_line(jpeg_bytes(size=SIZE), "image/jpeg", answer([found], SIZE), "application/json", when=WHEN, event_id="a")
        findings = monitor.watch([("c.jsonl", 1, json.dumps(line))], {"input": None, "output": None})
        assert findings.unusable == [] and findings.rows["output"][0]["areas"] == {"dent": pytest.approx(0.5)}


def test_an_empty_window_is_reported_as_empty_not_as_drift_or_an_error(tmp_path, baseline, capsys):
    captures = write_captures(tmp_path / "captures", capture_lines(range(100, 110)))  # all before the window
    assert run(captures, baseline, tmp_path / "out", "--since", "2026-12-02", "--until", "2026-12-03") == 0
    document = json.loads((tmp_path / "out" / "monitor.json").read_text())
    assert document["drift"] is False and document["window"]["images"] == 0 and document["unusable"] == [] and document["atypical"] == []
    assert all(entry["drifted"] is False and entry["p_value"] is None for entry in document["statistics"])
    out = capsys.readouterr().out
    assert "an empty window: nothing to compare, no drift" in out and "10 captured record(s) outside the window were left out" in out
    assert "An empty window" in (tmp_path / "out" / "report.html").read_text()


def test_a_missing_baseline_is_reported_and_its_kind_not_compared(tmp_path, baseline, capsys):
    only_model = tmp_path / "baseline"
    only_model.mkdir()
    (only_model / MODEL_BASELINE).write_text((baseline / MODEL_BASELINE).read_text())
    captures = write_captures(tmp_path / "captures", capture_lines(range(100, 110)))
    assert run(captures, only_model, tmp_path / "out") == 0
    document = json.loads((tmp_path / "out" / "monitor.json").read_text())
    assert document["baseline"] == {"package": None, "images": None, "missing": ["input"]}
    assert {entry["kind"] for entry in document["statistics"]} == {"output"} and document["atypical"] == []  # ranked against the data's
    assert f"no {DATA_BASELINE} in {only_model}: the input statistics are reported, not compared" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not a statistics document"),
        (json.dumps({"version": 1, "kind": "output", "images": 0, "continuous": {}, "categorical": {}}), "holds output statistics"),
    ],
)
def test_an_unreadable_baseline_is_exit_status_1_naming_the_file(tmp_path, content, message, capsys):
    (tmp_path / "baseline").mkdir()
    (tmp_path / "baseline" / DATA_BASELINE).write_text(content)
    (tmp_path / "captures").mkdir()
    assert run(tmp_path / "captures", tmp_path / "baseline", tmp_path / "out") == 1
    error = capsys.readouterr().err
    assert error.startswith(f"monitor: error: {tmp_path / 'baseline' / DATA_BASELINE}: ") and message in error
    assert not (tmp_path / "out" / "monitor.json").exists()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--since", "last tuesday"], "argument --since: 'last tuesday' is not an ISO 8601 date or time"),
        (["--since", "2026-12-02", "--until", "2026-12-01"], "--since 2026-12-02T00:00:00Z is not before --until 2026-12-01T00:00:00Z"),
        (["--atypical", "0"], "argument --atypical: 0 is not a positive integer"),
    ],
)
def test_a_bad_argument_is_exit_status_2_naming_it(tmp_path, arguments, message, capsys):
    (tmp_path / "captures").mkdir()
    with pytest.raises(SystemExit) as exited:
        run(tmp_path / "captures", tmp_path, tmp_path / "out", *arguments)
    assert exited.value.code == 2 and message in capsys.readouterr().err


def test_a_captures_folder_that_is_not_there_is_exit_status_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        run(tmp_path / "nowhere", tmp_path, tmp_path / "out")
    assert exited.value.code == 2 and f"--captures {tmp_path / 'nowhere'}: no such folder" in capsys.readouterr().err


def test_the_report_is_one_self_contained_page_with_a_plot_per_statistic(tmp_path, baseline):
    captures = write_captures(tmp_path / "captures", capture_lines(range(100, 130)))
    assert run(captures, baseline, tmp_path / "out", "--atypical", "4", "--endpoint", "car-damage-endpoint") == 0
    page = (tmp_path / "out" / "report.html").read_text()
    document = json.loads((tmp_path / "out" / "monitor.json").read_text())
    assert not re.search(r"https?:|url\(|@import", page)  # nothing fetched from anywhere
    sources = re.findall(r'\b(?:src|href)="([^"]*)"', page)
    assert sources and all(source.startswith(("data:image/png;base64,", "data:image/jpeg;base64,")) for source in sources)
    plots = re.findall(r'<figure class="plot" id="plot-(input|output)-([^"]+)">', page)
    assert plots == [(entry["kind"], entry["name"]) for entry in document["statistics"]]
    assert len(re.findall(r'<figure class="photo">', page)) == 4 and "Drift report: car-damage-endpoint" in page
    for source in sources:  # every picture decodes
        kind, data = source.split(",", 1)
        assert base64.b64decode(data).startswith(b"\x89PNG" if "png" in kind else b"\xff\xd8\xff")
    assert stat.S_IMODE((tmp_path / "out" / "report.html").stat().st_mode) == 0o600  # it shows captured photos
