"""The sensitivity sweep of a CIFAR-sized ResNet-20 on 2 cores: its (layer, ratio) evaluations one
after another in one process, against spread over 2 worker processes (one torch thread each, as
the stage runs them); and one evaluation of the validation images decoded from PNG files by a
DataLoader (what every evaluation of an ImageFolder tree cost before it was decoded once)
against the same images held in memory.

Run by hand on a quiet machine: .venv/bin/python benchmarks/sensitivity_sweep.py [--images 500]
(`--smoke`: 8×8 images, a few examples; what CI runs). Figures go to benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from prunebench import params, workers
from prunebench.stages.sensitivity import evaluate_probe, probe_jobs, sweep, tabulate
from prunebench.training import data, models
from prunebench.training.batches import batches
from prunebench.training.loops import evaluate

RATIOS = [0.25, 0.5, 0.75]


def image_folder(root: Path, count: int, size: int) -> None:
    """`count` random RGB PNGs in 10 class folders, under train/ and val/."""
    rng = np.random.default_rng(0)
    for part in ("train", "val"):
        for i in range(count):
            folder = root / part / f"class{i % 10}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{i}.png")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true", help="8×8 images, a few examples (CI)")
    parser.add_argument("--images", type=int, default=500, help="validation images")
    args = parser.parse_args(argv)
    size, count = (8, 40) if args.smoke else (32, args.images)
    torch.set_num_threads(1)
    cpu = torch.device("cpu")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        image_folder(root, count, size)
        raw = params.read(Path(__file__).resolve().parents[1] / "params.yaml")
        raw["data"] |= {"name": "imagefolder", "root": str(root), "image_size": size, "crop_pct": 1.0}
        raw["data"] |= {"num_workers": 0, "val_fraction": 0.25}
        cfg = params.parse(raw).data
        split = data.prepare(cfg)
        decoded = data.load(split, cfg)
        share, data.MEMORY_SHARE = data.MEMORY_SHARE, 0.0  # as if too large for memory: the DataLoader path
        try:
            files = data.load(split, cfg)
        finally:
            data.MEMORY_SHARE = share
        torch.manual_seed(0)
        model = models.build(models.spec({"name": "resnet20"}, 3, 10, size)).eval()
        memory_val = batches(decoded.test, decoded, cfg, cpu)
        file_val = batches(files.test, files, cfg, cpu)
        timings = {}
        for name, loader in (("files", file_val), ("memory", memory_val)):
            start = time.perf_counter()
            evaluate(model, loader, cpu)
            timings[name] = time.perf_counter() - start
        base = {0: model}
        start = time.perf_counter()
        alone = sweep(base, memory_val, RATIOS, cpu, (3, size, size))
        one = time.perf_counter() - start
        start = time.perf_counter()
        jobs = probe_jobs(base, RATIOS, (3, size, size))
        found = workers.run(lambda p: evaluate_probe(model, p, memory_val, cpu, (3, size, size)), jobs, 2)
        split_rows = tabulate(jobs, list(found), RATIOS)
        two = time.perf_counter() - start
    assert split_rows == alone, "the split gives the same rows"
    print(f"| {count} validation images {size}×{size}, resnet20 | evaluations | seconds | speed-up |")
    print("|---|---:|---:|---:|")
    print(f"| one evaluation, PNG files through a DataLoader | 1 | {timings['files']:.2f} | |")
    gain = timings["files"] / timings["memory"]
    print(f"| one evaluation, decoded once, in memory | 1 | {timings['memory']:.2f} | {gain:.2f}× |")
    print(f"| sweep, one process | {len(alone)} rows | {one:.1f} | |")
    print(f"| sweep, 2 workers | {len(split_rows)} rows | {two:.1f} | {one / two:.2f}× |")


if __name__ == "__main__":
    main()
