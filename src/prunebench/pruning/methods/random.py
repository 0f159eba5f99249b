"""Random weights, the same fraction in every layer: the unstructured baseline."""

from __future__ import annotations

import torch
from torch import nn

from prunebench.pruning.methods.base import Context, Method, Scored
from prunebench.pruning.methods.registry import register
from prunebench.training.models import Layers


@register("random")
class RandomWeights(Method):
    unit = "weight"

    def score(self, model: nn.Module, layers: Layers, ctx: Context) -> Scored:
        return Scored({name: torch.rand(m.weight.shape, generator=ctx.generator) for name, m in layers.items()})
