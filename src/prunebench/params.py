"""Read params.yaml, the single source of truth.

The check stage validates it (`prunebench.schema`) before any stage that owns outputs runs, so
the other stages read it as it is and import nothing of the validation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from prunebench.errors import UserError

PARAMS_FILE = Path("params.yaml")


class ParamError(UserError, ValueError):
    """One line naming the key: `params.yaml: <key> = <value>: expected <what is allowed>`."""


def load(path: str | Path = PARAMS_FILE) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ParamError(f"{path}: not found; run from the repository root")
    params = yaml.safe_load(path.read_text())
    if not isinstance(params, dict):
        raise ParamError(f"{path}: expected a mapping of keys to values")
    return params
