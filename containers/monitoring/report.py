"""report.html: the monitor's findings on one self-contained page, for a person.

Everything is inside the file, so it opens the same from S3, a mail or a laptop, and fetches nothing: the plots
are PNGs and the thumbnails JPEGs, inline as data: URIs, the style is inline, and the page's Content Security
Policy lets it load nothing else. Each statistic tested gets a plot of the baseline against the window: the two
empirical distribution functions for a continuous statistic (the Kolmogorov-Smirnov D is their largest vertical
gap), the share of each category side by side for a categorical one. Thumbnails of the most atypical photos come
with the reason; they are re-encoded from the pixels, upright, so they carry no EXIF or other metadata.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from containers.monitoring.quality import describe

THUMBNAIL = 192  # pixels of a thumbnail's longer side
UNUSABLE_SHOWN = 100  # unusable records listed on the page; monitor.json lists them all
COLOURS = {"baseline": "#4c72b0", "window": "#dd8452"}
STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
td, th { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; font-size: 0.9em; }
tr.drifted td { background: #fde2e1; }
.verdict { font-size: 1.2em; font-weight: bold; }
.verdict.drift { color: #b00020; }
.plots, .photos { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; max-width: 420px; }
figure.photo { max-width: 200px; }
figcaption { font-size: 0.8em; overflow-wrap: anywhere; }
"""
HEADINGS = ("statistic", "kind", "test", "effect", "p-value", "drift below p", "and effect from", "drifted", "note")
POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


Photo = tuple[str, float, str, bytes]  # an atypical photo: its capture, score, why, and encoded bytes


def render(
    document: Mapping[str, Any],
    baselines: Mapping[str, Mapping | None],
    windows: Mapping[str, Mapping],
    photos: Sequence[Photo],
    *,
    endpoint: str | None = None,
) -> str:
    """The page for monitor.json's `document`: `baselines` and `windows` are the documents compared, by kind;
    `photos` the most atypical, first."""
    window, baseline = document["window"], document["baseline"]
    title = f"Drift report{f': {endpoint}' if endpoint else ''}"
    drifted = [f"{s['name']} ({s['kind']})" for s in document["statistics"] if s["drifted"]]
    if not window["images"]:
        verdict = '<p class="verdict">An empty window: no captured photos, so nothing to compare and no drift.</p>'
    elif drifted:
        verdict = f'<p class="verdict drift">Drift in {escape(", ".join(drifted))}.</p>'
    else:
        verdict = f'<p class="verdict">No drift in the {len(document["statistics"])} statistics tested.</p>'
    missing = "".join(f"<p>No {kind} baseline: the window's {kind} statistics are not compared.</p>" for kind in baseline["missing"])
    parts = [
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="{POLICY}">',
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f"<p>Window [{escape(window['since'] or 'the first capture')}, {escape(window['until'] or 'the last')}): "
        f"{window['images']} photo(s), {len(document['unusable'])} unusable record(s). "
        f"Baseline: package {escape(str(baseline['package'] or 'not named'))}, {_count(baseline['images'])} photo(s).</p>",
        verdict,
        missing,
        _quality(document.get("quality")),
        _statistics_table(document["statistics"]),
        "<h2>Baseline against window</h2>",
        f'<div class="plots">{"".join(_plot(result, baselines, windows) for result in document["statistics"])}</div>',
        "<h2>Most atypical photos</h2>",
        _thumbnails(photos) if photos else "<p>None ranked: no data baseline, or no photos.</p>",
        _unusable(document["unusable"]),
        "</body></html>\n",
    ]
    return "\n".join(part for part in parts if part)


def _quality(service: Mapping[str, Any] | None) -> str:
    """The accuracy in service, when labels were given and some labelled photo has an answer in the window."""
    if service is None:
        return ""
    package = f" of package {escape(str(service['package']))}" if service.get("package") else ""
    rows = "".join(f"<tr><td>{escape(r['record'])}</td><td>{escape(r['reason'])}</td></tr>" for r in service["refused"][:UNUSABLE_SHOWN])
    refused = f"<table><tr><th>labelling refused</th><th>reason</th></tr>{rows}</table>" if rows else ""
    return f"<h2>Accuracy in service{package}</h2><p>{escape(describe(service))}.</p><p>Labels: {escape(str(service['labels']))}.</p>{refused}"


def _count(images: int | None) -> str:
    return "no" if images is None else str(images)


def _statistics_table(results: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for r in results:
        value = "" if r["value"] is None else f"{r['value']:.3f}"
        p_value = "" if r["p_value"] is None else f"{r['p_value']:.3g}"
        cells = [
            r["name"],
            r["kind"],
            r["test"],
            value,
            p_value,
            f"{r['threshold']:.3g}",
            f"{r['min_effect']:.2f}",
            "yes" if r["drifted"] else "no",
            r["note"],
        ]
        rows.append(f'<tr class="{"drifted" if r["drifted"] else ""}">{"".join(f"<td>{escape(str(c))}</td>" for c in cells)}</tr>')
    head = "".join(f"<th>{name}</th>" for name in HEADINGS)
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>" if rows else "<p>No statistic tested.</p>"


def _plot(result: Mapping[str, Any], baselines: Mapping[str, Mapping | None], windows: Mapping[str, Mapping]) -> str:
    """One figure: baseline against window for one statistic, as an inline PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    kind, name = result["kind"], result["name"]
    baseline, window = baselines[kind] or {}, windows[kind]
    figure = Figure(figsize=(5.2, 3.0), dpi=80)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    if result["test"] == "ks":
        for label, values in (("baseline", baseline["continuous"].get(name, [])), ("window", window["continuous"].get(name, []))):
            if values:
                axes.ecdf(values, label=f"{label} ({len(values)})", color=COLOURS[label])
        axes.set_ylabel("share at or below")
    else:
        expected, seen = baseline["categorical"].get(name, {}), window["categorical"].get(name, {})
        categories = sorted(set(expected) | set(seen))
        positions = range(len(categories))
        for offset, (label, counts) in zip((-0.2, 0.2), (("baseline", expected), ("window", seen)), strict=True):
            total = sum(counts.values()) or 1
            axes.bar([p + offset for p in positions], [counts.get(c, 0) / total for c in categories], width=0.4, label=label, color=COLOURS[label])
        axes.set_xticks(list(positions), categories)
        axes.set_xlim(-0.75, len(categories) - 0.25)  # a lone category keeps its width
        axes.set_ylabel("share")
    effect = "" if result["value"] is None else f": {'D' if result['test'] == 'ks' else 'V'} {result['value']:.2f}"
    axes.set_title(f"{name}{effect}{'  DRIFT' if result['drifted'] else ''}", fontsize=10, color="#b00020" if result["drifted"] else "black")
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize=8)
    figure.subplots_adjust(left=0.14, right=0.97, top=0.88, bottom=0.16)  # fixed margins: tight_layout took half the time
    picture = io.BytesIO()
    figure.savefig(picture, format="png")
    alt = f"{name} ({kind}): baseline against window"
    tested = f"{result['test']} p {result['p_value']:.3g}" if result["p_value"] is not None else result["note"]
    caption = f"{name} ({kind}): {tested}"
    return (
        f'<figure class="plot" id="plot-{escape(kind)}-{escape(name)}"><img src="{_data_uri(picture.getvalue(), "image/png")}" alt="{escape(alt)}">'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def _thumbnails(photos: Sequence[Photo]) -> str:
    figures = []
    for capture, score, why, data in photos:
        figures.append(
            f'<figure class="photo"><img src="{_data_uri(thumbnail(data), "image/jpeg")}" alt="{escape(capture)}">'
            f"<figcaption>{escape(f'{score:.2f}: {why} ({capture})')}</figcaption></figure>"
        )
    return f'<div class="photos">{"".join(figures)}</div>'


def thumbnail(data: bytes) -> bytes:
    """A small JPEG of the photo, upright, from its pixels only (no EXIF, ICC profile or comment)."""
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(data)) as image:
        image.draft("RGB", (THUMBNAIL, THUMBNAIL))
        small = ImageOps.exif_transpose(image).convert("RGB")
    small.thumbnail((THUMBNAIL, THUMBNAIL))
    out = io.BytesIO()
    small.save(out, format="JPEG", quality=80)
    return out.getvalue()


def _unusable(unusable: Sequence[Mapping[str, str]]) -> str:
    if not unusable:
        return ""
    rows = "".join(f"<tr><td>{escape(u['capture'])}</td><td>{escape(u['reason'])}</td></tr>" for u in unusable[:UNUSABLE_SHOWN])
    more = f"<p>... and {len(unusable) - UNUSABLE_SHOWN} more, listed in monitor.json.</p>" if len(unusable) > UNUSABLE_SHOWN else ""
    return f"<h2>Unusable records</h2><table><tr><th>capture</th><th>reason</th></tr>{rows}</table>{more}"


def _data_uri(data: bytes, media_type: str) -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"
