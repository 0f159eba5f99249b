"""What is coupled: the units pruning removes together (`Group`) and where each leaves its layers
(`Gate`).

Channel groups come from torch-pruning's dependency graph, which knows which layers must lose the
same channels: a conv's filters with the BatchNorm after it and the residual additions that add
them to others, an MLP's hidden neurons with the next layer's inputs, a transformer's embedding
width with every LayerNorm, projection, class token and position embedding on the residual stream
(kind "width"). Attention heads are groups of their own (kind "head"): the rows of the input
projections that make each head's queries, keys and values, with the output projection's columns
that read it, laid out as the model's family describes (`transformer.Heads`).

Where the graph is wrong about a model (a shortcut that pads channels with `F.pad` couples layers
of 16, 32 and 64 channels into one group), the group is frozen: checked once per architecture
(`frozen_groups`), never cut, and named to the user; every other group prunes as usual.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from typing import Any

import torch
import torch_pruning as tp
from torch import Tensor, nn

from prunebench.errors import briefly
from prunebench.training import models
from prunebench.training.inputs import InputShape, example
from prunebench.training.models.transformer import Heads

OUT_CHANNEL_FNS = (tp.pruner.function.prune_conv_out_channels, tp.pruner.function.prune_linear_out_channels)
KINDS = ("channel", "width", "head")
Layout = tuple[int, int, int]  # a layer's output channels (or input features) as [before, units, after]


@dataclass(frozen=True)
class Group:
    """Units that go together. `members`: the prunable layers whose output channels are the units,
    root first (the name the group is known by); for heads, each member's output channels are
    laid out as `layout` says, and `owner` is the attention module."""

    kind: str
    members: tuple[str, ...]
    size: int
    layout: tuple[Layout, ...] = ()
    owner: str = ""

    @property
    def root(self) -> str:
        return self.members[0]

    @property
    def label(self) -> str:
        """Its layers joined by "+" (how the sensitivity sweep and the report name it)."""
        return "+".join(self.members)

    def unit_scores(self, scores: dict[str, Tensor]) -> Tensor | None:
        """One score per unit from the members' scores (None where a member has none), each one per
        output channel (a unit's channels summed) or already one per unit; the mean over the members."""
        if not all(name in scores for name in self.members):
            return None
        per_member = [scores[name].detach().float().cpu() for name in self.members]
        if self.layout:
            per_member = [
                s if s.numel() == self.size else s.reshape(layout).sum((0, 2))
                for s, layout in zip(per_member, self.layout)
            ]
        return torch.stack(per_member).mean(0)

    def channels(self, units: list[int], member: int = 0) -> list[int]:
        """The output channels of a member (or the input features of a consumer laid out alike)
        that belong to `units`."""
        if not self.layout:
            return list(units)
        return channels_of(self.layout[member], units)


def channels_of(layout: Layout, units: list[int]) -> list[int]:
    """Positions of the given units in a dimension laid out as [before, units, after]."""
    before, count, after = layout
    return [(b * count + u) * after + a for b in range(before) for u in units for a in range(after)]


@dataclass(frozen=True)
class Gate:
    """Where a group's units leave a module, so that scaling them there is what removing them does
    to everything after: the module's output (a BatchNorm that follows a layer, or the layer), or
    for heads the output projection's input; its features laid out as `layout`."""

    module: str
    layout: Layout
    input: bool = False


_last: dict[str, Any] = {}  # the last graph built and the last groups found, each with its `_key`


def _key(model: nn.Module, input_shape: tuple[int, ...]) -> tuple:
    """What a graph depends on: the model object, its modules, its shapes and the input's."""
    modules = tuple((n, type(m).__qualname__) for n, m in model.named_modules())
    return id(model), modules, tuple(input_shape), tuple((n, tuple(p.shape)) for n, p in model.named_parameters())


def graph(model: nn.Module, input_shape: tuple[int, ...]) -> tp.DependencyGraph:
    """torch-pruning's dependency graph, with the family's parameters outside modules (class token,
    position embedding) on their embedding dimension; others on their last dimension (torch-pruning's
    guess, right for the class tokens and position embeddings of (batch, tokens, features) models).

    The last graph is kept while the model keeps its shapes: a pruning step asks for it to find the
    groups, to choose and to cut (three traces of the model were most of a step's time, against
    torch-pruning's one). The graph holds the model, so its id cannot pass to another meanwhile."""
    key = _key(model, input_shape)
    if _last.get("graph_key") != key:
        _last.update(graph_key=key, graph=_build(model, input_shape))
    return _last["graph"]


def _build(model: nn.Module, input_shape: tuple[int, ...]) -> tp.DependencyGraph:
    device = next(model.parameters()).device
    params = dict(model.named_parameters())
    unwrapped = [(params[name], dim % params[name].dim()) for name, dim in models.hints_of(model).unwrapped.items()]
    with warnings.catch_warnings():  # parameters the hints do not name: on their last dimension, said in README
        warnings.filterwarnings("ignore", "Unwrapped parameters detected")
        return tp.DependencyGraph().build_dependency(
            model, example_inputs=example(input_shape, 1, device), unwrapped_parameters=unwrapped or None
        )


def attention_heads(model: nn.Module) -> dict[str, Heads]:
    """Every attention module whose heads the family knows how to lay out, by name."""
    find = models.hints_of(model).heads
    return {name: heads for name, module in model.named_modules() if (heads := find(module)) is not None}


def _head_groups(model: nn.Module) -> list[Group]:
    groups = []
    for name, heads in attention_heads(model).items():
        if heads.count < 2:
            continue
        members = tuple(f"{name}.{layer}" for layer, _ in heads.inputs)
        groups.append(Group("head", members, heads.count, tuple(layout for _, layout in heads.inputs), name))
    return groups


def _projections(model: nn.Module) -> set[str]:
    """The attention modules' input projections: their outputs are heads, never channels."""
    return {f"{name}.{layer}" for name, heads in attention_heads(model).items() for layer, _ in heads.inputs}


def _channel_groups(model: nn.Module, built: tp.DependencyGraph) -> list[tuple[str, tuple[str, ...]]]:
    """torch-pruning's channel groups that have prunable layers, as (kind, members), network order."""
    names = {m: n for n, m in model.named_modules()}
    position = {n: i for i, n in enumerate(names.values())}
    modules = dict(model.named_modules())
    projections = _projections(model)
    ignored = [modules[models.output_layer_name(model)], *(modules[name] for name in projections)]
    prunable = models.prunable_layers(model)
    found = []
    for group in built.get_all_groups(ignored_layers=ignored, root_module_types=[nn.Conv2d, nn.Linear]):
        members = sorted(
            (
                names[dep.target.module]
                for dep, _ in group
                if built.is_out_channel_pruning_fn(dep.handler) and dep.target.module in names
            ),
            key=lambda name: position[name],
        )
        feeds_attention = any(
            names.get(dep.target.module) in projections and built.is_in_channel_pruning_fn(dep.handler)
            for dep, _ in group
        )
        layers = tuple(name for name in members if name in prunable)
        if layers:
            found.append(("width" if feeds_attention else "channel", layers, members))
    found.sort(key=lambda item: position[item[2][0]])
    return [(kind, layers) for kind, layers, _ in found]


def groups(model: nn.Module, input_shape: tuple[int, ...]) -> list[Group]:
    """The groups pruning may cut, channel groups in network order, then attention heads; frozen
    groups left out. Kept, like the graph, while the model keeps its shapes."""
    key = _key(model, input_shape)
    if _last.get("groups_key") != key:
        frozen = {group.members for group in frozen_groups(model, input_shape)}
        modules = dict(model.named_modules())
        channel = [
            Group(kind, layers, models.output_units(modules[layers[0]]))
            for kind, layers in _channel_groups(model, graph(model, input_shape))
            if layers not in frozen
        ]
        _last.update(groups_key=key, groups=channel + _head_groups(model))
    return list(_last["groups"])


def group_sizes(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, int]:
    """The units of each group, keyed by its root; coupled layers count once."""
    return {group.root: group.size for group in groups(model, input_shape)}


@dataclass(frozen=True)
class Frozen:
    """A channel group torch-pruning builds but cannot cut consistently: its channels all stay."""

    members: tuple[str, ...]  # its prunable layers, network order
    reason: str

    @property
    def label(self) -> str:
        """Its first layers joined by "+", and how many it has."""
        shown = "+".join(self.members[:4]) + ("+…" if len(self.members) > 4 else "")
        return f"{shown} ({len(self.members)} layer{'s' if len(self.members) > 1 else ''})"

    def __str__(self) -> str:
        return f"{self.label}: {self.reason}"


_checked: dict[tuple, list[Frozen]] = {}  # per architecture's layer names: what was found frozen


def frozen_groups(model: nn.Module, input_shape: tuple[int, ...]) -> list[Frozen]:
    """The channel groups that fail the check, each once per model kind: one channel count in
    the whole group, and the removal of its first channel, or of its last, leaves a model that
    runs and keeps its output shape. Which groups fail depends on how layers are wired, not on how many
    channels pruning has left them, so the answer holds for every pruned model of the kind."""
    key = (type(model).__qualname__, tuple(n for n, _ in model.named_modules()), tuple(input_shape))
    if key not in _checked:
        built = graph(model, input_shape)
        x = example(input_shape, 2, next(model.parameters()).device)
        with torch.no_grad():
            expected = copy.deepcopy(model).eval()(x).shape  # the model itself may be training: its statistics stay
        modules = dict(model.named_modules())
        found = []
        for _, layers in _channel_groups(model, built):
            reason = _fault(model, built, layers, modules, input_shape, x, expected)
            if reason:
                found.append(Frozen(layers, reason))
        _checked[key] = found
    return _checked[key]


def _fault(
    model: nn.Module,
    built: tp.DependencyGraph,
    layers: tuple[str, ...],
    modules: dict[str, nn.Module],
    input_shape: InputShape,
    x: Tensor,
    expected: torch.Size,
) -> str | None:
    """Why the group cannot be cut, or None."""
    root = modules[layers[0]]
    deps = built.get_pruning_group(root, out_fn(root), [0])
    sizes = sorted(
        {
            models.output_units(dep.target.module)
            for dep, _ in deps
            if built.is_out_channel_pruning_fn(dep.handler) and isinstance(dep.target.module, (nn.Conv2d, nn.Linear))
        }
    )
    if len(sizes) > 1:
        ops = {type(dep.target.grad_fn).__name__ for dep, _ in deps}
        cause = "channel padding (F.pad) in a shortcut" if any("Pad" in op for op in ops) else "an operation"
        return f"{cause} couples layers of {_and(sizes)} channels"
    channels = models.output_units(root)
    if channels < 2 or not _rewires_channels(built, deps):
        return None
    for index in (0, channels - 1):  # the first and the last: a channel split breaks on one of them
        probe = copy.deepcopy(model).eval()
        try:
            layer = probe.get_submodule(layers[0])
            graph(probe, input_shape).get_pruning_group(layer, out_fn(layer), [index]).prune()
            with torch.no_grad():
                shape = probe(x).shape
        except Exception as error:  # whatever the probe raises is the finding
            return f"removing channel {index} breaks the model ({briefly(error)})"
        if shape != expected:
            return f"removing channel {index} changes the output shape from {tuple(expected)} to {tuple(shape)}"
    return None


def out_fn(layer: nn.Module) -> Any:
    """torch-pruning's function that removes a layer's output channels."""
    return OUT_CHANNEL_FNS[0] if isinstance(layer, nn.Conv2d) else OUT_CHANNEL_FNS[1]


PLAIN_OPS = (tp.ops._ElementWiseOp, tp.ops._OutputOp)  # channel i stays channel i through them


def _rewires_channels(built: tp.DependencyGraph, deps: Any) -> bool:
    """Whether the group's channels pass an operation that maps them to other positions
    (concatenation, split, slice, reshape, expand, a custom op): where every layer agrees on the
    count, that is where a removal breaks a model (a split of fixed sizes), so only such groups
    are probed; a probe costs a copy, a graph and two forward passes (all groups of ResNet-50 at
    224: 21 s, these only: 0.9 s)."""
    modules = set(built.model.modules())
    return any(dep.target.module not in modules and not isinstance(dep.target.module, PLAIN_OPS) for dep, _ in deps)


def _and(counts: list[int]) -> str:
    return ", ".join(map(str, counts[:-1])) + f" and {counts[-1]}"


def batchnorms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The model's BatchNorm layers with scales and shifts (what Slimming and BN-Taylor need)."""
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine]


def gate_norms(model: nn.Module, points: dict[str, list[Gate]]) -> dict[str, list[nn.modules.batchnorm._BatchNorm]]:
    """The affine BatchNorms at each group's gate points, for the groups that have any (the
    scales that Slimming and BN-Taylor score a channel by)."""
    affine, modules = set(batchnorms(model)), dict(model.named_modules())
    found = {root: [m for g in gates if (m := modules[g.module]) in affine] for root, gates in points.items()}
    return {root: norms for root, norms in found.items() if norms}


def gate_points(
    model: nn.Module, input_shape: tuple[int, ...], kinds: tuple[str, ...] = KINDS
) -> dict[str, list[Gate]]:
    """Where each group's units leave their layers, keyed by the group's root: for every member
    layer of a channel group, the BatchNorm that directly follows it if there is one, else the
    layer; for heads, the output projection's input. Scaling a unit there is exactly what removing
    it does to everything downstream (for the width, whose units also pass LayerNorms and enter
    through a class token and a position embedding, only approximately: `kinds` leaves it out)."""
    built = graph(model, input_shape)
    modules = dict(model.named_modules())
    names = {m: n for n, m in modules.items()}
    heads = attention_heads(model)
    points: dict[str, list[Gate]] = {}
    for group in groups(model, input_shape):
        if group.kind not in kinds:
            continue
        if group.kind == "head":
            layer, layout = heads[group.owner].output
            points[group.root] = [Gate(f"{group.owner}.{layer}", layout, input=True)]
            continue
        follow = []
        for name in group.members:
            norms = [
                node.module
                for node in built.module2node[modules[name]].outputs
                if isinstance(node.module, nn.modules.batchnorm._BatchNorm)
            ]
            follow.append(Gate(names[norms[0]] if norms else name, (1, group.size, 1)))
        points[group.root] = follow
    return points
