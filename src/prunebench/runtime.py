"""The process-wide state a stage sets once, first thing in its `run`, and a job's process once
before its first job: torch's threads and the device (cuDNN's benchmark mode on CUDA). Nothing
here happens at import.

One torch thread per process: the default models train as fast on one thread as on two, under
load one thread is far faster, and the arithmetic of a job then does not depend on the number of
cores or of workers, so the results do not either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from prunebench import workers
from prunebench.errors import UserError
from prunebench.params import Params

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Runtime:
    device: torch.device | None  # the stage process's; None in a stage that runs no torch
    workers: int  # local processes that run the stage's jobs side by side (`prunebench.workers`)


def setup(params: Params, uses_torch: bool = True) -> Runtime:
    """Set this stage process up; forked workers inherit it (and silence their progress bars)."""
    if not uses_torch:  # importing torch costs seconds; a stage that runs none never pays them
        return Runtime(None, workers.count(params.workers))
    import torch

    device = stage_device(params)
    for_jobs(device)
    gpus = torch.cuda.device_count() if device.type == "cuda" else 0
    return Runtime(device, workers.count(params.workers, gpus))


def stage_device(params: Params) -> torch.device:
    """The device of a stage process: `device`, except a driver without a GPU that sends its jobs to
    Ray, whose nodes have the GPUs (it works on the CPU itself)."""
    import torch

    on_ray_without_gpu = params.executor.kind == "ray" and not torch.cuda.is_available()
    return pick_device("cpu" if on_ray_without_gpu else params.device)


def pick_device(name: str) -> torch.device:
    """`device` of params.yaml, for this process (a job process on CUDA sees the GPUs it was given)."""
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        raise UserError(
            "params.yaml: device = 'cuda': expected auto or cpu on this machine, which has no CUDA device "
            "(or executor.kind: ray with a cluster that has GPUs)"
        )
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device("cuda", 0) if name == "cuda" else torch.device(name)


def for_jobs(device: torch.device, threads: int = 1) -> None:
    """Set a process up to run jobs on `device`: torch's threads, and on CUDA the current GPU."""
    import torch

    torch.set_num_threads(threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # the shapes stay fixed through a run: let cudnn pick its kernels
        torch.cuda.set_device(device)
