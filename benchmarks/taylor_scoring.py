"""Scoring time of Taylor orders 1-3, and their fidelity, on the default model and resnet18.

Run by hand from the repository root after `make run` (it needs models/base/0.pt):
    .venv/bin/python benchmarks/taylor_scoring.py [--resnet-batch 8] [--resnet-channels 16]
Prints a Markdown table; figures are recorded in benchmarks/README.md. `--smoke` runs every
step on tiny untrained models and random data instead (what CI runs).

resnet18 (torchvision, 3×3 stride-1 stem without max-pool for 32×32 inputs, random weights,
random inputs; no CIFAR-10 here) is timed on one batch. On the CPU its full scoring takes
hours at order 3, so `--resnet-channels` limits each layer's derivatives to its first N
channels and the time is scaled up by the total channel count (stated in the output).
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn
from torch.func import vmap

from prunebench import params, paths
from prunebench.pruning import surgery
from prunebench.pruning.methods.taylor import _derivatives, _loss, fidelity, gate_derivatives
from prunebench.stages.workbench import Workbench
from prunebench.training import models
from prunebench.training.models import output_units


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def channels_of(model: nn.Module, points: dict[str, list[str]]) -> dict[str, int]:
    """The channels of each channel group (at its first gate point)."""
    modules = dict(model.named_modules())
    return {root: output_units(modules[group[0]]) for root, group in points.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--resnet-batch", type=int, default=8)
    parser.add_argument("--resnet-channels", type=int, default=16)
    parser.add_argument("--smoke", action="store_true", help="tiny untrained models and random data (CI)")
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print("| model | order | channels scored | calibration examples | scoring time (s) | Spearman ρ vs exact ΔL |")
    print("|---|---|---|---|---|---|")

    if args.smoke:
        model = models.build(models.spec({"name": "cnn", "width": 4, "hidden": 8}, 1, 10, 8)).eval()
        batches = [(torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,))) for _ in range(2)]
    else:
        bench = Workbench.open(params.load())
        model = surgery.load(paths.base_model(0))[0].eval()
        loader = iter(bench.train_batches(0))
        batches = [next(loader), next(loader)]
    shape = tuple(batches[0][0].shape[1:])
    points = surgery.gate_points(model, shape)
    channels = sum(channels_of(model, points).values())
    gate_derivatives(model, points, batches[:1], 1, chunk_size=16)  # warm-up
    for order in (1, 2, 3):
        seconds, derivatives = timed(lambda: gate_derivatives(model, points, batches, order, chunk_size=16))  # noqa: B023
        rho = None
        if order == 3:  # every channel: the estimates of each order against the exact ΔL
            rhos, _ = fidelity(model, points, batches, derivatives, channels, torch.Generator().manual_seed(0))
            rho = ", ".join(f"order {k[-1]}: {v:.3f}" for k, v in rhos.items())
        print(
            f"| default cnn (digits) | {order} | {channels} (all) | {sum(len(y) for _, y in batches)} "
            f"| {seconds:.2f} | {rho or ''} |"
        )

    size = 8 if args.smoke else 32
    net = models.build(models.spec({"name": "resnet18"}, 3, 10, size)).eval()
    points = surgery.gate_points(net, (3, size, size))
    widths = channels_of(net, points)
    torch.manual_seed(0)
    batch = [(torch.randn(args.resnet_batch, 3, size, size), torch.randint(0, 10, (args.resnet_batch,)))]
    limit = 2 if args.smoke else args.resnet_channels
    roots = list(points)[:2] if args.smoke else list(points)
    for order in (1, 2, 3):
        seconds, scored = 0.0, 0
        for root in roots:
            n = min(limit, widths[root])
            seconds += timed(lambda: _partial(net, root, points[root], widths[root], batch, order, n))[0]  # noqa: B023
            scored += n
        total = sum(widths.values())
        print(
            f"| resnet18 {size}×{size} (random weights) | {order} | {scored} of {total}, scaled to all | "
            f"{args.resnet_batch} | {seconds * total / scored:.0f} (measured {seconds:.1f}) | |"
        )


def _partial(net, root, group_points, channels, batch, order, n):
    """Derivatives along the first n gate directions of one group (the rest is the same work)."""
    x, y = batch[0]
    loss = _loss(net, root, group_points, x, y, nn.functional.cross_entropy)
    zero = torch.zeros(channels)
    return vmap(lambda v: torch.stack(_derivatives(loss, zero, v, order)[1:]), chunk_size=16)(torch.eye(channels)[:n])


if __name__ == "__main__":
    main()
