"""Where a stage's jobs run: params.yaml's `executor` (`open`). The stage process (the driver)
hands each job and the stage's shared context to the executor and gets back what the job
returned; it alone writes DVC outputs, MLflow and the resume caches, so a job may run in a
process forked here (`local`), in one per GPU, or on any node of a Ray cluster (`ray`).

A job is `work(context, job)`: `work` a module-level function (Ray and the per-GPU processes
import it by name), `context` what every job of the stage shares (the data, the base models),
sent to each worker process once and moved there to its device by `context.on(device)`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prunebench.execution.base import Done, Executor, JobContext, Work, call
from prunebench.params import Params

if TYPE_CHECKING:
    from prunebench.runtime import Runtime

__all__ = ["JobContext", "Done", "Executor", "Work", "call", "open"]


def open(params: Params, runtime: Runtime) -> Executor:  # noqa: A001 (the executor params.yaml names)
    """The executor of params.yaml's `executor.kind`; Ray is imported only when it is named."""
    if params.executor.kind == "ray":
        from prunebench.execution.cluster import Cluster

        return Cluster(params.executor, params.device)
    from prunebench.execution.local import Local

    assert runtime.device is not None, "a stage that runs jobs sets up torch"
    return Local(runtime.workers, runtime.device)
