"""Scoring hooks: record what a method needs from forward/backward passes, outside the method.

`capture(layers)` records each layer's output on every forward pass and, when a backward pass
follows, the gradient of the loss with respect to that output, e.g. for Taylor-style scores
(activation × gradient) summed over calibration batches.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

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
