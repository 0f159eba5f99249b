"""Wanda (Sun et al., ICLR 2024): a weight's importance is |W_ij| · ‖X_j‖₂, its magnitude times
the norm of the input feature it multiplies over the calibration tokens; every output row loses
the same fraction (or keeps N of every M), chosen layer by layer on the inputs the already
pruned layers produce (`pruning.rows`). No weight is updated.

On a convolution the input features are its input channels × kernel positions (the patches it
reads), so a kernel weight fed by a strong input channel and position is kept over a larger one
fed by a weak one; the rows are output channels.
"""

from __future__ import annotations

import copy

from torch import Tensor, nn

from prunebench.pruning import rows
from prunebench.pruning.criteria import weight_magnitude
from prunebench.pruning.methods.base import CalibratedKnobs, Context, Method, Scored
from prunebench.pruning.methods.registry import register
from prunebench.training.models import Layer, Layers


@register("wanda")
class Wanda(Method):
    unit = "weight"
    Knobs = CalibratedKnobs

    def score(self, model: nn.Module, layers: Layers, ctx: Context) -> Scored:
        """|W| (the scores the report sees); the selection needs the model and the calibration
        examples, kept as the state, and each target's masks once computed."""
        batches = rows.calibration_inputs(ctx, self.knobs.calibration)
        return Scored({name: weight_magnitude(m) for name, m in layers.items()}, state=(model, batches, {}))

    def weight_masks(self, layers: Layers, scored: Scored, target: float, ctx: Context) -> dict[str, Tensor] | None:
        model, batches, done = scored.state
        key = target if rows.n_m(self.knobs.pattern) is None else None  # an N:M pattern ignores the target
        if key not in done:

            def choose(name: str, layer: Layer, squares: Tensor, _count: int) -> Tensor:
                importance = rows.rows(layer.weight.detach().abs()) * squares.sqrt()
                return rows.row_mask(importance, target, self.knobs.pattern)

            done[key] = rows.layer_by_layer(copy.deepcopy(model), layers, batches, rows.squares, choose)
        return done[key]
