"""Does 2:4 sparsity run faster? The linear layers of the embedded GPT at width `--dim`, each
pruned 2:4 by magnitude per row (`pruning.rows`), timed against the dense layer at batch 1 and at
`--batch` sequences of `--tokens` tokens.

On the CPU a 2:4 mask is a dense weight with zeros in it: PyTorch runs it at dense speed, and the
table says so with the measurement (masked against dense). On a CUDA GPU (compute capability 8.0
or later) the masked weight is also converted with `torch.sparse.to_sparse_semi_structured`, in
half precision, and the semi-structured kernel is timed against the dense one; its outputs are
checked against the masked dense layer first.

Run by hand from the repository root: .venv/bin/python benchmarks/semi_structured.py [--dim 2048]
Prints a Markdown table; figures are recorded in benchmarks/README.md. `--smoke`: width 64 (CI).
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch.utils import benchmark

from prunebench.pruning import rows
from prunebench.training import models


def timed(x: torch.Tensor, weight: torch.Tensor, seconds: float) -> float:
    """Median milliseconds of F.linear(x, weight) (torch.utils.benchmark synchronises CUDA)."""
    timer = benchmark.Timer(
        "F.linear(x, w)", globals={"F": F, "x": x, "w": weight}, num_threads=torch.get_num_threads()
    )
    return timer.blocked_autorange(min_run_time=seconds).median * 1000


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--smoke", action="store_true", help="width 64, short timings (CI)")
    args = parser.parse_args(argv)
    dim, seconds = (64, 0.01) if args.smoke else (args.dim, 0.5)
    cuda = torch.cuda.is_available() and torch.cuda.get_device_capability() >= (8, 0)
    device, dtype = (torch.device("cuda"), torch.float16) if cuda else (torch.device("cpu"), torch.float32)
    spec = models.spec(
        {"name": "gpt", "dim": dim, "depth": 1, "heads": max(1, dim // 64)}, vocab_size=256, sequence_length=args.tokens
    )
    layers = models.prunable_layers(models.build(spec))
    print(f"device: {torch.cuda.get_device_name() if cuda else 'CPU'}, {dtype}, {torch.get_num_threads()} threads")
    print()
    print("| layer | weight | tokens | dense ms | 2:4 masked ms | 2:4 semi-structured ms | speed-up |")
    print("|---|---|---|---|---|---|---|")
    for name, layer in layers.items():
        weight = layer.weight.detach().to(device, dtype)
        masked = weight * rows.row_mask(weight.abs().float(), 0.0, "2:4").to(device)
        sparse = torch.sparse.to_sparse_semi_structured(masked) if cuda else None
        for sequences in (1, args.batch):
            x = torch.randn(sequences * args.tokens, weight.shape[1], device=device, dtype=dtype)
            dense_ms = timed(x, weight, seconds)
            masked_ms = timed(x, masked, seconds)
            if sparse is not None:
                assert torch.allclose(F.linear(x, sparse), F.linear(x, masked), rtol=1e-2, atol=1e-2), name
                sparse_ms = timed(x, sparse, seconds)
                shown, speedup = f"{sparse_ms:.4f}", dense_ms / sparse_ms
            else:
                shown, speedup = "– (no CUDA)", dense_ms / masked_ms
            shape, tokens = "×".join(map(str, weight.shape)), f"{sequences}×{args.tokens}"
            print(f"| {name} | {shape} | {tokens} | {dense_ms:.4f} | {masked_ms:.4f} | {shown} | {speedup:.2f}× |")


if __name__ == "__main__":
    main()
