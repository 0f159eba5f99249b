"""Multiply-accumulates of one example, every one of them: convolutions, matrix products wherever
they run (a Linear layer, a bare projection parameter, a product in a module's own forward) and
attention's products QKᵀ and AV, whether the model runs a fused attention kernel or not.

One forward pass is watched at the level of ATen operations (a `TorchDispatchMode`): whatever
Python wraps them in, the operations that multiply are counted from their shapes, convolutions as
output size × input channels per group × kernel size, matrix products as n · k · m, scaled
dot-product attention as heads · queries · keys · (key width + value width). Normalisations,
pools and softmax modules are counted as thop counts them (a BatchNorm or LayerNorm with affine
weights 4 per element, adaptive average pooling its window plus one per output, …), so a CNN's
count equals thop's to the bit. The pass runs with autograd on and PyTorch's fused
multi-head-attention path off, whose single kernels (`_transformer_encoder_layer_fwd`,
`_native_multi_head_attention`) would hide the products inside.

A count is a set of terms, each a function of what pruning keeps: a leaf module's own count (its
name, as thop names it), or one kind of product run by a module that has children, such as an
attention module's QKᵀ and AV (`"blocks.0.attn:attention"`); `module_of` maps a term to its
module.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten
ROOT = "<model>"  # the term name of products run by the model's own forward


def _mm(args: tuple, out: Tensor) -> float:
    a, b = args[-2], args[-1]  # (bias,) a [n, k], b [k, m]
    return a.shape[-2] * a.shape[-1] * b.shape[-1] * (a.shape[0] if a.dim() == 3 else 1)


def _mv(args: tuple, out: Tensor) -> float:
    return args[-2].numel()


def _convolution(args: tuple, out: Tensor) -> float:
    x, weight, groups = args[0], args[1], args[8]  # aten.convolution's arguments are positional
    return out.numel() * (x.shape[1] // groups) * math.prod(weight.shape[2:])


def _attention(args: tuple, out: Tensor) -> float:
    q, k, v = args[0], args[1], args[2]  # [batch, heads, queries, width], keys [.., keys, width]
    return q.shape[:-1].numel() * k.shape[-2] * (q.shape[-1] + v.shape[-1])


def _fused(args: tuple, out: Tensor) -> float:
    raise RuntimeError("a fused multi-head attention kernel ran while counting MACs, which hides its products")


OPS: dict[Any, tuple[str, Callable[[tuple, Tensor], float]]] = {
    aten.mm: ("mm", _mm),
    aten.addmm: ("mm", _mm),
    aten.bmm: ("bmm", _mm),
    aten.baddbmm: ("bmm", _mm),
    aten.mv: ("mv", _mv),
    aten.addmv: ("mv", _mv),
    aten.convolution: ("conv", _convolution),
    **{
        op: ("attention", _attention)
        for name in (
            "_scaled_dot_product_flash_attention_for_cpu",
            "_scaled_dot_product_flash_attention",
            "_scaled_dot_product_efficient_attention",
            "_scaled_dot_product_cudnn_attention",
            "_scaled_dot_product_fused_attention_overrideable",
        )
        if (op := getattr(aten, name, None)) is not None
    },
    aten._native_multi_head_attention: ("attention", _fused),
    aten._transformer_encoder_layer_fwd: ("attention", _fused),
}


def _norm(module: nn.Module, x: Tensor, y: Tensor) -> float:
    affine = getattr(module, "affine", False) or getattr(module, "elementwise_affine", False)
    return 2 * x.numel() * (2 if affine else 1)


def _adaptive_average(module: nn.Module, x: Tensor, y: Tensor) -> float:
    window = math.prod(a / b for a, b in zip(map(float, x.shape[2:]), map(float, y.shape[2:])))
    return float(int((window + 1) * y.numel()))


def _softmax(module: nn.Module, x: Tensor, y: Tensor) -> float:
    dim = getattr(module, "dim", None)  # nn.Softmax's
    features = x.shape[dim if isinstance(dim, int) else -1]
    return float((x.numel() // features) * (3 * features - 1))


def _upsample(module: nn.Module, x: Tensor, y: Tensor) -> float:
    per = {"nearest": 1, "linear": 5, "bilinear": 11, "bicubic": 259, "trilinear": 31}.get(str(module.mode), 0)
    return float(y.numel() * per)


# thop's rules for what is not a product, by exact type as thop matches them
MODULE_RULES: dict[type, Callable[[nn.Module, Tensor, Tensor], float]] = {
    **dict.fromkeys(
        (
            nn.BatchNorm1d,
            nn.BatchNorm2d,
            nn.BatchNorm3d,
            nn.SyncBatchNorm,
            nn.LayerNorm,
            nn.InstanceNorm1d,
            nn.InstanceNorm2d,
            nn.InstanceNorm3d,
        ),
        _norm,
    ),
    **dict.fromkeys((nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d), _adaptive_average),
    **dict.fromkeys((nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d), lambda m, x, y: float(y.numel())),
    nn.Softmax: _softmax,
    nn.PReLU: lambda m, x, y: float(x.numel()),
    **dict.fromkeys((nn.Upsample, nn.UpsamplingBilinear2d, nn.UpsamplingNearest2d), _upsample),
}


class _Watch(TorchDispatchMode):
    """Adds each product to the innermost module running, by its kind."""

    def __init__(self, stack: list[str], leaves: set[str], found: dict[str, float]):
        super().__init__()
        self.stack, self.leaves, self.found = stack, leaves, found

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        rule = OPS.get(func.overloadpacket)
        if rule is not None:
            kind, count = rule
            module = self.stack[-1]
            key = module if module in self.leaves else f"{module or ROOT}:{kind}"
            self.found[key] = self.found.get(key, 0.0) + float(count(args, out))
        return out


def count(model: nn.Module, example: Tensor) -> dict[str, float]:
    """The MACs of one forward pass of `example` through a copy of `model`, per term: every
    childless module in thop's order (zero where nothing counts), then the products of modules
    with children in the order they ran."""
    probe = copy.deepcopy(model).cpu().float().eval()
    names = {module: name for name, module in probe.named_modules()}
    found: dict[str, float] = {name: 0.0 for name in _leaves(probe)}
    leaves = set(found)
    stack: list[str] = []

    def enter(module: nn.Module, _inputs: Any) -> None:
        stack.append(names[module])

    def leave(module: nn.Module, inputs: Any, output: Any) -> None:
        name = stack.pop()
        rule = MODULE_RULES.get(type(module))
        if rule is not None and inputs and isinstance(inputs[0], Tensor) and isinstance(output, Tensor):
            found[name] += rule(module, inputs[0], output)

    handles = [h for m in names for h in (m.register_forward_pre_hook(enter), m.register_forward_hook(leave))]
    try:
        with torch.enable_grad(), _no_fused_attention(), _Watch(stack, leaves, found):
            probe(example)
    finally:
        for handle in handles:
            handle.remove()
    return found


def _leaves(model: nn.Module, prefix: str = "") -> list[str]:
    """Childless modules, depth first through `named_children` (thop's order)."""
    names = []
    for name, child in model.named_children():
        path = prefix + name
        names += _leaves(child, path + ".") if any(True for _ in child.children()) else [path]
    return names


class _no_fused_attention:
    """PyTorch's fused multi-head attention path off while the block runs."""

    def __enter__(self) -> None:
        self.before = torch.backends.mha.get_fastpath_enabled()
        torch.backends.mha.set_fastpath_enabled(False)

    def __exit__(self, *_exc: object) -> None:
        torch.backends.mha.set_fastpath_enabled(self.before)


def module_of(term: str) -> str:
    """The module a term belongs to ("" for the model's own products)."""
    module, _, _ = term.partition(":")
    return "" if module == ROOT else module
