"""Batches for training and evaluation.

In-memory data sets are held on the device once, as stored (uint8 where the source is), and
each batch is sliced, scaled, augmented (`prunebench.training.preprocess`) and normalised there:
no worker processes, nothing copied from the host per step. Larger ImageFolder trees go through a
DataLoader with worker processes, pinned memory and persistent workers.

Every epoch's order and augmentation come from (seed, epoch) alone (`set_epoch`), so a job
sees the same batches in whichever process or on whichever node it runs.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from prunebench import workers
from prunebench.params import Data
from prunebench.training import preprocess
from prunebench.training.parts import Images, Sequences, Splits


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The randomness of one epoch: its order and its augmentation."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


class Batches:
    """(x, y) batches of an in-memory part on its device: shuffled and augmented when `train`."""

    def __init__(self, part: Images, splits: Splits, batch_size: int, train: bool = False, seed: int = 0):
        self.part, self.batch_size, self.train, self.seed, self.epoch = part, batch_size, train, seed, 0
        assert splits.prep is not None, "images are preprocessed"
        self.scale, self.prep, self.size = splits.scale, splits.prep, splits.image_size
        device = part.images.device
        self.mean = torch.tensor(self.prep.mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(self.prep.std, device=device).view(1, -1, 1, 1)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(len(self.part) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        n, device = len(self.part), self.part.images.device
        generator = epoch_generator(self.seed, self.epoch)
        order = torch.randperm(n, generator=generator) if self.train else torch.arange(n)
        order = order.to(device)
        for start in range(0, n, self.batch_size):
            index = order[start : start + self.batch_size]
            x = self.part.images[index].float() / self.scale
            if self.train:
                x = preprocess.augment(x, self.prep, self.size, generator)
            elif not self.part.fitted:  # the training part, evaluated
                x = preprocess.fit(x, self.size, self.prep.crop_pct, self.prep.interpolation)
            x = (x - self.mean) / self.std
            if device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.part.labels[index]


class SequenceBatches:
    """(tokens, next tokens) batches of a text part on its device: [B, length] each, the
    sequences shuffled when `train`."""

    def __init__(self, part: Sequences, batch_size: int, train: bool = False, seed: int = 0):
        self.part, self.batch_size, self.train, self.seed, self.epoch = part, batch_size, train, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(len(self.part) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        n = len(self.part)
        order = torch.randperm(n, generator=epoch_generator(self.seed, self.epoch)) if self.train else torch.arange(n)
        order = order.to(self.part.tokens.device)
        for start in range(0, n, self.batch_size):
            sequences = self.part.tokens[order[start : start + self.batch_size]]
            yield sequences[:, :-1], sequences[:, 1:]


class EpochSampler(Sampler[int]):
    """A permutation of range(n) drawn from (seed, epoch), or range(n) in order."""

    def __init__(self, n: int, shuffle: bool, seed: int):
        self.n, self.shuffle, self.seed, self.epoch = n, shuffle, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        order = (
            torch.randperm(self.n, generator=epoch_generator(self.seed, self.epoch))
            if self.shuffle
            else torch.arange(self.n)
        )
        return iter(order.tolist())


class FileBatches:
    """(x, y) batches of a data set decoded per example by DataLoader workers, moved to the device."""

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        device: torch.device,
        workers: int | None,
        train: bool = False,
        seed: int = 0,
    ):
        workers = default_workers() if workers is None else workers
        self.device = device
        self.sampler = EpochSampler(len(dataset), train, seed)  # type: ignore[arg-type]  # map-style: sized
        self.loader = DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=self.sampler,
            num_workers=workers,
            pin_memory=device.type == "cuda",
            persistent_workers=workers > 0,
        )

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        for x, y in self.loader:
            x = x.to(self.device, non_blocking=True)
            if self.device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, y.to(self.device, non_blocking=True)


def default_workers() -> int:
    """DataLoader workers when data.num_workers is null: the cores this process may use, at most 8."""
    return min(8, workers.cores())


Loader = Batches | SequenceBatches | FileBatches


def batches(
    part: Images | Sequences | Dataset,
    splits: Splits,
    cfg: Data,
    device: torch.device,
    train: bool = False,
    seed: int = 0,
) -> Loader:
    """The batches of one part: `cfg` is params.yaml `data`; an in-memory part must be on `device` already."""
    if isinstance(part, Images):
        return Batches(part, splits, cfg.batch_size, train, seed)
    if isinstance(part, Sequences):
        return SequenceBatches(part, cfg.batch_size, train, seed)
    return FileBatches(part, cfg.batch_size, device, cfg.num_workers, train, seed)
