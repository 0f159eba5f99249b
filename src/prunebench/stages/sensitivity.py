"""The sensitivity stage: how much validation accuracy each layer loses when pruned alone (the
curves `prunebench.pruning.allocation` turns into per-layer ratios).

Unstructured: a layer's smallest-|w| weights are zeroed. Structured: a layer's weakest filters
(L1) are physically removed; layers coupled by a residual addition lose the same channels, so
the structured sweep and allocation work on torch-pruning's channel groups, labelled by their
layers joined with "+" (e.g. "stem.0+block.conv2"; the first is the group's root).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
from torch import nn

from prunebench import paths, runtime
from prunebench.io import write_csv
from prunebench.params import Params
from prunebench.progress import bar
from prunebench.pruning.criteria import filter_l1
from prunebench.pruning.selection import choose_channels, kept_count, select_weights
from prunebench.pruning.surgery import channel_groups, load, remove_indices
from prunebench.report import figures
from prunebench.stages.workbench import Workbench
from prunebench.training.loops import evaluate, prepare_model
from prunebench.training.models import prunable_layers


def sweep(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    ratios: list[float],
    device: torch.device,
    input_shape: tuple[int, ...],
) -> list[dict]:
    """Rows (layer, kind, ratio, accuracy, loss) for every prunable layer (unstructured) and
    channel group (structured) at every ratio; ratio 0 is the unpruned model."""
    model.eval()
    base = evaluate(model, loader, device)
    layers = prunable_layers(model)
    groups = channel_groups(model, input_shape)
    rows = []
    progress = bar(total=(len(layers) + len(groups)) * len(ratios), desc="sensitivity", unit="eval")
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
            scores = {n: filter_l1(layer) for n, layer in prunable_layers(probe).items() if n in group}
            count = kept_count(len(scores[group[0]]), ratio)
            remove_indices(probe, choose_channels([group], scores, {group[0]: count})[1], input_shape)
            rows.append({"layer": label, "kind": "structured", "ratio": ratio, **evaluate(probe, loader, device)})
            progress.update()
    progress.close()
    return rows


def run(params: Params) -> None:
    """The sweep on every seed's base model (validation split), its table and the two figures
    (a line per layer; a heatmap of channel groups × ratios)."""
    bench = Workbench.open(params, runtime.setup(params))

    def sweep_seed(seed: int) -> list[dict]:
        model = prepare_model(load(paths.base_model(seed))[0], bench.device)
        return [
            {"seed": seed, **row}
            for row in sweep(model, bench.val, params.sensitivity.ratios, bench.device, bench.splits.input_shape)
        ]

    rows = [row for rows in bench.run(sweep_seed, params.seeds, "sensitivity") for row in rows]
    write_csv(paths.SENSITIVITY, rows)
    figures.plot_sensitivity(rows, paths.SENSITIVITY_UNSTRUCTURED)
    figures.plot_sensitivity_heatmap(rows, paths.SENSITIVITY_STRUCTURED)
