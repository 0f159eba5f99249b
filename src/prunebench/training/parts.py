"""What a data set gives the stages: its three parts in memory (images, or token sequences) or as
files, what a model is built for, and how a data source decides and rebuilds them. The data
sets themselves: `prunebench.training.data` (images) and `prunebench.training.text`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prunebench.errors import UserError
from prunebench.task import CLASSIFICATION, LANGUAGE_MODELLING, TASKS, Task
from prunebench.training.inputs import InputShape, Tokens, shape_of_spec
from prunebench.training.preprocess import Preprocess

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
    fitted: bool = False  # resized and cropped for evaluation already (`preprocess.fit`)

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device) -> Images:
        return Images(self.images.to(device), self.labels.to(device), self.fitted)


@dataclass(frozen=True)
class Sequences:
    """One part of a text data set: token ids [N, sequence_length + 1]; a model reads [:, :-1]
    and predicts [:, 1:]."""

    tokens: torch.Tensor

    def __len__(self) -> int:
        return len(self.tokens)

    def to(self, device: torch.device) -> Sequences:
        return Sequences(self.tokens.to(device))


Part = Images | Sequences  # a part held in memory


@dataclass(frozen=True)
class Splits:
    """The three parts, and what a model is built for: images (`in_channels`, `num_classes`,
    `image_size`, and how they are preprocessed) or token sequences (`tokens`)."""

    train: Part | Dataset
    val: Part | Dataset
    test: Part | Dataset
    in_channels: int = 0
    num_classes: int = 0
    image_size: int = 0
    prep: Preprocess | None = None  # settled: the evaluation parts in memory are already resized and cropped
    scale: float = 255.0  # stored value of full intensity: images / scale lie in [0, 1]
    tokens: Tokens | None = None  # a language model's input: sequence length and vocabulary

    @property
    def input_shape(self) -> InputShape:
        return shape_of_spec(self.factory_shape)

    @property
    def task(self) -> Task:
        return TASKS[LANGUAGE_MODELLING if self.tokens else CLASSIFICATION]

    @property
    def factory_shape(self) -> dict[str, int]:
        """What a model factory is built with (`models.spec`): the vocabulary and sequence length
        of a language model, the channels, classes and image size of an image model."""
        if self.tokens:
            return {"vocab_size": self.tokens.vocab, "sequence_length": self.tokens.length}
        return {"in_channels": self.in_channels, "num_classes": self.num_classes, "image_size": self.image_size}

    @property
    def in_memory(self) -> bool:
        return isinstance(self.train, Part)


@dataclass(frozen=True)
class DataSource:
    """`prepare(cfg)` decides the split; `load(split, cfg, weights)` rebuilds the data from it,
    preprocessed to fit the weights (`weights`: their own mean, std and crop_pct, or None)."""

    prepare: Callable[[Data], Split]
    load: Callable[[Split, Data, dict[str, Any] | None], Splits]


class DataMissing(UserError, FileNotFoundError):
    """The data set's files are not under data.root and may not be downloaded."""
