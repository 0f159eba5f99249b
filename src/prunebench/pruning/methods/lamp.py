"""LAMP (Lee et al., ICLR 2021): layer-adaptive magnitude scores, then one global threshold."""

from __future__ import annotations

from prunebench.pruning.criteria import lamp
from prunebench.pruning.methods.base import Method, Scored
from prunebench.pruning.methods.registry import register


@register("lamp")
class Lamp(Method):
    unit = "weight"
    scope = "global"

    def score(self, model, layers, ctx):
        return Scored({name: lamp(m.weight) for name, m in layers.items()})
