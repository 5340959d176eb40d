"""The figures' uncertainty as evaluation.json carries it, read back, and shown: `0.41 (0.33-0.49)`.

Evaluate writes (containers/evaluation/bootstrap.py computes them)
    "intervals": {"method": METHOD, "resamples": R, "confidence": 0.95, "seed": S,
                  "metrics": {"mAP": [low, high], "mAP_50": [low, high], "AP/<class>": [low, high], ...}}
([null, null] for a figure that is undefined), and in `champion`: `lead_interval`, the interval of `map_lead`
(the champion's mAP less the challenger's; null when nothing is served), and the champion's own `intervals`.
This module imports nothing heavy: the command line, the Fail message's texts (written by Evaluate) and the
report pages all format with `format_interval`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

METHOD = "percentile bootstrap over validation images"
CONFIDENCE = 0.95
MIN_RESAMPLES = 1000  # the fewest resamples Evaluate draws (pipeline.yaml's evaluation.bootstrap_resamples, --bootstrap-resamples)
DEFAULT_SEED = 23  # any fixed number: the same seed draws the same resamples, so a rerun gives the same intervals
Bounds = tuple[float | None, float | None]


def format_interval(value: float | None, interval: Bounds | None = None, digits: int = 2) -> str:
    """A figure with its interval, `0.41 (0.33-0.49)`; `0.05 (-0.04 to 0.15)` when a bound is negative (a
    hyphen would read as a minus sign); the figure alone when the interval is unknown; `n/a` without a figure."""
    if value is None:
        return "n/a"
    figure = _fixed(value, digits)
    if interval is None or interval[0] is None or interval[1] is None:
        return figure
    low, high = interval
    joint = " to " if low < 0 or high < 0 else "-"
    return f"{figure} ({_fixed(low, digits)}{joint}{_fixed(high, digits)})"


def intervals_section(bounds: Mapping[str, Bounds], *, resamples: int, seed: int, digits: int) -> dict:
    """evaluation.json's `intervals`: each figure's bounds rounded to `digits`."""
    return {
        "method": METHOD,
        "resamples": resamples,
        "confidence": CONFIDENCE,
        "seed": seed,
        "metrics": {name: [_round(low, digits), _round(high, digits)] for name, (low, high) in bounds.items()},
    }


@dataclass(frozen=True)
class ReportIntervals:
    """What a package's evaluation.json says of its uncertainty: the interval of its mAP, of its champion's mAP
    (on the same resamples), and the champion's lead (its mAP less the package's) with its interval."""

    map: Bounds | None
    champion_map: Bounds | None = None
    lead: float | None = None
    lead_interval: Bounds | None = None

    @classmethod
    def from_report(cls, report: Any) -> ReportIntervals | None:
        """The intervals of an evaluation.json (parsed); None for one written before intervals, or unreadable."""
        if not isinstance(report, Mapping) or not isinstance(report.get("intervals"), Mapping):
            return None
        champion = report.get("champion") if isinstance(report.get("champion"), Mapping) else {}
        served = bool(champion.get("version"))
        lead = champion.get("map_lead") if served else None
        return cls(
            map=_bounds(report["intervals"], "mAP"),
            champion_map=_bounds(champion.get("intervals"), "mAP") if served else None,
            lead=float(lead) if isinstance(lead, int | float) else None,
            lead_interval=_pair(champion.get("lead_interval")) if served else None,
        )


def _bounds(section: Any, name: str) -> Bounds | None:
    metrics = section.get("metrics") if isinstance(section, Mapping) else None
    return _pair(metrics.get(name)) if isinstance(metrics, Mapping) else None


def _pair(value: Any) -> Bounds | None:
    if not isinstance(value, list | tuple) or len(value) != 2:
        return None
    if not all(bound is None or isinstance(bound, int | float) for bound in value):
        return None
    return (None if value[0] is None else float(value[0]), None if value[1] is None else float(value[1]))


def _fixed(value: float, digits: int) -> str:
    return f"{round(value, digits) + 0.0:.{digits}f}"  # + 0.0: no "-0.00"


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(float(value), digits)
