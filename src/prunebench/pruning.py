"""Shared pruning machinery: turn a method's scores into masks (weights) or removed channels,
keep masks applied, and reach the target ratio in one or several steps."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from prunebench import surgery
from prunebench.methods import Context, Method
from prunebench.models import prunable_layers

Masks = dict[str, Tensor]  # parameter name -> bool tensor, True = keep


def step_ratios(ratio: float, iterations: int) -> list[float]:
    """Cumulative fraction removed after each step; every step keeps the same fraction
    (1 - ratio)^(1/N) of the units still there, and the last one reaches `ratio`."""
    return [1 - (1 - ratio) ** (t / iterations) for t in range(1, iterations + 1)]


def select_weights(layers: dict[str, nn.Module], scores: dict[str, Tensor], ratio: float, scope: str,
                   masks: Masks) -> Masks:
    """Keep-masks removing exactly round(ratio · n) weights, the lowest-scoring ones, per layer
    (scope "layer") or over all prunable weights together ("global"). Weights already masked
    are removed first, so iterative pruning never revives a weight."""
    names = list(layers)
    flat = []
    for name in names:
        s = scores[name].detach().float().cpu().flatten().clone()
        previous = masks.get(f"{name}.weight")
        if previous is not None:
            s[~previous.flatten()] = -torch.inf
        flat.append(s)
    if scope == "global":
        keep = _keep_top(torch.cat(flat), ratio).split([len(s) for s in flat])
    else:
        keep = [_keep_top(s, ratio) for s in flat]
    return {f"{name}.weight": k.view_as(layers[name].weight) for name, k in zip(names, keep)}


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
    layers = prunable_layers(model)
    scores = method.scores(model, layers, ctx)
    if method.unit == "weight":
        masks = select_weights(layers, scores, target, method.scope, masks)
        mask_keeper(model, masks)
        return model, masks
    if masks:
        raise ValueError("channel pruning of a model with weight masks is not supported")
    step = 1 - (1 - target) / (1 - done)
    model = surgery.remove_channels(model, scores, step, input_shape, method.scope, method.config.get("round_to"))
    return model, masks
