"""Equal cost: the cost of a selection is exact, and every method meets a MACs and a params
target on the default CNN and on resnet20, within 1 % or one unit of its granularity."""

from __future__ import annotations

import copy

import pytest
import torch

from prunebench.pruning import coupling, surgery
from prunebench.pruning.budget import ChannelCost, WeightCost, search
from prunebench.pruning.methods import METHODS
from prunebench.pruning.units import units_of
from prunebench.training import measure, models

from helpers import context, make_method

SHAPES = {"cnn": (1, 8, 8), "resnet20": (3, 16, 16)}
KNOBS = {
    "hessian_merge": {"k": 2, "products": 5, "batches": 1},
    "taylor": {"order": 1, "batches": 1},
    "slimming": {},
    "interval_adjoint": {},
}


def build(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    shape = SHAPES.get(name, (3, 8, 8))
    return models.build(models.spec({"name": name}, shape[0], 10, shape[1])).eval()


@pytest.mark.parametrize("name", ["cnn", "resnet20", "vgg11_bn", "mlp", "mobilenet_v3_large", "resnet18"])
def test_the_cost_of_channel_counts_is_what_pruning_measures(name):
    model = build(name)
    shape = SHAPES.get(name, (3, 8, 8))
    cost = ChannelCost(model, shape)
    generator = torch.Generator().manual_seed(1)
    for _ in range(3):  # random counts for every group at once: the exponents combine
        counts = {root: int(torch.randint(1, size + 1, (), generator=generator)) for root, size in cost.sizes.items()}
        pruned = surgery.remove(
            copy.deepcopy(model), {root: list(range(cost.sizes[root] - k)) for root, k in counts.items()}, shape
        )
        totals, _ = measure.costs(pruned, shape)
        predicted = cost(counts)
        assert predicted.macs == pytest.approx(totals["macs"], rel=1e-9)
        assert predicted.params == pytest.approx(totals["params"], rel=1e-9)
        assert predicted.units == sum(coupling.group_sizes(pruned, shape).values())


def test_the_cost_of_weight_masks_is_what_pruning_measures():
    model = build("cnn")
    cost = WeightCost(model, SHAPES["cnn"])
    method = make_method("magnitude_global", {})
    scored = method.score(model, models.prunable_layers(model), context())
    masks = units_of(method).selector(model, scored, context(), {})(0.7)
    pruned = units_of(method).apply(copy.deepcopy(model), scored, masks, context()).model
    totals, _ = measure.costs(pruned, SHAPES["cnn"])
    assert cost(masks).macs == pytest.approx(totals["macs_sparse"], rel=1e-9)
    assert cost(masks).params == totals["nonzeros"]
    assert cost(masks).units == sum(int(m.sum()) for m in masks.values())


def sensitivity_rows(model: torch.nn.Module, shape: tuple[int, ...]) -> list[dict]:
    """Made-up sweep results: every layer and group loses accuracy in proportion to the ratio,
    each at its own rate (the allocation is tested on its own in test_layerwise.py)."""
    rows = []
    layers = list(models.prunable_layers(model))
    groups = [g.label for g in coupling.groups(model, shape)]
    for kind, names in (("unstructured", layers), ("structured", groups)):
        for i, name in enumerate(names):
            rows += [
                {"seed": 0, "layer": name, "kind": kind, "ratio": r, "accuracy": 0.9 - r * (0.1 + 0.1 * i)}
                for r in (0.0, 0.5, 0.9, 0.99)
            ]
    return rows


@pytest.mark.parametrize("budget", ["macs", "params"])
@pytest.mark.parametrize("model_name", ["cnn", "resnet20"])
@pytest.mark.parametrize("method_name", [m for m in METHODS])
def test_every_method_meets_a_target_within_one_percent_or_one_unit(method_name, model_name, budget):
    model, shape = build(model_name), SHAPES[model_name]
    method = make_method(method_name, KNOBS.get(method_name, {}))
    batch = [(torch.randn(8, *shape), torch.randint(0, 10, (8,)))]
    ctx = context(batch, input_shape=shape)
    ctx.sensitivity = sensitivity_rows(model, shape)
    cost = ChannelCost(model, shape) if method.unit == "channel" else WeightCost(model, shape)
    scored = method.score(model, models.prunable_layers(model), ctx)
    select = units_of(method).selector(model, scored, ctx, {})
    kept = lambda selection: cost.kept(selection, budget)  # noqa: E731
    target = 0.25 if method_name != "intra_kernel" else 0.6  # patterns in 3×3 kernels only: 4× is out of its reach
    units = units_of(method).count(model, ctx)
    choice = search(select, kept, target, units)
    assert choice.reached and choice.kept <= target
    if choice.kept < target * 0.99:  # not within 1 %: then one unit less would miss the target
        assert kept(select(max(0.0, choice.fraction - 1 / units))) > target
    pruned = units_of(method).apply(copy.deepcopy(model), scored, choice.selection, ctx).model
    totals, _ = measure.costs(pruned, shape)
    base, _ = measure.costs(model, shape)
    params = "nonzeros" if method.unit == "weight" else "params"  # an untrained BatchNorm's biases are exactly 0
    measured = {"macs": totals["macs_sparse"] / base["macs_sparse"], "params": totals[params] / base[params]}
    assert measured[budget] == pytest.approx(choice.kept, rel=1e-6)  # what the search predicted is what pruning did


def test_a_target_out_of_reach_is_marked_with_the_furthest_the_method_goes():
    model, shape = build("cnn"), SHAPES["cnn"]
    method = make_method("intra_kernel", {})  # keeps the linear layer dense and one weight per kernel at most
    cost = WeightCost(model, shape)
    scored = method.score(model, models.prunable_layers(model), context())
    choice = search(
        units_of(method).selector(model, scored, context(), {}),
        lambda s: cost.kept(s, "macs"),
        0.01,
        units_of(method).count(model, context()),
    )
    assert not choice.reached and choice.fraction == 1.0 and 0.01 < choice.kept < 0.2
    channels = make_method("l1_channel_global", {"max_ratio": 0.5})  # no layer may lose more than half
    cost = ChannelCost(model, shape)
    scored = channels.score(model, models.prunable_layers(model), context())
    choice = search(
        units_of(channels).selector(model, scored, context(), {}),
        lambda s: cost.kept(s, "units"),
        0.3,
        units_of(channels).count(model, context()),
    )
    assert not choice.reached and choice.kept == pytest.approx(0.5, abs=0.02)  # as far as max_ratio lets it go
