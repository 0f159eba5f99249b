"""Interval arithmetic through a network: the range of every intermediate value over a box of
inputs (forward), and the range of its adjoint, ∂(sum of outputs)/∂value (backward).

The network is traced once with torch.fx and evaluated node by node on intervals, in float64.
Affine nodes (Linear, Conv, BatchNorm in eval mode, average pooling, reshapes) use the
centre–radius form, which is exact for one affine map: centre ↦ f(centre), radius ↦ |A|·radius,
and backward A^T, |A|^T through a vector-Jacobian product. ReLU maps [l, u] to
[max(l, 0), max(u, 0)], and its derivative lies in [1(l > 0), 1(u > 0)]. Max pooling is
monotone forward; backward, an element receives a window's adjoint only if it can be that
window's maximum.
"""

from __future__ import annotations

import copy
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn

from prunebench.errors import Unsupported, briefly


@dataclass
class Interval:
    lo: Tensor
    hi: Tensor

    @property
    def mid(self) -> Tensor:
        return (self.lo + self.hi) / 2

    @property
    def rad(self) -> Tensor:
        return (self.hi - self.lo) / 2

    @property
    def width(self) -> Tensor:
        return self.hi - self.lo

    @property
    def magnitude(self) -> Tensor:
        """The largest |x| over the interval."""
        return torch.maximum(self.lo.abs(), self.hi.abs())

    @classmethod
    def around(cls, mid: Tensor, rad: Tensor) -> Interval:
        return cls(mid - rad, mid + rad)

    def __add__(self, other: Interval) -> Interval:
        return Interval(self.lo + other.lo, self.hi + other.hi)


Linear = Callable[[Tensor], Tensor]  # a linear map (no offset)
AFFINE_MODULES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.modules.batchnorm._BatchNorm)
POSITIVE_MODULES = (nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Flatten, nn.Dropout, nn.Identity)  # linear, A ≥ 0
RESHAPES = {"flatten", "view", "reshape", "squeeze", "unsqueeze", "contiguous", "permute", "transpose"}
SHAPE_QUERIES = {"size", "dim"}
RELUS = (F.relu, torch.relu)
ADDS = (operator.add, torch.add)
SUPPORTED = "supported: Linear, Conv, BatchNorm, ReLU, pooling, flatten, residual addition"


def trace(model: nn.Module) -> fx.GraphModule:
    """A float64, eval-mode, non-in-place copy of `model`, traced: what `propagate` evaluates."""
    copied = copy.deepcopy(model).double().eval().requires_grad_(False)  # adjoints come from vjp, not autograd
    for module in copied.modules():
        if hasattr(module, "inplace"):
            module.inplace = False  # type: ignore[assignment]  # a plain bool attribute of ReLU and kin
    try:
        return fx.symbolic_trace(copied)
    except Exception as error:  # torch.fx raises whatever the model's Python does with a proxy
        raise Unsupported(f"interval propagation: torch.fx cannot trace the model ({briefly(error)})") from error


def _linear_parts(module: nn.Module) -> tuple[Linear, Linear]:
    """(the linear part of an affine module, the same with absolute coefficients)."""
    if isinstance(module, nn.Linear):
        w = module.weight
        return (lambda z: F.linear(z, w)), (lambda z: F.linear(z, w.abs()))
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        w = module.weight
        return (lambda z: module._conv_forward(z, w, None)), (lambda z: module._conv_forward(z, w.abs(), None))
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        assert module.running_var is not None, "BatchNorm in eval mode uses its running statistics"
        scale = torch.rsqrt(module.running_var + module.eps)
        if module.weight is not None:
            scale = scale * module.weight

        def shaped(s: Tensor, z: Tensor) -> Tensor:
            return s.reshape(-1, *[1] * (z.dim() - 2))

        return (lambda z: z * shaped(scale, z)), (lambda z: z * shaped(scale.abs(), z))
    return module, module  # POSITIVE_MODULES: their coefficients are already ≥ 0


def _transpose(f: Linear, like: Tensor, v: Tensor) -> Tensor:
    """A^T v for the linear map f = A·, via a vector-Jacobian product."""
    pull = torch.func.vjp(f, torch.zeros_like(like))[1]
    return pull(v)[0]


class Propagation:
    """The intervals of every node of a traced network over one input box, and their adjoints."""

    def __init__(self, graph: fx.GraphModule, box: Interval):
        self.graph = graph
        self.modules = dict(graph.named_modules())
        self.values: dict[str, Any] = {}  # an Interval, or a value the box does not change
        self.adjoints: dict[str, Interval] = {}
        self._forward(box)
        self._backward()

    # ---- forward -------------------------------------------------------------------------
    def _arg(self, a):
        return self.values[a.name] if isinstance(a, fx.Node) else a

    def _forward(self, box: Interval) -> None:
        for node in self.graph.graph.nodes:
            if node.op == "placeholder":
                self.values[node.name] = box
            elif node.op == "output":
                self.output = node.args[0]
            else:
                self.values[node.name] = self._eval(node)

    def _kind(self, node: fx.Node) -> str:
        target = node.target
        if node.op == "call_module":
            module = self.modules[target]
            if isinstance(module, AFFINE_MODULES + POSITIVE_MODULES):
                return "affine"
            if isinstance(module, nn.ReLU):
                return "relu"
            if isinstance(module, nn.MaxPool2d):
                if module.dilation not in (1, (1, 1)) or module.ceil_mode:
                    raise Unsupported(
                        f"interval propagation: {target}: max pooling with dilation or ceil_mode is not supported"
                    )
                return "maxpool"
            raise Unsupported(
                f"interval propagation: {target} ({type(module).__name__}) is not supported ({SUPPORTED})"
            )
        if node.op == "call_method" and target in RESHAPES or node.op == "call_function" and target is torch.flatten:
            return "reshape"
        if node.op == "call_method" and target in SHAPE_QUERIES:
            return "query"
        if node.op == "call_method" and target == "relu" or node.op == "call_function" and target in RELUS:
            return "relu"
        if node.op == "call_function" and target in ADDS:
            return "add"
        stack = node.meta.get("nn_module_stack") or {}
        where = f" in {next(reversed(stack))}" if stack else ""  # the innermost module that calls it
        raise Unsupported(
            f"interval propagation: operation {node.op} {getattr(target, '__name__', target)}{where} "
            f"is not supported ({SUPPORTED})"
        )

    def _apply(self, node: fx.Node) -> Callable[[Tensor], Tensor]:
        """The node as a function of its (first) interval input, the other arguments fixed."""
        if node.op == "call_module":
            return self.modules[node.target]
        rest = [self._arg(a) for a in node.args[1:]]
        kwargs = {k: self._arg(v) for k, v in node.kwargs.items()}
        if node.op == "call_method":
            return lambda z: getattr(z, str(node.target))(*rest, **kwargs)
        target = cast(Callable[..., Tensor], node.target)
        return lambda z: target(z, *rest, **kwargs)

    def _eval(self, node: fx.Node):
        kind = self._kind(node)
        x = self._arg(node.args[0])
        if kind == "query":
            return self._apply(node)(x.lo)
        if kind == "reshape":
            f = self._apply(node)
            return Interval(f(x.lo), f(x.hi))
        if kind == "relu":
            return Interval(x.lo.clamp_min(0), x.hi.clamp_min(0))
        if kind == "maxpool":
            pool = self.modules[node.target]
            return Interval(pool(x.lo), pool(x.hi))
        if kind == "add":
            y = self._arg(node.args[1])
            if isinstance(x, Interval) and isinstance(y, Interval):
                return x + y
            interval, constant = (x, y) if isinstance(x, Interval) else (y, x)
            return Interval(interval.lo + constant, interval.hi + constant)
        module = self.modules[node.target]  # affine
        _, absolute = _linear_parts(module)
        return Interval.around(module(x.mid), absolute(x.rad))

    # ---- backward ------------------------------------------------------------------------
    def _backward(self) -> None:
        out = self.values[self.output.name]
        self.adjoints[self.output.name] = Interval(torch.ones_like(out.lo), torch.ones_like(out.lo))
        for node in reversed(list(self.graph.graph.nodes)):
            adjoint = self.adjoints.get(node.name)
            if adjoint is None or node.op in ("placeholder", "output"):
                continue
            for source, contribution in self._pull(node, adjoint):
                previous = self.adjoints.get(source.name)
                self.adjoints[source.name] = contribution if previous is None else previous + contribution

    def _pull(self, node: fx.Node, adjoint: Interval) -> list[tuple[Any, Interval]]:
        """Each interval input of `node` with its share of the adjoint."""
        kind = self._kind(node)
        source: Any = node.args[0]
        x: Any = self.values[source.name] if isinstance(source, fx.Node) else None
        if kind == "add":
            return [
                (a, adjoint)
                for a in node.args[:2]
                if isinstance(a, fx.Node) and isinstance(self.values[a.name], Interval)
            ]
        if kind == "relu":
            d = Interval((x.lo > 0).double(), (x.hi > 0).double())
            return [(source, _times(adjoint, d))]
        if kind == "maxpool":
            return [(source, _maxpool_adjoint(self.modules[node.target], x, adjoint))]
        if kind == "reshape":
            f = self._apply(node)
            return [(source, Interval(_transpose(f, x.lo, adjoint.lo), _transpose(f, x.lo, adjoint.hi)))]
        linear, absolute = _linear_parts(self.modules[node.target])
        mid, rad = _transpose(linear, x.lo, adjoint.mid), _transpose(absolute, x.lo, adjoint.rad)
        return [(source, Interval.around(mid, rad))]


def _times(a: Interval, b: Interval) -> Interval:
    products = torch.stack([a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi])
    return Interval(products.min(0).values, products.max(0).values)


def _maxpool_adjoint(pool: nn.MaxPool2d, x: Interval, adjoint: Interval) -> Interval:
    """Each window's adjoint goes to the element that is its maximum. An element that can be
    the maximum gets the window's adjoint interval if it is the only candidate, else its hull with 0."""
    size = x.lo.shape[-2:]
    k, s, p = (nn.modules.utils._pair(v) for v in (pool.kernel_size, pool.stride or pool.kernel_size, pool.padding))
    pad = (p[1], p[1], p[0], p[0])
    n, c = x.lo.shape[:2]

    def windows(t: Tensor, fill: float) -> Tensor:  # (N, C, k·k, L)
        t = F.pad(t, pad, value=fill)
        return F.unfold(t.reshape(n * c, 1, *t.shape[-2:]), k, stride=s).reshape(n, c, k[0] * k[1], -1)

    lo, hi = windows(x.lo, -torch.inf), windows(x.hi, -torch.inf)
    candidate = hi >= lo.max(2, keepdim=True).values
    only = candidate.sum(2, keepdim=True) == 1
    a_lo, a_hi = adjoint.lo.reshape(n, c, 1, -1), adjoint.hi.reshape(n, c, 1, -1)
    share_lo = torch.where(candidate, torch.where(only, a_lo, a_lo.clamp_max(0)), 0.0)
    share_hi = torch.where(candidate, torch.where(only, a_hi, a_hi.clamp_min(0)), 0.0)
    padded = (size[0] + 2 * p[0], size[1] + 2 * p[1])

    def fold(t: Tensor) -> Tensor:
        t = F.fold(t.reshape(n * c, k[0] * k[1], -1), padded, k, stride=s).reshape(n, c, *padded)
        return t[..., p[0] : p[0] + size[0], p[1] : p[1] + size[1]]

    return Interval(fold(share_lo), fold(share_hi))


def layer_nodes(graph: fx.GraphModule, names: list[str]) -> dict[str, fx.Node]:
    """The node that calls each named layer (each must be called exactly once)."""
    found: dict[str, list[fx.Node]] = {name: [] for name in names}
    for node in graph.graph.nodes:
        if node.op == "call_module" and node.target in found:
            found[node.target].append(node)
    for name, nodes in found.items():
        if len(nodes) != 1:
            raise Unsupported(f"interval propagation: layer {name} is called {len(nodes)} times; expected once")
    return {name: nodes[0] for name, nodes in found.items()}
