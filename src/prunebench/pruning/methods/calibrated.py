"""What Wanda and SparseGPT share: masks that come from calibrating each layer, in forward order,
on the inputs the already pruned layers before it produce (`pruning.rows.layer_by_layer`).

Their scores are |W|, what the report sees; the selection needs the model and the calibration
examples, which the scoring keeps as its state, and runs `calibrate` on a copy of the model once
per target (once in all for an N:M pattern, which ignores the target).
"""

from __future__ import annotations

import copy
from abc import abstractmethod

from torch import Tensor, nn

from prunebench.pruning import rows
from prunebench.pruning.criteria import weight_magnitude
from prunebench.pruning.methods.base import CalibratedKnobs, Context, Method, Scored
from prunebench.training.models import Layers, prunable_layers


class Calibrated(Method):
    unit = "weight"
    Knobs = CalibratedKnobs

    def refuses(self, model: nn.Module, ctx: Context) -> str | None:
        return rows.unsupported(prunable_layers(model))

    def score(self, model: nn.Module, layers: Layers, ctx: Context) -> Scored:
        batches = [x for x, _ in ctx.examples(self.knobs.calibration)]
        return Scored({name: weight_magnitude(m) for name, m in layers.items()}, state=(model, batches, {}))

    def weight_masks(self, layers: Layers, scored: Scored, target: float, ctx: Context) -> dict[str, Tensor] | None:
        model, batches, done = scored.state
        key = target if rows.n_m(self.knobs.pattern) is None else None
        if key not in done:
            done[key] = self.calibrate(copy.deepcopy(model), layers, batches, target, None)
        return done[key]

    @abstractmethod
    def calibrate(
        self, work: nn.Module, layers: Layers, batches: list[Tensor], target: float, masks: dict[str, Tensor] | None
    ) -> dict[str, Tensor]:
        """Prune `work`'s `layers` layer by layer to `target` (or to `masks`, where given) and
        return the keep-masks."""
