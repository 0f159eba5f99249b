"""First-order Taylor importance on BatchNorm (Molchanov et al., CVPR 2019, "Taylor-FO-BN"): a
channel's importance is (Σ γ·∂L/∂γ + β·∂L/∂β)², the sum over every BatchNorm its group's layers
feed (channels joined by a residual addition count together), squared per calibration batch and
averaged over the batches; one ranking over all layers, unnormalised, as the paper prunes. The
sum is the loss gradient of a gate on the BatchNorms' outputs, so it is the first-order estimate
of removing the channel. Channels without a BatchNorm are kept."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice
from typing import cast

import torch
from torch import Tensor, nn

from prunebench.allowed import boolean, integer, number
from prunebench.errors import Unsupported
from prunebench.pruning.coupling import batchnorms, gate_norms, gate_points, groups
from prunebench.pruning.methods.base import Context, Method, RankingKnobs, Scored, knob
from prunebench.pruning.methods.registry import register
from prunebench.pruning.selection import member_scores
from prunebench.training.loops import cross_entropy
from prunebench.training.models import Layers


@register("bn_taylor")
class BNTaylor(Method):
    unit = "channel"
    scope = "global"
    kinds = ("channel",)

    @dataclass(frozen=True)
    class Knobs(RankingKnobs):
        normalize: bool = knob(False, boolean())  # the paper ranks the raw estimates
        max_ratio: float = knob(0.9, number(0, 1))
        batches: int = knob(4, integer(1))  # calibration batches from the training split

    def refuses(self, model: nn.Module, ctx: Context) -> str | None:
        if not batchnorms(model):
            return "bn_taylor scores channels by their BatchNorm parameters, and this model has no BatchNorm"
        return None

    def score(self, model: nn.Module, layers: Layers, ctx: Context) -> Scored:
        if refusal := self.refuses(model, ctx):
            raise Unsupported(refusal)
        norms = gate_norms(model, gate_points(model, ctx.input_shape, self.kinds))
        model.eval()
        totals: dict[str, Tensor] = {}
        batches = list(islice(ctx.batches(), self.knobs.batches))
        for x, y in batches:
            model.zero_grad(set_to_none=True)
            cross_entropy(model(x.to(ctx.device)), y.to(ctx.device)).backward()
            for root, bns in norms.items():
                first = torch.stack(
                    [bn.weight * cast(Tensor, bn.weight.grad) + bn.bias * cast(Tensor, bn.bias.grad) for bn in bns]
                )
                square = first.sum(0).detach().square().cpu() / len(batches)
                totals[root] = totals[root] + square if root in totals else square
        model.zero_grad(set_to_none=True)
        return Scored(member_scores(groups(model, ctx.input_shape), totals))
