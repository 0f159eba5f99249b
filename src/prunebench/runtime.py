"""The process-wide state a stage sets once, first thing in its `run`: torch's threads, the
device (and cuDNN's benchmark mode and a GPU of its own on CUDA), and how many worker processes
run its jobs. Nothing here happens at import.

One torch thread per process: the default models train as fast on one thread as on two, under
load one thread is far faster, and the arithmetic of a job then does not depend on the number of
cores or of workers, so the results do not either.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prunebench import workers
from prunebench.errors import UserError
from prunebench.params import Params

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Runtime:
    device: torch.device | None  # None in a stage that runs no torch
    workers: int  # processes that run the stage's jobs side by side (`prunebench.workers`)


def setup(params: Params, uses_torch: bool = True) -> Runtime:
    """Set this stage process up; forked workers inherit it (and silence their progress bars)."""
    if not uses_torch:  # importing torch costs seconds; a stage that runs none never pays them
        return Runtime(None, workers.count(params.workers))
    import torch

    torch.set_num_threads(1)
    device = pick_device(params.device)
    return Runtime(device, workers.count(params.workers, device.type))


def pick_device(name: str) -> torch.device:
    """`device` of params.yaml. With several GPUs, a stage takes one that no other stage holds
    (`claim_gpu`), so parallel experiments (`dvc queue start -j N`) spread over the GPUs."""
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("params.yaml: device = 'cuda' but no CUDA device is available; use auto or cpu")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name != "cuda":
        return torch.device(name)
    torch.backends.cudnn.benchmark = True  # the shapes stay fixed through a run: let cudnn pick its kernels
    return torch.device("cuda", claim_gpu(torch.cuda.device_count()))


_claimed: list[tuple[int, Any]] = []  # the lock file this process holds, open for its lifetime


def claim_gpu(count: int, directory: Path | None = None) -> int:
    """The first of `count` GPUs whose lock no other process holds; this process holds it until it
    ends (the kernel drops the lock when the process dies, also after SIGKILL). If all are held,
    the GPU with the lowest index is shared."""
    import fcntl

    if _claimed:
        return int(_claimed[0][0])
    directory = directory or Path(tempfile.gettempdir())
    for index in range(count):
        lock = open(directory / f"prunebench-gpu-{index}.lock", "w")  # noqa: SIM115 (held open on purpose)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        _claimed.append((index, lock))
        return index
    return 0
