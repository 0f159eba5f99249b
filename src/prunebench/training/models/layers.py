"""Which layers pruning may touch: every Conv and Linear layer but the output layer and the ones
the model's family never prunes."""

from __future__ import annotations

from fnmatch import fnmatchcase

from torch import nn

from prunebench.training.models.family import hints_of

Layer = nn.Conv2d | nn.Linear  # what pruning prunes
Layers = dict[str, Layer]  # by name in the model


def prunable_layers(model: nn.Module) -> Layers:
    """Conv and Linear layers a method may prune: all of them but the output layer (the last one
    registered), which must keep one unit per class, and those its family's hints name."""
    never = hints_of(model).never_pruned
    layers: Layers = {
        n: m
        for n, m in model.named_modules()
        if isinstance(m, (nn.Conv2d, nn.Linear)) and not any(fnmatchcase(n, p) for p in never)
    }
    layers.pop(output_layer_name(model), None)
    return layers


def output_units(module: nn.Module) -> int:
    """How many channels or features a layer (Conv, Linear, BatchNorm, LayerNorm) puts out."""
    if isinstance(module, nn.LayerNorm):
        return module.normalized_shape[-1]
    return next(getattr(module, a) for a in ("num_features", "out_channels", "out_features") if hasattr(module, a))


def output_layer_name(model: nn.Module) -> str:
    return [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))][-1]


def feature_dim(module: nn.Module, output_dims: int) -> int:
    """Which dimension of a module's output holds its channels or features: 1 for convolutions and
    BatchNorm over images (N, C, H, W), the last one for Linear and LayerNorm outputs, which may
    be (batch, features) or (batch, tokens, features)."""
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.modules.batchnorm._BatchNorm)):
        return 1
    return output_dims - 1


def retie(model: nn.Module) -> nn.Module:
    """Tie again the weights a model ties (a Hugging Face LM's output layer and token embedding),
    after surgery or a rebuild gave each its own tensor; a model that ties nothing is unchanged."""
    tie = getattr(model, "tie_weights", None)
    if callable(tie):
        tie()
    return model
