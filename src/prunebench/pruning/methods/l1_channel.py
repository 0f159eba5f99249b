"""L1-norm filter pruning (Li et al., ICLR 2017): in every layer, the output channels whose
filters have the smallest L1 norm are physically removed."""

from __future__ import annotations

from torch import nn

from prunebench.pruning.criteria import filter_l1
from prunebench.pruning.methods.base import ChannelKnobs, Context, Method, Scored
from prunebench.pruning.methods.registry import register
from prunebench.training.models import Layers


@register("l1_channel")
class L1Channel(Method):
    unit = "channel"
    Knobs = ChannelKnobs

    def score(self, model: nn.Module, layers: Layers, ctx: Context) -> Scored:
        return Scored({name: filter_l1(m) for name, m in layers.items()})
