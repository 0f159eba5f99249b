"""The weights a group's units own, as DepGraph sees them: the rows of every layer that produces
the units, the columns of every layer that reads them, the scales of every norm that normalises
them. Criteria that score a unit by all of its weights (group norm, FPGM, OBD-C) compute one
value per row of each slice and reduce the slices to one value per unit (`reduce`), as
torch-pruning's importance classes do with `group_reduction="mean"`.

Channel and width groups come from torch-pruning's dependency graph (the same one `coupling`
builds the groups from); heads from the family's layout: the input projections' rows and the
output projection's columns of each head. A grouped convolution's input columns are left out
(its filters are rows of the same group already).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast

import torch
from torch import Tensor, nn

from prunebench.pruning.coupling import Group, Layout, attention_heads, graph, groups, out_fn

NORMS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm)


@dataclass(frozen=True)
class Slice:
    """Weights of one module that belong to a group's units: its output rows ("out"), its input
    columns ("in") or its norm scales ("norm") at `positions`, the n-th of which belongs to unit
    `units[n]`."""

    module: str
    role: Literal["out", "in", "norm"]
    positions: Tensor
    units: Tensor

    def vectors(self, model: nn.Module) -> Tensor:
        """One row per position: the weights that position owns, flattened."""
        weight = cast(Tensor, model.get_submodule(self.module).weight).detach()
        if self.role == "in":
            weight = weight.transpose(0, 1)
        return weight[self.positions].reshape(len(self.positions), -1)


def _spread(layout: Layout) -> tuple[Tensor, Tensor]:
    """Every position of a dimension laid out as [before, units, after], and the unit of each."""
    before, count, after = layout
    positions = torch.arange(before * count * after)
    return positions, (positions // after) % count


def _head_slices(model: nn.Module, group: Group) -> list[Slice]:
    heads = attention_heads(model)[group.owner]
    found = [Slice(name, "out", *_spread(layout)) for name, layout in zip(group.members, group.layout)]
    layer, layout = heads.output
    return [*found, Slice(f"{group.owner}.{layer}", "in", *_spread(layout))]


Owned = dict[Group, list[Slice]]


def slices(model: nn.Module, input_shape: tuple[int, ...], kinds: tuple[str, ...]) -> Owned:
    """Every slice of every group of the given kinds."""
    built = graph(model, input_shape)
    modules = dict(model.named_modules())
    names = {m: n for n, m in modules.items()}
    found: Owned = {}
    for group in groups(model, input_shape):
        if group.kind not in kinds:
            continue
        if group.kind == "head":
            found[group] = _head_slices(model, group)
            continue
        root = modules[group.root]
        owned = []
        coupled = built.get_pruning_group(root, out_fn(root), list(range(group.size)))
        for i, (dep, idxs) in enumerate(coupled):
            module, name, roots = dep.target.module, names.get(dep.target.module), coupled[i].root_idxs
            if name is None or any(r is None for r in roots):  # an index torch-pruning cannot trace back
                continue
            positions, units = torch.tensor([int(p) for p in idxs]), torch.tensor([int(r) for r in roots])
            if isinstance(module, NORMS) and getattr(module, "weight", None) is not None:
                owned.append(Slice(name, "norm", positions, units))
            elif isinstance(module, (nn.Conv2d, nn.Linear)) and built.is_out_channel_pruning_fn(dep.handler):
                owned.append(Slice(name, "out", positions, units))
            elif isinstance(module, nn.Linear) or (isinstance(module, nn.Conv2d) and module.groups == 1):
                if built.is_in_channel_pruning_fn(dep.handler):
                    owned.append(Slice(name, "in", positions, units))
        found[group] = owned
    return found


def reduce(values: list[tuple[Slice, Tensor]], size: int) -> Tensor:
    """One value per unit: each slice's per-position values summed into their units, averaged
    over the slices (torch-pruning's `group_reduction="mean"`)."""
    total = torch.zeros(size, dtype=torch.float64)
    for piece, value in values:
        total.index_add_(0, piece.units, value.detach().double().cpu())
    return (total / max(1, len(values))).float()
