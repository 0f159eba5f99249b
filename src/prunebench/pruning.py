"""Shared pruning machinery: turn a method's scores into masks (weights) or removed channels,
keep masks applied, and reach the target ratio in one or several steps."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from prunebench import surgery
from prunebench.models import prunable_layers

if TYPE_CHECKING:
    from prunebench.methods import Context, Method

Masks = dict[str, Tensor]  # parameter name -> bool tensor, True = keep


def step_ratios(ratio: float, iterations: int) -> list[float]:
    """Cumulative fraction removed after each step; every step keeps the same fraction
    (1 - ratio)^(1/N) of the units still there, and the last one reaches `ratio`."""
    return [1 - (1 - ratio) ** (t / iterations) for t in range(1, iterations + 1)]


def select_weights(layers: dict[str, nn.Module], scores: dict[str, Tensor], ratio: float | dict[str, float],
                   scope: str, masks: Masks) -> Masks:
    """Keep-masks removing exactly round(ratio · n) weights, the lowest-scoring ones, per layer
    (scope "layer"; `ratio` may give each layer its own) or over all prunable weights together
    ("global"). Weights already masked are removed first, so iterative pruning never revives one."""
    names = list(layers)
    flat = []
    for name in names:
        s = scores[name].detach().float().cpu().flatten().clone()
        previous = masks.get(f"{name}.weight")
        if previous is not None:  # coarser scores (e.g. one per kernel): a unit is gone when all of it is
            s[~previous.reshape(*scores[name].shape, -1).any(-1).flatten()] = -torch.inf
        flat.append(s)
    if scope == "global":
        keep = _keep_top(torch.cat(flat), ratio).split([len(s) for s in flat])
    else:
        per_layer = ratio if isinstance(ratio, dict) else dict.fromkeys(names, ratio)
        keep = [_keep_top(s, per_layer[name]) for name, s in zip(names, flat)]
    masks = {}
    for name, k in zip(names, keep):  # a coarser score covers the weight's trailing dims
        weight = layers[name].weight
        unit = k.reshape(*scores[name].shape, *[1] * (weight.dim() - scores[name].dim()))
        masks[f"{name}.weight"] = unit.expand_as(weight).clone()
    return masks


def _keep_top(scores: Tensor, ratio: float) -> Tensor:
    removed = round(ratio * scores.numel())
    keep = torch.ones_like(scores, dtype=torch.bool)
    keep[torch.argsort(scores, stable=True)[:removed]] = False
    return keep


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


def prune_step(model: nn.Module, method: Method, done: float, target: float, ctx: Context,
               masks: Masks, input_shape: tuple[int, ...]) -> tuple[nn.Module, Masks]:
    """Prune from the cumulative fraction `done` to `target` (of the original units)."""
    model.eval()  # tracing the graph must not update BatchNorm statistics
    layers = prunable_layers(model)
    scores = method.scores(model, layers, ctx)
    if method.unit == "weight":
        ratios = method.layer_ratios(model, layers, target, ctx) or target
        masks = select_weights(layers, scores, ratios, method.scope, masks)
        method.adjust(model, layers, masks, ctx)
        mask_keeper(model, masks)
        return model, masks
    if masks:
        raise ValueError("channel pruning of a model with weight masks is not supported")
    step = 1 - (1 - target) / (1 - done)  # of the channels still there
    ratios = method.layer_ratios(model, layers, step, ctx)
    if ratios is None and method.scope == "global":
        groups = [g for g in surgery.channel_groups(model, input_shape) if all(n in scores for n in g)]
        ratios = global_ratios(group_scores(groups, scores), step,
                               method.config.get("min_channels", 1), method.config.get("normalize", False),
                               method.config.get("max_ratio", 1.0))
    model = surgery.remove_channels(model, scores, step if ratios is None else ratios, input_shape,
                                    method.config.get("round_to"))
    return model, masks


def group_scores(groups: list[list[str]], scores: dict[str, Tensor]) -> dict[str, Tensor]:
    """One score per channel of each channel group, keyed by its root: the mean over the
    group's layers, whose channels go together."""
    return {group[0]: torch.stack([scores[name].detach() for name in group]).mean(0) for group in groups}


def prune_to_counts(model: nn.Module, method: Method, counts: dict[str, int], ctx: Context,
                    input_shape: tuple[int, ...]) -> nn.Module:
    """Keep the `counts[root]` highest-scoring output channels of each channel group (keyed by
    its root layer; a group's score is the mean over its layers) and physically remove the rest.
    The method's `adjust` sees the keep-mask of every layer first."""
    if method.unit != "channel":
        raise ValueError(f"{type(method).__name__} prunes weights; the retention schedule counts channels")
    model.eval()
    layers = prunable_layers(model)
    scores = method.scores(model, layers, ctx)
    groups = surgery.channel_groups(model, input_shape)
    keep, removed = {}, {}
    for group, score in zip(groups, group_scores(groups, scores).values()):
        score = score.float().cpu()
        kept = torch.zeros(len(score), dtype=torch.bool)
        kept[torch.argsort(score, descending=True, stable=True)[:counts[group[0]]]] = True
        keep |= dict.fromkeys(group, kept)
        removed[group[0]] = (~kept).nonzero().flatten().tolist()
    method.adjust(model, layers, keep, ctx)
    return surgery.remove_indices(model, removed, input_shape)


def global_ratios(scores: dict[str, Tensor], ratio: float, min_channels: int = 1,
                  normalize: bool = False, max_ratio: float = 1.0) -> dict[str, float]:
    """Per-group ratios from one ranking of all groups' channel scores (keyed by group root):
    the lowest `ratio` of all channels go, but every group keeps `min_channels` and loses at
    most `max_ratio`. `normalize` divides each group's scores by their L2 norm first, so that
    layers of different scale compete fairly (Molchanov et al., ICLR 2017)."""
    if normalize:
        scores = {g: s / s.norm().clamp_min(1e-12) for g, s in scores.items()}
    pool = [(float(v), g) for g, s in scores.items()
            for v in torch.sort(s.float().cpu()).values[:min(len(s) - min_channels, int(max_ratio * len(s)))]]
    removed = round(ratio * sum(len(s) for s in scores.values()))
    if removed > len(pool):
        raise ValueError(f"cannot remove {ratio:.0%} of the channels while every layer keeps {min_channels} "
                         f"and loses at most {max_ratio:.0%}")
    counts = dict.fromkeys(scores, 0)
    for _, group in sorted(pool, key=lambda item: item[0])[:removed]:
        counts[group] += 1
    # torch-pruning keeps int(C·(1 - r)) channels: half a channel of slack makes that exactly C - k
    return {g: (k - 0.5) / len(scores[g]) if k else 0.0 for g, k in counts.items()}


def layer_sparsity(base: dict[str, Tensor], layers: dict[str, nn.Module]) -> dict[str, float]:
    """Achieved fraction of each layer's original weights that are zero or removed."""
    return {name: 1 - int(torch.count_nonzero(layers[name].weight)) / weight.numel()
            for name, weight in base.items()}
