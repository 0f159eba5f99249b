"""Physical removal of channels and neurons, and saving/loading of pruned models.

Removal goes through torch-pruning's dependency graph, which keeps coupled layers consistent:
residual additions, BatchNorm statistics, the next layer's inputs, the classifier input. Where
the graph is wrong about a model (a shortcut that pads channels with `F.pad` couples layers of
16, 32 and 64 channels into one group), the group is frozen: checked once per architecture
(`frozen_groups`), never cut, and named to the user; every other group prunes as usual.
A saved model is its weights plus a plain-data description of the (pruned) architecture;
loading rebuilds the architecture and reads the file with `weights_only=True`, so a file can
never run code.
"""

from __future__ import annotations

import copy
import io
import pickle
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch_pruning as tp
from torch import Tensor, nn

from prunebench.errors import OutOfReach, UserError, briefly
from prunebench.io import save_bytes
from prunebench.training import models

FORMAT = "prunebench-model/1"
SIZE_ATTRS = ("in_channels", "out_channels", "groups", "in_features", "out_features", "num_features")
OUT_CHANNEL_FNS = (tp.pruner.function.prune_conv_out_channels, tp.pruner.function.prune_linear_out_channels)


def remove_indices(model: nn.Module, removed: dict[str, list[int]], input_shape: tuple[int, ...]) -> nn.Module:
    """Remove exactly the given output channels of each channel group, keyed by the group's
    root layer; torch-pruning removes the same channels from every coupled layer."""
    graph = _graph(model, input_shape)
    modules = dict(model.named_modules())
    for root, idxs in removed.items():
        if not idxs:
            continue
        layer = modules[root]
        fn = OUT_CHANNEL_FNS[0] if isinstance(layer, nn.Conv2d) else OUT_CHANNEL_FNS[1]
        group = graph.get_pruning_group(layer, fn, idxs)
        if not graph.check_pruning_group(group):
            raise OutOfReach(f"cannot remove {len(idxs)} of the output channels of {root}: every layer keeps one")
        group.prune()
    return model


def _graph(model: nn.Module, input_shape: tuple[int, ...]) -> tp.DependencyGraph:
    device = next(model.parameters()).device
    return tp.DependencyGraph().build_dependency(model, example_inputs=torch.zeros(1, *input_shape, device=device))


def _groups(model: nn.Module, graph: tp.DependencyGraph, input_shape: tuple[int, ...]) -> list[dict[str, nn.Module]]:
    """torch-pruning's channel groups that can be cut, as {name: module} of the modules whose
    outputs go together, in network order; frozen groups left out."""
    frozen = {group.members for group in frozen_groups(model, input_shape)}
    return [group for group in _all_groups(model, graph) if _prunable_members(model, group) not in frozen]


def _all_groups(model: nn.Module, graph: tp.DependencyGraph) -> list[dict[str, nn.Module]]:
    names = {m: n for n, m in model.named_modules()}
    position = {n: i for i, n in enumerate(names.values())}
    modules = dict(model.named_modules())
    groups = []
    for group in graph.get_all_groups(
        ignored_layers=[modules[models.output_layer_name(model)]], root_module_types=[nn.Conv2d, nn.Linear]
    ):
        members = sorted(
            (
                names[dep.target.module]
                for dep, _ in group
                if graph.is_out_channel_pruning_fn(dep.handler) and dep.target.module in names
            ),
            key=lambda name: position[name],
        )
        groups.append({name: modules[name] for name in members})
    return sorted(groups, key=lambda g: position[next(iter(g))])  # network order


def _prunable_members(model: nn.Module, group: dict[str, nn.Module]) -> tuple[str, ...]:
    prunable = models.prunable_layers(model)
    return tuple(name for name in group if name in prunable)


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
        graph = _graph(model, input_shape)
        x = torch.zeros(2, *input_shape, device=next(model.parameters()).device)
        with torch.no_grad():
            expected = copy.deepcopy(model).eval()(x).shape  # the model itself may be training: its statistics stay
        found = []
        for group in _all_groups(model, graph):
            members = _prunable_members(model, group)
            reason = _fault(model, graph, group, x, expected) if members else None
            if reason:
                found.append(Frozen(members, reason))
        _checked[key] = found
    return _checked[key]


def _fault(
    model: nn.Module, graph: tp.DependencyGraph, group: dict[str, nn.Module], x: Tensor, expected: torch.Size
) -> str | None:
    """Why the group cannot be cut, or None."""
    sizes = {
        name: models.output_units(module)
        for name, module in group.items()
        if hasattr(module, "out_channels") or hasattr(module, "out_features")  # not BatchNorm: its inputs'
    }
    counts = sorted(set(sizes.values()))
    root_name, root = next(iter(group.items()))
    if len(counts) > 1:
        fn = OUT_CHANNEL_FNS[0] if isinstance(root, nn.Conv2d) else OUT_CHANNEL_FNS[1]
        ops = {type(dep.target.grad_fn).__name__ for dep, _ in graph.get_pruning_group(root, fn, [0])}
        cause = "channel padding (F.pad) in a shortcut" if any("Pad" in op for op in ops) else "an operation"
        return f"{cause} couples layers of {_and(counts)} channels"
    channels = sizes[root_name]
    if channels < 2 or not _rewires_channels(graph, group):
        return None
    for index in (0, channels - 1):  # the first and the last: a channel split breaks on one of them
        probe = copy.deepcopy(model).eval()
        try:
            remove_indices(probe, {root_name: [index]}, tuple(x.shape[1:]))
            with torch.no_grad():
                shape = probe(x).shape
        except Exception as error:  # whatever the probe raises is the finding
            return f"removing channel {index} breaks the model ({briefly(error)})"
        if shape != expected:
            return f"removing channel {index} changes the output shape from {tuple(expected)} to {tuple(shape)}"
    return None


PLAIN_OPS = (tp.ops._ElementWiseOp, tp.ops._OutputOp)  # channel i stays channel i through them


def _rewires_channels(graph: tp.DependencyGraph, group: dict[str, nn.Module]) -> bool:
    """Whether the group's channels pass an operation that maps them to other positions
    (concatenation, split, slice, reshape, expand, a custom op): where every layer agrees on the
    count, that is where a removal breaks a model (a split of fixed sizes), so only such groups
    are probed; a probe costs a copy, a graph and two forward passes (all groups of ResNet-50 at
    224: 21 s, these only: 0.9 s)."""
    root = next(iter(group.values()))
    fn = OUT_CHANNEL_FNS[0] if isinstance(root, nn.Conv2d) else OUT_CHANNEL_FNS[1]
    modules = set(graph.model.modules())
    return any(
        dep.target.module not in modules and not isinstance(dep.target.module, PLAIN_OPS)
        for dep, _ in graph.get_pruning_group(root, fn, [0])
    )


def _and(counts: list[int]) -> str:
    return ", ".join(map(str, counts[:-1])) + f" and {counts[-1]}"


def channel_groups(model: nn.Module, input_shape: tuple[int, ...]) -> list[list[str]]:
    """Prunable layers whose output channels must be removed together (a residual addition
    couples them), root first; frozen groups left out."""
    groups = [
        list(_prunable_members(model, group)) for group in _groups(model, _graph(model, input_shape), input_shape)
    ]
    return [group for group in groups if group]


def group_sizes(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, int]:
    """The output channels (or neurons) of each channel group, keyed by its root layer; coupled
    layers count once."""
    modules = dict(model.named_modules())
    return {group[0]: models.output_units(modules[group[0]]) for group in channel_groups(model, input_shape)}


def gate_points(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, list[str]]:
    """Where each channel group's channels leave their layers, keyed by the group's root: for
    every member layer, the BatchNorm that directly follows it if there is one, else the layer.
    Zeroing a channel there is exactly what removing it does to everything downstream."""
    graph = _graph(model, input_shape)
    prunable = models.prunable_layers(model)
    points = {}
    for group in _groups(model, graph, input_shape):
        members = [name for name in group if name in prunable]
        if not members:
            continue
        names = {m: n for n, m in group.items()}
        follow = []
        for name in members:
            norms = [
                names[node.module]
                for node in graph.module2node[group[name]].outputs
                if isinstance(node.module, nn.modules.batchnorm._BatchNorm) and node.module in names
            ]
            follow.append(norms[0] if norms else name)
        points[members[0]] = follow
    return points


def architecture(model: nn.Module) -> dict[str, dict[str, int]]:
    """The layer sizes that pruning can change, as plain data."""
    layers = {}
    for name, module in model.named_modules():
        sizes = {a: getattr(module, a) for a in SIZE_ATTRS if isinstance(getattr(module, a, None), int)}
        if sizes:
            layers[name] = sizes
    return layers


def dumps(model: nn.Module, spec: dict[str, Any], masks: dict[str, Tensor] | None = None) -> bytes:
    """A model file's bytes: jobs return these and the stage writes them (`save` here and there).
    `spec` is the model description `models.build` takes; `masks` keeps unstructured pruning."""
    payload = _interned(
        {
            "format": FORMAT,
            "spec": spec,
            "layers": architecture(model),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "masks": {k: v.cpu() for k, v in (masks or {}).items()},
        }
    )
    buffer = io.BytesIO()  # a file object: the archive is named "archive", not after a file, so the
    torch.save(payload, buffer)  # same model gives the same bytes and DVC re-runs nothing
    return buffer.getvalue()


def _interned(value: Any) -> Any:
    """`value` with every string interned: pickle writes a string it has seen as a reference, so
    without this the bytes would depend on which equal strings happen to be one object (a spec
    that came through Ray, unpickled, has fresh ones) rather than on the values alone."""
    if isinstance(value, str):
        return sys.intern(value)
    if isinstance(value, dict):
        return {_interned(k): _interned(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_interned(v) for v in value)
    return value


def save(path: str | Path, model: nn.Module, spec: dict[str, Any], masks: dict[str, Tensor] | None = None) -> None:
    save_bytes(path, dumps(model, spec, masks))


class ModelFileError(UserError, ValueError):
    """A model file that is missing, unreadable, or holds pickled Python objects (refused)."""


def read(path: str | Path | bytes) -> Any:
    """A torch file's tensors and plain data (or a file's bytes: `dumps`), never running code from
    it (weights_only)."""
    name = _name(path)
    if isinstance(path, bytes):
        source: Any = io.BytesIO(path)
    elif not Path(path).is_file():
        raise ModelFileError(f"{name}: no such file")
    else:
        source = path
    try:
        return torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ModelFileError(
            f"{name}: refused: it holds pickled Python objects, not plain weights "
            "(prunebench loads models with weights_only=True)"
        ) from error
    except (RuntimeError, EOFError, OSError) as error:
        raise ModelFileError(
            f"{name}: unreadable, truncated or not a torch file "
            f"({str(error).splitlines()[0] if str(error) else type(error).__name__})"
        ) from error


def _name(path: str | Path | bytes) -> str | Path:
    """How an error names a model: its file, or where bytes came from."""
    return "a model returned by a job" if isinstance(path, bytes) else path


def load(path: str | Path | bytes) -> tuple[nn.Module, dict[str, Tensor], dict[str, Any]]:
    """Rebuild a saved model (a file, or its bytes) on the CPU: (model, masks, spec)."""
    payload = read(path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelFileError(f"{_name(path)}: not a prunebench model file (expected format {FORMAT})")
    model = models.build(payload["spec"])
    _resize(model, payload["layers"], payload["state_dict"])
    model.load_state_dict(payload["state_dict"])
    return model, payload["masks"], payload["spec"]


def load_pruned(path: str | Path) -> nn.Module:
    """The deployment entry point: a saved (pruned) model, rebuilt and ready for inference."""
    return load(path)[0].eval()


def _resize(model: nn.Module, layers: dict[str, dict[str, int]], state: dict[str, Tensor]) -> None:
    """Give every layer the sizes and tensor shapes it had when saved."""
    modules = dict(model.named_modules())
    for name, sizes in layers.items():
        for attr, value in sizes.items():
            setattr(modules[name], attr, value)
    for key, tensor in state.items():
        owner, _, attr = key.rpartition(".")
        module = modules[owner]
        if attr in module._parameters:
            module._parameters[attr] = nn.Parameter(torch.empty_like(tensor))
        elif attr in module._buffers:
            module._buffers[attr] = torch.empty_like(tensor)
