"""Training images per second of resnet56 at 32×32, batch 128, on CIFAR-shaped uint8 data: the
pipeline's path (uint8 images on the device, pad-crop-flip in batches, metrics summed on the
device, `train.fit`) against a plain loop (a DataLoader over per-example PIL transforms in the
main process, fp32, `loss.item()` every step), as the training loop was before issue 13.

Run by hand: .venv/bin/python benchmarks/data_path.py [--device cuda] [--steps 8]
(`--smoke`: 8×8 images, batch 8, 2 steps; what CI runs). Figures go to benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from prunebench.params import Loop
from prunebench.runtime import pick_device
from prunebench.training import models
from prunebench.training._torchvision import import_torchvision
from prunebench.training.batches import Batches
from prunebench.training.data import Images, Splits
from prunebench.training.loops import fit, prepare_model
from prunebench.training.preprocess import Preprocess

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)  # CIFAR-10's
LOOP = Loop(epochs=1, compile=False, lr=0.05, momentum=0.9, weight_decay=5e-4, patience=0)


class PilImages(Dataset):
    """torchvision's CIFAR10 as it reads one example: a PIL image through the transforms."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def plain_loop(model: nn.Module, loader: DataLoader, device: torch.device) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=LOOP.lr, momentum=LOOP.momentum, weight_decay=LOOP.weight_decay)
    model.train()
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        loss.item()  # the per-step host synchronisation of a plain loop


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true", help="tiny images and batches (CI)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=8, help="timed training steps per path")
    args = parser.parse_args(argv)
    size, batch, steps = (8, 8, 2) if args.smoke else (32, 128, args.steps)
    device = pick_device(args.device)
    rng = np.random.default_rng(0)
    n = batch * steps
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)  # HWC, as CIFAR's files hold them
    labels = rng.integers(0, 10, n)
    t = import_torchvision().transforms
    transform = t.Compose(
        [t.RandomCrop(size, padding=4), t.RandomHorizontalFlip(), t.ToTensor(), t.Normalize(MEAN, STD)]
    )
    loader = DataLoader(PilImages(images, labels, transform), batch_size=batch, shuffle=True, num_workers=0)
    part = Images(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(labels)).to(device)
    splits = Splits(part, part, part, 3, 10, size, Preprocess(MEAN, STD, 1.0, "crop_flip"))
    val = Batches(Images(part.images[:batch], part.labels[:batch]), splits, batch)

    def model() -> nn.Module:
        torch.manual_seed(0)
        return prepare_model(models.build(models.spec({"name": "resnet56"}, 3, 10, size)), device)

    def new_path(m: nn.Module) -> None:
        fit(m, Batches(part, splits, batch, train=True), val, LOOP, device, desc="benchmark")

    results = {}
    for name, run in (
        ("plain: DataLoader + PIL transforms, fp32, .item() per step", lambda m: plain_loop(m, loader, device)),
        ("prunebench: uint8 on the device, batch augmentation, train.fit", new_path),
    ):
        m = model()
        run(m)  # warm-up (allocator, cuDNN autotuning)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        run(m)
        if device.type == "cuda":
            torch.cuda.synchronize()
        results[name] = n / (time.perf_counter() - start)
    print(
        f"torch {torch.__version__}, device {device}"
        f"{' (' + torch.cuda.get_device_name() + ')' if device.type == 'cuda' else ''}, "
        f"{torch.get_num_threads()} threads; resnet56 {size}×{size}, batch {batch}, {steps} steps"
    )
    print("| path | images/s |\n|---|---|")
    for name, rate in results.items():
        print(f"| {name} | {rate:,.0f} |")
    plain, new = results.values()
    print(f"speed-up: {new / plain:.2f}× (the pipeline's figure includes one validation batch per epoch)")


if __name__ == "__main__":
    main()
