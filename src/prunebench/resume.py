"""Resume caches: state a stage keeps outside DVC's outputs (under checkpoints/), so that a killed
run goes on where it stopped and a re-run reuses what its inputs have not changed. A stage's
unit of resumption is its job (a seed, a point, a fine-tuning: `Jobs`): the stage process writes
each job's result as the job returns, wherever the job ran, so a killed stage re-runs only the
jobs that had not returned.

DVC deletes a stage's outputs before it re-runs the stage, and a persistent output would take the
stage out of DVC's run-cache, so this state lives beside the outputs, like a build directory:
`rm -rf checkpoints` is always safe. A store is reused only if it was made from the same inputs:
the params the work depends on, the files it reads, and the stage's code manifest (the code
dependency DVC tracks: `prunebench.sources`). A store made from other inputs is cleared, never reused.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from prunebench.files import read_json, save_bytes, write_json

MISSING = object()  # `Jobs.finished` of a job that has not returned


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


class Jobs(Store):
    """A stage's finished jobs: <name>.pkl holds a job's result as it returned (pickled: this cache
    is the stage's own, never a user's file) with a digest of the job's own inputs (`inputs`: a
    fine-tuning's pruned model, say), which must match for the result to be reused; jobs.jsonl
    says where and how long each job ran."""

    def __init__(
        self,
        directory: Path,
        made_from: str,
        name: Callable[[Any], str] = str,
        inputs: Callable[[Any], bytes] = lambda job: b"",
    ):
        super().__init__(directory, made_from)
        self.name, self.inputs = name, inputs

    def _file(self, job: Any) -> Path:
        return self.directory / f"{self.name(job)}.pkl"

    def _digest(self, job: Any) -> str:
        return hashlib.sha256(self.inputs(job)).hexdigest()

    def finished(self, job: Any) -> Any:
        """The job's result, or MISSING (never returned, or from other inputs)."""
        file = self._file(job)
        if not file.exists():
            return MISSING
        digest, result = pickle.loads(file.read_bytes())
        return result if digest == self._digest(job) else MISSING

    def record(self, job: Any, result: Any, node: str, seconds: float) -> None:
        save_bytes(self._file(job), pickle.dumps((self._digest(job), result)))
        with open(self.directory / "jobs.jsonl", "a") as log:
            log.write(json.dumps({"job": self.name(job), "node": node, "seconds": round(seconds, 3)}) + "\n")


def job_log(directory: Path) -> list[dict[str, Any]]:
    """Where and how long each job of a `Jobs` cache ran, in the order they returned (a line cut
    by a kill left out)."""
    file = directory / "jobs.jsonl"
    lines = file.read_text().splitlines() if file.exists() else []
    return [json.loads(line) for line in lines if line.endswith("}")]
