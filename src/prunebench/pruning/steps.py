"""Reaching a target: score, select and prune in one step, or in several with retraining
between them, or to given channel counts (the retention schedule's iterations)."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from prunebench.pruning.budget import Choice, search
from prunebench.pruning.methods import Context, Method, Scored
from prunebench.pruning.selection import Counts, Masks, Pruned
from prunebench.pruning.units import units_of
from prunebench.training.models import prunable_layers


def prune_to_counts(model: nn.Module, method: Method, counts: Counts, ctx: Context) -> Pruned:
    """Score the model and keep `counts[root]` channels of each group (the retention schedule)."""
    model.eval()  # tracing the graph must not update BatchNorm statistics
    scored = method.score(model, prunable_layers(model), ctx)
    return units_of(method).apply(model, scored, counts, ctx)  # type: ignore[arg-type]


def prune_step(
    model: nn.Module, method: Method, done: float, target: float, ctx: Context, masks: Masks | None = None
) -> Pruned:
    """Score the model and prune from the cumulative fraction `done` to `target` of the original
    units (weights: of all prunable weights; channels: of each group's, or of all by one ranking)."""
    model.eval()
    units = units_of(method)
    scored = method.score(model, prunable_layers(model), ctx)
    selection = units.selector(model, scored, ctx, masks or {})(units.step_fraction(done, target))
    return units.apply(model, scored, selection, ctx)  # type: ignore[arg-type]


def prune_in_steps(
    model: nn.Module,
    method: Method,
    ctx: Context,
    kept: Callable[[Masks | Counts], float],
    target: float,
    iterations: int,
    retrain: Callable[[nn.Module, Masks, int], nn.Module],
    scored: Scored | None = None,
) -> tuple[Pruned, Choice]:
    """The step schedule: `iterations` steps down to `target`, the fraction of the budget kept
    (`kept` of a selection, `budget.search`); step t keeps target^(t/N), i.e. every step the same
    fraction of what is left, with `retrain(model, masks, step)` between steps (not after the
    last). `scored` may carry the first step's scoring of this model, done once for many targets."""
    units = units_of(method)
    pruned = Pruned(model)
    count = units.count(model, ctx)
    choice: Choice | None = None
    for step in range(1, iterations + 1):
        model.eval()
        if scored is None or step > 1:
            scored = method.score(pruned.model, prunable_layers(pruned.model), ctx)
        select = units.selector(pruned.model, scored, ctx, pruned.masks)
        choice = search(select, kept, target ** (step / iterations), count)
        pruned = units.apply(pruned.model, scored, choice.selection, ctx)
        if step < iterations:
            pruned.model = retrain(pruned.model, pruned.masks, step)
    assert choice is not None
    return pruned, choice
