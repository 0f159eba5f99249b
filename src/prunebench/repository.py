"""The repository the stages run in: DVC runs every stage from its root."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def on_path() -> Iterator[None]:
    """Import from the repository root (a user's `model.name: package.module:function`): Python
    looks for modules next to the stage script, not where the stage runs."""
    root = str(Path.cwd())
    sys.path.insert(0, root)
    try:
        yield
    finally:
        sys.path.remove(root)


def root() -> Path:
    """The main checkout, also when DVC runs an experiment in a temporary copy (`--temp`,
    `--queue`), where it sets DVC_ROOT to the main repository."""
    return Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()
