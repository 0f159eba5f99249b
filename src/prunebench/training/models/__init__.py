"""Model families: `model.name` in params.yaml → one record each (`family.Family`): its factory,
its pretrained weights and their preprocessing, its pruning hints. A family is one file here
that registers itself (`@register("name")`), and this package imports every module it holds;
`timm:<name>` names timm's models and `package.module:function` the user's own factory.

`build` gives the architecture a description names, freshly initialised; `adapt` puts
`transformer.MultiheadSelfAttention` in place of `nn.MultiheadAttention`, whose heads and width
cannot be pruned, so a built model and a loaded one have the same modules.
"""

from __future__ import annotations

from torch import nn

from prunebench.registry import import_all
from prunebench.training.models.family import (
    MODELS,
    SHAPE,
    Family,
    Hints,
    ModelError,
    WeightsError,
    arguments,
    family,
    hints_of,
    knobs,
    register,
    spec,
)
from prunebench.training.models.layers import (
    Layer,
    Layers,
    feature_dim,
    output_layer_name,
    output_units,
    prunable_layers,
    retie,
)
from prunebench.training.models.transformer import adapt

import_all(__name__)  # every family registers itself


def build(description: dict) -> nn.Module:
    """The architecture a description names, freshly initialised."""
    return adapt(family(description["name"]).create(description))


__all__ = [
    "MODELS",
    "SHAPE",
    "Family",
    "Hints",
    "Layer",
    "Layers",
    "ModelError",
    "WeightsError",
    "adapt",
    "arguments",
    "build",
    "family",
    "feature_dim",
    "hints_of",
    "knobs",
    "output_layer_name",
    "output_units",
    "prunable_layers",
    "register",
    "retie",
    "spec",
]
