"""Layer sensitivity: how much validation accuracy each layer loses when pruned alone, and
per-layer ratios allocated from those curves.

Unstructured: a layer's smallest-|w| weights are zeroed. Structured: a layer's weakest filters
(L1) are physically removed; layers coupled by a residual addition lose the same channels, so
the structured sweep and allocation work on torch-pruning's channel groups, labelled by their
layers joined with "+" (e.g. "stem.0+block.conv2"; the first is the group's root).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from prunebench.criteria import filter_l1
from prunebench.models import prunable_layers
from prunebench.pruning import select_weights
from prunebench.surgery import channel_groups, remove_channels
from prunebench.train import evaluate


def sweep(model: nn.Module, loader: DataLoader, ratios: list[float], device: torch.device,
          input_shape: tuple[int, ...]) -> list[dict]:
    """Rows (layer, kind, ratio, accuracy, loss) for every prunable layer (unstructured) and
    channel group (structured) at every ratio; ratio 0 is the unpruned model."""
    model.eval()
    base = evaluate(model, loader, device)
    layers = prunable_layers(model)
    groups = channel_groups(model, input_shape)
    rows = []
    progress = tqdm(total=(len(layers) + len(groups)) * len(ratios), desc="sensitivity", unit="eval")
    for name, layer in layers.items():
        original = layer.weight.detach().clone()
        rows.append({"layer": name, "kind": "unstructured", "ratio": 0.0, **base})
        for ratio in ratios:
            keep = select_weights({name: layer}, {name: original.abs()}, ratio, "layer", {})[f"{name}.weight"]
            with torch.no_grad():
                layer.weight.copy_(original * keep.to(original.device))
            rows.append({"layer": name, "kind": "unstructured", "ratio": ratio, **evaluate(model, loader, device)})
            progress.update()
        with torch.no_grad():
            layer.weight.copy_(original)
    for group in groups:
        label = "+".join(group)
        rows.append({"layer": label, "kind": "structured", "ratio": 0.0, **base})
        for ratio in ratios:
            probe = copy.deepcopy(model)
            probe_layers = prunable_layers(probe)
            remove_channels(probe, {n: filter_l1(probe_layers[n]) for n in group}, {group[0]: ratio}, input_shape)
            rows.append({"layer": label, "kind": "structured", "ratio": ratio, **evaluate(probe, loader, device)})
            progress.update()
    progress.close()
    return rows


def allocate(curves: dict[str, list[tuple[float, float]]], sizes: dict[str, int], target: float,
             step: float = 0.01) -> dict[str, float]:
    """Per-layer ratios that remove `target` of all units (weighted by `sizes`) in total.

    `curves` maps a layer to its measured (ratio, accuracy) points, ratio 0 included. The drop
    is interpolated linearly and made non-decreasing; the budget is spent greedily in steps of
    `step`, each time on the layer whose accuracy drop per unit removed is smallest. The last
    step is partial, so the total is exact. A layer never goes past its largest measured ratio.
    """
    drops, caps = {}, {}
    for name, points in curves.items():
        points = sorted(points)
        base = dict(points)[0.0]
        ratios = np.array([r for r, _ in points])
        drop = np.maximum.accumulate(np.array([base - acc for _, acc in points]).clip(min=0))
        drops[name] = lambda r, x=ratios, y=drop: float(np.interp(r, x, y))
        caps[name] = float(ratios.max())
    budget = target * sum(sizes.values())
    reachable = sum(caps[n] * sizes[n] for n in sizes)
    if budget > reachable + 1e-9:
        raise ValueError(f"ratio {target} needs more than the sensitivity sweep measured "
                         f"(at most {reachable / sum(sizes.values()):.3f}); extend sensitivity.ratios")
    chosen = dict.fromkeys(sizes, 0.0)
    removed = 0.0
    while removed < budget - 1e-9:
        options = [((drops[n](chosen[n] + step) - drops[n](chosen[n])) / (step * sizes[n]), -sizes[n], n)
                   for n in sizes if chosen[n] + step <= caps[n] + 1e-9]
        if not options:  # only partial steps remain below the caps
            options = [(0.0, -sizes[n], n) for n in sizes if chosen[n] < caps[n] - 1e-9]
        _, _, name = min(options)
        amount = min(step * sizes[name], (caps[name] - chosen[name]) * sizes[name], budget - removed)
        chosen[name] += amount / sizes[name]
        removed += amount
    return chosen


def curves_of(rows: list[dict], kind: str) -> dict[str, list[tuple[float, float]]]:
    """(ratio, accuracy) points per layer of one kind, averaged over the rows' seeds."""
    points: dict[str, dict[float, list[float]]] = {}
    for row in rows:
        if row["kind"] == kind:
            points.setdefault(row["layer"], {}).setdefault(float(row["ratio"]), []).append(float(row["accuracy"]))
    return {layer: [(r, float(np.mean(a))) for r, a in sorted(by_ratio.items())] for layer, by_ratio in points.items()}
