from dataclasses import replace

import pytest
import torch

from prunebench.pruning.budget import ChannelCost, WeightCost
from prunebench.pruning.selection import WeightRanking, mask_keeper, select_weights
from prunebench.pruning.steps import prune_in_steps, prune_step
from prunebench.training import models
from prunebench.training.batches import batches
from prunebench.training.loops import fit

from helpers import context, make_method, prunable_zero_fraction, small_cnn


@pytest.mark.parametrize("scope", ["layer", "global"])
@pytest.mark.parametrize("ratio", [0.0, 0.3, 0.5, 0.9])
def test_select_weights_removes_exactly_the_requested_fraction(scope, ratio):
    model = small_cnn()
    layers = models.prunable_layers(model)
    scores = {n: m.weight.abs() for n, m in layers.items()}
    masks = select_weights(layers, scores, ratio, scope, {})
    total = sum(m.numel() for m in masks.values())
    removed = sum(int((~m).sum()) for m in masks.values())
    assert (
        removed == round(ratio * total)
        if scope == "global"
        else removed == sum(round(ratio * m.numel()) for m in masks.values())
    )
    if scope == "layer":
        for mask in masks.values():
            assert int((~mask).sum()) == round(ratio * mask.numel())


def test_a_ranking_sorts_only_the_scope_it_is_asked_for_and_removes_the_lowest_scores():
    """Sorting every weight of a large model together takes seconds (vgg16: 34 M weights), so a
    per-layer ranking must never do it, nor a method that brings its own masks sort at all."""
    model = small_cnn()
    layers = models.prunable_layers(model)
    scores = {n: m.weight.abs() for n, m in layers.items()}
    ranking = WeightRanking(layers, scores, {})
    assert "per_layer" not in vars(ranking) and "overall" not in vars(ranking)
    per_layer = ranking.masks(0.5, "layer")
    assert "per_layer" in vars(ranking) and "overall" not in vars(ranking)
    for name, layer in layers.items():  # the removed half of each layer lies below the kept half
        w, keep = layer.weight.abs(), per_layer[f"{name}.weight"]
        assert w[~keep].max() <= w[keep].min()
    overall = ranking.masks(0.5, "global")
    everything = torch.cat([m.weight.abs().flatten() for m in layers.values()])
    kept = torch.cat([overall[f"{n}.weight"].flatten() for n in layers])
    assert everything[~kept].max() <= everything[kept].min()
    assert int((~kept).sum()) == round(0.5 * len(everything))


def test_magnitude_removes_the_smallest_weights_of_each_layer():
    model = small_cnn()
    original = {n: m.weight.detach().clone() for n, m in models.prunable_layers(model).items()}
    pruned = prune_step(model, make_method("magnitude", {}), 0.0, 0.5, context())
    model, masks = pruned.model, pruned.masks
    for name, weight in original.items():
        kept = masks[f"{name}.weight"]
        assert weight[~kept].abs().max() <= weight[kept].abs().min()
        assert torch.equal(dict(model.named_parameters())[f"{name}.weight"], weight * kept)


def test_random_is_reproducible_from_the_seed_and_differs_across_seeds():
    def masks(seed):
        return prune_step(small_cnn(), make_method("random", {}), 0.0, 0.5, context(seed=seed)).masks

    a, b, c = masks(0), masks(0), masks(1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_iterative_steps_reach_the_ratio_and_never_revive_a_weight():
    model, masks, done = small_cnn(), {}, 0.0
    method = make_method("magnitude", {})
    for target in (0.5, 0.75):
        previous = {k: v.clone() for k, v in masks.items()}
        pruned = prune_step(model, method, done, target, context(), masks)
        model, masks = pruned.model, pruned.masks
        done = target
        for key, mask in previous.items():
            assert not (mask == 0)[masks[key]].any(), "a removed weight came back"
    assert prunable_zero_fraction(model) == pytest.approx(0.75, abs=0.01)


def test_masks_stay_applied_through_training(splits, default_params, cpu):
    model = small_cnn()
    pruned = prune_step(model, make_method("magnitude", {}), 0.0, 0.6, context())
    model, masks = pruned.model, pruned.masks
    before = {k: p.detach().clone() for k, p in model.named_parameters() if k in masks}
    loader = batches(splits.train, splits, default_params.data, cpu, train=True)
    val = batches(splits.val, splits, default_params.data, cpu)
    fit(
        model,
        loader,
        val,
        replace(default_params.finetune, epochs=2, lr=0.1),
        cpu,
        after_step=mask_keeper(model, masks),
    )
    params = dict(model.named_parameters())
    for key, mask in masks.items():
        assert torch.all(params[key][~mask] == 0)
        assert not torch.equal(params[key][mask], before[key][mask]), "kept weights should have trained"


def test_l1_channel_physically_removes_the_weakest_filters_and_keeps_training():
    model = small_cnn()
    with torch.no_grad():  # make filter 3 of the first conv the weakest by far
        model.stem[0].weight[3] *= 1e-3
    kept_filter = model.stem[0].weight[5].clone()
    pruned = prune_step(model, make_method("l1_channel", {}), 0.0, 0.5, context())
    model, masks = pruned.model, pruned.masks
    assert masks == {}
    assert model.stem[0].out_channels == 4 and model.block.conv2.out_channels == 4  # residual coupling
    assert model.fc.out_features == 8 and model.head.out_features == 10  # hidden neurons pruned, output kept
    assert not any(torch.allclose(w, kept_filter * 1e-3) for w in model.stem[0].weight)
    out = model.train()(torch.randn(4, 1, 8, 8))
    out.sum().backward()
    assert out.shape == (4, 10)


def test_the_step_schedule_retrains_between_steps_and_reaches_the_ratio():
    calls = []

    def retrain(model, masks, step):
        calls.append((step, prunable_zero_fraction(model)))
        with torch.no_grad():  # as training would, move every weight; the masks put the pruned ones back to zero
            for param in model.parameters():
                param.add_(0.01)
        mask_keeper(model, masks)
        return model

    model = small_cnn()
    cost = WeightCost(model, (1, 8, 8))
    pruned, choice = prune_in_steps(
        model,
        make_method("magnitude", {}),
        context(),
        lambda masks: cost.kept(masks, "units"),
        0.125,
        3,
        retrain,
    )
    assert [step for step, _ in calls] == [1, 2]  # between steps, not after the last
    assert [round(zeros, 2) for _, zeros in calls] == [0.5, 0.75]  # each step keeps half of what is left
    assert prunable_zero_fraction(pruned.model) == pytest.approx(0.875, abs=0.01)
    assert choice.reached and choice.kept == pytest.approx(0.125, abs=1e-4)
    model = small_cnn()
    channels = ChannelCost(model, (1, 8, 8))
    pruned, choice = prune_in_steps(
        model,
        make_method("l1_channel", {}),
        context(),
        lambda counts: channels.kept(counts, "units"),
        0.25,
        2,
        lambda model, masks, step: model,
    )
    assert pruned.masks == {} and pruned.model.stem[0].out_channels == 2  # 8 → 4 → 2: half of what is left
    assert choice.kept == 0.25
