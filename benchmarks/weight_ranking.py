"""Seconds for a weight method to turn its scores into keep-masks on a large model: the method's
selector (`WeightUnits.selector`) and one mask at half the weights, as the budget search's first
probe does. vgg16 at 3×32×32 has 34 M prunable weights, 17 M of them in one linear layer.

Run by hand: .venv/bin/python benchmarks/weight_ranking.py [--model vgg16] [--repeats 2]
(`--smoke`: the default cnn, one repeat; what CI runs). Figures go to benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import time

import torch

from prunebench.params import MethodEntry
from prunebench.pruning import methods
from prunebench.pruning.methods import Context
from prunebench.pruning.units import units_of
from prunebench.training import models
from prunebench.training.models import prunable_layers

METHODS = ("intra_kernel", "kernel", "magnitude", "magnitude_global")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vgg16")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    name, repeats, shape = ("cnn", 1, (1, 8, 8)) if args.smoke else (args.model, args.repeats, (3, 32, 32))
    torch.manual_seed(0)
    model = models.build(models.spec({"name": name}, shape[0], 10, shape[1])).eval()
    batch = [(torch.randn(4, *shape), torch.randint(0, 10, (4,)))]
    ctx = Context(
        batches=lambda: iter(batch),
        device=torch.device("cpu"),
        generator=torch.Generator().manual_seed(0),
        input_shape=shape,
    )
    weights = sum(layer.weight.numel() for layer in prunable_layers(model).values())
    print(f"{name}, {weights:,} prunable weights, torch threads {torch.get_num_threads()}\n")
    print("| model | method | selector + one mask (s, best of repeats) | weights kept |")
    print("|---|---|---|---|")
    for key in METHODS:
        method = methods.create(MethodEntry.of(key, {}))
        scored = method.score(model, prunable_layers(model), ctx)
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            masks = units_of(method).selector(model, scored, ctx, {})(0.5)
            seconds.append(time.perf_counter() - start)
        kept = sum(int(mask.sum()) for mask in masks.values())
        print(f"| {name} | {key} | {min(seconds):.2f} | {kept:,} |")


if __name__ == "__main__":
    main()
