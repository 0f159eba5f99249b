"""Issue 21: every graph prunes, or says precisely what it will not touch. Models written as other
code bases write them (tests/foreign_models.py): a channel group torch-pruning cannot cut is
frozen and named, and every default method prunes everything else."""

import copy

import foreign_models
import pytest
import torch
import yaml

from prunebench.errors import Unsupported
from prunebench.pruning import coupling
from prunebench.pruning.steps import prune_step
from prunebench.training import measure, models

from helpers import ROOT, context, make_method

SHAPE = (1, 8, 8)
METHODS = yaml.safe_load((ROOT / "params.yaml").read_text())["methods"]
MODELS = ["pad_resnet", "conv_resnet", "two_branches", "channel_split"]


def build(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = getattr(foreign_models, name)()
    model.train()(torch.randn(16, *SHAPE))  # BatchNorm statistics of its own
    return model.eval()


def test_groups_torch_pruning_gets_wrong_are_frozen_and_named():
    frozen = {name: coupling.frozen_groups(build(name), SHAPE) for name in MODELS}
    assert [group.members for group in frozen["pad_resnet"]] == [("stem.0", "layer1.conv2.0", "layer2.conv2.0")]
    assert str(frozen["pad_resnet"][0]) == (
        "stem.0+layer1.conv2.0+layer2.conv2.0 (3 layers): channel padding (F.pad) in a shortcut couples layers "
        "of 8 and 16 channels"
    )
    assert [group.members for group in frozen["channel_split"]] == [("stem.0",)]
    assert "removing channel 0 breaks the model (RuntimeError: split_with_sizes" in frozen["channel_split"][0].reason
    assert frozen["conv_resnet"] == frozen["two_branches"] == []
    # the same network with 1×1-conv shortcuts still prunes its residual groups
    conv = [g.members for g in coupling.groups(build("conv_resnet"), SHAPE)]
    assert ("stem.0", "layer1.conv2.0") in conv and ("layer2.conv2.0", "layer2.project.0") in conv
    pad = [g.members for g in coupling.groups(build("pad_resnet"), SHAPE)]
    assert pad == [("layer1.conv1.0",), ("layer2.conv1.0",)]


def sensitivity_rows(model: torch.nn.Module) -> list[dict]:
    return [
        {"seed": 0, "layer": layer, "kind": kind, "ratio": r, "accuracy": 0.9 - r / 2}
        for kind in ("unstructured", "structured")
        for layer in models.prunable_layers(model)
        for r in (0.0, 0.5, 0.9, 0.99)
    ]


@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("key", list(METHODS))
def test_every_default_method_prunes_every_graph_around_its_frozen_groups(model_name, key):
    model = build(model_name)
    entry = METHODS[key] or {}
    knobs = {k: v for k, v in entry.items() if k not in ("schedule", "fidelity_channels")}
    if key == "hessian_merge":  # the graph is what is tested here, not the eigen-solver: fewer products
        knobs |= {"k": 2, "products": 20}
    method = make_method(entry.get("method", key), knobs)
    ctx = context([(torch.randn(8, *SHAPE), torch.randint(0, 10, (8,)))])
    ctx.sensitivity = sensitivity_rows(model)
    frozen = {name for group in coupling.frozen_groups(model, SHAPE) for name in group.members}
    before = {name: layer.weight.detach().clone() for name, layer in models.prunable_layers(model).items()}
    try:
        pruned = prune_step(copy.deepcopy(model), method, 0.0, 0.5, ctx)
    except Unsupported as refused:  # interval propagation knows a closed set of operations, not pad, cat, split
        assert key == "interval_adjoint" and model_name != "conv_resnet", refused
        assert "interval propagation: operation" in str(refused) and "\n" not in str(refused)
        return
    assert pruned.model(torch.randn(2, *SHAPE)).shape == (2, 10)
    assert measure.costs(pruned.model, SHAPE)[0]["macs_sparse"] < measure.costs(model, SHAPE)[0]["macs_sparse"]
    after = models.prunable_layers(pruned.model)
    if method.unit == "channel":  # a frozen group keeps every output channel
        for name in frozen:
            assert models.output_units(after[name]) == models.output_units(dict(model.named_modules())[name])
    elif key in ("random", "magnitude", "kernel", "intra_kernel"):  # the same fraction of every layer: weights
        for name in frozen:  # never depend on channel groups, and frozen layers lose theirs like any other
            assert int((after[name].weight == 0).sum()) > int((before[name] == 0).sum())
