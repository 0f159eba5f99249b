"""Equal cost: how much of the budget a pruning removes, computed from the selection alone, and
the search for the fraction of a method's units that meets a target.

`budget` says what `ratio` removes: "macs" (sparsity-aware MACs per example, or per token of a
language model, every product counted: `prunebench.training.macs`), "params" (nonzero parameters,
of a language model the weights of its blocks' linear layers: `measure.counted`; removing channels removes
whole entries, so for channel methods every remaining parameter counts, which in a trained
network are the nonzero ones) or "units" (the method's own units: weights, or channels, neurons
and heads). Each method searches its own unit fraction, on its own ranking and without
retraining, until what it keeps of the budget is at most the target; the smallest such fraction
wins, so the target is met as closely as the method's granularity allows (within 1 %, or one unit
past it).

Costs are exact. For weight masks, a layer's MACs scale with the fraction of its weights that
stay nonzero. For unit counts, every MACs term (`training.macs`: a leaf module's count, or one kind of product
of a module with children, such as attention's QKᵀ and AV) and every parameter's size is a
monomial in the kept fractions of the groups (a conv costs output size × input channels per group
× kernel size; attention heads × tokens² × head width); `ChannelCost` finds each exponent once
per architecture, by removing half of one group at a time, and refuses an architecture whose
costs are not of that form.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np
import torch
from torch import nn

from prunebench.errors import OutOfReach, Unsupported
from prunebench.pruning import coupling, surgery
from prunebench.training import measure
from prunebench.training.models import prunable_layers

BUDGETS = ("macs", "params", "units")


@dataclass(frozen=True)
class Cost:
    macs: float  # per example (per token of a language model), sparsity-aware
    params: float  # nonzero parameters
    units: float  # the method's units still there: prunable weights, or channels of the channel groups

    def kept(self, base: Cost, budget: str) -> float:
        """The fraction of the base model's `budget` this keeps."""
        return getattr(self, budget) / getattr(base, budget)


class SelectionCost:
    """The cost of a selection of one model's units (`__call__`), and of keeping them all (`base`)."""

    base: Cost

    def __call__(self, selection: Any) -> Cost:
        raise NotImplementedError

    def kept(self, selection: Any, budget: str) -> float:
        """The fraction of the base model's `budget` that `selection` keeps."""
        return self(selection).kept(self.base, budget)


class WeightCost(SelectionCost):
    """The cost of keep-masks on one model's prunable weights."""

    def __init__(self, model: nn.Module, input_shape: tuple[int, ...]):
        layers = prunable_layers(model)
        dense = measure.layer_macs(model, input_shape)
        sparse = measure.sparse_layer_macs(model, dense)
        self.nonzero = {name: layer.weight.detach().ne(0).cpu() for name, layer in layers.items()}
        self.macs_per_weight = {name: dense[name] / layer.weight.numel() for name, layer in layers.items()}
        self.fixed_macs = sum(v for k, v in sparse.items() if k not in layers)
        self.fixed_params = measure.count_nonzero(model, input_shape) - sum(int(n.sum()) for n in self.nonzero.values())
        self.base = self({f"{name}.weight": torch.ones_like(n) for name, n in self.nonzero.items()})

    def __call__(self, masks: dict[str, torch.Tensor]) -> Cost:
        kept = {name: int((nonzero & masks[f"{name}.weight"].cpu()).sum()) for name, nonzero in self.nonzero.items()}
        return Cost(
            self.fixed_macs + sum(self.macs_per_weight[name] * k for name, k in kept.items()),
            self.fixed_params + sum(kept.values()),
            sum(int(masks[f"{name}.weight"].sum()) for name in self.nonzero),
        )


class ChannelCost(SelectionCost):
    """The cost of keeping `counts[root]` units of each group of one architecture; its `units`
    count the groups of the given kinds (a method's own)."""

    def __init__(self, model: nn.Module, input_shape: tuple[int, ...], kinds: tuple[str, ...] = coupling.KINDS):
        found = coupling.groups(model, input_shape)
        self.sizes = {group.root: group.size for group in found}
        self.counted = {group.root for group in found if group.kind in kinds}
        macs, params = measure.layer_macs(model, input_shape), _param_sizes(model, input_shape)
        self.roots = list(self.sizes)
        self.macs = np.array(list(macs.values()))
        self.params = np.array(list(params.values()), dtype=float)
        self.macs_exponents = np.zeros((len(macs), len(self.roots)))
        self.params_exponents = np.zeros((len(params), len(self.roots)))
        for j, root in enumerate(self.roots):
            channels = self.sizes[root]
            if channels < 2:  # a group of one channel keeps it
                continue
            probe = surgery.remove(copy.deepcopy(model), {root: list(range(channels // 2))}, input_shape)
            fraction = (channels - channels // 2) / channels
            self.macs_exponents[:, j] = _exponents(macs, measure.layer_macs(probe, input_shape), fraction, root)
            self.params_exponents[:, j] = _exponents(params, _param_sizes(probe, input_shape), fraction, root)
        self.base = self(self.sizes)

    def __call__(self, counts: dict[str, int]) -> Cost:
        logs = np.log(np.array([counts.get(root, self.sizes[root]) / self.sizes[root] for root in self.roots]))
        return Cost(
            float(self.macs @ np.exp(self.macs_exponents @ logs)),
            float(self.params @ np.exp(self.params_exponents @ logs)),
            sum(counts.get(root, size) for root, size in self.sizes.items() if root in self.counted),
        )


def _param_sizes(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, float]:
    return {name: float(p.numel()) for name, p in measure.counted(model, input_shape).items()}


def _exponents(before: dict[str, float], after: dict[str, float], fraction: float, root: str) -> np.ndarray:
    """Per term, e with after = before · fraction^e: how the term scales with the group's kept fraction."""
    exponents = []
    for name, value in before.items():
        e = 0.0 if value == 0 or after[name] == value else math.log(after[name] / value) / math.log(fraction)
        if abs(e - round(e)) > 1e-6:
            raise Unsupported(
                f"budget: the cost of {name} does not scale as a power of the channels {root} keeps; "
                f"use budget: units for this model"
            )
        exponents.append(round(e))
    return np.array(exponents, dtype=float)


S = TypeVar("S")  # a selection: keep-masks (weights) or the channels each group keeps


@dataclass
class Choice(Generic[S]):
    """A method's operating point: the fraction of its units it removes, the selection (masks or
    channel counts), what it keeps of the budget, and whether that meets the target."""

    fraction: float
    selection: S
    kept: float
    reached: bool


def search(select: Callable[[float], S], kept: Callable[[S], float], target: float, units: int) -> Choice[S]:
    """The smallest fraction f of the method's `units` whose selection `select(f)` keeps at most
    `target` of the budget (`kept`), by bisection down to a fraction of one unit. A selection
    that raises `OutOfReach` (e.g. `min_channels` in the way) is beyond the method; when the
    target is, the choice is the furthest the method can go, with `reached` False. Any other
    error (`Unsupported`, with its hint) is the method's, and stops the search."""

    def evaluate(fraction: float) -> tuple[float, Any]:
        try:
            selection = select(fraction)
        except OutOfReach:
            return math.inf, None
        return kept(selection), selection

    resolution = 0.1 / max(units, 1)
    high, (high_kept, high_selection) = 1.0, evaluate(1.0)
    if math.isfinite(high_kept) and high_kept > target:  # out of reach even with every unit selectable
        return Choice(high, high_selection, high_kept, False)
    if math.isinf(high_kept):  # the limit of what can be selected, if the target lies beyond it
        low, (low_kept, low_selection) = 0.0, evaluate(0.0)
        while high - low > resolution:
            middle = (low + high) / 2
            middle_kept, middle_selection = evaluate(middle)
            if math.isinf(middle_kept):
                high = middle
            else:
                low, low_kept, low_selection = middle, middle_kept, middle_selection
        if low_kept > target:
            return Choice(low, low_selection, low_kept, False)
        high, high_kept, high_selection = low, low_kept, low_selection
    low = 0.0
    while high - low > resolution:
        middle = (low + high) / 2
        middle_kept, middle_selection = evaluate(middle)
        if middle_kept <= target:
            high, high_kept, high_selection = middle, middle_kept, middle_selection
        else:
            low = middle
    return Choice(high, high_selection, high_kept, True)
