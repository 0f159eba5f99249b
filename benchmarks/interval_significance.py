"""Interval-adjoint significance: how long it takes, how wide the intervals get with depth, and
how well it ranks units against filter L1 and random on the trained default model.

Run after `make run` from the repository root: `.venv/bin/python benchmarks/interval_significance.py`.
Ranking quality: validation accuracy of the base model (seed 0) pruned in one step to each
iteration's counts of the retention schedule, without retraining. `--smoke` runs every step on
a tiny untrained model, random data and an 8×8 resnet56 (what CI runs).
"""

from __future__ import annotations

import argparse
import time

import torch

from prunebench import paths, runtime
from prunebench.layouts import counts
from prunebench.params import MethodEntry, load
from prunebench.pruning import coupling, interval, methods, retention
from prunebench.pruning.interval import Interval, Propagation
from prunebench.pruning.methods import Context
from prunebench.pruning.methods.interval_adjoint import input_box
from prunebench.pruning.steps import prune_to_counts
from prunebench.stages.workbench import Workbench
from prunebench.training import modelfile, models
from prunebench.training.loops import evaluate


def widths(model: torch.nn.Module, box: Interval) -> tuple[float, dict[str, float]]:
    """Seconds for one forward + backward interval pass, and the mean width at each prunable layer."""
    graph = interval.trace(model)
    Propagation(graph, box)  # warm-up
    start = time.perf_counter()
    found = Propagation(graph, box)
    seconds = time.perf_counter() - start
    nodes = interval.layer_nodes(graph, list(models.prunable_layers(model)))
    return seconds, {name: float(found.values[node.name].width.mean()) for name, node in nodes.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true", help="tiny untrained models and random data (CI)")
    args = parser.parse_args(argv)
    if args.smoke:
        spec = models.spec({"name": "cnn", "width": 4, "hidden": 8}, 1, 10, 8)
        base = models.build(spec).eval()
        train = val = [(torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,)))]
        device, q, size = torch.device("cpu"), 0.8, 8
    else:
        params = load()
        bench = Workbench.open(params, runtime.setup(params))
        base = modelfile.load(paths.base_model(params.seeds[0]))[0]
        train, val, device, q, size = (
            bench.train_batches(0),
            bench.val,
            bench.device,
            params.schedule.retention.q,
            32,
        )
    shape = tuple(next(iter(train))[0].shape[1:])
    seconds, mean_widths = widths(base.eval(), input_box(iter(train), (0, 100)))
    print(
        f"default cnn: interval pass {seconds * 1000:.1f} ms; mean width per layer:",
        {k: f"{v:.3g}" for k, v in mean_widths.items()},
    )
    torch.manual_seed(0)
    deep = models.build(models.spec({"name": "resnet56"}, 3, 10, size)).eval()
    deep_box = Interval(
        -2 * torch.ones(1, 3, size, size, dtype=torch.float64), 2 * torch.ones(1, 3, size, size, dtype=torch.float64)
    )
    seconds, deep_widths = widths(deep, deep_box)
    names = list(deep_widths)
    shown = [names[0], names[len(names) // 2], names[-1]]
    print(
        "resnet56 (random weights, box [-2, 2]): interval pass "
        f"{seconds:.2f} s; mean width at " + ", ".join(f"{n} {deep_widths[n]:.3g}" for n in shown)
    )

    sizes = coupling.group_sizes(base, shape)
    units = sum(sizes.values())
    plan = retention.table(sizes, q, 2 if args.smoke else 6, lambda counts: sum(counts.values()) / units, 0.1)
    print("\niteration | units kept | interval_adjoint | l1_channel | random_channel (mean of 5)")
    for row in plan[1:]:
        accuracies = []
        for name, repeats in (("interval_adjoint", 1), ("l1_channel", 1), ("random_channel", 5)):
            total = 0.0
            for seed in range(repeats):
                ctx = Context(
                    batches=lambda: iter(train),
                    device=device,
                    generator=torch.Generator().manual_seed(seed),
                    input_shape=shape,
                )
                model = modelfile.load(paths.base_model(0))[0] if not args.smoke else models.build(spec).eval()
                model = prune_to_counts(model, methods.create(MethodEntry.of(name, {})), counts(row), ctx).model
                total += evaluate(model, val, device)["accuracy"]
            accuracies.append(total / repeats)
        kept = sum(counts(row).values())
        print(f"{row['iteration']} | {kept} | " + " | ".join(f"{a:.3f}" for a in accuracies))


if __name__ == "__main__":
    main()
