"""What the LLM pruning papers share: weights chosen per output row, an N:M pattern along the
input dimension, and calibration layer by layer.

A layer's weight is seen as rows: one per output feature (a convolution's output channel), each
row its input features (a convolution's input channels × kernel positions, the order of
`F.unfold`). `unstructured` removes the same fraction of every row; `N:M` keeps the N best of
every M consecutive weights of a row (a row's last group, when M does not divide it, keeps at
most N of what it has), which is half of each pruned layer for 2:4 and 4:8 whatever the target.

Calibration runs layer by layer, as Wanda and SparseGPT do: each layer, in the order the forward
pass reaches it, sees the inputs that the already pruned layers before it produce, on
`calibration` examples of the training split; then it is pruned, and the next layer is
calibrated. Each layer costs one forward pass of the calibration examples up to that layer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prunebench.errors import Unsupported
from prunebench.training.models import Layer, Layers


def n_m(pattern: str) -> tuple[int, int] | None:
    """(N, M) of an N:M pattern; None for unstructured."""
    if pattern == "unstructured":
        return None
    n, m = pattern.split(":")
    return int(n), int(m)


def rows(weight: Tensor) -> Tensor:
    """A layer's weight as [outputs, inputs] (a view)."""
    return weight.reshape(weight.shape[0], -1)


def row_mask(scores: Tensor, fraction: float, pattern: str) -> Tensor:
    """Keep-mask over [outputs, inputs] scores: the lowest round(fraction · inputs) of every row
    go, or the lowest M − N of every M consecutive ones."""
    outputs, inputs = scores.shape
    keep = torch.ones_like(scores, dtype=torch.bool)
    nm = n_m(pattern)
    if nm is None:
        removed = round(fraction * inputs)
        if removed:
            lowest = torch.argsort(scores, dim=1, stable=True)[:, :removed]
            keep.scatter_(1, lowest, False)
        return keep
    n, m = nm
    whole = inputs - inputs % m
    groups = scores[:, :whole].reshape(outputs, -1, m)
    lowest = torch.argsort(groups, dim=2, stable=True)[..., : m - n]
    keep[:, :whole] = torch.ones_like(groups, dtype=torch.bool).scatter_(2, lowest, False).reshape(outputs, whole)
    if whole < inputs and inputs - whole > n:  # the short last group keeps at most n
        tail = scores[:, whole:]
        drop = torch.argsort(tail, dim=1, stable=True)[:, : tail.shape[1] - n]
        keep[:, whole:] = torch.ones_like(tail, dtype=torch.bool).scatter_(1, drop, False)
    return keep


def unsupported(layers: Layers) -> str | None:
    """Why calibration cannot see some layer's inputs as its rows' inputs, or None."""
    for name, layer in layers.items():
        if isinstance(layer, nn.Conv2d) and (layer.groups != 1 or isinstance(layer.padding, str)):
            return (
                f"{name} is a convolution with groups={layer.groups}, padding={layer.padding!r}: its rows' inputs "
                "are not its patches; this method calibrates Linear layers and plain convolutions"
            )
    return None


def inputs_2d(layer: Layer, x: Tensor) -> Tensor:
    """The layer's input as [examples × positions, inputs], its columns in the order of `rows`."""
    if isinstance(layer, nn.Conv2d):
        if reason := unsupported({"the layer": layer}):
            raise Unsupported(reason)
        padding = cast(tuple[int, ...], layer.padding)  # not a name: `unsupported` refuses those
        patches = F.unfold(x, layer.kernel_size, layer.dilation, padding, layer.stride)  # [N, C·k·k, L]
        return patches.transpose(1, 2).reshape(-1, patches.shape[1])
    return x.reshape(-1, x.shape[-1])


class _Reached(Exception):
    """Stops a forward pass once the layer being calibrated has seen its input."""


def layer_order(model: nn.Module, layers: Layers, example: Tensor) -> list[str]:
    """The layers in the order one forward pass first reaches them."""
    order: list[str] = []
    handles = [
        layer.register_forward_pre_hook(lambda _m, _x, name=name: order.append(name) if name not in order else None)
        for name, layer in layers.items()
    ]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    return order


Accumulate = Callable[[Tensor], Tensor]  # [examples × positions, inputs] → a statistic summed over batches
Choose = Callable[[str, Layer, Tensor, int], Tensor]  # name, the layer, its statistic, rows seen → keep-mask


def layer_by_layer(
    work: nn.Module, layers: Layers, batches: list[Tensor], accumulate: Accumulate, choose: Choose
) -> dict[str, Tensor]:
    """Keep-masks of every layer of `layers` (by name), each chosen (`choose`) from a statistic of
    its inputs (`accumulate`) that the layers before it produce once pruned; `choose` may also
    change the kept weights of the layer it is given, which the layers after it then see. `work`
    is pruned as it goes: a copy of the model, or the model itself to prune it."""
    work.eval()
    work_layers: Layers = {name: work.get_submodule(name) for name in layers}  # type: ignore[misc]
    masks = {
        f"{name}.weight": torch.ones_like(layer.weight, dtype=torch.bool).cpu() for name, layer in work_layers.items()
    }
    for name in layer_order(work, work_layers, batches[0]):
        layer = work_layers[name]
        found: dict[str, Any] = {"stat": 0, "rows": 0}

        def capture(_module: nn.Module, args: tuple, layer: Layer = layer, found: dict[str, Any] = found) -> None:
            x = inputs_2d(layer, args[0].detach().float())
            found["stat"] = accumulate(x) + found["stat"]
            found["rows"] += x.shape[0]
            raise _Reached

        handle = layer.register_forward_pre_hook(capture)
        try:
            with torch.no_grad():
                for x in batches:
                    try:
                        work(x)
                    except _Reached:
                        pass
        finally:
            handle.remove()
        keep = choose(name, layer, found["stat"], found["rows"])
        weight = layer.weight
        with torch.no_grad():
            rows(weight).mul_(keep)
        masks[f"{name}.weight"] = keep.reshape(weight.shape).cpu()
    return masks


def squares(x: Tensor) -> Tensor:
    """Σ x_j² over the rows: each input feature's squared norm (Wanda's ‖X_j‖²)."""
    return x.square().sum(0)


def gram(x: Tensor) -> Tensor:
    """XᵀX (SparseGPT's layer Hessian, up to the factor 2 / n)."""
    return x.T @ x
