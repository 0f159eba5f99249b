"""Run a stage's independent jobs (seeds, operating points) side by side.

On the CPU a stage runs `workers` processes at a time, forked from the stage after it loaded the
data, so nothing is imported or loaded twice; each runs torch on one thread (`prunebench.runtime`)
and every job seeds itself, so the results do not depend on which process runs a job. On CUDA
the jobs take turns on the one device.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from prunebench import progress

Job = TypeVar("Job")
_work: Callable[[Any], Any] | None = None  # what the forked workers run: set before the fork, inherited


def cores() -> int:
    """The cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def count(setting: int | None, device_type: str = "cpu") -> int:
    """Worker processes for params.yaml `workers` (null: the cores this process may use; 1 on CUDA)."""
    if device_type == "cuda":
        return 1
    return setting or cores()


def run(work: Callable[[Job], Any], jobs: Sequence[Job], workers: int) -> Iterator[Any]:
    """`work(job)` for every job, results in the order of `jobs`. With more than one worker and
    more than one job, forked processes do the work; `work` may be a closure (it is inherited, not
    pickled), and its results must pickle."""
    global _work
    if workers <= 1 or len(jobs) <= 1:
        yield from map(work, jobs)
        return
    _work = work
    try:
        with multiprocessing.get_context("fork").Pool(min(workers, len(jobs)), initializer=progress.quiet) as pool:
            yield from pool.imap(_call, jobs)
    finally:
        _work = None


def _call(job: Any) -> Any:
    assert _work is not None, "set by `run` before the fork"
    return _work(job)
