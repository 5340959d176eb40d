"""The monitor's statistics and tests (containers/monitoring/statistics.py) on photos and answers made here,
whose statistics are known by construction."""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
from PIL import Image

from containers.monitoring import statistics
from containers.monitoring.statistics import (
    MAX_SAMPLE,
    StatisticsError,
    atypicality,
    compare,
    input_statistics,
    merge,
    output_statistics,
    summarize,
)


def encoded(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def noise(seed: int, size=(320, 240), level: float = 0.5, spread: float = 0.2) -> bytes:
    """A JPEG of smooth random texture around `level` of full brightness."""
    rng = np.random.default_rng(seed)
    small = rng.normal(level * 255, spread * 255, (size[1] // 16, size[0] // 16, 3)).clip(0, 255).astype(np.uint8)
    return encoded(Image.fromarray(small).resize(size, Image.Resampling.BICUBIC), "JPEG", quality=92)


def test_pixel_statistics_follow_their_formulas():
    grey = input_statistics(encoded(Image.new("RGB", (400, 200), (128, 128, 128))))
    assert (grey["width"], grey["height"], grey["aspect_ratio"], grey["format"]) == (400, 200, 2.0, "PNG")
    assert grey["brightness"] == pytest.approx(128 / 255) and grey["contrast"] == pytest.approx(0.0)
    assert grey["sharpness"] == pytest.approx(0.0) and grey["saturation"] == pytest.approx(0.0)
    red = input_statistics(encoded(Image.new("RGB", (64, 64), (255, 0, 0))))
    assert red["saturation"] == pytest.approx(1.0) and red["brightness"] == pytest.approx(76 / 255, abs=1 / 255)  # Y = 0.299 R
    halves = np.zeros((100, 100), np.uint8)
    halves[:, 50:] = 255
    split = input_statistics(encoded(Image.fromarray(halves).convert("RGB")))
    assert split["brightness"] == pytest.approx(0.5) and split["contrast"] == pytest.approx(0.5)
    assert split["sharpness"] > 0  # the edge


def test_the_size_is_the_upright_photo_s_and_pixels_are_read_at_the_downscale():
    photo = Image.new("RGB", (3000, 1000), (10, 200, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: shown 1000 x 3000
    turned = input_statistics(encoded(photo, "JPEG", exif=exif.tobytes()))
    assert (turned["width"], turned["height"], turned["format"]) == (1000, 3000, "JPEG")
    assert turned["aspect_ratio"] == pytest.approx(1 / 3)
    assert turned["brightness"] == pytest.approx(input_statistics(encoded(photo, "JPEG"))["brightness"], abs=0.01)


def test_blur_lowers_sharpness_and_darkening_lowers_brightness():
    from PIL import ImageEnhance, ImageFilter

    rng = np.random.default_rng(1)
    sharp = Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)).filter(ImageFilter.GaussianBlur(1))

    base = input_statistics(encoded(sharp, "JPEG", quality=92))
    blurred = input_statistics(encoded(sharp.filter(ImageFilter.GaussianBlur(3)), "JPEG", quality=92))
    dark = input_statistics(encoded(ImageEnhance.Brightness(sharp).enhance(0.5), "JPEG", quality=92))
    assert blurred["sharpness"] < base["sharpness"] / 2 and dark["brightness"] < base["brightness"] * 0.6


def test_what_is_not_a_photo_is_a_clear_error():
    with pytest.raises(StatisticsError, match="not a readable photo"):
        input_statistics(b"GIF89a but not really")


def test_answer_statistics_union_each_class_s_boxes():
    detections = [
        {"class": "dent", "score": 0.9, "box": {"xmin": 0, "ymin": 0, "xmax": 50, "ymax": 100}},
        {"class": "dent", "score": 0.4, "box": {"xmin": 25, "ymin": 0, "xmax": 75, "ymax": 100}},  # overlaps the first: the union is 75 x 100
        {"class": "scratch", "score": 0.6, "box_normalized": {"xmin": 0, "ymin": 0, "xmax": 1.0, "ymax": 0.1}},  # the other way it writes it
    ]
    row = output_statistics(detections, 100, 100)
    assert (row["top_score"], row["detections"], row["empty"]) == (0.9, 3, "no")
    assert row["class_mix"] == {"dent": 2, "scratch": 1}
    assert row["areas"] == {"dent": pytest.approx(0.75, abs=0.01), "scratch": pytest.approx(0.10, abs=0.01)}
    assert output_statistics([], 100, 100) == {"top_score": 0.0, "detections": 0, "empty": "yes", "class_mix": {}, "areas": {}}
    with pytest.raises(StatisticsError, match="box"):
        output_statistics([{"class": "dent", "score": 0.5, "box": "wide"}], 10, 10)


def test_documents_sample_merge_and_are_checked():
    rows = [{"width": 1, "height": 1, "aspect_ratio": 1, "format": "JPEG", "brightness": i, "contrast": 0, "sharpness": 0, "saturation": 0}
            for i in range(MAX_SAMPLE + 10)]  # fmt: skip
    document = summarize(rows, "input")
    assert document["images"] == MAX_SAMPLE + 10 and len(document["continuous"]["brightness"]) == MAX_SAMPLE
    assert document["categorical"] == {"format": {"JPEG": MAX_SAMPLE + 10}}
    merged = merge([summarize(rows[:3], "input"), summarize(rows[3:5], "input")])
    assert merged["images"] == 5 and sorted(merged["continuous"]["brightness"]) == [0, 1, 2, 3, 4]
    dent = {"class": "dent", "score": 0.5, "box": {"xmin": 0, "ymin": 0, "xmax": 5, "ymax": 5}}
    answers = [output_statistics([dent], 10, 10), output_statistics([], 10, 10)]
    out = summarize(answers, "output", classes=["dent", "scratch"])
    assert out["continuous"]["area_share:dent"] == [0.25, 0.0] and out["continuous"]["area_share:scratch"] == [0.0, 0.0]
    assert out["categorical"] == {"empty": {"no": 1, "yes": 1}, "class_mix": {"dent": 1}}
    with pytest.raises(StatisticsError, match="cannot merge documents of kinds"):
        merge([document, out])
    with pytest.raises(StatisticsError, match=r"data-baseline\.json: version must be 1"):
        statistics.check({**document, "version": 0}, "data-baseline.json")
    with pytest.raises(StatisticsError, match="the baseline: images is missing"):
        compare({k: v for k, v in document.items() if k != "images"}, document)


def window_of(seed: int, level: float, count: int = 60) -> dict:
    rng = random.Random(seed)
    return summarize((input_statistics(noise(rng.randrange(10**6), level=level)) for _ in range(count)), "input")


@pytest.fixture(scope="module")
def baseline():
    return window_of(1000, 0.5, count=200)


def test_a_window_from_the_baseline_s_own_distribution_raises_no_drift_and_a_dark_one_names_brightness(baseline):
    same = [result for result in compare(baseline, window_of(1, 0.5)) if result.drifted]
    assert same == []
    dark = {result.name: result for result in compare(baseline, window_of(2, 0.3))}
    assert dark["brightness"].drifted and dark["brightness"].test == "ks" and dark["brightness"].value >= 0.1
    assert dark["brightness"].threshold == pytest.approx(statistics.ALPHA / 8)  # Bonferroni over 7 continuous + format
    assert not dark["width"].drifted and dark["width"].p_value == pytest.approx(1.0)


def test_categories_are_tested_by_chi_squared_and_untestable_ones_say_why():
    def answers(empty: int, full: int) -> dict:
        one = [{"class": "dent", "score": 0.8, "box": {"xmin": 0, "ymin": 0, "xmax": 5, "ymax": 5}}]
        return summarize([output_statistics([], 10, 10)] * empty + [output_statistics(one, 10, 10)] * full, "output", classes=["dent"])

    results = {result.name: result for result in compare(answers(20, 180), answers(150, 50))}
    assert results["empty"].test == "chi2" and results["empty"].drifted and results["empty"].value > 0.5  # Cramer's V
    assert results["class_mix"].note == "one category on both sides" and not results["class_mix"].drifted
    assert not {result.name: result for result in compare(answers(20, 180), answers(22, 178))}["empty"].drifted


def test_atypicality_names_the_statistic_that_makes_a_photo_unlike_the_baseline(baseline):
    rng = random.Random(5)  # photos from the baseline's own generator: some tail, rarely the farthest one
    typical = sorted(atypicality(baseline, input_statistics(noise(rng.randrange(10**6), level=0.5)))[0] for _ in range(12))
    odd, why = atypicality(baseline, input_statistics(noise(8, level=0.05)))
    assert typical[-2] < 2 <= odd == pytest.approx(-np.log10(1 / 201))  # darker than every one of 200: the ceiling
    assert why.startswith("brightness") and "is below 100.0% of the baseline" in why
