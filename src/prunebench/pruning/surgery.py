"""How a layer is cut: the units of a group physically removed, leaving a smaller model that runs.

Channel groups go through torch-pruning's dependency graph, which removes the same channels from
every coupled layer: residual additions, BatchNorm statistics, LayerNorms, the next layers'
inputs, class tokens and position embeddings. Heads are cut here: the rows of the attention
module's input projections that make a head's queries, keys and values, the columns of its output
projection that read it, and the head count the module keeps (`transformer.Heads`).
"""

from __future__ import annotations

import torch
from torch import nn

from prunebench.errors import OutOfReach
from prunebench.pruning.coupling import Group, attention_heads, channels_of, graph, groups, out_fn
from prunebench.training import models


def remove(
    model: nn.Module, removed: dict[str, list[int]], input_shape: tuple[int, ...], found: list[Group] | None = None
) -> nn.Module:
    """Remove exactly the given units of each group, keyed by the group's root; `found`: the
    model's groups, where the caller has them."""
    by_root = {group.root: group for group in (found if found is not None else groups(model, input_shape))}
    heads = {root: units for root, units in removed.items() if units and by_root[root].kind == "head"}
    for root, units in heads.items():
        remove_heads(model, by_root[root], units)
    channels = {root: units for root, units in removed.items() if units and root not in heads}
    if channels:
        built = graph(model, input_shape)
        for root, units in channels.items():
            layer = model.get_submodule(root)
            group = built.get_pruning_group(layer, out_fn(layer), units)
            if not built.check_pruning_group(group):
                raise OutOfReach(f"cannot remove {len(units)} of the output channels of {root}: every layer keeps one")
            group.prune()
    return models.retie(model)


def remove_heads(model: nn.Module, group: Group, units: list[int]) -> None:
    """Cut the heads `units` out of the attention module that owns the group."""
    module = model.get_submodule(group.owner)
    heads = attention_heads(model)[group.owner]
    kept = [u for u in range(heads.count) if u not in set(units)]
    if not kept:
        raise OutOfReach(f"cannot remove every head of {group.owner}: it keeps one")
    for layer, layout in heads.inputs:
        _keep(module.get_submodule(layer), channels_of(layout, kept), rows=True)
    layer, layout = heads.output
    _keep(module.get_submodule(layer), channels_of(layout, kept), rows=False)
    for attribute, per_head in heads.per_head:
        setattr(module, attribute, len(kept) * per_head)


@torch.no_grad()
def _keep(layer: nn.Module, index: list[int], rows: bool) -> None:
    """Keep only the given output rows (`rows`) or input columns of a Linear layer."""
    assert isinstance(layer, nn.Linear), "attention projections are Linear layers"
    keep = torch.tensor(index, device=layer.weight.device)
    if rows:
        layer.weight = nn.Parameter(layer.weight.index_select(0, keep))
        if layer.bias is not None:
            layer.bias = nn.Parameter(layer.bias.index_select(0, keep))
        layer.out_features = len(index)
    else:
        layer.weight = nn.Parameter(layer.weight.index_select(1, keep))
        layer.in_features = len(index)
