"""The approvers' console as a person uses it, in a real Chromium (tests/browser.py): uvicorn serves the console in
a thread on a free port of 127.0.0.1 over a local state with two pending packages. The person reads the list,
opens the second package and its report, approves it with a comment, and sees the status and the deployment;
`cardamage models` then shows it Approved with that comment. The page asks for nothing outside the console, and
text from the registry holding markup is shown as text and runs nothing."""

from __future__ import annotations

import getpass

from tests.browser import outside_requests
from tests.pipelines.console_support import Registered, models_row, pending_state, running_console

HOSTILE = "<script>window.__pwned = 1</script>"
PACKAGES = (
    Registered(1, 0.3559, (0.30, 0.41), note=f"held back: {HOSTILE}", data='s3://local-data/"><img src=x onerror="window.__pwned=2">'),
    Registered(2, 0.4083, (0.33, 0.49), champion=(1, 0.3559, (0.30, 0.41), (-0.12, 0.02))),
)


def watched(page) -> tuple[list[str], list[str]]:
    """The requests the page makes beyond 127.0.0.1, and what it says on the console (a refused style or picture
    is a Content Security Policy message there) or throws."""
    messages: list[str] = []
    page.on("console", lambda message: messages.append(message.text))
    page.on("pageerror", lambda error: messages.append(str(error)))
    return outside_requests(page), messages


def test_an_approver_reads_the_list_opens_the_second_package_and_approves_it(tmp_path, chromium, monkeypatch):
    config, state_dir = pending_state(tmp_path, PACKAGES)
    comment = "better on dents"
    with running_console(config, state_dir) as url:
        page = chromium.new_page()
        try:
            elsewhere, messages = watched(page)
            page.goto(url)
            assert page.title() == "Packages of car-damage-models · cardamage console"
            rows = page.locator("#packages tbody tr")
            assert rows.count() == 2
            shown = [rows.nth(i).locator("td.map").inner_text() for i in range(2)]
            assert shown == ["0.41 (0.33-0.49)", "0.36 (0.30-0.41)"]
            assert rows.nth(0).locator("td.lead").inner_text() == "-0.052 (-0.120 to 0.020) against v1 (mAP 0.36 (0.30-0.41))"
            assert [rows.nth(i).locator("td.status").inner_text() for i in range(2)] == ["PendingManualApproval"] * 2

            page.get_by_role("link", name="version 2").click()
            assert page.url == f"{url}packages/2"
            report = page.frame_locator("#report")
            assert report.locator("h1").inner_text() == "Model report: abababababab"  # Evaluate's page, by the model's digest
            assert report.locator("h2#photos").is_visible()
            # Three photos, each as ground truth, champion and challenger side by side; every picture decoded and shown.
            sizes = report.locator("img").evaluate_all("images => images.map(i => [i.complete, i.naturalWidth, i.getBoundingClientRect().width])")
            assert len(sizes) == 9 and all(complete and natural > 0 and width > 0 for complete, natural, width in sizes), sizes

            page.get_by_label("Comment").fill(comment)
            page.get_by_role("button", name="Approve").click()
            page.wait_for_url(f"{url}packages/2?result=*")
            assert page.locator("#status").inner_text() == "Approved"
            result = page.locator("#result")
            note = f"Approved by {getpass.getuser()}@local: {comment}"
            assert result.locator(".summary").inner_text() == f"version 2: PendingManualApproval -> Approved ({note})"
            assert result.locator(".deployment").inner_text() == (
                "endpoint car-damage-endpoint: created (nothing is served yet: version 2 is deployed; version 2 is in service)"
            )
            assert page.locator("#figures td.serving").inner_text() == "serving"
            assert elsewhere == [] and messages == []
        finally:
            page.close()
    listed = models_row(state_dir, 2, monkeypatch)
    assert listed.split()[1] == "Approved" and listed.endswith(note)
    assert shown[0] in listed and shown[1] in models_row(state_dir, 1, monkeypatch)  # the figures the page showed


def test_an_empty_comment_is_stopped_by_the_page_and_changes_nothing(tmp_path, chromium):
    config, state_dir = pending_state(tmp_path, PACKAGES)
    with running_console(config, state_dir) as url:
        page = chromium.new_page()
        try:
            page.goto(f"{url}packages/2")
            page.get_by_role("button", name="Reject").click()
            assert page.locator("#comment").evaluate("field => field.validity.valueMissing")
            assert page.url == f"{url}packages/2" and page.locator("#status").inner_text() == "PendingManualApproval"
        finally:
            page.close()


def test_markup_in_the_registry_is_shown_as_text_and_runs_nothing(tmp_path, chromium):
    config, state_dir = pending_state(tmp_path, PACKAGES)
    with running_console(config, state_dir) as url:
        page = chromium.new_page()
        try:
            for path in ("", "packages/1"):
                page.goto(f"{url}{path}")
                assert page.get_by_text(f"held back: {HOSTILE}").is_visible(), path
                assert page.get_by_text('s3://local-data/"><img src=x onerror="window.__pwned=2">').is_visible(), path
                assert page.evaluate("typeof window.__pwned") == "undefined", path
                assert page.locator("main script, main img").count() == 0, path
        finally:
            page.close()
