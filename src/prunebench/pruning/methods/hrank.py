"""HRank (Lin et al., CVPR 2020): a unit whose feature maps have a high rank carries more
information, so its score is the mean rank of its feature map over the calibration examples; every
group loses the same fraction. A convolution channel's map is its H × W output, an attention
head's its tokens × head width output, taken where the unit leaves its layers (`coupling.Gate`:
after the BatchNorm that follows a convolution, before the activation; coupled layers average
their ranks). A unit whose output is a vector per example (an MLP's neuron, a transformer's
feature per token) has no map to rank and is kept whole, as HRank keeps a VGG's fully connected
layers; a model with no unit that has a map is refused."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice

import torch
from torch import Tensor, nn

from prunebench.allowed import integer
from prunebench.errors import Unsupported
from prunebench.pruning.coupling import Gate, gate_points, groups
from prunebench.pruning.hooks import Points, observed
from prunebench.pruning.methods.base import ChannelKnobs, Context, Method, Scored, knob
from prunebench.pruning.methods.registry import register
from prunebench.pruning.selection import member_scores
from prunebench.training.inputs import example
from prunebench.training.models import Layers


def feature_maps(gate: Gate, signal: Tensor, dim: int) -> Tensor | None:
    """[examples, units, rows, columns]: each unit's map per example, or None where it has none."""
    before, units, after = gate.layout
    if signal.dim() == 4 and dim == 1 and before == after == 1:
        return signal
    if signal.dim() == 3 and dim == 2 and after > 1:  # (batch, tokens, [before, heads, head width])
        n, tokens = signal.shape[:2]
        return signal.reshape(n, tokens, before, units, after).permute(0, 3, 1, 2, 4).reshape(n, units, tokens, -1)
    return None


NO_MAPS = "hrank ranks feature maps, and no unit of this model has one (its units give a vector per example)"


@register("hrank")
class HRank(Method):
    unit = "channel"
    kinds = ("channel", "head")

    @dataclass(frozen=True)
    class Knobs(ChannelKnobs):
        batches: int = knob(4, integer(1))  # calibration batches from the training split

    def refuses(self, model: nn.Module, ctx: Context) -> str | None:
        return None if self._mapped(model, ctx) else NO_MAPS

    def score(self, model: nn.Module, layers: Layers, ctx: Context) -> Scored:
        points = self._mapped(model, ctx)
        if not points:
            raise Unsupported(NO_MAPS)
        totals: dict[str, Tensor] = {}
        seen = {root: 0 for root in points}

        def rank(root: str, gate: Gate, signal: Tensor, dim: int) -> None:
            maps = feature_maps(gate, signal, dim)
            assert maps is not None, "only groups with maps are observed"
            ranks = torch.linalg.matrix_rank(maps.float()).double().sum(0).cpu()
            totals[root] = totals.get(root, 0) + ranks
            seen[root] += len(maps)

        model.eval()
        with observed(model, points, rank), torch.no_grad():
            for x, _ in islice(ctx.batches(), self.knobs.batches):
                model(x.to(ctx.device))
        means = {root: (total / seen[root]).float() for root, total in totals.items()}
        return Scored(member_scores(groups(model, ctx.input_shape), means))

    def _mapped(self, model: nn.Module, ctx: Context) -> Points:
        """The gate points of the groups whose units have feature maps at every one (one forward pass)."""
        points = gate_points(model, ctx.input_shape, self.kinds)
        without: set[str] = set()

        def check(root: str, gate: Gate, signal: Tensor, dim: int) -> None:
            if feature_maps(gate, signal, dim) is None:
                without.add(root)

        with observed(model, points, check), torch.no_grad():
            model.eval()(example(ctx.input_shape, 2, ctx.device))
        return {root: gates for root, gates in points.items() if root not in without}
