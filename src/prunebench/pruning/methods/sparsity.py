"""Sparse learning before scoring, shared by the methods that push unimportant units towards zero
first (Network Slimming's L1 on BatchNorm scales, DepGraph's group regulariser): a few passes of
SGD over the calibration batches with the method's penalty, then the model in eval mode."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice

from torch import Tensor, nn

from prunebench.allowed import integer, number
from prunebench.pruning.methods.base import Context, RankingKnobs, knob
from prunebench.training.loops import cross_entropy
from prunebench.training.optim import SGD


@dataclass(frozen=True)
class SparsityKnobs(RankingKnobs):
    sparsity: float = knob(0.0, number(0, 1))  # the penalty's coefficient (0 = no sparse learning)
    sparsity_epochs: int = knob(1, integer(0))  # passes of the sparse learning
    sparsity_batches: int = knob(20, integer(1))  # calibration batches per pass
    lr: float = knob(0.01, number(0, 10))  # of the sparse learning (SGD, momentum 0.9)


def sparse_learning(
    model: nn.Module,
    ctx: Context,
    knobs: SparsityKnobs,
    penalty: Callable[[], Tensor] | None = None,
    after_backward: Callable[[], None] | None = None,
) -> None:
    """Train `model` on the calibration batches with `penalty()` added to the loss and
    `after_backward()` run before each step (e.g. to add a regulariser's gradient), if
    `knobs.sparsity` > 0."""
    if knobs.sparsity <= 0 or knobs.sparsity_epochs == 0:
        return
    optimizer = SGD(model.parameters(), lr=knobs.lr, momentum=0.9)
    model.train()
    for _ in range(knobs.sparsity_epochs):
        for x, y in islice(ctx.batches(), knobs.sparsity_batches):
            loss = cross_entropy(model(x.to(ctx.device)), y.to(ctx.device))
            if penalty is not None:
                loss = loss + knobs.sparsity * penalty()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if after_backward is not None:
                after_backward()
            optimizer.step()
    model.eval()
