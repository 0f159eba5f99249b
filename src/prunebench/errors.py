"""Errors a user can fix, and how every entry point shows an error: one line, no traceback.

A stage or `prunebench` command that fails prints `<where>: <what to change>` and exits 1.
Errors the code did not foresee get the same one line, with their type; set
`PRUNEBENCH_DEBUG=1` (or `prunebench --debug`) to see the traceback instead.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

DEBUG = "PRUNEBENCH_DEBUG"


class UserError(Exception):
    """A mistake in params.yaml, the data or a file: its message is one line naming what to change."""


def briefly(error: BaseException, limit: int = 200) -> str:
    """An error as a clause of one line: its type and the first line of its message."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:limit]}" if lines else type(error).__name__


@contextmanager
def reported(where: str) -> Iterator[None]:
    """Run the body of an entry point; turn any exception into one line on stderr and exit 1."""
    try:
        yield
    except Exception as error:  # KeyboardInterrupt and SystemExit pass through
        if os.environ.get(DEBUG, "") not in ("", "0"):
            raise
        lines = str(error).strip().splitlines() or [""]
        message = (
            lines[0]
            if isinstance(error, UserError)
            else f"{type(error).__name__}: {lines[0]} (set {DEBUG}=1 for the traceback)"
        )
        sys.exit(f"{where}: {message}")


class Unsupported(UserError, ValueError):
    """A method cannot prune this model: the message names the layer or what the model lacks."""


class OutOfReach(UserError, ValueError):
    """A selection asks a method for more than it can remove (`min_channels`, `max_ratio`, every
    layer keeping one channel, the sensitivity sweep's largest ratio): the budget search takes it
    as the furthest the method goes, never as a failure."""
