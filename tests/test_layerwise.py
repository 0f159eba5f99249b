"""Issue 4: LAMP, global magnitude, sensitivity sweep and sensitivity-guided allocation."""

import pytest
import torch

from prunebench.pruning import coupling
from prunebench.pruning.allocation import allocate, curves_of
from prunebench.pruning.criteria import lamp
from prunebench.pruning.steps import prune_step
from prunebench.stages.sensitivity import sweep
from prunebench.training import models
from prunebench.training.batches import batches

from helpers import context, fine_tune_keeping_masks, make_method, prunable_zero_fraction, small_cnn


def test_lamp_scores_equal_the_formula_on_a_hand_computed_tensor():
    weight = torch.tensor([[1.0, -2.0], [2.0, 3.0]])  # squares 1, 4, 4, 9 (a tie at 4)
    # w² / sum of w² over weights at least as large: 1/18, 4/17, 4/17, 9/9
    expected = torch.tensor([[1 / 18, 4 / 17], [4 / 17, 1.0]])
    assert torch.allclose(lamp(weight), expected)


def test_lamp_ranks_globally_but_keeps_every_layers_largest_weight():
    model = small_cnn()
    masks = prune_step(model, make_method("lamp", {}), 0.0, 0.9, context()).masks
    for name, layer in models.prunable_layers(model).items():
        largest = layer.weight.detach().abs().argmax()
        assert masks[f"{name}.weight"].flatten()[largest]  # its LAMP score is 1, the maximum


@pytest.mark.parametrize("ratio", [0.3, 0.7])
def test_magnitude_global_removes_exactly_the_requested_fraction_with_one_threshold(ratio):
    model = small_cnn()
    before = {n: m.weight.detach().abs().clone() for n, m in models.prunable_layers(model).items()}
    masks = prune_step(model, make_method("magnitude_global", {}), 0.0, ratio, context()).masks
    total = sum(w.numel() for w in before.values())
    removed = sum(int((~m).sum()) for m in masks.values())
    assert removed == round(ratio * total)
    pruned = torch.cat([before[n][~masks[f"{n}.weight"]] for n in before])
    kept = torch.cat([before[n][masks[f"{n}.weight"]] for n in before])
    assert pruned.max() <= kept.min()
    assert len({round(float((~m).float().mean()), 2) for m in masks.values()}) > 1  # layers differ


def test_allocation_hits_the_overall_ratio_and_spends_it_where_the_drop_is_smallest():
    curves = {"flat": [(0.0, 0.9), (0.5, 0.9), (0.9, 0.85)], "steep": [(0.0, 0.9), (0.5, 0.5), (0.9, 0.1)]}
    sizes = {"flat": 1000, "steep": 3000}
    for target in (0.1, 0.3, 0.5, 0.6):
        ratios = allocate(curves, sizes, target)
        achieved = sum(ratios[n] * sizes[n] for n in sizes) / sum(sizes.values())
        assert achieved == pytest.approx(target, abs=0.01)
        assert ratios["flat"] >= ratios["steep"]
    assert allocate(curves, sizes, 0.2)["flat"] == pytest.approx(0.8)  # all of it on the flat layer first
    with pytest.raises(ValueError, match="sensitivity.ratios"):
        allocate(curves, sizes, 0.95)


@pytest.fixture(scope="module")
def swept(splits, default_params):
    cpu = torch.device("cpu")
    model = small_cnn()
    val = batches(splits.val, splits, default_params.data, cpu)
    return model, sweep({0: model}, val, [0.25, 0.5, 0.75], cpu, (1, 8, 8))


def test_sweep_covers_every_layer_and_group_and_leaves_the_model_unchanged(swept):
    model, rows = swept
    assert torch.equal(model.stem[0].weight, small_cnn().stem[0].weight)
    unstructured = curves_of(rows, "unstructured")
    structured = curves_of(rows, "structured")
    assert list(unstructured) == list(models.prunable_layers(model))
    assert "stem.0+block.conv2" in structured  # the residual addition couples them
    assert sorted(structured) == sorted(g.label for g in coupling.groups(model, (1, 8, 8)))
    for curve in [*unstructured.values(), *structured.values()]:
        assert [r for r, _ in curve] == [0.0, 0.25, 0.5, 0.75]
        assert len({a for r, a in curve if r == 0.0}) == 1


@pytest.mark.parametrize("ratio", [0.3, 0.6])
def test_sensitivity_guided_methods_reach_the_overall_ratio(swept, ratio):
    model, rows = swept
    ctx = context()
    ctx.sensitivity = [r | {"seed": 0} for r in rows]
    pruned = prune_step(small_cnn(), make_method("sensitivity_unstructured", {}), 0.0, ratio, ctx).model
    assert prunable_zero_fraction(pruned) == pytest.approx(ratio, abs=0.01)
    groups = [list(g.members) for g in coupling.groups(model, (1, 8, 8))]
    channels = {g[0]: models.prunable_layers(model)[g[0]].weight.shape[0] for g in groups}
    structured = make_method("sensitivity_structured", {})
    allocation = structured.layer_ratios(models.prunable_layers(model), ratio, ctx)
    assert sum(allocation[g] * c for g, c in channels.items()) / sum(channels.values()) == pytest.approx(
        ratio, abs=0.01
    )
    pruned = prune_step(small_cnn(), structured, 0.0, ratio, ctx).model
    kept = sum(models.prunable_layers(pruned)[g].weight.shape[0] for g in channels)
    # physical removal keeps whole channels: within one channel per group of the allocation
    assert abs((1 - kept / sum(channels.values())) - ratio) <= len(channels) / sum(channels.values())


@pytest.mark.parametrize("name", ["magnitude_global", "lamp", "sensitivity_unstructured"])
def test_pruned_weights_stay_zero_after_fine_tuning(swept, splits, default_params, name):
    _, rows = swept
    ctx = context()
    ctx.sensitivity = rows
    pruned = prune_step(small_cnn(), make_method(name, {}), 0.0, 0.6, ctx)
    model, masks = pruned.model, pruned.masks
    fine_tune_keeping_masks(model, masks, splits, default_params)
    assert prunable_zero_fraction(model) == pytest.approx(0.6, abs=0.01)
    params = dict(model.named_parameters())
    assert all(torch.all(params[k][~m] == 0) for k, m in masks.items())
