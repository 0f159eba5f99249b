"""Interval-adjoint significance: how long it takes, how wide the intervals get with depth, and
how well it ranks units against filter L1 and random on the trained default model.

Run after `make run` from the repository root: `.venv/bin/python benchmarks/interval_significance.py`.
Ranking quality: validation accuracy of the base model (seed 0) pruned in one step to each
iteration's counts of the retention schedule, without retraining.
"""

from __future__ import annotations

import time

import torch

from prunebench import interval, methods, models, retention, surgery
from prunebench.data import loader
from prunebench.interval import Interval, Propagation
from prunebench.methods import Context
from prunebench.methods.interval_adjoint import input_box
from prunebench.params import load
from prunebench.pipeline import Workbench, base_model
from prunebench.pruning import prune_to_counts
from prunebench.train import evaluate


def widths(model: torch.nn.Module, box: Interval) -> tuple[float, dict[str, float]]:
    """Seconds for one forward + backward interval pass, and the mean width at each prunable layer."""
    graph = interval.trace(model)
    Propagation(graph, box)  # warm-up
    start = time.perf_counter()
    found = Propagation(graph, box)
    seconds = time.perf_counter() - start
    nodes = interval.layer_nodes(graph, list(models.prunable_layers(model)))
    return seconds, {name: float(found.values[node.name].width.mean()) for name, node in nodes.items()}


def main() -> None:
    params = load()
    bench = Workbench.open(params)
    shape = bench.splits.input_shape
    base, _, _ = surgery.load(base_model(params["seeds"][0]))
    train = loader(bench.splits.train, params["data"], bench.device)
    box = input_box(iter(train), [0, 100])
    seconds, mean_widths = widths(base.eval(), box)
    print(f"default cnn: interval pass {seconds * 1000:.1f} ms; mean width per layer:",
          {k: f"{v:.3g}" for k, v in mean_widths.items()})
    torch.manual_seed(0)
    deep = models.build(models.spec({"name": "resnet56"}, 3, 10, 32)).eval()
    deep_box = Interval(-2 * torch.ones(1, 3, 32, 32, dtype=torch.float64), 2 * torch.ones(1, 3, 32, 32, dtype=torch.float64))
    seconds, deep_widths = widths(deep, deep_box)
    names = list(deep_widths)
    print(f"resnet56 (random weights, box [-2, 2]): interval pass {seconds:.2f} s; mean width at "
          f"{names[0]} {deep_widths[names[0]]:.3g}, {names[len(names) // 2]} {deep_widths[names[len(names) // 2]]:.3g}, "
          f"{names[-1]} {deep_widths[names[-1]]:.3g}")

    ctx = Context(batches=lambda: iter(train), device=bench.device, generator=torch.Generator().manual_seed(0))
    plan = retention.table(retention.sizes(base, shape), params["schedule"]["retention"]["q"], 6, 0.9)
    print("\niteration | units kept | interval_adjoint | l1_channel | random_channel (mean of 5)")
    for row in plan[1:]:
        accuracies = []
        for name, repeats in (("interval_adjoint", 1), ("l1_channel", 1), ("random_channel", 5)):
            total = 0.0
            for seed in range(repeats):
                model = surgery.load(base_model(params["seeds"][0]))[0]
                ctx.generator.manual_seed(seed)
                model = prune_to_counts(model, methods.create(name, {}), retention.counts(row), ctx, shape)
                total += evaluate(model, bench.val, bench.device)["accuracy"]
            accuracies.append(total / repeats)
        print(f"{row['iteration']} | {sum(retention.counts(row).values())} | " + " | ".join(f"{a:.3f}" for a in accuracies))


if __name__ == "__main__":
    main()
