"""prunebench's pruning step against Torch-Pruning's at a fixed fraction, on the default model:
`l1_channel` through `steps.prune_step` (score, select, remove) and torch-pruning's
`MagnitudePruner` with `MagnitudeImportance(p=1)` at the same `pruning_ratio`, the output layer
ignored, `step()`. Each call gets a fresh copy of the model (the copy not timed); the two
alternate in one process, `--rounds` times; medians. Both keep the same channel count per layer
(checked). `--profile` prints where prunebench's step spends its time (cProfile, cumulative).

Run by hand on a quiet machine: .venv/bin/python benchmarks/tp_speed.py [--rounds 30] [--profile]
(`--smoke`: 3 rounds, what CI runs). Figures: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import pstats
import statistics
import time
import warnings

import torch
import torch_pruning as tp

from prunebench import params
from prunebench.params import MethodEntry
from prunebench.pruning import methods
from prunebench.pruning.methods import Context
from prunebench.pruning.steps import prune_step
from prunebench.training import data, inputs, models


def ours(model: torch.nn.Module, fraction: float, shape: tuple[int, ...]) -> torch.nn.Module:
    ctx = Context(lambda: iter(()), torch.device("cpu"), torch.Generator().manual_seed(0), shape)
    return prune_step(model, methods.create(MethodEntry.of("l1_channel", {})), 0.0, fraction, ctx).model


def theirs(model: torch.nn.Module, fraction: float, shape: tuple[int, ...]) -> torch.nn.Module:
    output = model.get_submodule(models.output_layer_name(model))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pruner = tp.pruner.MagnitudePruner(
            model,
            torch.zeros(1, *shape),
            importance=tp.importance.MagnitudeImportance(p=1),
            pruning_ratio=fraction,
            ignored_layers=[output],
        )
        pruner.step()
    return model


def widths(model: torch.nn.Module) -> list[int]:
    return [models.output_units(m) for m in models.prunable_layers(model).values()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--fraction", type=float, default=0.5)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="3 rounds (CI)")
    args = parser.parse_args(argv)
    rounds = 3 if args.smoke else args.rounds
    torch.set_num_threads(1)  # as the pipeline's stages run
    cfg = params.load()
    spec = models.spec(cfg.model.as_dict(), **data.shape_of(cfg.data))
    shape = inputs.shape_of_spec(spec)
    torch.manual_seed(0)
    base = models.build(spec).eval()
    assert widths(ours(copy.deepcopy(base), args.fraction, shape)) == widths(
        theirs(copy.deepcopy(base), args.fraction, shape)
    ), "the same channel counts"
    times: dict[str, list[float]] = {"prunebench l1_channel": [], "torch-pruning MagnitudePruner": []}
    for _ in range(rounds):
        for name, step in zip(times, (ours, theirs)):
            model = copy.deepcopy(base)
            start = time.perf_counter()
            step(model, args.fraction, shape)
            times[name].append(time.perf_counter() - start)
    print(
        f"torch {torch.__version__}, torch-pruning {tp.__version__}, 1 thread; "
        f"{cfg.model.name}, fraction {args.fraction}"
    )
    print("\n| pruning step | median (ms) | min (ms) | rounds |\n|---|---|---|---|")
    for name, found in times.items():
        print(f"| {name} | {1000 * statistics.median(found):.1f} | {1000 * min(found):.1f} | {rounds} |")
    ratio = statistics.median(times["prunebench l1_channel"]) / statistics.median(
        times["torch-pruning MagnitudePruner"]
    )
    print(f"\nprunebench / torch-pruning = {ratio:.2f}")
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(rounds):
            ours(copy.deepcopy(base), args.fraction, shape)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
