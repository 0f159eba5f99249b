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

from prunebench import params, surgery
from prunebench._torchvision import import_torchvision
from prunebench.methods.taylor import exact_deltas, gate_derivatives, spearman, taylor_estimate
from prunebench.pipeline import Workbench


def resnet18_cifar() -> nn.Module:
    model = import_torchvision().models.resnet18(num_classes=10)
    model.conv1 = nn.Conv2d(3, 64, 3, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model.eval()


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def fidelity(model, points, batches, derivatives, sample: int) -> dict[int, float]:
    pool = [(r, c) for r, d in derivatives.items() for c in range(d.shape[1])]
    picked = [pool[i] for i in torch.randperm(len(pool), generator=torch.Generator().manual_seed(0))[:sample]]
    by_root: dict[str, list[int]] = {}
    for root, c in picked:
        by_root.setdefault(root, []).append(c)
    exact = exact_deltas(model, points, batches, {r: torch.tensor(c) for r, c in by_root.items()})
    truth = torch.cat([exact[r] for r in by_root])
    return {k: spearman(torch.cat([taylor_estimate(derivatives[r][:, c], k) for r, c in by_root.items()]), truth)
            for k in (1, 2, 3)}


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
    channels = sum(dict(model.named_modules())[p[0]].num_features if hasattr(dict(model.named_modules())[p[0]], "num_features")
                   else dict(model.named_modules())[p[0]].out_features for p in points.values())
    gate_derivatives(model, points, batches[:1], 1, chunk_size=16)  # warm-up
    for order in (1, 2, 3):
        seconds, derivatives = timed(lambda: gate_derivatives(model, points, batches, order, chunk_size=16))
        rho = fidelity(model, points, batches, derivatives, 10_000)[order] if order == 3 else None
        if order == 3:
            rhos = fidelity(model, points, batches, derivatives, 10_000)
            rho = ", ".join(f"order {k}: {v:.3f}" for k, v in rhos.items())
        print(f"| default cnn (digits) | {order} | {channels} (all) | {sum(len(y) for _, y in batches)} "
              f"| {seconds:.2f} | {rho or ''} |")

    net = resnet18_cifar()
    points = surgery.gate_points(net, (3, 32, 32))
    total = 0
    limited = {}
    for root, group_points in points.items():
        module = dict(net.named_modules())[group_points[0]]
        n = getattr(module, "num_features", None) or module.out_features
        total += n
        limited[root] = group_points
    torch.manual_seed(0)
    batch = [(torch.randn(args.resnet_batch, 3, 32, 32), torch.randint(0, 10, (args.resnet_batch,)))]
    for order in (1, 2, 3):
        seconds = 0.0
        scored = 0
        for root, group_points in limited.items():
            module = dict(net.named_modules())[group_points[0]]
            n = min(args.resnet_channels, getattr(module, "num_features", None) or module.out_features)
            seconds += timed(lambda: _partial(net, root, group_points, batch, order, n))[0]
            scored += n
        print(f"| resnet18 32×32 (random weights) | {order} | {scored} of {total}, scaled to all | "
              f"{args.resnet_batch} | {seconds * total / scored:.0f} (measured {seconds:.1f}) | |")


def _partial(net, root, group_points, batch, order, n):
    """Derivatives along the first n gate directions of one group (the rest is the same work)."""
    from torch.func import vmap

    from prunebench.methods.taylor import _derivatives, _loss, _out_of_place

    x, y = batch[0]
    channels = getattr(dict(net.named_modules())[group_points[0]], "num_features")
    with _out_of_place(net):
        loss = _loss(net, root, group_points, x, y, nn.functional.cross_entropy)
        zero = torch.zeros(channels)
        return vmap(lambda v: torch.stack(_derivatives(loss, zero, v, order)[1:]), chunk_size=16)(
            torch.eye(channels)[:n])


if __name__ == "__main__":
    main()
