"""From scores to a selection: which weights a method keeps (keep-masks), or how many and which
channels each channel group keeps; and keeping masks applied through training.

Groups of units (`coupling.Group`: channels, neurons, the width, heads) take one path whatever
the method: the method's scores become a count of units to keep per group (the same fraction of
every group, the method's own per-group ratios, or one ranking of all groups), the
highest-scoring units of each group are kept, and `surgery.remove` removes the rest
(`prunebench.pruning.units`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from prunebench.errors import OutOfReach
from prunebench.training.models import Layers, prunable_layers

if TYPE_CHECKING:
    from prunebench.pruning.coupling import Group
    from prunebench.pruning.methods import Context, Method

Masks = dict[str, Tensor]  # parameter name -> bool tensor, True = keep
Counts = dict[str, int]  # channel group root -> the channels it keeps


@dataclass
class Pruned:
    """A pruned model and how it came about."""

    model: nn.Module
    masks: Masks = field(default_factory=dict)  # unstructured pruning: the zeros to keep through training
    metrics: dict[str, Any] = field(default_factory=dict)  # the method's report: its last scoring, and adjust's
    tables: dict[str, list[dict]] = field(default_factory=dict)  # the last scoring's tables


class WeightRanking:
    """The order in which scores remove weights, per layer and over all layers, each sorted once,
    on first use, so that masks for many fractions (the budget search) cost no sort, and a scope
    never used is never sorted (a stable sort of vgg16's 34 M weights takes seconds). Weights
    already masked (`masks`) go first, so iterative pruning never revives one."""

    def __init__(self, layers: Layers, scores: dict[str, Tensor], masks: Masks):
        self.layers, self.shapes = layers, {name: scores[name].shape for name in layers}
        self.flat = []
        for name in layers:
            s = scores[name].detach().float().cpu().flatten().clone()
            previous = masks.get(f"{name}.weight")
            if previous is not None:  # coarser scores (e.g. one per kernel): a unit is gone when all of it is
                s[~previous.reshape(*scores[name].shape, -1).any(-1).flatten()] = -torch.inf
            self.flat.append(s)
        self.sizes = [len(s) for s in self.flat]

    @cached_property
    def per_layer(self) -> dict[str, Tensor]:
        return {name: torch.argsort(s, stable=True) for name, s in zip(self.layers, self.flat)}

    @cached_property
    def overall(self) -> Tensor:
        return torch.argsort(torch.cat(self.flat), stable=True)

    def masks(self, ratio: float | dict[str, float], scope: str) -> Masks:
        """Keep-masks removing exactly round(ratio · n) weights, the lowest-scoring ones, per layer
        (scope "layer"; `ratio` may give each layer its own) or over all layers together ("global")."""
        if scope == "global":
            assert not isinstance(ratio, dict), "one fraction over all layers"
            keep = _keep_lowest_out(self.overall, round(ratio * len(self.overall))).split(self.sizes)
        else:
            per_layer = ratio if isinstance(ratio, dict) else dict.fromkeys(self.layers, ratio)
            keep = [
                _keep_lowest_out(order, round(per_layer[name] * len(order))) for name, order in self.per_layer.items()
            ]
        masks = {}
        for (name, layer), k in zip(self.layers.items(), keep):  # a coarser score covers the weight's trailing dims
            shape = self.shapes[name]
            unit = k.reshape(*shape, *[1] * (layer.weight.dim() - len(shape)))
            masks[f"{name}.weight"] = unit.expand_as(layer.weight).clone()
        return masks


def _keep_lowest_out(order: Tensor, removed: int) -> Tensor:
    keep = torch.ones(len(order), dtype=torch.bool)
    keep[order[:removed]] = False
    return keep


def select_weights(
    layers: Layers, scores: dict[str, Tensor], ratio: float | dict[str, float], scope: str, masks: Masks
) -> Masks:
    """Keep-masks removing exactly round(ratio · n) of the lowest-scoring weights (`WeightRanking`)."""
    return WeightRanking(layers, scores, masks).masks(ratio, scope)


def mask_keeper(model: nn.Module, masks: Masks) -> Callable[[], None]:
    """Zero the masked weights now, and return a function that does it again; the training
    loop calls it after every optimiser step so that pruned weights stay zero."""
    params = dict(model.named_parameters())
    pairs = [(params[name], mask.to(params[name].device)) for name, mask in masks.items()]

    @torch.no_grad()
    def apply() -> None:
        for param, mask in pairs:
            param.mul_(mask)

    apply()
    return apply


def group_scores(groups: list[Group], scores: dict[str, Tensor]) -> dict[str, Tensor]:
    """One score per unit of each group whose layers are all scored, keyed by its root: the mean
    over the group's layers, whose units go together (`Group.unit_scores`)."""
    return {group.root: found for group in groups if (found := group.unit_scores(scores)) is not None}


def member_scores(found: Iterable[Group], by_root: dict[str, Tensor]) -> dict[str, Tensor]:
    """Each scored group's unit scores (keyed by its root) under every layer of the group: what
    `Scored.scores` holds for a method that scores groups; `group_scores` reads them back."""
    return {name: by_root[group.root] for group in found if group.root in by_root for name in group.members}


def keep_counts(
    model: nn.Module,
    method: Method,
    scores: dict[str, Tensor],
    fraction: float,
    ctx: Context,
    heads: Collection[str] = (),
) -> dict[str, int]:
    """Units each scored group keeps when `fraction` of them go: the method's own per-group
    ratios, or one ranking of all groups ("global" scope, with the method's `RankingKnobs`), or
    the same fraction of every group. `scores` are `group_scores`. A group keeps int(C·(1 − r))
    units (torch-pruning's rule), at least one; channels (not the groups of `heads`) rounded down
    to a multiple of `round_to`."""
    ratios = method.layer_ratios(prunable_layers(model), fraction, ctx)
    if ratios is None and method.scope == "global":
        knobs = method.knobs
        removed = global_removals(scores, fraction, knobs.min_channels, knobs.normalize, knobs.max_ratio)
        kept = {root: len(s) - removed[root] for root, s in scores.items()}
    else:
        ratios = ratios if ratios is not None else dict.fromkeys(scores, fraction)
        kept = {root: kept_count(len(s), ratios.get(root, 0.0)) for root, s in scores.items()}
    step = method.knobs.round_to
    if step:
        kept = {
            root: k if root in heads else max(min(step, len(scores[root])), k - k % step) for root, k in kept.items()
        }
    return kept


def kept_count(channels: int, ratio: float) -> int:
    """Channels a group keeps when it loses `ratio` of them: int(C·(1 − r)), torch-pruning's rule, at least one."""
    return max(1, int(channels * (1 - ratio)))


def global_removals(
    scores: dict[str, Tensor], ratio: float, min_channels: int = 1, normalize: bool = False, max_ratio: float = 1.0
) -> dict[str, int]:
    """Channels each group loses under one ranking of all groups' channel scores (keyed by group
    root): the lowest `ratio` of all channels go, but every group keeps `min_channels` and loses
    at most `max_ratio`. `normalize` divides each group's scores by their L2 norm first, so that
    layers of different scale compete fairly (Molchanov et al., ICLR 2017)."""
    if normalize:
        scores = {g: s / s.norm().clamp_min(1e-12) for g, s in scores.items()}
    pool = [
        (float(v), g)
        for g, s in scores.items()
        for v in torch.sort(s.float().cpu()).values[: min(len(s) - min_channels, int(max_ratio * len(s)))]
    ]
    removed = round(ratio * sum(len(s) for s in scores.values()))
    if removed > len(pool):
        raise OutOfReach(
            f"cannot remove {ratio:.0%} of the channels while every layer keeps {min_channels} "
            f"and loses at most {max_ratio:.0%}"
        )
    counts = dict.fromkeys(scores, 0)
    for _, group in sorted(pool, key=lambda item: item[0])[:removed]:
        counts[group] += 1
    return counts


def choose_channels(
    groups: list[Group], scores: dict[str, Tensor], counts: dict[str, int]
) -> tuple[Masks, dict[str, list[int]]]:
    """The `counts[root]` highest-scoring units of each group in `counts` (ties keep the earlier
    unit): a keep-mask per layer of the group (one entry per unit), and the removed units per group
    root (`surgery.remove`)."""
    by_group = group_scores(groups, scores)
    keep: Masks = {}
    removed: dict[str, list[int]] = {}
    for group in groups:
        root = group.root
        if root not in counts:
            continue
        kept = torch.zeros(len(by_group[root]), dtype=torch.bool)
        kept[torch.argsort(by_group[root], descending=True, stable=True)[: counts[root]]] = True
        keep |= dict.fromkeys(group.members, kept)
        removed[root] = (~kept).nonzero().flatten().tolist()
    return keep, removed
