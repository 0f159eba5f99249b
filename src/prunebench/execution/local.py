"""Jobs on this machine: on the CPU in `workers` processes forked from the stage (they inherit
the context, nothing is sent); on CUDA one process per visible GPU (`workers` of them, spawned:
CUDA does not survive a fork), each sent the context once; one worker: in the stage's process."""

from __future__ import annotations

import multiprocessing
import pickle
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from prunebench import progress, runtime, workers
from prunebench.execution.base import Done, Executor, JobContext, Work, call

_context: Any = None  # a spawned worker's context, on its device (`_start`)


class Local(Executor):
    def __init__(self, processes: int, device: torch.device):
        self.processes, self.device = processes, device

    def map(self, work: Work, context: JobContext, jobs: Sequence[Any]) -> Iterator[Done]:
        if self.device.type == "cuda" and self.processes > 1 and len(jobs) > 1:
            count = torch.cuda.device_count()
            devices = [torch.device("cuda", i % count) for i in range(min(self.processes, len(jobs)))]
            yield from per_device(work, context, jobs, devices)
            return
        here = context.on(self.device)
        numbered = list(enumerate(jobs))
        for _, done in workers.as_done(lambda pair: call(work, here, *pair), numbered, self.processes):
            yield done


def per_device(work: Work, context: JobContext, jobs: Sequence[Any], devices: list[torch.device]) -> Iterator[Done]:
    """The jobs in one spawned process per entry of `devices`, each on its own device."""
    spawn = multiprocessing.get_context("spawn")
    handed = spawn.SimpleQueue()
    for device in devices:
        handed.put(str(device))
    payload = pickle.dumps(context)
    with spawn.Pool(len(devices), initializer=_start, initargs=(handed, payload)) as pool:
        yield from pool.imap_unordered(_run, [(work, index, job) for index, job in enumerate(jobs)])


def _start(handed: Any, payload: bytes) -> None:
    """A spawned worker: take a device, set the process up for it, receive the context once."""
    global _context
    device = torch.device(handed.get())
    runtime.for_jobs(device)
    progress.quiet()
    _context = pickle.loads(payload).on(device)


def _run(task: tuple[Work, int, Any]) -> Done:
    work, index, job = task
    return call(work, _context, index, job)
