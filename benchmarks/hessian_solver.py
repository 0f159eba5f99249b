"""Hessian-vector products per second and eigen-solve time, default model and resnet20.

Run by hand from the repository root after `make run` (it needs models/base/0.pt):
    .venv/bin/python benchmarks/hessian_solver.py
Prints a Markdown table; figures are recorded in benchmarks/README.md. resnet20 (32×32,
random weights and inputs: no CIFAR-10 here) is timed on the same settings as the pipeline:
all prunable weights (global scope), k = 8, at most 100 power iterations, tol 1e-3,
2 calibration batches of 64. `--smoke` runs every step on tiny untrained models (what CI runs).
"""

from __future__ import annotations

import argparse
import time

import torch

from prunebench import params, paths
from prunebench.pruning import surgery
from prunebench.pruning.hessian import HessianOperator, top_eigenpairs
from prunebench.stages.workbench import Workbench
from prunebench.training import models
from prunebench.training.models import prunable_layers


def measure(name: str, model: torch.nn.Module, batches, k: int, iterations: int) -> str:
    model.eval()
    weights = [m.weight for m in prunable_layers(model).values()]
    operator = HessianOperator(model, weights, batches)
    v = torch.randn(operator.size)
    operator(v)  # warm-up
    start, calls = time.perf_counter(), 10
    for _ in range(calls):
        operator(v)
    per_second = calls / (time.perf_counter() - start)
    operator = HessianOperator(model, weights, batches)
    start = time.perf_counter()
    pairs = top_eigenpairs(operator, k, iterations, 1e-3, torch.Generator().manual_seed(0))
    seconds = time.perf_counter() - start
    return (
        f"| {name} | {operator.size:,} | {sum(len(y) for _, y in batches)} | {per_second:.1f} "
        f"| {seconds:.1f} | {operator.calls} | {float(pairs.values[0]):.3g} … {float(pairs.values[-1]):.3g} |"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true", help="tiny untrained models and random data (CI)")
    args = parser.parse_args(argv)
    k, iterations, size, batch = (2, 5, 8, 8) if args.smoke else (8, 100, 32, 64)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print("| model | weights | examples per product | products per second | eigen-solve (s) | products | eigenvalues |")
    print("|---|---|---|---|---|---|---|")
    if args.smoke:
        model = models.build(models.spec({"name": "cnn", "width": 4, "hidden": 8}, 1, 10, 8))
        batches = [(torch.randn(batch, 1, 8, 8), torch.randint(0, 10, (batch,))) for _ in range(2)]
    else:
        bench = Workbench.open(params.load())
        model = surgery.load(paths.base_model(0))[0]
        loader = iter(bench.train_batches(0))
        batches = [next(loader), next(loader)]
    print(measure("default cnn (digits, trained)", model, batches, k, iterations))
    torch.manual_seed(0)
    net = models.build(models.spec({"name": "resnet20"}, 3, 10, size))
    batches = [(torch.randn(batch, 3, size, size), torch.randint(0, 10, (batch,))) for _ in range(2)]
    print(measure(f"resnet20 {size}×{size} (random weights)", net, batches, k, iterations))


if __name__ == "__main__":
    main()
