"""LAMP (Lee et al., ICLR 2021): layer-adaptive magnitude scores, then one global threshold."""

from __future__ import annotations

from torch import nn

from prunebench.pruning.criteria import lamp
from prunebench.pruning.methods.base import Context, Method, Scored
from prunebench.pruning.methods.registry import register
from prunebench.training.models import Layers


@register("lamp")
class Lamp(Method):
    unit = "weight"
    scope = "global"

    def score(self, model: nn.Module, layers: Layers, ctx: Context) -> Scored:
        return Scored({name: lamp(m.weight) for name, m in layers.items()})
