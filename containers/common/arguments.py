"""Argument types the container programs share: each refuses a bad value with argparse's usage error."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def fraction(*, upper_open: bool = False) -> Callable[[str], float]:
    """A number in [0, 1], or in [0, 1) with `upper_open`."""

    def parse(text: str) -> float:
        value = float(text)
        if not (0.0 <= value < 1.0 if upper_open else 0.0 <= value <= 1.0):
            raise argparse.ArgumentTypeError(f"{text} is not in [0, 1{')' if upper_open else ']'}")
        return value

    return parse


def mapping_pair(text: str) -> tuple[str, str]:
    """SOURCE=CLASS: a class name as a label file spells it, and the configured class it stands for."""
    source, sep, target = text.partition("=")
    if not sep or not source.strip() or not target.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not SOURCE=CLASS (for example rayure=scratch)")
    return source.strip(), target.strip()
