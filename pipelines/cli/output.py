"""How the commands print: one console, one table style, one way to write a moment and a duration."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table


def console() -> Console:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 200)


def table(*columns: str) -> Table:
    from rich.table import Table

    result = Table(box=None, header_style="bold", pad_edge=False)
    for column in columns:
        result.add_column(column, overflow="fold")
    return result


def when(moment: datetime | None) -> str:
    """A moment in UTC, to the second; `-` when unknown."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if isinstance(moment, datetime) else "-"


def duration(seconds: float) -> str:
    """`42s`, `3m05s`, `1h02m`: short enough for a table column. (Hand-written: humanize and pendulum spell
    durations out in words, too wide for a column.)"""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def took(start: datetime | None, end: datetime | None) -> str:
    """How long from `start` to `end`; `-` when either is unknown."""
    return duration((end - start).total_seconds()) if isinstance(start, datetime) and isinstance(end, datetime) else "-"
