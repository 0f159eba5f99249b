"""Scoring hooks: record what a method needs from forward/backward passes, outside the method.

`capture(layers)` records each layer's output on every forward pass and, when a backward pass
follows, the gradient of the loss with respect to that output, e.g. for Taylor-style scores
(activation × gradient) summed over calibration batches.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn


@dataclass
class Records:
    outputs: dict[str, list[Tensor]] = field(default_factory=lambda: defaultdict(list))
    grads: dict[str, list[Tensor]] = field(default_factory=lambda: defaultdict(list))


@contextmanager
def capture(layers: dict[str, nn.Module]) -> Iterator[Records]:
    """Record outputs (copied) and output gradients of `layers` while the block runs."""
    records = Records()
    handles = []

    def hook(name: str):
        def record(_module: nn.Module, _inputs, output: Tensor) -> None:
            records.outputs[name].append(output.detach().clone())  # in-place ReLUs follow
            if output.requires_grad:
                output.register_hook(lambda grad: records.grads[name].append(grad.detach()))

        return record

    for name, layer in layers.items():
        handles.append(layer.register_forward_hook(hook(name)))
    try:
        yield records
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def gated(model: nn.Module, points: dict[str, list[str]], gates: dict[str, Tensor]) -> Iterator[None]:
    """Multiply the channels (dim 1) at each group's gate points by that group's gate vector,
    e.g. to differentiate the loss with respect to keeping each channel."""
    modules = dict(model.named_modules())

    def scale(gate: Tensor):
        def hook(_module: nn.Module, _inputs, output: Tensor) -> Tensor:
            return output * gate.view(1, -1, *([1] * (output.dim() - 2)))

        return hook

    handles = [
        modules[point].register_forward_hook(scale(gates[root]))
        for root, group_points in points.items()
        if root in gates
        for point in group_points
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


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
