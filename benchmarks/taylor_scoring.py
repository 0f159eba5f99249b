"""Scoring time and peak memory of Taylor orders 1-3, and their fidelity, on the default model
and on resnet20, resnet56 and resnet18 at 32×32.

Run by hand from the repository root after `make run` (it needs models/base/0.pt):
    .venv/bin/python benchmarks/taylor_scoring.py [--resnet-batch 32] [--resnet-channels 8] [--budget-mib 1024]
Prints Markdown tables; figures are recorded in benchmarks/README.md. `--smoke` runs every
step on tiny untrained models and random data instead (what CI runs).

The ResNets (random weights, random inputs; no CIFAR-10 here) are scored on one batch, each
model and order in a process of its own whose peak resident memory (Linux VmHWM) is reported.
On the CPU orders 2-3 take hours for every channel, so `--resnet-channels` limits each group
to its first N directions (at least one whole chunk) and the time is scaled up by the total
channel count (stated in the output).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import torch
from torch import nn

from prunebench import params, paths, runtime
from prunebench.pruning import coupling
from prunebench.pruning.coupling import Gate
from prunebench.pruning.hooks import unit_count
from prunebench.pruning.methods.taylor import _loss, along, fidelity, gate_derivatives, plan
from prunebench.stages.workbench import Workbench
from prunebench.training import modelfile, models


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def channels_of(model: nn.Module, points: dict[str, list[Gate]]) -> dict[str, int]:
    """The channels of each channel group (at its first gate point)."""
    return {root: unit_count(points, root) for root in points}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--resnet-batch", type=int, default=32)
    parser.add_argument("--resnet-channels", type=int, default=8)
    parser.add_argument("--budget-mib", type=int, default=1024)
    parser.add_argument("--smoke", action="store_true", help="tiny untrained models and random data (CI)")
    parser.add_argument("--one", nargs=2, metavar=("MODEL", "ORDER"), help="one row, in this process")
    args = parser.parse_args(argv)
    if args.one:
        return one(args.one[0], int(args.one[1]), args)
    torch.set_num_threads(1)  # as the pipeline's stages run it
    print(f"torch {torch.__version__}, 1 thread\n")
    print("| model | order | channels scored | calibration examples | scoring time (s) | Spearman ρ vs exact ΔL |")
    print("|---|---|---|---|---|---|")

    if args.smoke:
        model = models.build(models.spec({"name": "cnn", "width": 4, "hidden": 8}, 1, 10, 8)).eval()
        batches = [(torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,))) for _ in range(2)]
    else:
        checked = params.load()
        bench = Workbench.open(checked, runtime.setup(checked))
        model = modelfile.load(paths.base_model(0))[0].eval()
        loader = iter(bench.train_batches(0))
        batches = [next(loader), next(loader)]
    shape = tuple(batches[0][0].shape[1:])
    points = coupling.gate_points(model, shape)
    channels = sum(channels_of(model, points).values())
    gate_derivatives(model, points, batches[:1], 2)  # warm-up
    for order in (1, 2, 3):
        seconds, derivatives = timed(lambda: gate_derivatives(model, points, batches, order))  # noqa: B023
        rho = None
        if order == 3:  # every channel: the estimates of each order against the exact ΔL
            rhos, _ = fidelity(model, points, batches, derivatives, channels, torch.Generator().manual_seed(0))
            rho = ", ".join(f"order {k[-1]}: {v:.3f}" for k, v in rhos.items())
        print(
            f"| default cnn (digits) | {order} | {channels} (all) | {sum(len(y) for _, y in batches)} "
            f"| {seconds:.2f} | {rho or ''} |"
        )

    print("\n| model | order | batch | budget (MiB) | examples × directions | peak memory (MiB) | scoring time (s) |")
    print("|---|---|---|---|---|---|---|")
    names = ["resnet20"] if args.smoke else ["resnet20", "resnet56", "resnet18"]
    for name in names:
        for order in (1, 2, 3):
            run = [sys.executable, __file__, "--one", name, str(order), "--resnet-batch", str(args.resnet_batch)]
            run += ["--resnet-channels", str(args.resnet_channels), "--budget-mib", str(args.budget_mib)]
            print(
                subprocess.run(
                    run + (["--smoke"] if args.smoke else []), check=True, capture_output=True, text=True
                ).stdout,
                end="",
            )


def peak_since_reset() -> int:
    """Bytes of the process's peak resident memory since `reset_peak` (Linux)."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM"))


def reset_peak() -> int:
    """Start a new peak; the resident bytes now."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS"))


def one(name: str, order: int, args: argparse.Namespace) -> None:
    """One model and order in a process of its own, so that its peak memory is its own. Order 1
    scores every channel; orders 2-3 the first `--resnet-channels` directions of each group in
    the chunks the budget gives, the time scaled up by the total channel count."""
    torch.set_num_threads(1)  # as in the pipeline's stages
    size, batch = (8, 4) if args.smoke else (32, args.resnet_batch)
    net = models.build(models.spec({"name": name}, 3, 10, size)).eval()
    points = coupling.gate_points(net, (3, size, size))
    widths = channels_of(net, points)
    torch.manual_seed(0)
    x, y = torch.randn(batch, 3, size, size), torch.randint(0, 10, (batch,))
    budget = args.budget_mib * 2**20
    if order == 1:
        base = reset_peak()
        seconds = timed(lambda: gate_derivatives(net, points, [(x, y)], 1))[0]
        peak, chunks, scored = peak_since_reset() - base, "all (one backward pass)", sum(widths.values())
    else:
        plans = {root: plan(net, [gate.module for gate in group], x, order, budget) for root, group in points.items()}
        base = reset_peak()
        seconds, scored = 0.0, 0
        for root, group in points.items():
            rows, chunk = plans[root][0], min(plans[root][1], widths[root])
            n = min(max(args.resnet_channels, chunk) if args.resnet_channels else widths[root], widths[root])
            for xs, ys in zip(x.split(rows), y.split(rows)):
                loss = _loss(net, root, {root: group}, xs, ys, nn.functional.cross_entropy)
                seconds += timed(lambda: along(loss, torch.eye(widths[root])[:n], order, chunk))[0]  # noqa: B023
            scored += n
        peak = peak_since_reset() - base
        pieces = sorted({(rows, min(chunk, widths[r])) for r, (rows, chunk) in plans.items()})
        chunks = f"{pieces[0][0]}×{pieces[0][1]} … {pieces[-1][0]}×{pieces[-1][1]}"
    total = sum(widths.values())
    scaled = (
        f"{seconds * total / scored:.0f} ({scored} of {total} channels: {seconds:.1f})"
        if scored < total
        else f"{seconds:.1f}"
    )
    print(f"| {name} | {order} | {batch} | {args.budget_mib} | {chunks} | {peak / 2**20:.0f} | {scaled} |")


if __name__ == "__main__":
    main()
