"""Jobs as Ray tasks: on a Ray instance started here (`executor.address: null`) or on a cluster
(`auto`, host:port). Ray places each job where its `cpus_per_job` and `gpus_per_job` fit
(fractions of a GPU pack several jobs onto one; Ray sets each job's CUDA_VISIBLE_DEVICES),
retries a job whose node is lost, and ships the context through its object store: put once,
fetched once per node, deserialised once per worker process.

Before any job, every node must import the prunebench the driver runs (same version, same
source digest): a node with another one would compute other numbers, so the stage stops with
one line naming it. A cluster's nodes see data and files the driver names (an image folder,
`model.checkpoint`) at the same paths, as on a shared file system; everything else travels
with the jobs.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from prunebench.errors import UserError, briefly
from prunebench.execution.base import Done, Executor, JobContext, Work, call
from prunebench.params import Executor as Settings

RETRIES = 3  # a job whose worker or node dies runs again elsewhere, up to this many times


class Cluster(Executor):
    def __init__(self, settings: Settings, device: str):
        import ray

        self.settings = settings
        if not ray.is_initialized():
            _answers(settings.address)
            try:
                ray.init(
                    address=settings.address or "local",  # null: a new instance, never one a file points to
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level=logging.WARNING,
                    runtime_env={"env_vars": {"PYTHONWARNINGS": "ignore"}},
                )
            except (ConnectionError, RuntimeError, ValueError) as error:
                raise _unreachable(settings.address, error) from None
        nodes = [node for node in ray.nodes() if node["Alive"]]
        self.gpus = _gpus(settings, device, nodes)
        most_cpus = max(node["Resources"].get("CPU", 0) for node in nodes)
        if settings.cpus_per_job > most_cpus:
            raise UserError(
                f"params.yaml: executor.cpus_per_job = {settings.cpus_per_job}: expected at most {most_cpus:g}, "
                "the CPUs of the largest node of the Ray cluster"
            )
        check_nodes(nodes)
        self.task = ray.remote(_job).options(
            num_cpus=settings.cpus_per_job, num_gpus=self.gpus, max_retries=RETRIES, retry_exceptions=False
        )

    def map(self, work: Work, context: JobContext, jobs: Sequence[Any]) -> Iterator[Done]:
        import ray

        shared = ray.put(context)  # in a list below: Ray would otherwise fetch and unpickle it for every job
        pending = {
            self.task.remote(work, [shared], index, job, self.settings.cpus_per_job, os.getcwd()): index
            for index, job in enumerate(jobs)
        }
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                pending.pop(ready[0])
                try:
                    yield ray.get(ready[0])
                except ray.exceptions.RayTaskError as error:  # the job's own exception, as a local run raises it
                    raise (error.cause if isinstance(error.cause, Exception) else error) from None
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)


def _answers(address: str | None) -> None:
    """A host:port with nothing listening is one line now (Ray itself would wait for it forever)."""
    if address is None or address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
    except (OSError, ValueError) as error:
        raise _unreachable(address, error) from None


def _unreachable(address: str | None, error: Exception) -> UserError:
    return UserError(
        f"params.yaml: executor.address = {address!r}: no Ray cluster to join there ({briefly(error)}); "
        "expected host:port of a Ray head node, auto, or null to start one on this machine"
    )


def _gpus(settings: Settings, device: str, nodes: list[dict[str, Any]]) -> float:
    """What a job asks for: `gpus_per_job` where jobs run on GPUs (device cuda, or auto on a
    cluster with GPUs), else none."""
    most = max(node["Resources"].get("GPU", 0) for node in nodes)
    if device == "cpu" or (device == "auto" and most == 0):
        return 0
    if most == 0 or settings.gpus_per_job == 0:
        raise UserError(
            f"params.yaml: executor.gpus_per_job = {settings.gpus_per_job} with device = 'cuda': expected a number > 0"
            f" and a Ray cluster with GPUs (this one has {most:g} per node at most); or device: auto or cpu"
        )
    if settings.gpus_per_job > most:
        raise UserError(
            f"params.yaml: executor.gpus_per_job = {settings.gpus_per_job}: expected at most {most:g}, "
            "the GPUs of the largest node of the Ray cluster"
        )
    return settings.gpus_per_job


def digest() -> str:
    """This prunebench: its version and a digest of its source files."""
    import prunebench

    root = Path(prunebench.__file__).parent
    sha = hashlib.sha256()
    for file in sorted(root.rglob("*.py")):
        sha.update(file.relative_to(root).as_posix().encode())
        sha.update(file.read_bytes())
    return f"{getattr(prunebench, '__version__', '?')}+{sha.hexdigest()[:12]}"


def check_nodes(nodes: list[dict[str, Any]]) -> None:
    """Every node imports the prunebench this driver runs, else one line naming the first that does not."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    mine = digest()
    probe = ray.remote(digest)
    for node in nodes:
        name = f"{node['NodeManagerAddress']} ({node['NodeID'][:8]})"
        on_it = NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
        try:
            theirs = ray.get(probe.options(num_cpus=0, max_retries=0, scheduling_strategy=on_it).remote(), timeout=120)
        except ray.exceptions.RayError as error:  # it cannot import this function: another prunebench, or none
            theirs = f"none it can import ({briefly(error)})"
        if theirs != mine:
            raise UserError(
                f"Ray node {name} runs prunebench {theirs}, this driver {mine}: install the driver's "
                "prunebench on every node of the cluster (pip install -e . in the same checkout)"
            )


_contexts: dict[tuple[str, str], Any] = {}  # this worker process's context, fetched once, on its device


def _job(work: Work, shared: list[Any], index: int, job: Any, threads: int, where: str) -> Done:
    """One job in a Ray worker: the process set up once (threads, device: the GPU Ray gave it,
    the driver's working directory where this node has it), then `work(context, job)`."""
    import ray
    import torch

    from prunebench import progress, runtime

    gpus = ray.get_gpu_ids()
    device = torch.device("cuda", 0) if gpus and torch.cuda.is_available() else torch.device("cpu")
    key = (shared[0].hex(), str(device))
    if key not in _contexts:
        runtime.for_jobs(device, threads)
        progress.quiet()
        if os.path.isdir(where):  # relative paths (an image folder, a user's module) as the driver has them
            os.chdir(where)
            sys.path.insert(0, where)
        _contexts.clear()
        _contexts[key] = ray.get(shared[0]).on(device)
    return call(work, _contexts[key], index, job, ray.get_runtime_context().get_node_id())
