"""Jobs run side by side give the results they give one after another: `workers` is no
dependency of any stage."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from helpers import ROOT

SCRIPT = textwrap.dedent("""
    import torch
    from prunebench import data, models, workers
    from prunebench.batches import batches
    from prunebench.params import load
    from prunebench.train import fit, seed_everything

    workers.one_thread()
    params = load()
    splits = data.load(data.prepare(params["data"]), params["data"])
    val = batches(splits.val, splits, params["data"], torch.device("cpu"))

    def train(seed):
        seed_everything(seed)
        model = models.build(models.spec({"name": "cnn", "width": 8, "hidden": 16}, 1, 10, 8))
        history = fit(model, batches(splits.train, splits, params["data"], torch.device("cpu"), train=True, seed=seed),
                      val, params["train"] | {"epochs": 2}, torch.device("cpu"))
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
