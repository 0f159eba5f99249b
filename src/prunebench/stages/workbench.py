"""What the stages that run models share: the params, the data and its batches on a device, and
the executor that runs the stage's jobs (`prunebench.execution`), with their resume cache."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch

from prunebench import execution, paths, resume
from prunebench.files import read_json
from prunebench.params import Params
from prunebench.progress import bar, say
from prunebench.runtime import Runtime
from prunebench.training import data, parts, pretrained
from prunebench.training.batches import Loader, batches


@dataclass
class Workbench:
    """The stage's params, device, data and evaluation batches, set up once per stage; sent to
    every worker process once (without the executor) and moved there to its device (`on`)."""

    params: Params
    device: torch.device
    splits: data.Splits
    val: Loader
    test: Loader
    runtime: Runtime | None = field(default=None, repr=False)  # the stage process's (None in a worker)
    executor: execution.Executor | None = field(default=None, repr=False)  # opened by the first `run`

    @classmethod
    def open(cls, params: Params, runtime: Runtime) -> Workbench:
        """The data of the split the data stage recorded: on the runtime's device where the jobs
        run in this process, else on the CPU, for the workers to move to theirs."""
        if not paths.SPLIT.exists():
            raise FileNotFoundError(f"{paths.SPLIT} is missing: run the data stage first (dvc repro data)")
        assert runtime.device is not None, "a stage that runs models sets up torch"
        splits = data.load(read_json(paths.SPLIT), params.data, pretrained.weights_preprocessing(params.model))
        bench = cls.of(params, splits, torch.device("cpu"))
        if runtime.device.type != "cpu" and params.executor.kind == "local" and runtime.workers == 1:
            bench = bench.on(runtime.device)  # the jobs run here: the data goes to the device once, now
        bench.runtime = runtime
        return bench

    @classmethod
    def of(cls, params: Params, splits: data.Splits, device: torch.device) -> Workbench:
        if isinstance(splits.train, parts.Part):  # in memory: on the device once
            assert isinstance(splits.val, parts.Part) and isinstance(splits.test, parts.Part)
            splits = dataclasses.replace(
                splits, train=splits.train.to(device), val=splits.val.to(device), test=splits.test.to(device)
            )
        return cls(
            params,
            device,
            splits,
            batches(splits.val, splits, params.data, device),
            batches(splits.test, splits, params.data, device),
        )

    def on(self, device: torch.device) -> Workbench:
        """This workbench with its data on `device` (itself if it is there)."""
        return self if device == self.device else Workbench.of(self.params, self.splits, device)

    def __reduce__(self) -> tuple[Any, ...]:
        """Sent as its data, without the executor (a worker runs jobs; it hands out none) and
        without batch loaders, which the receiver builds anew."""
        return (Workbench.of, (self.params, self.splits, self.device))

    def train_batches(self, seed: int) -> Loader:
        """Shuffled, augmented training batches whose order follows `seed` (and the epoch)."""
        return batches(self.splits.train, self.splits, self.params.data, self.device, train=True, seed=seed)

    def run(
        self,
        work: Callable[[Any, Any], Any],
        context: execution.JobContext,
        jobs: Sequence[Any],
        desc: str,
        finished: resume.Jobs | None = None,
    ) -> list[Any]:
        """`work(context, job)` for every job through the executor, with a progress bar over the
        jobs; results in the order of `jobs`. With `finished` (the stage's resume cache), each job's
        result is recorded as it returns, and jobs recorded before are not run again."""
        assert self.runtime is not None, "jobs are handed out by the stage process"
        self.executor = self.executor or execution.open(self.params, self.runtime)
        results = [finished.finished(job) if finished else resume.MISSING for job in jobs]
        todo = [index for index, result in enumerate(results) if result is resume.MISSING]
        if finished and len(todo) < len(jobs):
            say(f"{desc}: {len(jobs) - len(todo)} of {len(jobs)} jobs finished before, reused ({finished.directory})")
        for done in bar(
            self.executor.map(work, context, [jobs[i] for i in todo]), total=len(todo), desc=desc, unit="job"
        ):
            index = todo[done.index]
            results[index] = done.result
            if finished:
                finished.record(jobs[index], done.result, done.node, done.seconds)
        return results


S = TypeVar("S", bound="Shared")


@dataclass
class Shared:
    """What every job of a stage shares: the workbench, and in a subclass the stage's own (a
    method, its schedule, …); on a worker, the workbench moves to the worker's device (`on`)."""

    bench: Workbench

    def on(self: S, device: torch.device) -> S:
        return dataclasses.replace(self, bench=self.bench.on(device))
