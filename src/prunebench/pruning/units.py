"""A method's units, picked once from `method.unit`: prunable weights, kept as masks over dense
layers, or the units of the groups (`coupling.Group`: channels, neurons, a transformer's width,
attention heads) of the kinds the method scores, physically removed. Each kind says how many units a
model has, what the method keeps when a fraction of them goes (a selection), how a selection is
applied, and what a selection costs (`prunebench.pruning.budget`); the rest of the machinery
(the budget search, the schedules, the prune stage) never asks which kind it has.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Generic, TypeVar

from torch import nn

from prunebench.pruning import coupling, surgery
from prunebench.pruning.budget import ChannelCost, SelectionCost, WeightCost
from prunebench.pruning.methods import Context, Method, Scored
from prunebench.pruning.selection import (
    Counts,
    Masks,
    Pruned,
    WeightRanking,
    choose_channels,
    group_scores,
    keep_counts,
    mask_keeper,
)
from prunebench.training.models import prunable_layers

S = TypeVar("S", Masks, Counts)


class Units(ABC, Generic[S]):
    """One kind of unit, for one method."""

    # True when what a selection costs depends on the architecture alone (one cost serves every
    # seed's model), False when it depends on the model's weights (which are zero already)
    per_architecture: bool

    def __init__(self, method: Method):
        self.method = method

    @abstractmethod
    def count(self, model: nn.Module, ctx: Context) -> int:
        """How many units the method chooses among."""

    @abstractmethod
    def selector(self, model: nn.Module, scored: Scored, ctx: Context, masks: Masks) -> Callable[[float], S]:
        """What the method keeps when a fraction of its units goes (never reviving one of `masks`)."""

    @abstractmethod
    def apply(self, model: nn.Module, scored: Scored, selection: S, ctx: Context) -> Pruned:
        """Prune `model` to the selection, after the method's `adjust`."""

    @abstractmethod
    def cost(self, model: nn.Module, input_shape: tuple[int, ...]) -> SelectionCost:
        """What a selection of `model`'s units keeps: MACs, parameters, units (`.base`: all of them)."""

    @abstractmethod
    def step_fraction(self, done: float, target: float) -> float:
        """The fraction of the current model's units a step removes to go from `done` to `target`
        of the original units removed."""


class WeightUnits(Units[Masks]):
    """Prunable weights: keep-masks over the original weights; the layers stay dense."""

    per_architecture = False

    def count(self, model: nn.Module, ctx: Context) -> int:
        return sum(layer.weight.numel() for layer in prunable_layers(model).values())

    def selector(self, model: nn.Module, scored: Scored, ctx: Context, masks: Masks) -> Callable[[float], Masks]:
        layers = prunable_layers(model)
        ranking = WeightRanking(layers, scored.scores, masks)
        method = self.method

        def weights(fraction: float) -> Masks:
            chosen = method.weight_masks(layers, scored, fraction, ctx)
            return (
                chosen
                if chosen is not None
                else ranking.masks(method.layer_ratios(layers, fraction, ctx) or fraction, method.scope)
            )

        return weights

    def apply(self, model: nn.Module, scored: Scored, selection: Masks, ctx: Context) -> Pruned:
        metrics = self.method.adjust(model, prunable_layers(model), selection, ctx, scored)
        mask_keeper(model, selection)
        return Pruned(model, selection, scored.metrics | metrics, scored.tables)

    def cost(self, model: nn.Module, input_shape: tuple[int, ...]) -> WeightCost:
        return WeightCost(model, input_shape)

    def step_fraction(self, done: float, target: float) -> float:
        return target  # masks cover the original weights


class ChannelUnits(Units[Counts]):
    """The units of the groups of the kinds the method scores: the rest are physically removed."""

    per_architecture = True

    def groups(self, model: nn.Module, input_shape: tuple[int, ...]) -> list[coupling.Group]:
        return [group for group in coupling.groups(model, input_shape) if group.kind in self.method.kinds]

    def count(self, model: nn.Module, ctx: Context) -> int:
        return sum(group.size for group in self.groups(model, ctx.input_shape))

    def selector(self, model: nn.Module, scored: Scored, ctx: Context, masks: Masks) -> Callable[[float], Counts]:
        if masks:
            raise ValueError("channel pruning of a model with weight masks is not supported")
        found = self.groups(model, ctx.input_shape)
        scores = group_scores(found, scored.scores)
        heads = {group.root for group in found if group.kind == "head"}
        return lambda fraction: keep_counts(model, self.method, scores, fraction, ctx, heads)

    def apply(self, model: nn.Module, scored: Scored, selection: Counts, ctx: Context) -> Pruned:
        """Keep the `selection[root]` highest-scoring units of each group (ties keep the earlier
        unit) and physically remove the rest; groups not in it stay whole."""
        found = coupling.groups(model, ctx.input_shape)
        keep, removed = choose_channels(found, scored.scores, selection)
        metrics = self.method.adjust(model, prunable_layers(model), keep, ctx, scored)
        model = surgery.remove(model, removed, ctx.input_shape, found)
        return Pruned(model, {}, scored.metrics | metrics, scored.tables)

    def cost(self, model: nn.Module, input_shape: tuple[int, ...]) -> ChannelCost:
        return ChannelCost(model, input_shape, self.method.kinds)

    def step_fraction(self, done: float, target: float) -> float:
        return 1 - (1 - target) / (1 - done)  # of the channels still there


def units_of(method: Method) -> WeightUnits | ChannelUnits:
    """The kind of unit `method` prunes."""
    return WeightUnits(method) if method.unit == "weight" else ChannelUnits(method)
