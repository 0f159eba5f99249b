"""What a model takes: images of a shape (channels, height, width), or token ids (`Tokens`).

Every place that builds an input without data (counting MACs, tracing the graph, timing, the ONNX
export, the model check) asks `example` for one, so a language model gets token ids where an
image model gets pixels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # the data stage builds shapes without torch
    import torch


class Tokens(NamedTuple):
    """A language model's input: `length` token ids below `vocab`."""

    length: int
    vocab: int


InputShape = tuple[int, ...]  # (channels, height, width), or `Tokens`


def example(
    shape: InputShape, batch: int = 1, device: torch.device | str | None = None, random: bool = False
) -> torch.Tensor:
    """A batch of inputs of `shape`: zeros (token 0), or random pixels (random tokens) when `random`."""
    import torch

    if isinstance(shape, Tokens):
        if random:
            return torch.randint(shape.vocab, (batch, shape.length), device=device)
        return torch.zeros(batch, shape.length, dtype=torch.long, device=device)
    return torch.randn(batch, *shape, device=device) if random else torch.zeros(batch, *shape, device=device)


def shape_of_spec(spec: dict) -> InputShape:
    """The input shape a model description (`models.spec`) was built for."""
    if "vocab_size" in spec:
        return Tokens(spec["sequence_length"], spec["vocab_size"])
    return (spec["in_channels"], spec["image_size"], spec["image_size"])
