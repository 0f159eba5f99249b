"""Scoring hooks: what a method needs from forward and backward passes, outside the method.

Every hook finds the channels of a module's output where they are: dimension 1 of a convolution's
(N, C, H, W), the last of a Linear or LayerNorm output, (batch, features) or (batch, tokens,
features) alike (`models.feature_dim`). `gated` scales each group's units at its gate points
(`coupling.Gate`), e.g. to differentiate the loss with respect to keeping each unit; `observed`
shows the signal there; `signal_grads` records the loss gradient of the signal at the gate points;
`leaf_calls` calls back after every leaf module.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from prunebench.pruning.coupling import Gate
from prunebench.training.models import feature_dim

Points = dict[str, list[Gate]]  # a group's root → where its units leave their layers


def along(values: Tensor, gate: Gate, dims: int, dim: int) -> Tensor:
    """A value per unit spread over the features the gate covers ([before, units, after]), shaped
    to multiply a tensor of `dims` dimensions whose features lie along `dim`."""
    before, units, after = gate.layout
    full = values.view(1, units, 1).expand(before, units, after).reshape(-1)
    shape = [1] * dims
    shape[dim] = full.numel()
    return full.view(shape)


def per_unit(squares: Tensor, gate: Gate) -> Tensor:
    """Per-feature sums along a gate's features, summed over each unit's features."""
    return squares.view(gate.layout).sum((0, 2))


@contextmanager
def at_gates(model: nn.Module, points: Points, roots: Collection[str], act: Callable[[str, Gate, Tensor, int], Any]):
    """Call `act(root, gate, signal, feature dim)` on the signal at every gate of the given groups;
    what it returns replaces the signal."""
    modules = dict(model.named_modules())
    handles = []

    def output_hook(root: str, gate: Gate):
        def hook(module: nn.Module, _inputs: Any, output: Tensor) -> Tensor:
            return act(root, gate, output, feature_dim(module, output.dim()))

        return hook

    def input_hook(root: str, gate: Gate):
        def hook(_module: nn.Module, inputs: tuple) -> tuple:
            return (act(root, gate, inputs[0], inputs[0].dim() - 1), *inputs[1:])

        return hook

    for root in roots:
        for gate in points[root]:
            module = modules[gate.module]
            handles.append(
                module.register_forward_pre_hook(input_hook(root, gate))
                if gate.input
                else module.register_forward_hook(output_hook(root, gate))
            )
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def gated(model: nn.Module, points: Points, gates: dict[str, Tensor]) -> Iterator[None]:
    """Multiply each group's units at its gate points by that group's gate vector (one value per
    unit)."""

    def scale(root: str, gate: Gate, signal: Tensor, dim: int) -> Tensor:
        return signal * along(gates[root], gate, signal.dim(), dim)

    with at_gates(model, points, [root for root in points if root in gates], scale):
        yield


@contextmanager
def observed(model: nn.Module, points: Points, see: Callable[[str, Gate, Tensor, int], None]) -> Iterator[None]:
    """Call `see(root, gate, signal, feature dim)` on the signal at every gate point, unchanged."""

    def look(root: str, gate: Gate, signal: Tensor, dim: int) -> Tensor:
        see(root, gate, signal, dim)
        return signal

    with at_gates(model, points, list(points), look):
        yield


@contextmanager
def signal_grads(model: nn.Module, points: Points) -> Iterator[dict[str, list[Tensor]]]:
    """Per group root, the squared loss gradient of its signal summed over everything but the
    units, one tensor per gate point and backward pass (a value per unit)."""
    found: dict[str, list[Tensor]] = {root: [] for root in points}

    def record(root: str, gate: Gate, signal: Tensor, dim: int) -> Tensor:
        if signal.requires_grad:

            def keep(grad: Tensor) -> None:
                squares = grad.detach().transpose(0, dim).flatten(1).square().sum(1)
                found[root].append(per_unit(squares, gate))

            signal.register_hook(keep)
        return signal

    with at_gates(model, points, list(points), record):
        yield found


@contextmanager
def leaf_calls(
    model: nn.Module, callback: Callable[[str, tuple, Any], object], also: Collection[str] = ()
) -> Iterator[None]:
    """Call `callback(name, inputs, output)` after every call of a leaf module (and of the modules
    named in `also`) while the block runs; what it returns is dropped, so the outputs stay."""

    def hook(name: str):
        def record(_module: nn.Module, inputs: tuple, output: Any) -> None:
            callback(name, inputs, output)

        return record

    handles = [
        module.register_forward_hook(hook(name))
        for name, module in model.named_modules()
        if name and (not any(module.children()) or name in also)
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def unit_count(points: Points, root: str) -> int:
    """How many units a group's gate points carry."""
    return points[root][0].layout[1]


def ones(points: Points, device: torch.device, requires_grad: bool = False) -> dict[str, Tensor]:
    """A gate of ones per group."""
    return {root: torch.ones(unit_count(points, root), device=device, requires_grad=requires_grad) for root in points}
