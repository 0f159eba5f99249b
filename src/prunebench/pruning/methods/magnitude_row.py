"""Magnitude per output row, as the LLM papers prune: every row of every layer loses the same
fraction of its weights, the smallest |w| (or, with `pattern: 2:4` / `4:8`, the smallest M − N of
every M consecutive ones)."""

from __future__ import annotations

from torch import Tensor, nn

from prunebench.pruning import rows
from prunebench.pruning.criteria import weight_magnitude
from prunebench.pruning.methods.base import Context, Method, RowKnobs, Scored
from prunebench.pruning.methods.registry import register
from prunebench.training.models import Layers


@register("magnitude_row")
class RowMagnitude(Method):
    unit = "weight"
    Knobs = RowKnobs

    def score(self, model: nn.Module, layers: Layers, ctx: Context) -> Scored:
        return Scored({name: weight_magnitude(m) for name, m in layers.items()})

    def weight_masks(self, layers: Layers, scored: Scored, target: float, ctx: Context) -> dict[str, Tensor] | None:
        return {
            f"{name}.weight": rows.row_mask(rows.rows(scored.scores[name]), target, self.knobs.pattern).view_as(
                layer.weight
            )
            for name, layer in layers.items()
        }
