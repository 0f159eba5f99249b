"""Basic importance criteria shared by methods and the sensitivity sweep."""

from __future__ import annotations

import torch
from torch import Tensor

from prunebench.training.models import Layer


def weight_magnitude(layer: Layer) -> Tensor:
    """|w| of every weight."""
    return layer.weight.detach().abs()


def filter_l1(layer: Layer) -> Tensor:
    """L1 norm of each output channel's weights."""
    return layer.weight.detach().abs().flatten(1).sum(1)


def lamp(weight: Tensor) -> Tensor:
    """LAMP score (Lee et al., ICLR 2021) of every weight of one layer: w_i² divided by the sum
    of w_j² over the layer's weights with w_j² ≥ w_i² (itself and ties included)."""
    squared = weight.detach().float().flatten().square()
    ordered, _ = torch.sort(squared)
    at_least = torch.flip(torch.cumsum(torch.flip(ordered, [0]), 0), [0])  # suffix sums
    first = torch.searchsorted(ordered, squared)  # first position of each value: ties share it
    return (squared / at_least[first]).view_as(weight)
