"""Layer-wise magnitude pruning: in every layer, the weights with the smallest |w| go."""

from __future__ import annotations

from torch import nn

from prunebench.pruning.criteria import weight_magnitude
from prunebench.pruning.methods.base import Context, Method, Scored
from prunebench.pruning.methods.registry import register
from prunebench.training.models import Layers


@register("magnitude")
class Magnitude(Method):
    unit = "weight"

    def score(self, model: nn.Module, layers: Layers, ctx: Context) -> Scored:
        return Scored({name: weight_magnitude(m) for name, m in layers.items()})


@register("magnitude_global")
class GlobalMagnitude(Magnitude):
    """One |w| threshold over all prunable weights: layers lose different fractions."""

    scope = "global"
