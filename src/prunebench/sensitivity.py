"""Layer sensitivity: how much validation accuracy each layer loses when pruned alone."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from prunebench.models import prunable_layers
from prunebench.pruning import select_weights
from prunebench.train import evaluate


@torch.no_grad()
def sweep_unstructured(model: nn.Module, loader: DataLoader, ratios: list[float],
                       device: torch.device) -> list[dict]:
    """For every prunable layer and ratio, zero that layer's smallest-|w| weights, evaluate,
    and restore. Rows: layer, kind, ratio, accuracy, loss (ratio 0 = the unpruned model)."""
    layers = prunable_layers(model)
    base = evaluate(model, loader, device)
    rows = []
    progress = tqdm(total=len(layers) * len(ratios), desc="sensitivity", unit="eval")
    for name, layer in layers.items():
        original = layer.weight.detach().clone()
        rows.append({"layer": name, "kind": "unstructured", "ratio": 0.0, **base})
        for ratio in ratios:
            keep = select_weights({name: layer}, {name: original.abs()}, ratio, "layer", {})[f"{name}.weight"]
            layer.weight.copy_(original * keep.to(original.device))
            rows.append({"layer": name, "kind": "unstructured", "ratio": ratio, **evaluate(model, loader, device)})
            progress.update()
        layer.weight.copy_(original)
    progress.close()
    return rows
