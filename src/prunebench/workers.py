"""Run a stage's independent jobs (seeds, operating points) side by side.

Measured on the 2-core machine: the default models train as fast on one thread as on two, and
under load one thread is far faster, so every stage process runs torch on one thread, and on the
CPU a stage runs `workers` processes at a time (forked from the stage after it loaded the data, so
nothing is imported or loaded twice). One thread everywhere also makes the results independent of
the number of cores and of `workers`: every job seeds itself, and the arithmetic of a job does not
depend on which process runs it. On CUDA the jobs take turns on the one device.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from prunebench import progress

Job = TypeVar("Job")
_work: Callable[[Any], Any] | None = None  # what the forked workers run: set before the fork, inherited


def one_thread() -> None:
    """Torch on one thread in this process (and so in every process it forks)."""
    import torch  # here, not above: a stage that runs no torch (compare) must not pay for importing it

    torch.set_num_threads(1)


def _worker() -> None:
    progress.shown = False


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
        with multiprocessing.get_context("fork").Pool(min(workers, len(jobs)), initializer=_worker) as pool:
            yield from pool.imap(_call, jobs)
    finally:
        _work = None


def _call(job: Any) -> Any:
    return _work(job)
