"""Structured channel methods beyond L1: the random baseline, global L1, and Network Slimming."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor, nn

from prunebench.allowed import boolean, number
from prunebench.errors import Unsupported
from prunebench.pruning.coupling import batchnorms, gate_norms, gate_points, groups
from prunebench.pruning.methods.base import ChannelKnobs, Context, Method, RankingKnobs, Scored, knob
from prunebench.pruning.methods.l1_channel import L1Channel
from prunebench.pruning.methods.registry import register
from prunebench.pruning.methods.sparsity import SparsityKnobs, sparse_learning
from prunebench.pruning.selection import member_scores
from prunebench.training.models import Layers


@register("random_channel")
class RandomChannel(Method):
    """Random output channels, the same fraction in every layer: the structured baseline."""

    unit = "channel"
    Knobs = ChannelKnobs

    def score(self, model: nn.Module, layers: Layers, ctx: Context) -> Scored:
        return Scored({name: torch.rand(m.weight.shape[0], generator=ctx.generator) for name, m in layers.items()})


@register("l1_channel_global")
class L1ChannelGlobal(L1Channel):
    """Filter L1 norms ranked over all layers at once (Li et al.'s global variant)."""

    scope = "global"

    @dataclass(frozen=True)
    class Knobs(RankingKnobs):
        max_ratio: float = knob(0.9, number(0, 1))


@register("slimming")
class Slimming(Method):
    """Network Slimming (Liu et al., ICCV 2017): channels ranked by |γ| of the BatchNorm that
    follows them, one global threshold. With `sparsity` > 0 the model first trains for
    `sparsity_epochs` passes over the calibration batches with an L1 penalty on every γ (`sparsity`),
    which pushes unimportant scales towards zero. Channels without a BatchNorm are kept."""

    unit = "channel"
    scope = "global"
    kinds = ("channel",)  # BatchNorm scales channels; a transformer's LayerNorms scale its width, all at once

    @dataclass(frozen=True)
    class Knobs(SparsityKnobs):
        normalize: bool = knob(False, boolean())  # γ are already on one scale
        max_ratio: float = knob(0.9, number(0, 1))

    def refuses(self, model: nn.Module, ctx: Context) -> str | None:
        if not batchnorms(model):
            return "slimming ranks channels by BatchNorm scales, and this model has no BatchNorm"
        return None

    def score(self, model: nn.Module, layers: Layers, ctx: Context) -> Scored:
        cfg = self.knobs
        norms = batchnorms(model)
        if refusal := self.refuses(model, ctx):
            raise Unsupported(refusal)
        sparse_learning(model, ctx, cfg, penalty=lambda: cast(Tensor, sum(bn.weight.abs().sum() for bn in norms)))
        points = gate_points(model, ctx.input_shape, self.kinds)
        gammas = {
            root: torch.stack([bn.weight.detach().abs().cpu() for bn in bns]).mean(0)
            for root, bns in gate_norms(model, points).items()
        }
        below = torch.cat([bn.weight.detach().abs().cpu() for bn in norms]).lt(1e-2).float().mean()
        scores = member_scores(groups(model, ctx.input_shape), gammas)
        return Scored(scores, metrics={"bn_scales_below_1e-2": float(below)})
