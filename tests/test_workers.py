"""Jobs run side by side give the results they give one after another: `workers` is no
dependency of any stage."""

from __future__ import annotations

import subprocess
import sys
import textwrap

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


CLAIM = """
import sys, time
from pathlib import Path
from prunebench.runtime import claim_gpu
print(claim_gpu(2, Path(sys.argv[1])), flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_parallel_stages_claim_different_gpus_and_release_them_when_they_end(tmp_path):
    """What spreads `dvc queue start -j 2` over two GPUs, without GPUs: the claims alone."""

    def start(hold: float) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-c", CLAIM, str(tmp_path), str(hold)], stdout=subprocess.PIPE, text=True
        )

    first = start(30)
    assert first.stdout.readline().strip() == "0"
    second = start(0)
    assert second.stdout.readline().strip() == "1"  # 0 is held
    second.wait()
    third = start(0)
    assert third.stdout.readline().strip() == "1"  # 1 is free again
    third.wait()
    first.kill()  # SIGKILL: the kernel drops its lock
    first.wait()
    fourth = start(0)
    assert fourth.stdout.readline().strip() == "0"
    fourth.wait()
