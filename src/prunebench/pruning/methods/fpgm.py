"""FPGM (He et al., CVPR 2019): filters near the geometric median of their layer's filters are
the most replaceable by the others, so a filter's score is the sum of its Euclidean distances to
every other filter of the layer (the paper's code's criterion), the smallest going first; every
group loses the same fraction. Coupled layers (a residual stage) average their filters' scores.

torch-pruning's `FPGMImportance` (p=2, group_reduction="mean") differs twice, each a knob:
its distances are between the filters' element-wise squares (`between: squares`) and it averages
over every slice of the group, the columns of the layers that read the units included
(`group: true`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from prunebench.allowed import boolean, one_of
from prunebench.pruning.methods.base import ChannelKnobs, Context, Method, Scored, knob
from prunebench.pruning.methods.registry import register
from prunebench.pruning.selection import member_scores
from prunebench.pruning.slices import reduce, slices
from prunebench.training.models import Layers


@register("fpgm")
class FPGM(Method):
    unit = "channel"

    @dataclass(frozen=True)
    class Knobs(ChannelKnobs):
        between: str = knob("weights", one_of("weights", "squares"))  # distances between the filters or their squares
        group: bool = knob(False, boolean())  # also the columns of the layers that read the units

    def score(self, model: nn.Module, layers: Layers, ctx: Context) -> Scored:
        roles = ("out", "in") if self.knobs.group else ("out",)
        scores, owned = {}, slices(model, ctx.input_shape, self.kinds)
        for group, pieces in owned.items():
            values = []
            for piece in pieces:
                if piece.role in roles:
                    vectors = piece.vectors(model).double()
                    vectors = vectors.square() if self.knobs.between == "squares" else vectors
                    values.append((piece, torch.cdist(vectors, vectors).sum(0)))
            scores[group.root] = reduce(values, group.size)
        return Scored(member_scores(owned, scores))
