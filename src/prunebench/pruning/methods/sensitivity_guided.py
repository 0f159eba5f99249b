"""Sensitivity-guided layer-wise pruning: per-layer ratios allocated from the sensitivity
stage's curves so that the overall fraction removed equals `ratio`, spending the budget where
the measured accuracy drop per unit removed is smallest (`prunebench.pruning.allocation.allocate`)."""

from __future__ import annotations

from prunebench.pruning.allocation import allocate, curves_of
from prunebench.pruning.methods.base import Context
from prunebench.pruning.methods.l1_channel import L1Channel
from prunebench.pruning.methods.magnitude import Magnitude
from prunebench.pruning.methods.registry import register
from prunebench.training.models import Layers


@register("sensitivity_unstructured")
class SensitivityUnstructured(Magnitude):
    """Magnitude pruning inside each layer, at the layer's allocated ratio."""

    def layer_ratios(self, layers: Layers, target: float, ctx: Context) -> dict[str, float] | None:
        return allocate(
            curves_of(ctx.sensitivity, "unstructured"), {name: m.weight.numel() for name, m in layers.items()}, target
        )


@register("sensitivity_structured")
class SensitivityStructured(L1Channel):
    """L1 filter pruning of each channel group at its allocated ratio, physically removed."""

    def layer_ratios(self, layers: Layers, target: float, ctx: Context) -> dict[str, float] | None:
        curves = curves_of(ctx.sensitivity, "structured")
        sizes = {label: layers[label.split("+")[0]].weight.shape[0] for label in curves}
        return {label.split("+")[0]: r for label, r in allocate(curves, sizes, target).items()}
