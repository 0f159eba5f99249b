"""Run independent pieces of work side by side in processes forked from this one, so nothing is
imported or loaded twice (the local executor's pool on the CPU, `prunebench.execution`, and the
compare stage's figures). Each process runs torch on one thread (`prunebench.runtime`) and every
job seeds itself, so the results do not depend on which process runs a job.
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


def count(setting: int | None, gpus: int = 0) -> int:
    """Worker processes for params.yaml `workers` (null: the cores this process may use; with
    `gpus` visible GPUs, one per GPU)."""
    return setting or gpus or cores()


def run(work: Callable[[Job], Any], jobs: Sequence[Job], workers: int) -> Iterator[Any]:
    """`work(job)` for every job, results in the order of `jobs`: each as soon as it and every
    job before it have finished (`as_done`)."""
    waiting: dict[int, Any] = {}
    following = 0
    for index, result in as_done(work, jobs, workers):
        waiting[index] = result
        while following in waiting:
            yield waiting.pop(following)
            following += 1


def as_done(work: Callable[[Job], Any], jobs: Sequence[Job], workers: int) -> Iterator[tuple[int, Any]]:
    """(index, `work(job)`) for every job as each finishes. With more than one worker and more than
    one job, forked processes do the work; `work` may be a closure (it is inherited, not pickled),
    and its results must pickle."""
    global _work
    if workers <= 1 or len(jobs) <= 1:
        yield from enumerate(map(work, jobs))
        return
    _work = work
    try:
        with multiprocessing.get_context("fork").Pool(min(workers, len(jobs)), initializer=progress.quiet) as pool:
            yield from pool.imap_unordered(_call, enumerate(jobs))
    finally:
        _work = None


def _call(numbered: tuple[int, Any]) -> tuple[int, Any]:
    assert _work is not None, "set by `as_done` before the fork"
    return numbered[0], _work(numbered[1])
