"""Data set registry, the fixed train/validation/test split, and the data of each part.

The data stage writes a split record (plain JSON: which examples go where, and the
normalisation); every later stage rebuilds the same parts from it. Data sets that fit in
memory (digits, MNIST, FashionMNIST, CIFAR-10/100) come back as tensors, uint8 as stored,
which `prunebench.training.batches` normalises and augments batch by batch on the device; ImageFolder
comes back as torchvision data sets with their transforms, for a DataLoader with workers. The
test split is never used for any choice: early stopping, sensitivity and calibration all use
the training or validation split.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from prunebench.errors import UserError

if TYPE_CHECKING:  # the data stage decides the split without torch (seconds to import)
    import torch
    from torch.utils.data import Dataset

    from prunebench.params import Data

Split = dict[str, Any]  # plain JSON: indices and normalisation, never the images


@dataclass(frozen=True)
class Images:
    """One part of an in-memory data set: images as stored, [N, C, H, W] (uint8 where the source
    is), and labels [N]."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device) -> Images:
        return Images(self.images.to(device), self.labels.to(device))


@dataclass(frozen=True)
class Splits:
    train: Images | Dataset
    val: Images | Dataset
    test: Images | Dataset
    in_channels: int
    num_classes: int
    image_size: int
    scale: float = 255.0  # stored value of full intensity: images / scale lie in [0, 1]
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    augment: str | None = None  # "crop_flip": pad by 4, random crop, horizontal flip (training only)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.in_channels, self.image_size, self.image_size)

    @property
    def in_memory(self) -> bool:
        return isinstance(self.train, Images)


@dataclass(frozen=True)
class DataSource:
    """`prepare(cfg)` decides the split; `load(split, cfg)` rebuilds the data from it."""

    prepare: Callable[[Data], Split]
    load: Callable[[Split, Data], Splits]


def stratified_split(labels: np.ndarray, cfg: Data) -> dict[str, list[int]]:
    """Carve test, then validation, out of all examples, keeping class proportions."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(labels))
    rest, test = train_test_split(index, test_size=cfg.test_fraction, stratify=labels, random_state=cfg.split_seed)
    val_size = cfg.val_fraction / (1 - cfg.test_fraction)
    train, val = train_test_split(rest, test_size=val_size, stratify=labels[rest], random_state=cfg.split_seed)
    return {"train": sorted(train.tolist()), "val": sorted(val.tolist()), "test": sorted(test.tolist())}


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits, read from the file the package ships (importing scikit-learn costs
    seconds per stage): 1,797 images of 8×8 intensities 0..16, as uint8, and their labels."""
    found = importlib.util.find_spec("sklearn")
    assert found is not None and found.origin is not None, "scikit-learn is a dependency"
    package = Path(found.origin).parent
    table = np.loadtxt(package / "datasets" / "data" / "digits.csv.gz", delimiter=",")
    return table[:, :-1].astype(np.uint8).reshape(-1, 1, 8, 8), table[:, -1].astype(np.int64)


DIGITS_SCALE = 16.0


def _prepare_digits(cfg: Data) -> Split:
    images, labels = _digits_arrays()
    split = stratified_split(labels, cfg)
    train = images[split["train"]] / DIGITS_SCALE
    return {
        "dataset": "digits",
        **split,
        "mean": [float(train.mean())],
        "std": [float(train.std())],
        "in_channels": 1,
        "num_classes": 10,
        "image_size": 8,
    }


def _load_digits(split: Split, cfg: Data) -> Splits:
    import torch

    images, labels = (torch.from_numpy(a) for a in _digits_arrays())

    def part(name: str) -> Images:
        index = torch.tensor(split[name])
        return Images(images[index], labels[index])

    return Splits(
        part("train"), part("val"), part("test"), 1, 10, 8, DIGITS_SCALE, tuple(split["mean"]), tuple(split["std"])
    )


class DataMissing(UserError, FileNotFoundError):
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

    def _open(self, cfg: Data, train: bool, transform=None):
        from prunebench.training._torchvision import import_torchvision

        datasets = import_torchvision().datasets
        root = Path(cfg.root)
        try:
            if self.name == "imagefolder":
                return datasets.ImageFolder(root / ("train" if train else "val"), transform=transform)
            cls = {
                "mnist": datasets.MNIST,
                "fashionmnist": datasets.FashionMNIST,
                "cifar10": datasets.CIFAR10,
                "cifar100": datasets.CIFAR100,
            }[self.name]
            return cls(root, train=train, transform=transform, download=cfg.download)
        except (RuntimeError, FileNotFoundError) as error:
            raise DataMissing(
                f"data.root: no {self.name} data in {root.resolve()}: {self.expected}, "
                f"or set data.download: true on a machine with internet"
            ) from error

    def prepare(self, cfg: Data) -> Split:
        train = self._open(cfg, train=True)
        labels = np.asarray(train.targets)
        test = self._open(cfg, train=False)  # the test part must be there too
        index = np.arange(len(labels))
        from sklearn.model_selection import train_test_split

        fit, val = train_test_split(index, test_size=cfg.val_fraction, stratify=labels, random_state=cfg.split_seed)
        image = cfg.image_size or self.image_size
        return {
            "dataset": self.name,
            "train": sorted(fit.tolist()),
            "val": sorted(val.tolist()),
            "test": list(range(len(test))),
            "mean": list(self.mean),
            "std": list(self.std),
            "in_channels": len(self.mean),
            "num_classes": len(getattr(train, "classes", [])) or self.num_classes,
            "image_size": image,
        }

    def load(self, split: Split, cfg: Data) -> Splits:
        shape = (split["in_channels"], split["num_classes"], split["image_size"])
        if self.name == "imagefolder":
            return self._load_files(split, cfg, shape)
        import torch

        train, test = _tensors(self._open(cfg, True)), _tensors(self._open(cfg, False))
        fit, val = (
            Images(train.images[torch.tensor(split[k])], train.labels[torch.tensor(split[k])]) for k in ("train", "val")
        )
        augment = "crop_flip" if self.name.startswith("cifar") else None
        return Splits(fit, val, test, *shape, 255.0, tuple(split["mean"]), tuple(split["std"]), augment)

    def _load_files(self, split: Split, cfg: Data, shape: tuple[int, int, int]) -> Splits:
        """ImageFolder: decoded per example by DataLoader workers, with torchvision's transforms."""
        from torch.utils.data import Subset

        from prunebench.training._torchvision import import_torchvision

        t = import_torchvision().transforms
        size = split["image_size"]
        normalize = [t.ToTensor(), t.Normalize(split["mean"], split["std"])]
        augment = [t.RandomResizedCrop(size), t.RandomHorizontalFlip()]
        plain = [t.Resize(int(size * 8 / 7)), t.CenterCrop(size)]
        train = Subset(self._open(cfg, True, t.Compose(augment + normalize)), split["train"])
        val = Subset(self._open(cfg, True, t.Compose(plain + normalize)), split["val"])
        test = self._open(cfg, False, t.Compose(plain + normalize))
        return Splits(train, val, test, *shape, 1.0, tuple(split["mean"]), tuple(split["std"]))


def _tensors(dataset) -> Images:
    """A torchvision MNIST- or CIFAR-style data set's arrays: uint8 images as [N, C, H, W]."""
    import torch

    images = torch.as_tensor(np.asarray(dataset.data))
    images = images.unsqueeze(1) if images.dim() == 3 else images.permute(0, 3, 1, 2)
    return Images(images.contiguous(), torch.as_tensor(np.asarray(dataset.targets), dtype=torch.int64))


DATASETS: dict[str, DataSource | Torchvision] = {
    "digits": DataSource(_prepare_digits, _load_digits),
    "mnist": Torchvision("mnist", (0.1307,), (0.3081,), 10, 28, "put the MNIST idx files in <root>/MNIST/raw/"),
    "fashionmnist": Torchvision(
        "fashionmnist", (0.2860,), (0.3530,), 10, 28, "put the FashionMNIST idx files in <root>/FashionMNIST/raw/"
    ),
    "cifar10": Torchvision(
        "cifar10",
        (0.4914, 0.4822, 0.4465),
        (0.2470, 0.2435, 0.2616),
        10,
        32,
        "unpack cifar-10-python.tar.gz into <root>/cifar-10-batches-py/",
    ),
    "cifar100": Torchvision(
        "cifar100",
        (0.5071, 0.4865, 0.4409),
        (0.2673, 0.2564, 0.2762),
        100,
        32,
        "unpack cifar-100-python.tar.gz into <root>/cifar-100-python/",
    ),
    "imagefolder": Torchvision(
        "imagefolder",
        (0.485, 0.456, 0.406),
        (0.229, 0.224, 0.225),
        0,
        224,
        "put a train/ and a val/ tree of class folders in <root>",
    ),
}


def prepare(cfg: Data) -> Split:
    return DATASETS[cfg.name].prepare(cfg)


def load(split: Split, cfg: Data) -> Splits:
    return DATASETS[split["dataset"]].load(split, cfg)


def split_sizes(split: Split) -> dict[str, int]:
    return {name: len(split[name]) for name in ("train", "val", "test")}
