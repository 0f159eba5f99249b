"""Data set registry, the fixed train/validation/test split, and the loaders.

The data stage writes a split record (plain JSON: which examples go where, and the
normalisation measured on the training part); every later stage rebuilds the same tensors
from it. The test split is never used for any choice: early stopping, sensitivity and
calibration all use the training or validation split.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

Split = dict[str, Any]


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


DATASETS: dict[str, DataSource] = {
    "digits": DataSource(_prepare_digits, _load_digits),
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
