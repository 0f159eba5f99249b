"""Interval-adjoint significance of neurons and channels.

The box of all inputs the model sees (per-feature range over the training split) is pushed
through the network with interval arithmetic, and interval adjoints of the sum of the outputs
are pulled back (`prunebench.pruning.interval`). A unit whose pre-activation can vary widely and whose
adjoint can be large may change the output a lot, so its significance is
S = width of its pre-activation interval × max |adjoint| over its adjoint interval; for a conv
channel, summed over its positions. It follows the geometric retention schedule by default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor, fx, nn

from prunebench.allowed import Check, boolean
from prunebench.errors import Unsupported
from prunebench.pruning import interval
from prunebench.pruning.interval import Interval, Propagation
from prunebench.pruning.methods.base import ChannelKnobs, Context, Method, Scored, knob
from prunebench.pruning.methods.registry import register
from prunebench.training.models import Layers

PERCENTILES = Check(
    lambda v: (
        isinstance(v, (list, tuple))
        and len(v) == 2
        and all(isinstance(p, (int, float)) and not isinstance(p, bool) for p in v)
        and 0 <= v[0] < v[1] <= 100
    ),
    "two percentiles [low, high] with 0 ≤ low < high ≤ 100",
)
# what may lie between a layer and the Linear layer that reads its units, for bias compensation:
# operations that keep each channel's values apart (unit j of the layer feeds inputs j·k … j·k + k − 1)
PER_CHANNEL_MODULES = (
    nn.modules.batchnorm._BatchNorm,
    nn.ReLU,
    nn.Dropout,
    nn.Identity,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.Flatten,
)
PER_CHANNEL_OPS = {"relu", "flatten", "view", "reshape"}


@dataclass
class Feed:
    """Where a layer's units go: the Linear layer reading them and the mid-range of its inputs."""

    consumer: str
    inputs_mid: Tensor  # (in_features,)


def input_box(batches, percentiles: tuple[float, float]) -> Interval:
    """Per-feature [low, high] percentiles of every input tensor of the training split
    (nearest rank; [0, 100] is the exact minimum and maximum, taken batch by batch), shaped (1, *input)."""
    if tuple(percentiles) == (0, 100):
        lo: Tensor | None = None
        hi: Tensor | None = None
        for x, _ in batches:
            x = x.double()
            lo = x.amin(0) if lo is None else torch.minimum(lo, x.amin(0))
            hi = x.amax(0) if hi is None else torch.maximum(hi, x.amax(0))
        assert lo is not None and hi is not None, "the training split has examples"
        return Interval(lo.unsqueeze(0), hi.unsqueeze(0))
    ranked = torch.cat([x.double() for x, _ in batches]).sort(0).values
    lo, hi = (ranked[round(p / 100 * (len(ranked) - 1))] for p in percentiles)
    return Interval(lo.unsqueeze(0), hi.unsqueeze(0))


def significance(found: Propagation, node: fx.Node) -> Tensor:
    """Per output channel: Σ over positions of width × max |adjoint|."""
    s = found.values[node.name].width * found.adjoints[node.name].magnitude
    return s.sum(dim=[0, *range(2, s.dim())])


def feed(graph: fx.GraphModule, node: fx.Node, found: Propagation) -> Feed | None:
    """The Linear layer reached from `node` through per-channel operations only, if any."""
    modules = dict(graph.named_modules())
    while len(node.users) == 1:
        node = next(iter(node.users))
        if node.op == "call_module" and isinstance(modules[node.target], nn.Linear):
            return Feed(str(node.target), found.values[cast(fx.Node, node.args[0]).name].mid.flatten())
        passes = (
            node.op == "call_module"
            and isinstance(modules[node.target], PER_CHANNEL_MODULES)
            or node.op in ("call_method", "call_function")
            and getattr(node.target, "__name__", node.target) in PER_CHANNEL_OPS
        )
        if not passes:
            return None
    return None


@register("interval_adjoint")
class IntervalAdjoint(Method):
    unit = "channel"
    schedule = "retention"
    kinds = ("channel",)  # hidden neurons and conv channels: interval rules cover no attention

    @dataclass(frozen=True)
    class Knobs(ChannelKnobs):
        box: tuple[float, float] = knob((0, 100), PERCENTILES)  # input box: these percentiles of each input feature
        bias_compensation: bool = knob(False, boolean())  # fold a removed unit's mid-range contribution into next bias

    def refuses(self, model: nn.Module, ctx: Context) -> str | None:
        """Interval propagation knows a closed set of operations: try it on a point box."""
        point = torch.zeros(1, *ctx.input_shape, dtype=torch.float64, device=ctx.device)
        try:
            Propagation(interval.trace(model), Interval(point, point))
        except Unsupported as error:
            return str(error)
        return None

    def score(self, model: nn.Module, layers: Layers, ctx: Context) -> Scored:
        """Significance of every unit; the state is where each layer's units feed (for `adjust`)."""
        box = input_box(ctx.batches(), self.knobs.box)
        graph = interval.trace(model)
        found = Propagation(graph, Interval(box.lo.to(ctx.device), box.hi.to(ctx.device)))
        nodes = interval.layer_nodes(graph, list(layers))
        feeds = {name: f for name, node in nodes.items() if (f := feed(graph, node, found)) is not None}
        return Scored({name: significance(found, node).float() for name, node in nodes.items()}, state=feeds)

    @torch.no_grad()
    def adjust(
        self, model: nn.Module, layers: Layers, keep: dict[str, Tensor], ctx: Context, scored: Scored
    ) -> dict[str, float]:
        """Bias compensation: consumer.bias += W[:, inputs of unit j] · mid-range of those inputs,
        for every removed unit j, so that the removed unit's average contribution stays."""
        if not self.knobs.bias_compensation:
            return {}
        modules = dict(model.named_modules())
        feeds: dict[str, Feed] = scored.state
        for name, kept in keep.items():
            feed_ = feeds.get(name)
            consumer = modules[feed_.consumer] if feed_ else None
            if consumer is None or consumer.bias is None or not (~kept).any():
                continue
            per_unit = consumer.in_features // len(kept)
            inputs = (~kept).repeat_interleave(per_unit).to(consumer.weight.device)
            assert feed_ is not None
            mid = feed_.inputs_mid.to(consumer.weight)
            consumer.bias += consumer.weight[:, inputs] @ mid[inputs]
        return {}
