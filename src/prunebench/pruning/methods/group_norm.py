"""DepGraph's group-norm importance (Fang et al., CVPR 2023): a unit's score is the mean, over
every slice of weights it owns (the rows that produce it, the columns that read it, the norm
scales that scale it: `pruning.slices`), of the sum of |w|^p in that slice; every group loses the
same fraction. With `sparsity` > 0 its group sparse learning runs first: training in which each
unit's weights get the gradient of sparsity · γ_c/2 · ‖w_c‖², γ_c = alpha^((max − s_c)/(max − min))
of the group's norms s_c (its least important units pushed hardest towards zero), as
torch-pruning's `GroupNormPruner.regularize` adds it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor, nn

from prunebench.allowed import number
from prunebench.pruning.methods.base import Context, Method, Scored, knob
from prunebench.pruning.methods.registry import register
from prunebench.pruning.methods.sparsity import SparsityKnobs, sparse_learning
from prunebench.pruning.selection import member_scores
from prunebench.pruning.slices import Owned, reduce, slices
from prunebench.training.models import Layers


def group_norms(model: nn.Module, owned: Owned, p: float) -> dict[str, Tensor]:
    """Per group root, the mean over its slices of Σ |w|^p of each unit."""
    return {
        group.root: reduce([(piece, piece.vectors(model).abs().pow(p).sum(1)) for piece in pieces], group.size)
        for group, pieces in owned.items()
    }


@torch.no_grad()
def regularize(model: nn.Module, owned: Owned, strength: float, alpha: float) -> None:
    """Add the group regulariser's gradient, strength · γ_c · w, to every weight of every unit."""
    squares = group_norms(model, owned, 2)
    for group, pieces in owned.items():
        norm = squares[group.root].sqrt()
        spread = (norm.max() - norm.min()).clamp_min(1e-12)
        gamma = alpha ** ((norm.max() - norm) / spread)
        for piece in pieces:
            weight = cast(Tensor, model.get_submodule(piece.module).weight)
            if weight.grad is None:
                continue
            scale = gamma[piece.units].to(weight.device)
            grad, value = (
                (weight.grad, weight) if piece.role != "in" else (weight.grad.transpose(0, 1), weight.transpose(0, 1))
            )
            shape = (-1, *[1] * (value.dim() - 1))
            grad[piece.positions] += strength * scale.view(shape) * value[piece.positions]


@register("group_norm")
class GroupNorm(Method):
    unit = "channel"

    @dataclass(frozen=True)
    class Knobs(SparsityKnobs):
        p: float = knob(2.0, number(0, 10))  # the norm's degree
        alpha: float = knob(16.0, number(1, 1e6))  # γ's range [1, alpha] in the sparse learning

    def score(self, model: nn.Module, layers: Layers, ctx: Context) -> Scored:
        owned = slices(model, ctx.input_shape, self.kinds)
        sparse_learning(
            model,
            ctx,
            self.knobs,
            after_backward=lambda: regularize(model, owned, self.knobs.sparsity, self.knobs.alpha),
        )
        return Scored(member_scores(owned, group_norms(model, owned, self.knobs.p)))
