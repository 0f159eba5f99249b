"""What the MACs buy where a model is deployed: speed-up in ONNX Runtime against PyTorch eager,
for a weight method (masks) and a channel method (physical removal) at several fractions, on
resnet56 at 32×32 (random weights: latency does not depend on the values).

Run by hand from the repository root: .venv/bin/python benchmarks/onnx_speedup.py
Prints a Markdown table; figures are recorded in benchmarks/README.md (the default model's come
from `make run`'s deploy stage, in results/report.md). Every model is exported as the deploy
stage exports it, checked against PyTorch, and timed by `deploy.timing.interleaved` beside the
base model, one thread. `--smoke`: a tiny cnn, two fractions (what CI runs).
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

from prunebench.deploy import export, timing
from prunebench.params import MethodEntry
from prunebench.pruning import methods
from prunebench.pruning.methods import Context
from prunebench.pruning.steps import prune_step
from prunebench.training import measure, models


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--smoke", action="store_true", help="tiny model and sizes (CI)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    name, size, channels = ("cnn", 8, 1) if args.smoke else ("resnet56", 32, 3)
    fractions = (0.5, 0.75) if args.smoke else (0.5, 0.75, 0.875, 0.9375, 0.96875)
    batch, rounds, run_time = (8, 1, 0.005) if args.smoke else (args.batch, 3, 0.3)
    shape = (channels, size, size)
    torch.manual_seed(0)
    base = models.build(models.spec({"name": name}, channels, 10, size)).eval()
    x = torch.randn(16, *shape)
    ctx = Context(
        batches=lambda: iter([(x, torch.randint(0, 10, (16,)))]),
        device=torch.device("cpu"),
        generator=torch.Generator().manual_seed(0),
        input_shape=shape,
    )
    base_macs = measure.costs(base, shape)[0]["macs_sparse"]
    pruned = {"base": (base, 1.0)}
    for key in ("magnitude", "l1_channel"):
        for fraction in fractions:
            method = methods.create(MethodEntry.of(key, {}))
            model = prune_step(copy.deepcopy(base), method, 0.0, fraction, ctx).model.eval()  # it prunes in place
            pruned[f"{key} {fraction:g}"] = (model, base_macs / measure.costs(model, shape)[0]["macs_sparse"])
    start, worst = time.perf_counter(), 0.0
    pairs = {}
    for label, (model, _) in pruned.items():
        data = export.to_onnx(model, x[:1])
        result = export.check(model, data, x, 1e-4)
        assert result.problem is None, f"{label}: {result.problem}"
        worst = max(worst, result.max_difference)
        pairs[label] = (model, export.session(data))
    exported = time.perf_counter() - start
    ms = timing.interleaved(pairs, shape, batch, rounds, run_time)
    print(
        f"torch {torch.__version__}, 1 thread; {name} {size}×{size}; export and check of {len(pairs)} models "
        f"{exported:.1f} s, largest logit difference {worst:.1g}\n"
    )
    print(
        f"| model | MACs reduction | PyTorch batch {batch} ms | speed-up | ORT batch {batch} ms | speed-up "
        "| ORT batch 1 ms | speed-up |"
    )
    print("|---|---|---|---|---|---|---|---|")
    b = ms["base"]
    for label, (_, reduction) in pruned.items():
        m = ms[label]
        print(
            f"| {label} | {reduction:.2f}× | {m['latency_ms']:.2f} | {b['latency_ms'] / m['latency_ms']:.2f}× "
            f"| {m['ort_ms']:.2f} | {b['ort_ms'] / m['ort_ms']:.2f}× | {m['ort_b1_ms']:.3f} "
            f"| {b['ort_b1_ms'] / m['ort_b1_ms']:.2f}× |"
        )


if __name__ == "__main__":
    main()
