"""Random weights, the same fraction in every layer: the unstructured baseline."""

from __future__ import annotations

import torch

from prunebench.pruning.methods.base import Method, Scored
from prunebench.pruning.methods.registry import register


@register("random")
class RandomWeights(Method):
    unit = "weight"

    def score(self, model, layers, ctx):
        return Scored({name: torch.rand(m.weight.shape, generator=ctx.generator) for name, m in layers.items()})
