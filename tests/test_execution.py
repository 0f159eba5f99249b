"""The executors: jobs run side by side, in a process per device, or on Ray give the results
they give one after another (`workers` and `executor` are dependencies of no stage); the stage's
resume cache; Ray's GPU packing and its one-line errors. The multi-node cases run the pipeline:
tests/test_pipeline.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass

import torch
from cluster import namespaced

from prunebench import resume
from prunebench.execution import local
from prunebench.runtime import Runtime
from prunebench.stages.workbench import Workbench

from helpers import ROOT

SCRIPT = textwrap.dedent("""
    from dataclasses import replace

    import torch
    from prunebench import workers
    from prunebench.training import data, models
    from prunebench.training.batches import batches
    from prunebench.params import load
    from prunebench.training.loops import fit, seed_everything

    torch.set_num_threads(1)
    params = load()
    splits = data.load(data.prepare(params.data), params.data)
    val = batches(splits.val, splits, params.data, torch.device("cpu"))

    def train(seed):
        seed_everything(seed)
        model = models.build(models.spec({"name": "cnn", "width": 8, "hidden": 16}, 1, 10, 8))
        history = fit(model, batches(splits.train, splits, params.data, torch.device("cpu"), train=True, seed=seed),
                      val, replace(params.train, epochs=2), torch.device("cpu"))
        return history, model.state_dict()

    alone = list(workers.run(train, [0, 1, 2], 1))
    side_by_side = list(workers.run(train, [0, 1, 2], 2))
    same = all(a[0] == b[0] and all(torch.equal(a[1][k], b[1][k]) for k in a[1]) for a, b in zip(alone, side_by_side))
    print("identical" if same else "different", alone[0][0] != alone[1][0])
""")


def test_two_workers_give_exactly_what_one_gives():
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["identical", "True"]  # and the seeds do differ from each other


@dataclass
class Counted:
    """A context that says in which process and on which device it arrived."""

    arrived: tuple[int, str] | None = None

    def on(self, device: torch.device) -> Counted:
        return Counted((os.getpid(), str(device)))


def where(context: Counted, job: int) -> tuple[int, tuple[int, str] | None, int]:
    time.sleep(0.5)  # long enough that both processes, started one after the other, take jobs
    return os.getpid(), context.arrived, job * job


def test_a_process_per_device_takes_one_device_and_the_context_once():
    devices = [torch.device("cpu"), torch.device("cpu")]
    done = sorted(local.per_device(where, Counted(), list(range(8)), devices), key=lambda d: d.index)
    assert [d.result[2] for d in done] == [j * j for j in range(8)]  # every job, its own result
    processes = {d.result[0] for d in done}
    assert len(processes) == 2 and os.getpid() not in processes  # two spawned processes did the work
    for d in done:  # each received the context once, in itself, on its device
        assert d.result[1] == (d.result[0], "cpu")


calls: list[int] = []


def square(context: Workbench, job: int) -> int:
    calls.append(job)
    return job * job


def test_finished_jobs_are_not_run_again_unless_their_inputs_changed(tmp_path, default_params, splits):
    bench = Workbench.of(default_params, splits, torch.device("cpu"))
    bench.runtime = Runtime(torch.device("cpu"), 1)
    inputs = {1: b"one", 2: b"two", 3: b"three"}

    def cache() -> resume.Jobs:
        return resume.Jobs(tmp_path, "made from", inputs=lambda job: inputs[job])

    assert bench.run(square, bench, [1, 2, 3], "squares", cache()) == [1, 4, 9]
    assert calls == [1, 2, 3]
    calls.clear()
    assert bench.run(square, bench, [1, 2, 3], "squares", cache()) == [1, 4, 9]
    assert calls == []  # every job came from the cache
    inputs[2] = b"another two"
    assert bench.run(square, bench, [3, 2, 1], "squares", cache()) == [9, 4, 1]
    assert calls == [2]  # only the job whose own inputs changed
    assert [line["job"] for line in resume.job_log(tmp_path)] == ["1", "2", "3", "2"]
    assert resume.Jobs(tmp_path, "made from other inputs").finished(1) is resume.MISSING


PACKING = textwrap.dedent("""
    import json, os, time
    import ray
    from prunebench.execution.cluster import Cluster
    from prunebench.params import Executor

    def held(context, job):
        start = time.time()
        time.sleep(3)
        return ray.get_gpu_ids(), os.environ.get("CUDA_VISIBLE_DEVICES"), start, time.time()

    class Nothing:
        def on(self, device):
            return self

    ray.init("local", num_cpus=4, num_gpus=2, include_dashboard=False, log_to_driver=False)
    cluster = Cluster(Executor("ray", None, 1, 0.5), "cuda")
    print(json.dumps([done.result for done in cluster.map(held, Nothing(), list(range(4)))]))
""")


def test_ray_packs_four_half_gpu_jobs_onto_two_gpus_each_seeing_its_own():
    """GPU resources declared on a CPU-only node: Ray's bookkeeping, which is all we use of it."""
    done = namespaced(sys.executable, "-c", PACKING)
    assert done.returncode == 0, done.stderr[-3000:]
    jobs = json.loads(done.stdout.strip().splitlines()[-1])
    assert sorted(tuple(ids) for ids, _, _, _ in jobs) == [(0,), (0,), (1,), (1,)]  # two jobs per GPU
    assert all(visible == str(ids[0]) for ids, visible, _, _ in jobs)  # CUDA_VISIBLE_DEVICES as Ray gave it
    assert max(start for _, _, start, _ in jobs) < min(end for _, _, _, end in jobs)  # all four at once


ERRORS = textwrap.dedent("""
    import ray
    from prunebench.errors import UserError
    from prunebench.execution.cluster import Cluster
    from prunebench.params import Executor

    for settings, device, start in [
        (Executor("ray", "127.0.0.1:9", 1, 1), "auto", False),
        (Executor("ray", None, 1, 1), "cuda", True),
        (Executor("ray", None, 8, 1), "cpu", True),
    ]:
        if start:
            ray.init("local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            Cluster(settings, device)
        except UserError as error:
            print(str(error))
        ray.shutdown()
""")


def test_bad_executor_settings_are_one_line_each():
    done = namespaced(sys.executable, "-c", ERRORS)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("params.yaml: executor.address = '127.0.0.1:9': no Ray cluster to join there")
    assert lines[1].startswith("params.yaml: executor.gpus_per_job = 1 with device = 'cuda'")
    assert "(this one has 0 per node at most)" in lines[1]
    assert lines[2].startswith("params.yaml: executor.cpus_per_job = 8: expected at most 2")
