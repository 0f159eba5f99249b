"""Issue 6: exact Hessian-vector products, the eigen-solver, and merge pruning."""

import copy
from dataclasses import replace

import pytest
import torch
from torch import nn

from prunebench.pruning.hessian import HessianOperator, _flat, _split, top_eigenpairs
from prunebench.pruning.selection import mask_keeper
from prunebench.pruning.steps import prune_step
from prunebench.training.batches import batches
from prunebench.training.loops import evaluate, fit
from prunebench.training.models import prunable_layers

from helpers import context, fine_tune_keeping_masks, make_method, small_cnn


def tiny_mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3)).double()


def tiny_batches():
    g = torch.Generator().manual_seed(1)
    return [
        (torch.randn(16, 4, generator=g, dtype=torch.float64), torch.randint(0, 3, (16,), generator=g))
        for _ in range(2)
    ]


def gradient(model, params, batches, vector):
    """Mean gradient over the batches at params + vector."""
    with torch.no_grad():
        for p, d in zip(params, _split(vector, params)):
            p.add_(d)
    total = 0
    for x, y in batches:
        total = total + _flat(torch.autograd.grad(nn.functional.cross_entropy(model(x), y), params))
    with torch.no_grad():
        for p, d in zip(params, _split(vector, params)):
            p.sub_(d)
    return total / len(batches)


def test_hessian_vector_products_match_central_differences_of_the_gradient():
    model, batches = tiny_mlp(), tiny_batches()
    params = [model[0].weight, model[2].weight]
    operator = HessianOperator(model, params, batches)
    v = torch.randn(operator.size, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    eps = 1e-5
    finite = (gradient(model, params, batches, eps * v) - gradient(model, params, batches, -eps * v)) / (2 * eps)
    assert torch.allclose(operator(v), finite, rtol=1e-6, atol=1e-9)


def dense_hessian(operator: HessianOperator) -> torch.Tensor:
    dense = torch.stack([operator(e) for e in torch.eye(operator.size, dtype=torch.float64)])
    assert torch.allclose(dense, dense.T, atol=1e-10)
    return dense


def test_lanczos_finds_the_dense_hessians_top_eigenpairs_within_1e_3():
    model, batches = tiny_mlp(), tiny_batches()
    params = [model[0].weight, model[2].weight]
    dense = dense_hessian(HessianOperator(model, params, batches))
    exact_values, exact_vectors = torch.linalg.eigh(dense)
    order = exact_values.abs().argsort(descending=True)[:5]
    operator = HessianOperator(model, params, batches)
    pairs = top_eigenpairs(operator, 5, max_products=200, tol=1e-6, generator=torch.Generator().manual_seed(0))
    assert pairs.products == operator.calls < operator.size  # fewer products than the dense matrix took
    assert torch.allclose(pairs.values, exact_values[order], rtol=1e-3)
    for value, vector, exact in zip(pairs.values, pairs.vectors, exact_vectors[:, order].T):
        assert abs(float(vector @ exact)) == pytest.approx(1, abs=1e-3)  # the same direction, up to sign
        assert torch.allclose(dense @ vector, value * vector, atol=1e-3 * abs(float(value)))
    assert (pairs.residuals <= 1e-6).all()
    assert torch.allclose(pairs.vectors @ pairs.vectors.T, torch.eye(5, dtype=torch.float64), atol=1e-10)


def test_the_kept_first_backward_gives_the_same_products():
    model, batches = tiny_mlp(), tiny_batches()
    params = [model[0].weight, model[2].weight]
    kept, rebuilt = HessianOperator(model, params, batches), HessianOperator(model, params, batches, keep_graph=False)
    g = torch.Generator().manual_seed(3)
    for _ in range(3):
        v = torch.randn(kept.size, generator=g, dtype=torch.float64)
        assert torch.equal(kept(v), rebuilt(v))


def test_the_solve_stops_at_the_product_cap_and_says_how_far_it_got():
    model, batches = tiny_mlp(), tiny_batches()
    operator = HessianOperator(model, [model[0].weight, model[2].weight], batches)
    pairs = top_eigenpairs(operator, 3, max_products=4, tol=1e-12, generator=torch.Generator().manual_seed(0))
    assert pairs.products == operator.calls == 4 and len(pairs.values) == 3
    assert (pairs.residuals > 1e-12).any()  # not converged: the residuals say so


def test_saliency_is_half_w_squared_times_the_low_rank_hessian_diagonal():
    model = small_cnn()
    method = make_method("h", {"method": "hessian_merge", "k": 3, "batches": 1})
    ctx = context()
    ctx.batches = lambda: iter([(torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,)))])
    layers = prunable_layers(model)
    scored = method.score(model, layers, ctx)
    v, lam = scored.state.components["fc"], scored.state.eigenvalues["fc"]
    expected = 0.5 * layers["fc"].weight.detach().square() * torch.einsum("k,k...->...", lam, v.square())
    assert torch.allclose(scored.scores["fc"], expected)
    assert scored.metrics["hvps"] >= 3 and len(scored.tables["spectrum"]) == 3


def second_order_change(hessian, before, after) -> float:
    """½ δwᵀ H δw under the method's low-rank Hessian H = V Λ Vᵀ."""
    v = torch.cat([c.flatten(1) for c in hessian.components.values()], dim=1)
    lam = next(iter(hessian.eigenvalues.values()))
    return 0.5 * float((lam * (v @ (after - before)).square()).sum())


def test_merging_one_weight_into_its_partner_lowers_the_second_order_loss_change():
    batch = [(torch.randn(32, 1, 8, 8, generator=torch.Generator().manual_seed(3)), torch.arange(32) % 10)]
    ctx = context()
    ctx.batches = lambda: iter(batch)
    model = small_cnn()
    knobs = {"method": "hessian_merge", "k": 4, "batches": 1}
    scored = make_method("h", knobs).score(model, prunable_layers(model), ctx)
    hessian = scored.state
    name = "block.conv1"  # remove its weight with the largest low-rank curvature Σ λ v_i²
    curvature = torch.einsum("k,k...->...", hessian.eigenvalues[name], hessian.components[name].square())
    masks = {f"{n}.weight": torch.ones_like(m.weight, dtype=torch.bool) for n, m in prunable_layers(model).items()}
    masks[f"{name}.weight"].view(-1)[curvature.argmax()] = False
    before = _flat([m.weight.detach().clone() for m in prunable_layers(model).values()])
    changes = {}
    for merge in ("none", "coupling", "half"):
        probe = copy.deepcopy(model)
        metrics = make_method("h", knobs | {"merge": merge}).adjust(probe, prunable_layers(probe), masks, ctx, scored)
        mask_keeper(probe, masks)
        after = _flat([m.weight.detach() for m in prunable_layers(probe).values()])
        changes[merge] = second_order_change(hessian, before, after)
        assert metrics["merged_fraction"] == (0.0 if merge == "none" else 1.0)
    assert changes["coupling"] < changes["none"]  # w_j += w_i·H_ij/H_jj is the optimal one-partner update
    assert changes["coupling"] <= changes["half"]


def test_merging_recovers_accuracy_on_a_trained_model(splits, default_params):
    cpu = torch.device("cpu")
    torch.manual_seed(0)
    model = small_cnn()
    loader = batches(splits.train, splits, default_params.data, cpu, train=True, seed=0)
    val = batches(splits.val, splits, default_params.data, cpu)
    fit(model, loader, val, replace(default_params.train, epochs=6), cpu)
    losses = {}
    for merge in ("none", "coupling"):
        probe = copy.deepcopy(model)
        ctx = context()
        ctx.batches = lambda: iter(batches(splits.train, splits, default_params.data, cpu, train=True, seed=1))
        prune_step(probe, make_method("h", {"method": "hessian_merge", "merge": merge}), 0.0, 0.7, ctx)
        losses[merge] = evaluate(probe, val, cpu)["loss"]
    assert losses["coupling"] < losses["none"]


def test_masks_survive_fine_tuning(splits, default_params):
    cpu = torch.device("cpu")
    loader = batches(splits.train, splits, default_params.data, cpu, train=True)
    ctx = context()
    ctx.batches = lambda: iter(loader)
    pruned = prune_step(
        small_cnn(), make_method("h", {"method": "hessian_merge", "k": 2, "products": 10}), 0.0, 0.6, ctx
    )
    model, masks = pruned.model, pruned.masks
    fine_tune_keeping_masks(model, masks, splits, default_params)
    params = dict(model.named_parameters())
    assert all(torch.all(params[k][~m] == 0) for k, m in masks.items())
    assert sum(int((~m).sum()) for m in masks.values()) == round(0.6 * sum(m.numel() for m in masks.values()))
