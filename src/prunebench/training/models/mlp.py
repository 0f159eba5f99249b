"""A fully connected ReLU network on the flattened image (the retention system's 784-256-64-10)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from prunebench.training.models.family import register


@register("mlp")
def mlp(in_channels: int, num_classes: int, image_size: int, hidden: Sequence[int] = (256, 64)) -> nn.Module:
    """Fully connected ReLU network on the flattened image (784-256-64-10 on MNIST)."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_channels * image_size * image_size
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU(inplace=True)]
        width = h
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)
