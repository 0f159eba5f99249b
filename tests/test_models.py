import torch
from torch import nn

from prunebench.training import models
from prunebench.training.models.cnn import ResidualBlock

from helpers import IMAGE_MODELS


def test_default_cnn_has_a_target_for_every_method_family():
    model = models.build(models.spec({"name": "cnn"}, 1, 10, 8))
    kinds = {type(m) for m in model.modules()}
    assert {nn.Conv2d, nn.BatchNorm2d, nn.Linear, ResidualBlock} <= kinds
    hidden_linear = [n for n, m in models.prunable_layers(model).items() if isinstance(m, nn.Linear)]
    assert hidden_linear == ["fc"]
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_output_layer_is_never_prunable():
    for name in IMAGE_MODELS:
        model = models.build(models.spec({"name": name}, 1, 10, 8))
        assert models.output_layer_name(model) not in models.prunable_layers(model)
        assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_mlp_matches_the_original_784_256_64_10_shape():
    model = models.build(models.spec({"name": "mlp"}, 1, 10, 28))
    assert [m.weight.shape[1] for m in model if isinstance(m, nn.Linear)] == [784, 256, 64]
