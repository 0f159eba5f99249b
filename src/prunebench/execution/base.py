"""What every executor is: `map(work, context, jobs)`, yielding each job as it returns (`Done`)."""

from __future__ import annotations

import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    import torch


C = TypeVar("C", bound="JobContext")


class JobContext(Protocol):
    def on(self: C, device: torch.device) -> C:
        """This context with its tensors and models on `device` (a worker's own)."""
        ...


Work = Callable[[Any, Any], Any]  # work(context, job) → what the job returns (it must pickle)


@dataclass(frozen=True)
class Done:
    """A job that returned: its position among the jobs, its result, where it ran and how long."""

    index: int
    result: Any
    node: str  # the Ray node's id, or this machine's host name
    seconds: float


def call(work: Work, context: Any, index: int, job: Any, node: str | None = None) -> Done:
    start = time.perf_counter()
    result = work(context, job)
    return Done(index, result, node or socket.gethostname(), time.perf_counter() - start)


class Executor(ABC):
    @abstractmethod
    def map(self, work: Work, context: JobContext, jobs: Sequence[Any]) -> Iterator[Done]:
        """Run every job; yield each as it returns (in any order)."""
