"""How a job's program ends: what the Processing programs (PrepareData, Evaluate) share.

SageMaker reads a job's outcome from its exit status and shows the last lines of its log, so an expected
failure is one line on stderr, `<program>: error: <what>`, with exit status 1; Ctrl-C is 130, as a shell says.
"""

from __future__ import annotations

import sys
from collections.abc import Callable


def exit_status(program: str, work: Callable[[], object], *expected: type[Exception]) -> int:
    """Run `work`: 0 when it returns, 1 with one line on stderr for an `expected` failure, 130 when interrupted.
    Any other exception is a bug and keeps its traceback."""
    try:
        work()
    except expected as exc:
        print(f"{program}: error: {_describe(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{program}: interrupted", file=sys.stderr)
        return 130
    return 0


def _describe(exc: Exception) -> str:
    """An OSError names its file and what went wrong (not errno's tuple); anything else is its message."""
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    return str(exc)
