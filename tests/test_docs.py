"""The README and the pages under docs/: every relative link leads to a file that exists (and, for a link to a
heading, to a heading that exists), and the README links every page. The command table is held equal to
`cardamage --help` by tests/pipelines/test_cli.py, the configuration table by tests/pipelines/test_config.py."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from urllib.parse import unquote

import pytest

from tests.support import ROOT

DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
# [text](target) and ![alt](target), with an optional title; and reference definitions `[name]: target`.
INLINE_LINK = re.compile(r"\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")  # http:, https:, mailto:, ... are not checked here
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
FENCE = re.compile(r"^ {0,3}(```|~~~)")


def without_code_blocks(text: str) -> str:
    """The text with fenced and indented code blocks blanked out, line for line (so line numbers stay)."""
    kept, fence, in_indented, previous_blank = [], None, False, True
    for line in text.splitlines():
        opening = FENCE.match(line)
        if fence:
            kept.append("")
            fence = None if opening and opening.group(1) == fence else fence
            continue
        if opening:
            fence = opening.group(1)
            kept.append("")
            continue
        blank = not line.strip()
        if (in_indented and blank) or (line.startswith(("    ", "\t")) and (previous_blank or in_indented) and not blank):
            in_indented = True
            kept.append("")
            continue
        in_indented, previous_blank = False, blank
        kept.append(line)
    return "\n".join(kept)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: its text (link text, code without backticks), lowercase, every character
    but letters, digits, spaces, '-' and '_' dropped, spaces turned into '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The anchors of a page's headings; a repeated heading gets -1, -2, ... as on GitHub."""
    found, seen = set(), Counter()
    for line in without_code_blocks(page.read_text(encoding="utf-8")).splitlines():
        match = HEADING.match(line)
        if match:
            base = slug(match.group(2))
            found.add(base if not seen[base] else f"{base}-{seen[base]}")
            seen[base] += 1
    return found


def links(page: Path) -> list[tuple[int, str]]:
    """(line, target) of every link in a page's prose: links inside code blocks and `code spans` are text."""
    text = without_code_blocks(page.read_text(encoding="utf-8"))
    text = re.sub(r"`[^`]*`", lambda span: "\n" * span.group().count("\n"), text)
    found = [(match.start(), match.group(1)) for pattern in (INLINE_LINK, REFERENCE_LINK) for match in pattern.finditer(text)]
    return [(text.count("\n", 0, start) + 1, target) for start, target in sorted(found)]


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    """Every relative link of the page that leads nowhere, as `file:line: target: why`."""
    problems = []
    for line, target in links(page):
        if SCHEME.match(target):
            continue
        path, _, anchor = unquote(target).partition("#")
        resolved = (page.parent / path).resolve() if path else page.resolve()
        where = f"{page.relative_to(root)}:{line}: {target}"
        if not resolved.is_relative_to(root.resolve()):
            problems.append(f"{where}: leads outside the repository")
        elif not resolved.exists():
            problems.append(f"{where}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            problems.append(f"{where}: no heading with the anchor #{anchor} in {resolved.relative_to(root.resolve())}")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_leads_to_a_file_and_heading_that_exist(page):
    problems = broken_links(page)
    assert not problems, "\n".join(problems)


def test_the_readme_links_every_page_under_docs():
    readme = ROOT / "README.md"
    linked = {(readme.parent / unquote(target).partition("#")[0]).resolve() for _, target in links(readme) if not SCHEME.match(target)}
    pages = set(DOCS.glob("*.md"))
    assert len(pages) >= 10
    unlinked = sorted(str(page.relative_to(ROOT)) for page in pages if page.resolve() not in linked)
    assert not unlinked, f"README.md does not link {unlinked}"


def test_a_broken_link_or_anchor_is_reported_with_its_line_and_code_is_not_a_link(tmp_path):
    root = tmp_path / "repository"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "target.md").write_text("# Target\n\n## The data's path: `pipeline.yaml`\n\n## Twice\n\n## Twice\n")
    (tmp_path / "elsewhere.md").write_text("a file outside the repository\n")
    page = root / "README.md"
    page.write_text(
        "See [the page](docs/target.md), [a heading](docs/target.md#the-datas-path-pipelineyaml),\n"
        "[the second of two](docs/target.md#twice-1), [here](#top) and [the web](https://example.com/missing.md).\n"
        "# Top\n"
        "Broken: [gone](docs/gone.md) and [no heading](docs/target.md#nowhere) and [out](../elsewhere.md).\n"
        "Not links: `[text](docs/in-a-span.md)` and\n\n"
        "    [text](docs/in-an-indented-block.md)\n\n"
        "```\n[text](docs/in-a-fence.md)\n```\n"
        "[name]: docs/gone-too.md\n"
    )
    assert broken_links(page, root) == [
        "README.md:4: docs/gone.md: no such file",
        "README.md:4: docs/target.md#nowhere: no heading with the anchor #nowhere in docs/target.md",
        "README.md:4: ../elsewhere.md: leads outside the repository",
        "README.md:12: docs/gone-too.md: no such file",
    ]


def test_slugs_follow_githubs_rule():
    assert slug("Configuration: `pipeline.yaml`") == "configuration-pipelineyaml"
    assert slug("The review loop: the endpoint's hard cases (`cardamage review`)") == "the-review-loop-the-endpoints-hard-cases-cardamage-review"
    assert slug("Release stages and [`cardamage promote`](x.md)") == "release-stages-and-cardamage-promote"
