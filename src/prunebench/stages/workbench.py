"""What the stages that run models share: the device, the data (in-memory parts held on the
device once) and its batches, and running the stage's jobs side by side."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from prunebench import paths, workers
from prunebench.io import read_json
from prunebench.params import Params
from prunebench.progress import bar
from prunebench.runtime import Runtime
from prunebench.training import data, pretrained
from prunebench.training.batches import Batches, FileBatches, batches

Job = TypeVar("Job")


@dataclass
class Workbench:
    """The stage's params, device, data and evaluation batches, set up once per stage."""

    params: Params
    device: torch.device
    splits: data.Splits
    val: Batches | FileBatches
    test: Batches | FileBatches
    workers: int  # processes that run the stage's jobs side by side (`prunebench.workers`)

    @classmethod
    def open(cls, params: Params, runtime: Runtime) -> Workbench:
        """The data of the split the data stage recorded, on the runtime's device."""
        if not paths.SPLIT.exists():
            raise FileNotFoundError(f"{paths.SPLIT} is missing: run the data stage first (dvc repro data)")
        assert runtime.device is not None, "a stage that runs models sets up torch"
        device = runtime.device
        splits = data.load(read_json(paths.SPLIT), params.data, pretrained.weights_preprocessing(params.model))
        if isinstance(splits.train, data.Images):  # in memory: on the device once
            assert isinstance(splits.val, data.Images) and isinstance(splits.test, data.Images)
            splits = dataclasses.replace(
                splits, train=splits.train.to(device), val=splits.val.to(device), test=splits.test.to(device)
            )
        return cls(
            params,
            device,
            splits,
            batches(splits.val, splits, params.data, device),
            batches(splits.test, splits, params.data, device),
            runtime.workers,
        )

    def train_batches(self, seed: int) -> Batches | FileBatches:
        """Shuffled, augmented training batches whose order follows `seed` (and the epoch)."""
        return batches(self.splits.train, self.splits, self.params.data, self.device, train=True, seed=seed)

    def run(self, work: Callable[[Job], Any], jobs: list[Job], desc: str) -> list[Any]:
        """`work(job)` for every job, `workers` at a time, with a progress bar over the jobs."""
        return list(bar(workers.run(work, jobs, self.workers), total=len(jobs), desc=desc, unit="job"))
