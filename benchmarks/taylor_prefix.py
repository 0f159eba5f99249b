"""Taylor orders 2 and 3 with and without the cached prefix (`pruning.exact.Traced`): the time of
the forward-mode directions of every channel group of resnet56 at 32×32, and the largest relative
difference of the derivatives. Each group's first `--directions` directions are timed both ways,
alternated, and the time scaled by the group's channel count; the total is the whole model's.

Run by hand on a quiet machine: .venv/bin/python benchmarks/taylor_prefix.py [--batch 16]
[--directions 4] (`--smoke`: resnet20 at 8×8, what CI runs). Figures: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import time

import torch

from prunebench.pruning import coupling
from prunebench.pruning.exact import traced_model
from prunebench.pruning.hooks import unit_count
from prunebench.pruning.methods.taylor import _loss, along
from prunebench.training import models
from prunebench.training.loops import cross_entropy


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--directions", type=int, default=4)
    parser.add_argument("--smoke", action="store_true", help="resnet20 at 8×8, 2 directions (CI)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # as the pipeline's stages run
    name, size, k = ("resnet20", 8, 2) if args.smoke else ("resnet56", 32, args.directions)
    torch.manual_seed(0)
    model = models.build(models.spec({"name": name}, 3, 10, size)).eval()
    shape = (3, size, size)
    x, y = torch.randn(args.batch, *shape), torch.randint(0, 10, (args.batch,))
    points = coupling.gate_points(model, shape, ("channel",))
    traced = traced_model(model, points, (x, y), cross_entropy)
    assert traced is not None, f"fx traces {name}"
    print(f"torch {torch.__version__}, 1 thread; {name} {size}×{size}, batch {args.batch}, {k} directions per group")
    print(
        "\n| order | groups | channels | whole forward (s) | cached prefix (s) | speed-up | max relative difference |"
    )
    print("|---|---|---|---|---|---|---|")
    for order in (2, 3):
        whole = cached = 0.0
        worst = 0.0
        for root, gates in points.items():
            units = unit_count(points, root)
            directions = torch.eye(units)[:k]
            found = {}
            for prefix in (False, True):
                recorded = (traced, traced.record(x)) if prefix else None
                loss = _loss(model, root, {root: gates}, x, y, cross_entropy, recorded)
                start = time.perf_counter()
                found[prefix] = along(loss, directions, order, k)
                seconds = (time.perf_counter() - start) * units / len(directions)
                if prefix:
                    cached += seconds
                else:
                    whole += seconds
            scale = found[False].abs().clamp_min(1e-12)
            worst = max(worst, float(((found[True] - found[False]).abs() / scale).max()))
        channels = sum(unit_count(points, root) for root in points)
        timings = f"{whole:.1f} | {cached:.1f} | {whole / cached:.2f}×"
        print(f"| {order} | {len(points)} | {channels} | {timings} | {worst:.1e} |")


if __name__ == "__main__":
    main()
