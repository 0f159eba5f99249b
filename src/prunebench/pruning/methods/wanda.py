"""Wanda (Sun et al., ICLR 2024): a weight's importance is |W_ij| · ‖X_j‖₂, its magnitude times
the norm of the input feature it multiplies over the calibration tokens; every output row loses
the same fraction (or keeps N of every M), chosen layer by layer on the inputs the already
pruned layers produce (`pruning.rows`). No weight is updated.

On a convolution the input features are its input channels × kernel positions (the patches it
reads), so a kernel weight fed by a strong input channel and position is kept over a larger one
fed by a weak one; the rows are output channels.
"""

from __future__ import annotations

from torch import Tensor, nn

from prunebench.pruning import rows
from prunebench.pruning.methods.calibrated import Calibrated
from prunebench.pruning.methods.registry import register
from prunebench.training.models import Layer, Layers


@register("wanda")
class Wanda(Calibrated):
    def calibrate(
        self, work: nn.Module, layers: Layers, batches: list[Tensor], target: float, masks: dict[str, Tensor] | None
    ) -> dict[str, Tensor]:
        def choose(name: str, layer: Layer, squares: Tensor, _count: int) -> Tensor:
            importance = rows.rows(layer.weight.detach().abs()) * squares.sqrt()
            return rows.row_mask(importance, target, self.knobs.pattern)

        return rows.layer_by_layer(work, layers, batches, rows.squares, choose)
