"""Data set registry, the fixed train/validation/test split, and the loaders.

The data stage writes a split record (plain JSON: which examples go where, and the
normalisation measured on the training part); every later stage rebuilds the same tensors
from it. The test split is never used for any choice: early stopping, sensitivity and
calibration all use the training or validation split.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

Split = dict[str, Any]  # plain JSON: indices and normalisation, never the images


@dataclass(frozen=True)
class Splits:
    train: Dataset
    val: Dataset
    test: Dataset
    in_channels: int
    num_classes: int
    image_size: int

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.in_channels, self.image_size, self.image_size)


@dataclass(frozen=True)
class DataSource:
    """`prepare(cfg)` decides the split; `load(split, cfg)` rebuilds the data sets from it."""

    prepare: Callable[[dict], Split]
    load: Callable[[Split, dict], Splits]


def stratified_split(labels: np.ndarray, cfg: dict) -> dict[str, list[int]]:
    """Carve test, then validation, out of all examples, keeping class proportions."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(labels))
    rest, test = train_test_split(
        index, test_size=cfg["test_fraction"], stratify=labels, random_state=cfg["split_seed"]
    )
    val_size = cfg["val_fraction"] / (1 - cfg["test_fraction"])
    train, val = train_test_split(
        rest, test_size=val_size, stratify=labels[rest], random_state=cfg["split_seed"]
    )
    return {"train": sorted(train.tolist()), "val": sorted(val.tolist()), "test": sorted(test.tolist())}


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    images, labels = load_digits(return_X_y=True)
    return (images / 16.0).astype(np.float32).reshape(-1, 1, 8, 8), labels.astype(np.int64)


def _prepare_digits(cfg: dict) -> Split:
    images, labels = _digits_arrays()
    split = stratified_split(labels, cfg)
    train = images[split["train"]]
    return {
        "dataset": "digits",
        **split,
        "mean": [float(train.mean())],
        "std": [float(train.std())],
        "in_channels": 1,
        "num_classes": 10,
        "image_size": 8,
    }


def _load_digits(split: Split, cfg: dict) -> Splits:
    images, labels = _digits_arrays()
    images = (images - split["mean"][0]) / split["std"][0]

    def part(name: str) -> TensorDataset:
        idx = split[name]
        return TensorDataset(torch.from_numpy(images[idx]), torch.from_numpy(labels[idx]))

    return Splits(part("train"), part("val"), part("test"), 1, 10, 8)


class DataMissing(FileNotFoundError):
    """The data set's files are not under data.root and may not be downloaded."""


@dataclass(frozen=True)
class Torchvision:
    """A torchvision data set: validation carved (stratified) from its training part, its own
    test part as the test split; standard normalisation, augmentation on training only."""

    name: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    num_classes: int
    image_size: int
    expected: str  # what to put under data.root when offline

    def _open(self, cfg: dict, train: bool, transform=None):
        from prunebench._torchvision import import_torchvision

        datasets = import_torchvision().datasets
        root = Path(cfg["root"])
        try:
            if self.name == "imagefolder":
                return datasets.ImageFolder(root / ("train" if train else "val"), transform=transform)
            cls = {"mnist": datasets.MNIST, "fashionmnist": datasets.FashionMNIST,
                   "cifar10": datasets.CIFAR10, "cifar100": datasets.CIFAR100}[self.name]
            return cls(root, train=train, transform=transform, download=cfg.get("download", False))
        except (RuntimeError, FileNotFoundError) as error:
            raise DataMissing(f"data.root: no {self.name} data in {root.resolve()}: {self.expected}, "
                              f"or set data.download: true on a machine with internet") from error

    def prepare(self, cfg: dict) -> Split:
        train = self._open(cfg, train=True)
        labels = np.asarray(train.targets)
        test = self._open(cfg, train=False)  # the test part must be there too
        index = np.arange(len(labels))
        from sklearn.model_selection import train_test_split

        fit, val = train_test_split(index, test_size=cfg["val_fraction"], stratify=labels,
                                    random_state=cfg["split_seed"])
        image = cfg.get("image_size") or self.image_size
        return {"dataset": self.name, "train": sorted(fit.tolist()), "val": sorted(val.tolist()),
                "test": list(range(len(test))), "mean": list(self.mean),
                "std": list(self.std), "in_channels": len(self.mean),
                "num_classes": len(getattr(train, "classes", [])) or self.num_classes, "image_size": image}

    def load(self, split: Split, cfg: dict) -> Splits:
        from torch.utils.data import Subset

        from prunebench._torchvision import import_torchvision

        t = import_torchvision().transforms
        size = split["image_size"]
        normalize = [t.ToTensor(), t.Normalize(split["mean"], split["std"])]
        if self.name == "imagefolder":
            augment = [t.RandomResizedCrop(size), t.RandomHorizontalFlip()]
            plain = [t.Resize(int(size * 8 / 7)), t.CenterCrop(size)]
        elif self.name.startswith("cifar"):
            augment, plain = [t.RandomCrop(size, padding=4), t.RandomHorizontalFlip()], []
        else:
            augment, plain = [], []
        train = Subset(self._open(cfg, True, t.Compose(augment + normalize)), split["train"])
        val = Subset(self._open(cfg, True, t.Compose(plain + normalize)), split["val"])
        test = self._open(cfg, False, t.Compose(plain + normalize))
        return Splits(train, val, test, split["in_channels"], split["num_classes"], size)


DATASETS: dict[str, DataSource | Torchvision] = {
    "digits": DataSource(_prepare_digits, _load_digits),
    "mnist": Torchvision("mnist", (0.1307,), (0.3081,), 10, 28,
                         "put the MNIST idx files in <root>/MNIST/raw/"),
    "fashionmnist": Torchvision("fashionmnist", (0.2860,), (0.3530,), 10, 28,
                                "put the FashionMNIST idx files in <root>/FashionMNIST/raw/"),
    "cifar10": Torchvision("cifar10", (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), 10, 32,
                           "unpack cifar-10-python.tar.gz into <root>/cifar-10-batches-py/"),
    "cifar100": Torchvision("cifar100", (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), 100, 32,
                            "unpack cifar-100-python.tar.gz into <root>/cifar-100-python/"),
    "imagefolder": Torchvision("imagefolder", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 0, 224,
                               "put a train/ and a val/ tree of class folders in <root>"),
}


def prepare(cfg: dict) -> Split:
    return DATASETS[cfg["name"]].prepare(cfg)


def load(split: Split, cfg: dict) -> Splits:
    return DATASETS[split["dataset"]].load(split, cfg)


def split_sizes(split: Split) -> dict[str, int]:
    return {name: len(split[name]) for name in ("train", "val", "test")}


def loader(dataset: Dataset, cfg: dict, device: torch.device, shuffle: bool = False, seed: int = 0) -> DataLoader:
    """Shuffled loaders draw their order from `seed`, so a run is repeatable."""
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(
        dataset,
        batch_size=cfg["batch_size"],
        shuffle=shuffle,
        generator=generator,
        num_workers=cfg["num_workers"],
        pin_memory=device.type == "cuda",
    )
