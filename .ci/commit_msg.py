"""The commit-msg hook (.pre-commit-config.yaml): a subject of at most 72 characters a reader can
scan in `git log --oneline`, the detail in the body after a blank line."""

from __future__ import annotations

import sys
from pathlib import Path

LIMIT = 72


def problem(message: str) -> str | None:
    """What is wrong with a commit message, or None."""
    lines = [line for line in message.splitlines() if not line.startswith("#")]
    if not lines or not lines[0].strip():
        return "the subject (first line) is empty"
    if len(lines[0]) > LIMIT:
        return f"the subject has {len(lines[0])} characters; at most {LIMIT}, the detail in the body"
    if len(lines) > 1 and lines[1].strip():
        return "the second line must be blank: the subject, a blank line, then the body"
    return None


if __name__ == "__main__":
    found = problem(Path(sys.argv[1]).read_text())
    if found:
        sys.exit(f"commit message: {found}")
