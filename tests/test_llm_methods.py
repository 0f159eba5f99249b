"""Issue 34: the LLM pruning methods — magnitude per row, Wanda and SparseGPT, unstructured and
N:M, calibrated layer by layer — checked against hand computations and closed forms."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from prunebench.pruning import rows
from prunebench.pruning.budget import WeightCost, search
from prunebench.pruning.steps import prune_step
from prunebench.pruning.units import WeightUnits
from prunebench.training import models

from helpers import GPT_SHAPE as SHAPE
from helpers import context, gpt_context, make_method, small_cnn, tiny_gpt

LLM_METHODS = ("magnitude_row", "wanda", "sparsegpt")


def calibrated(x: torch.Tensor) -> object:
    """A context whose calibration batches are the rows of `x` (no labels needed)."""
    return context([(x, None)])


def test_wandas_mask_is_the_hand_computation_on_a_tiny_layer():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    x = torch.randn(16, 4) * torch.tensor([0.1, 3.0, 1.0, 0.5])  # inputs of very different norms
    weight = model[0].weight.detach().clone()  # before pruning zeroes some
    masks = prune_step(model, make_method("wanda", {"calibration": 16}), 0.0, 0.5, calibrated(x)).masks
    hand = torch.ones(3, 4, dtype=torch.bool)
    importance = weight.abs() * x.norm(dim=0)  # |W_ij| · ‖X_j‖₂
    for row in range(3):
        hand[row, importance[row].argsort()[:2]] = False  # each row loses its 2 least important of 4
    assert torch.equal(masks["0.weight"], hand) and set(masks) == {"0.weight"}
    assert not torch.equal(hand, rows.row_mask(weight.abs(), 0.5, "unstructured"))  # not plain magnitude


def wanda_by_hand(weight: torch.Tensor, inputs: torch.Tensor, fraction: float = 0.5) -> torch.Tensor:
    return rows.row_mask(weight.abs() * inputs.norm(dim=0), fraction, "unstructured")


def test_each_layer_is_calibrated_on_what_the_pruned_layers_before_it_produce():
    torch.manual_seed(0)  # a model where the pruned first layer changes what the second keeps
    model = nn.Sequential(nn.Linear(6, 6), nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 2))
    original = copy.deepcopy(model)
    x = torch.randn(64, 6)
    masks = prune_step(model, make_method("wanda", {"calibration": 64}), 0.0, 0.5, calibrated(x)).masks
    (w1, b1), w2 = (original[0].weight.detach(), original[0].bias.detach()), original[1].weight.detach()
    keep1 = wanda_by_hand(w1, x)
    assert torch.equal(masks["0.weight"], keep1)
    pruned_outputs, dense_outputs = x @ (w1 * keep1).T + b1, x @ w1.T + b1
    assert torch.equal(masks["1.weight"], wanda_by_hand(w2, pruned_outputs))
    assert not torch.equal(masks["1.weight"], wanda_by_hand(w2, dense_outputs))  # dense inputs would choose otherwise


@pytest.mark.parametrize("pattern", ["2:4", "4:8"])
@pytest.mark.parametrize("method", LLM_METHODS)
def test_every_n_m_mask_keeps_at_most_n_of_every_m_weights_of_a_row(method, pattern):
    n, m = rows.n_m(pattern)
    model = tiny_gpt()
    pruned = prune_step(model, make_method(method, {"pattern": pattern}), 0.0, 0.3, gpt_context())
    assert set(pruned.masks) == {f"{name}.weight" for name in models.prunable_layers(model)}
    for name, mask in pruned.masks.items():
        groups = rows.rows(mask).reshape(mask.shape[0], -1, m)
        assert (groups.sum(-1) == n).all(), name  # exactly N: the target (0.3) is ignored
        weight = dict(pruned.model.named_parameters())[name]
        assert (rows.rows(weight).reshape(mask.shape[0], -1, m).ne(0).sum(-1) <= n).all()


def test_a_short_last_group_keeps_at_most_n():
    scores = torch.arange(10.0).repeat(3, 1)  # rows of 10: two groups of 4, then one of 2
    keep = rows.row_mask(scores, 0.0, "2:4")
    assert keep.sum(1).tolist() == [6, 6, 6] and keep[:, 8:].all()  # 2 + 2 + the last group's 2 (≤ N)
    assert rows.row_mask(torch.arange(9.0).repeat(2, 1), 0.0, "2:4")[:, 8].all()  # a group of 1 keeps it


def test_sparsegpt_changes_a_layers_output_less_than_magnitude_at_equal_sparsity():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 24, bias=False), nn.ReLU(), nn.Linear(24, 2))
    x = torch.randn(512, 8) @ torch.randn(8, 32) + 0.05 * torch.randn(512, 32)  # correlated: near rank 8
    dense = x @ model[0].weight.detach().T
    errors = {}
    for method in ("magnitude_row", "wanda", "sparsegpt"):
        for pattern in ("unstructured", "2:4"):
            knobs = {"pattern": pattern} | ({} if method == "magnitude_row" else {"calibration": 512})
            pruned = prune_step(copy.deepcopy(model), make_method(method, knobs), 0.0, 0.5, calibrated(x))
            weight = pruned.model[0].weight.detach()
            assert weight.eq(0).float().mean() == pytest.approx(0.5, abs=0.02)
            errors[method, pattern] = float((x @ weight.T - dense).square().mean())
    for pattern in ("unstructured", "2:4"):
        assert errors["sparsegpt", pattern] < errors["wanda", pattern] / 2 < errors["magnitude_row", pattern] / 2


def test_an_n_m_method_has_one_operating_point_and_says_it_cannot_reach_the_others():
    model, ctx = tiny_gpt(), gpt_context()
    method = make_method("wanda", {"pattern": "2:4"})
    units = WeightUnits(method)
    scored = method.score(model, models.prunable_layers(model), ctx)
    select = units.selector(model, scored, ctx, {})
    cost = WeightCost(model, SHAPE)
    kept = lambda masks: cost.kept(masks, "units")  # noqa: E731
    deeper = search(select, kept, 0.25, units.count(model, ctx))  # 4× fewer weights: beyond 2:4
    shallower = search(select, kept, 0.8, units.count(model, ctx))
    assert not deeper.reached and deeper.kept == pytest.approx(0.5)
    assert shallower.reached and shallower.kept == pytest.approx(0.5)  # passed: it removes half, not 20 %


@pytest.mark.parametrize("method", LLM_METHODS)
def test_the_llm_methods_prune_a_cnn_too(method):
    model = small_cnn()
    x = torch.randn(32, 1, 8, 8)
    knobs = {} if method == "magnitude_row" else {"calibration": 32}
    pruned = prune_step(model, make_method(method, knobs), 0.0, 0.5, calibrated(x))
    for name, mask in pruned.masks.items():
        per_row = rows.rows(mask)  # per output channel: its input channels × kernel positions
        assert per_row.float().mean() == pytest.approx(0.5, abs=0.06), name  # the stem's rows are 9 long
        if method != "sparsegpt":  # which chooses over a block of columns of all rows at once
            assert (per_row.shape[1] - per_row.sum(1) == round(0.5 * per_row.shape[1])).all(), name
    assert pruned.model(x).shape == (32, 10)


def test_llm_pruner_scores_units_by_the_first_order_taylor_term_and_removes_heads_and_neurons():
    from prunebench.training.loops import cross_entropy

    model, ctx = tiny_gpt(), gpt_context()
    method = make_method("llm_pruner", {"calibration": 8})
    layers = models.prunable_layers(model)
    scores = method.score(model, layers, ctx).scores
    (x, y), reference = next(iter(ctx.batches())), copy.deepcopy(model)
    (cross_entropy(reference(x), y) * len(x)).backward()
    fc = reference.get_submodule("blocks.0.mlp.fc1")
    by_hand = (fc.weight * fc.weight.grad).abs().sum(1) + (fc.bias * fc.bias.grad).abs()
    assert torch.allclose(scores["blocks.0.mlp.fc1"], by_hand)
    assert all(p.grad is None for p in model.parameters())  # the model is left as it came
    pruned = prune_step(model, method, 0.0, 0.5, ctx).model
    attention = pruned.get_submodule("blocks.0.attn")
    assert attention.num_heads == 2 and pruned.get_submodule("blocks.0.mlp.fc1").out_features == 32
    assert pruned.tok_embed.embedding_dim == 16  # the width stays
    assert pruned(x).shape == (8, 16, 256)


@pytest.mark.parametrize("method", ["wanda", "sparsegpt"])
def test_calibration_refuses_a_grouped_convolution_in_one_line_before_any_stage(method):
    model = nn.Sequential(nn.Conv2d(4, 8, 3, groups=2), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))
    model(torch.randn(1, 4, 6, 6))
    refusal = make_method(method).refuses(model, context())
    assert refusal.startswith("0 is a convolution with groups=2, padding=(0, 0): its rows' inputs are not its")
    assert make_method(method).refuses(small_cnn(), context()) is None
