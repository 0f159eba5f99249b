"""Layer-wise magnitude pruning: in every layer, the weights with the smallest |w| go."""

from __future__ import annotations

from prunebench.methods.base import Method


class Magnitude(Method):
    unit = "weight"

    def scores(self, model, layers, ctx):
        return {name: m.weight.detach().abs() for name, m in layers.items()}
