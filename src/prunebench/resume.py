"""Resume caches: state a stage keeps outside DVC's outputs (under checkpoints/), so that a killed
run goes on where it stopped and a re-run reuses what its inputs have not changed.

DVC deletes a stage's outputs before it re-runs the stage, and a persistent output would take the
stage out of DVC's run-cache, so this state lives beside the outputs, like a build directory:
`rm -rf checkpoints` is always safe. A store is reused only if it was made from the same inputs:
the params the work depends on, the files it reads, and the stage's code manifest (the code
dependency DVC tracks: `prunebench.code`). A store made from other inputs is cleared, never reused.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from prunebench.io import read_json, write_json


def fingerprint(*parts: Any, files: Iterable[Path] = ()) -> str:
    """A digest of plain-data inputs and file contents: what a store was made from."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode())
    for path in sorted(files):
        digest.update(path.as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


class Store:
    """A directory of resumable state made from known inputs (`config.json` holds their fingerprint)."""

    def __init__(self, directory: Path, made_from: str):
        self.directory = directory
        stamp = directory / "config.json"
        if stamp.exists() and read_json(stamp).get("fingerprint") != made_from:
            shutil.rmtree(directory)
        write_json(stamp, {"fingerprint": made_from})
