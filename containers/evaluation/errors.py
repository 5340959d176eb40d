"""The one error type of the evaluation program, and a one-line reason from TensorFlow's many-line errors."""

from __future__ import annotations

import re

# TensorFlow decorates its messages with node names, op names and stack-trace headers; the reason is the rest.
_DECORATION = re.compile(r"\{\{[^}]*\}\}|\[\[.*?\]\]|\[Op:[^\]]*\](\s*name:\s*\S*)?")
_HEADERS = ("Graph execution error", "Detected at node", "<stack traces", "File ")


class EvaluationError(Exception):
    """The job cannot evaluate: a person must fix an input. The message says which and why, in one line."""


def brief(text: str) -> str:
    """The last informative line of an error message, without TensorFlow's decorations: what fits the
    one-line error a person reads on stderr or in SageMaker's failure reason."""
    lines = [_DECORATION.sub("", line).strip() for line in str(text).splitlines()]
    lines = [line for line in lines if line and not line.startswith(_HEADERS)]
    return lines[-1] if lines else "no details"
