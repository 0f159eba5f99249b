"""Sensitivity-guided layer-wise pruning: per-layer ratios allocated from the sensitivity
stage's curves so that the overall fraction removed equals `ratio`, spending the budget where
the measured accuracy drop per unit removed is smallest (`prunebench.sensitivity.allocate`)."""

from __future__ import annotations

from prunebench.criteria import filter_l1, weight_magnitude
from prunebench.methods.base import Method


class SensitivityUnstructured(Method):
    """Magnitude pruning inside each layer, at the layer's allocated ratio."""

    unit = "weight"

    def scores(self, model, layers, ctx):
        return {name: weight_magnitude(m) for name, m in layers.items()}

    def layer_ratios(self, model, layers, target, ctx):
        from prunebench.sensitivity import allocate, curves_of

        return allocate(curves_of(ctx.sensitivity, "unstructured"),
                        {name: m.weight.numel() for name, m in layers.items()}, target)


class SensitivityStructured(Method):
    """L1 filter pruning of each channel group at its allocated ratio, physically removed."""

    unit = "channel"

    def scores(self, model, layers, ctx):
        return {name: filter_l1(m) for name, m in layers.items()}

    def layer_ratios(self, model, layers, target, ctx):
        from prunebench.sensitivity import allocate, curves_of

        curves = curves_of(ctx.sensitivity, "structured")
        sizes = {label: layers[label.split("+")[0]].weight.shape[0] for label in curves}
        return {label.split("+")[0]: r for label, r in allocate(curves, sizes, target).items()}
