"""Measured CPU latency speed-up of l1_channel at 0.5 on resnet18 (32×32, batch 64), divided by
its MACs reduction. Target: at least 0.7. Run by hand: .venv/bin/python benchmarks/structured_latency.py
(`--smoke`: 8×8 inputs, batch 4, what CI runs)."""

from __future__ import annotations

import argparse

import torch

from prunebench.params import Measure, MethodEntry
from prunebench.pruning import methods
from prunebench.pruning.methods import Context
from prunebench.pruning.steps import prune_step
from prunebench.training import measure, models


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true", help="tiny inputs and batch (CI)")
    args = parser.parse_args(argv)
    size, batch = (8, 4) if args.smoke else (32, 64)
    shape = (3, size, size)
    torch.manual_seed(0)
    model = models.build(models.spec({"name": "resnet18"}, 3, 10, size)).eval()
    cfg = Measure(latency_batch=batch, rounds=1, min_run_time=0.05 if args.smoke else 2.0)
    cpu = torch.device("cpu")
    before = measure.profile(model, shape, cfg, cpu)
    ctx = Context(batches=lambda: iter(()), device=cpu, generator=torch.Generator().manual_seed(0), input_shape=shape)
    pruned = prune_step(model, methods.create(MethodEntry.of("l1_channel", {})), 0.0, 0.5, ctx).model
    after = measure.profile(pruned, shape, cfg, cpu)
    macs, speed = before["macs"] / after["macs"], before["latency_ms"] / after["latency_ms"]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {batch}, {size}×{size}")
    print(
        f"MACs {before['macs']:,.0f} → {after['macs']:,.0f} ({macs:.2f}×); latency {before['latency_ms']:.1f} → "
        f"{after['latency_ms']:.1f} ms ({speed:.2f}×); speed-up / MACs reduction = {speed / macs:.2f}"
    )


if __name__ == "__main__":
    main()
