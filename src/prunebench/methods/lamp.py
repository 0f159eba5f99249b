"""LAMP (Lee et al., ICLR 2021): layer-adaptive magnitude scores, then one global threshold."""

from __future__ import annotations

from prunebench.criteria import lamp
from prunebench.methods.base import Method


class Lamp(Method):
    unit = "weight"
    scope = "global"

    def scores(self, model, layers, ctx):
        return {name: lamp(m.weight) for name, m in layers.items()}
