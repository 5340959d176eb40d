"""The monitor's report.html as a person sees it: opened from disk in a real Chromium (tests/browser.py), every
plot and thumbnail decodes and shows, the page asks for nothing outside itself, and says nothing on the console."""

from __future__ import annotations

import json

from tests.browser import outside_requests
from tests.containers.monitoring.test_monitor import baseline, capture_lines, run, write_captures  # noqa: F401 (baseline is a fixture)


def test_the_drift_report_shows_every_plot_and_thumbnail_in_a_browser(tmp_path, baseline, chromium):  # noqa: F811
    captures = write_captures(tmp_path / "captures", capture_lines(range(100, 130)))
    assert run(captures, baseline, tmp_path / "out", "--atypical", "4", "--endpoint", "car-damage-endpoint") == 0
    document = json.loads((tmp_path / "out" / "monitor.json").read_text())
    page = chromium.new_page()
    try:
        elsewhere, messages = outside_requests(page), []
        page.on("console", lambda message: messages.append(message.text))
        page.on("pageerror", lambda error: messages.append(str(error)))
        own = (tmp_path / "out" / "report.html").as_uri()
        page.goto(own)
        assert page.title() == "Drift report: car-damage-endpoint"
        plots = page.locator("figure.plot img")
        photos = page.locator("figure.photo img")
        assert plots.count() == len(document["statistics"]) and photos.count() == 4
        # Each picture decoded (naturalWidth is 0 for one the browser could not read) and takes room on the page.
        sizes = page.eval_on_selector_all("img", "images => images.map(i => [i.complete, i.naturalWidth, i.getBoundingClientRect().width])")
        assert sizes and all(complete and natural > 0 and shown > 0 for complete, natural, shown in sizes), sizes
        for entry in document["statistics"]:
            assert page.locator(f'figure.plot[id="plot-{entry["kind"]}-{entry["name"]}"]').is_visible()
        assert [url for url in elsewhere if url != own] == [] and messages == []
    finally:
        page.close()
