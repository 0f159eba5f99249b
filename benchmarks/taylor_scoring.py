"""Scoring time of Taylor orders 1-3, and their fidelity, on the default model and resnet18.

Run by hand from the repository root after `make run` (it needs models/base/0.pt):
    .venv/bin/python benchmarks/taylor_scoring.py [--resnet-batch 8] [--resnet-channels 64]
Prints a Markdown table; figures are recorded in benchmarks/README.md.

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

from prunebench import models, params, surgery
from prunebench.methods.taylor import _channels, fidelity, gate_derivatives
from prunebench.pipeline import Workbench


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--resnet-batch", type=int, default=8)
    parser.add_argument("--resnet-channels", type=int, default=16)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print("| model | order | channels scored | calibration examples | scoring time (s) | Spearman ρ vs exact ΔL |")
    print("|---|---|---|---|---|---|")

    bench = Workbench.open(params.load())
    model, _, _ = surgery.load("models/base/0.pt")
    model.eval()
    points = surgery.gate_points(model, bench.splits.input_shape)
    loader = iter(bench.train_loader(0))
    batches = [next(loader), next(loader)]
    channels = sum(_channels(model, p[0]) for p in points.values())
    gate_derivatives(model, points, batches[:1], 1, chunk_size=16)  # warm-up
    for order in (1, 2, 3):
        seconds, derivatives = timed(lambda: gate_derivatives(model, points, batches, order, chunk_size=16))
        rho = None
        if order == 3:  # every channel: the estimates of each order against the exact ΔL
            rhos, _ = fidelity(model, points, batches, derivatives, channels, torch.Generator().manual_seed(0))
            rho = ", ".join(f"order {k[-1]}: {v:.3f}" for k, v in rhos.items())
        print(f"| default cnn (digits) | {order} | {channels} (all) | {sum(len(y) for _, y in batches)} "
              f"| {seconds:.2f} | {rho or ''} |")

    net = models.build(models.spec({"name": "resnet18"}, 3, 10, 32)).eval()
    points = surgery.gate_points(net, (3, 32, 32))
    total = sum(_channels(net, p[0]) for p in points.values())
    torch.manual_seed(0)
    batch = [(torch.randn(args.resnet_batch, 3, 32, 32), torch.randint(0, 10, (args.resnet_batch,)))]
    for order in (1, 2, 3):
        seconds = 0.0
        scored = 0
        for root, group_points in points.items():
            n = min(args.resnet_channels, _channels(net, group_points[0]))
            seconds += timed(lambda: _partial(net, root, group_points, batch, order, n))[0]
            scored += n
        print(f"| resnet18 32×32 (random weights) | {order} | {scored} of {total}, scaled to all | "
              f"{args.resnet_batch} | {seconds * total / scored:.0f} (measured {seconds:.1f}) | |")


def _partial(net, root, group_points, batch, order, n):
    """Derivatives along the first n gate directions of one group (the rest is the same work)."""
    from torch.func import vmap

    from prunebench.methods.taylor import _derivatives, _loss, _out_of_place

    x, y = batch[0]
    channels = _channels(net, group_points[0])
    with _out_of_place(net):
        loss = _loss(net, root, group_points, x, y, nn.functional.cross_entropy)
        zero = torch.zeros(channels)
        return vmap(lambda v: torch.stack(_derivatives(loss, zero, v, order)[1:]), chunk_size=16)(
            torch.eye(channels)[:n])


if __name__ == "__main__":
    main()
